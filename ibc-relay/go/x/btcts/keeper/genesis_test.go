package keeper_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"

	"github.com/cosmos/cosmos-sdk/runtime"
	"github.com/cosmos/cosmos-sdk/testutil"

	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

func TestGenesisRoundTrip(t *testing.T) {
	f := newFixture(t, func(p *types.Params) { p.HeaderWindow = 10 })
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0,
		btctest.NewRecord(hub, 10, 1), btctest.NewRecord(hub, 10, 2), btctest.NewRecord(osmo, 3, 1))
	f.chain.Mine(5) // 106
	for i := range 3 {
		f.mustAccept(f.chain.Packet(t, b, i, 101, 106))
	}
	exported := f.export()
	require.Len(t, exported.KnownHeaders, 7, "100..106")
	require.Len(t, exported.Timestamps, 2)
	require.Len(t, exported.Conflicts, 1)
	require.NoError(t, exported.Validate())

	// Through JSON, as genesis files carry it.
	bz, err := f.cdc.MarshalJSON(exported)
	require.NoError(t, err)
	var decoded types.GenesisState
	require.NoError(t, f.cdc.UnmarshalJSON(bz, &decoded))

	key := storetypes.NewKVStoreKey(types.StoreKey)
	ctx := testutil.DefaultContextWithDB(t, key, storetypes.NewTransientStoreKey("t")).Ctx
	k2 := keeper.NewKeeper(f.cdc, runtime.NewKVStoreService(key), authority, btctest.NewStaking())
	require.NoError(t, k2.InitGenesis(ctx, decoded))
	again, err := k2.ExportGenesis(ctx)
	require.NoError(t, err)
	require.Equal(t, exported, again)
	tip, err := k2.TrustedTip(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 106, tip.Height)
	latest, found, err := k2.LatestTimestamp(ctx, osmo)
	require.NoError(t, err)
	require.True(t, found)
	require.EqualValues(t, 3, latest.Height)

	// The imported state goes on: the next packet starts from the tip.
	b2 := f.chain.Anchor("regtest", btctest.DefaultTag, 1, btctest.NewRecord(hub, 11, 1))
	f.chain.Mine(2)
	_, err = k2.ReceivePacket(ctx, f.chain.Packet(t, b2, 0, 107, 109))
	require.NoError(t, err)
}

func TestInitGenesisWithoutKnownHeadersTrustsTheCheckpoint(t *testing.T) {
	f := newFixture(t, nil)
	gs := f.export()
	require.Len(t, gs.KnownHeaders, 1)
	require.Equal(t, f.params.TrustedHeader, gs.KnownHeaders[0])
	require.Equal(t, f.params.TrustedHeader, f.tip())
}
