package keeper_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

func TestUpdateParams(t *testing.T) {
	f := newFixture(t, nil)
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 1, 1))
	f.chain.Mine(3) // 104
	f.mustAccept(f.chain.Packet(t, b, 0, 101, 104))
	server := keeper.NewMsgServer(f.k)

	// Not the authority: refused, nothing changes.
	changed := f.params
	changed.K = 5
	_, err := server.UpdateParams(f.ctx, types.NewMsgUpdateParams("cosmos1someoneelse", changed))
	require.ErrorIs(t, err, types.ErrUnauthorized)
	p, err := f.k.GetParams(f.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, p.K)

	// Invalid params: refused.
	invalid := f.params
	invalid.Tag = "BTCT"
	_, err = server.UpdateParams(f.ctx, types.NewMsgUpdateParams(authority, invalid))
	require.ErrorIs(t, err, types.ErrInvalidParams)

	// The same trusted header: params change, known headers stay.
	_, err = server.UpdateParams(f.ctx, types.NewMsgUpdateParams(authority, changed))
	require.NoError(t, err)
	p, err = f.k.GetParams(f.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, p.K)
	require.EqualValues(t, 104, f.tip().Height)
	f.requireKnown(102, true)

	// A new checkpoint (governance recovery): the known headers are reset to it.
	f.chain.Mine(10) // 114
	checkpoint := f.chain.Header(110)
	changed.TrustedHeader = types.TrustedHeader{Height: 110, Header: checkpoint[:]}
	_, err = server.UpdateParams(f.ctx, types.NewMsgUpdateParams(authority, changed))
	require.NoError(t, err)
	require.Equal(t, changed.TrustedHeader, f.tip())
	f.requireKnown(104, false)
	f.requireKnown(100, false)
	// Packets now start after it; the timestamps stay.
	_, found, err := f.k.Timestamp(f.ctx, hub, 1)
	require.NoError(t, err)
	require.True(t, found)
	b2 := f.chain.Anchor("regtest", btctest.DefaultTag, 1, btctest.NewRecord(hub, 2, 1)) // 115
	f.chain.Mine(4)                                                                      // 119
	_, _, err = f.receive(f.chain.Packet(t, b2, 0, 105, 119))
	require.ErrorIs(t, err, types.ErrUnknownStartHeader)
	ack := f.mustAccept(f.chain.Packet(t, b2, 0, 111, 119))
	require.EqualValues(t, 5, ack.Depth)
}
