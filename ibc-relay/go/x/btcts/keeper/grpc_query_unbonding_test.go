package keeper_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cosmos/cosmos-sdk/types/query"

	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

func TestUnbondingQueries(t *testing.T) {
	c := newOwnChain(t, nil)
	q := keeper.NewQueryServer(c.k)
	c.blocks(1, 9)
	ctx := c.begin(10, 0)
	c.unbond(ctx, 1)
	c.unbond(ctx, 2)
	c.unbond(c.begin(11, 0), 3)
	c.blocks(12, 14)

	res, err := q.Holds(ctx, &types.QueryHoldsRequest{})
	require.NoError(t, err)
	require.Len(t, res.Holds, 3)
	require.Nil(t, res.OwnTimestamp)
	page, err := q.Holds(ctx, &types.QueryHoldsRequest{Pagination: &query.PageRequest{Limit: 2, CountTotal: true}})
	require.NoError(t, err)
	require.Equal(t, res.Holds[:2], page.Holds)
	require.EqualValues(t, 3, page.Pagination.Total)
	rest, err := q.Holds(ctx, &types.QueryHoldsRequest{Pagination: &query.PageRequest{Key: page.Pagination.NextKey}})
	require.NoError(t, err)
	require.Equal(t, res.Holds[2:], rest.Holds)
	require.EqualValues(t, 3, rest.Holds[0].UnbondingId)

	ctx = c.begin(15, 0)
	c.deliver(ctx, hub, 10, ownHash(10))
	c.deliver(ctx, hub, 12, make([]byte, 32))
	res, err = q.Holds(ctx, &types.QueryHoldsRequest{})
	require.NoError(t, err)
	require.Equal(t, []types.Hold{rest.Holds[0]}, res.Holds)
	require.NotNil(t, res.OwnTimestamp)
	require.EqualValues(t, 10, res.OwnTimestamp.Height)

	forks, err := q.Forks(ctx, &types.QueryForksRequest{})
	require.NoError(t, err)
	require.Len(t, forks.Forks, 1)
	require.EqualValues(t, 12, forks.Forks[0].Height)
	require.Equal(t, ownHash(12), forks.Forks[0].OwnHash)

	own, err := q.OwnHash(ctx, &types.QueryOwnHashRequest{Height: 7})
	require.NoError(t, err)
	require.Equal(t, ownHash(7), own.Hash)
	_, err = q.OwnHash(ctx, &types.QueryOwnHashRequest{Height: 16})
	require.Equal(t, codes.NotFound, status.Code(err))

	for name, call := range map[string]func() error{
		"holds":    func() error { _, err := q.Holds(ctx, nil); return err },
		"forks":    func() error { _, err := q.Forks(ctx, nil); return err },
		"own hash": func() error { _, err := q.OwnHash(ctx, nil); return err },
	} {
		require.Equal(t, codes.InvalidArgument, status.Code(call()), name)
	}
}
