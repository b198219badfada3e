package keeper_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

func TestQueries(t *testing.T) {
	f := newFixture(t, nil)
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0,
		btctest.NewRecord(hub, 10, 1), btctest.NewRecord(osmo, 3, 1), btctest.NewRecord(hub, 10, 2))
	f.chain.Mine(2) // 103
	for i := range 3 {
		f.mustAccept(f.chain.Packet(t, b, i, 101, 103))
	}
	q := keeper.NewQueryServer(f.k)

	params, err := q.Params(f.ctx, &types.QueryParamsRequest{})
	require.NoError(t, err)
	require.Equal(t, f.params, params.Params)

	tip, err := q.TrustedHeader(f.ctx, &types.QueryTrustedHeaderRequest{})
	require.NoError(t, err)
	want := f.chain.Header(103)
	require.Equal(t, types.TrustedHeader{Height: 103, Header: want[:]}, tip.Header)

	known, err := q.KnownHeader(f.ctx, &types.QueryKnownHeaderRequest{Height: 101})
	require.NoError(t, err)
	want = f.chain.Header(101)
	require.Equal(t, want[:], known.Header.Header)

	latest, err := q.LatestTimestamp(f.ctx, &types.QueryLatestTimestampRequest{ChainId: hub})
	require.NoError(t, err)
	require.EqualValues(t, 10, latest.Timestamp.Height)

	ts, err := q.Timestamp(f.ctx, &types.QueryTimestampRequest{ChainId: osmo, Height: 3})
	require.NoError(t, err)
	require.EqualValues(t, 3, ts.Timestamp.Depth)

	all, err := q.LatestTimestamps(f.ctx, &types.QueryLatestTimestampsRequest{})
	require.NoError(t, err)
	require.Len(t, all.Timestamps, 2)
	require.Equal(t, hub, all.Timestamps[0].ChainId)
	require.Equal(t, osmo, all.Timestamps[1].ChainId)

	conflicts, err := q.Conflicts(f.ctx, &types.QueryConflictsRequest{ChainId: hub})
	require.NoError(t, err)
	require.Len(t, conflicts.Conflicts, 1)

	errs := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"known header missing", func() error {
			_, err := q.KnownHeader(f.ctx, &types.QueryKnownHeaderRequest{Height: 104})
			return err
		}, codes.NotFound},
		{"latest of unknown chain", func() error {
			_, err := q.LatestTimestamp(f.ctx, &types.QueryLatestTimestampRequest{ChainId: "juno-1"})
			return err
		}, codes.NotFound},
		{"latest of invalid chain id", func() error {
			_, err := q.LatestTimestamp(f.ctx, &types.QueryLatestTimestampRequest{ChainId: "no spaces"})
			return err
		}, codes.InvalidArgument},
		{"timestamp missing", func() error {
			_, err := q.Timestamp(f.ctx, &types.QueryTimestampRequest{ChainId: hub, Height: 11})
			return err
		}, codes.NotFound},
		{"timestamp of empty chain id", func() error {
			_, err := q.Timestamp(f.ctx, &types.QueryTimestampRequest{Height: 11})
			return err
		}, codes.InvalidArgument},
		{"conflicts of invalid chain id", func() error {
			_, err := q.Conflicts(f.ctx, &types.QueryConflictsRequest{ChainId: "a/b"})
			return err
		}, codes.InvalidArgument},
		{"nil request", func() error {
			_, err := q.Params(f.ctx, nil)
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		})
	}
	none, err := q.Conflicts(f.ctx, &types.QueryConflictsRequest{ChainId: osmo})
	require.NoError(t, err)
	require.Empty(t, none.Conflicts)
}
