package keeper_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"

	"github.com/cosmos/cosmos-sdk/codec"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"
	"github.com/cosmos/cosmos-sdk/runtime"
	"github.com/cosmos/cosmos-sdk/testutil"
	sdk "github.com/cosmos/cosmos-sdk/types"

	"example.invalid/btcts/consumer/packet"
	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

const (
	authority = "cosmos10d07y265gmmuvt4z0w9aw880jnsr700j6zn9kn"
	base      = 100 // height of the checkpoint
	hub       = "cosmoshub-4"
	osmo      = "osmosis-1"
)

type fixture struct {
	t       *testing.T
	staking *btctest.Staking
	ctx     sdk.Context
	cdc     codec.Codec
	k       keeper.Keeper
	chain   *btctest.Chain
	params  types.Params
}

func newCodec() codec.Codec {
	registry := codectypes.NewInterfaceRegistry()
	types.RegisterInterfaces(registry)
	return codec.NewProtoCodec(registry)
}

// newFixture sets up the module with a regtest checkpoint at height 100,
// k = 3 and two source chains; change adjusts the params first.
func newFixture(t *testing.T, change func(*types.Params)) *fixture {
	t.Helper()
	key := storetypes.NewKVStoreKey(types.StoreKey)
	tctx := testutil.DefaultContextWithDB(t, key, storetypes.NewTransientStoreKey("transient_test"))
	cdc := newCodec()
	staking := btctest.NewStaking()
	f := &fixture{
		t:       t,
		staking: staking,
		ctx:     tctx.Ctx.WithBlockHeight(42),
		cdc:     cdc,
		k:       keeper.NewKeeper(cdc, runtime.NewKVStoreService(key), authority, staking),
		chain:   btctest.NewChain(t, base),
	}
	checkpoint := f.chain.Header(base)
	f.params = types.DefaultParams()
	f.params.Network = "regtest"
	f.params.K = 3
	f.params.SourceChains = []string{hub, osmo}
	f.params.TrustedHeader = types.TrustedHeader{Height: base, Header: checkpoint[:]}
	if change != nil {
		change(&f.params)
	}
	require.NoError(t, f.k.InitGenesis(f.ctx, types.GenesisState{Params: f.params}))
	return f
}

// receive runs the packet with a fresh event manager.
func (f *fixture) receive(data []byte) (*packet.TimestampAck, sdk.Events, error) {
	ctx := f.ctx.WithEventManager(sdk.NewEventManager())
	ack, err := f.k.ReceivePacket(ctx, data)
	return ack, ctx.EventManager().Events(), err
}

func (f *fixture) mustAccept(data []byte) *packet.TimestampAck {
	f.t.Helper()
	ack, _, err := f.receive(data)
	require.NoError(f.t, err)
	return ack
}

func (f *fixture) export() *types.GenesisState {
	f.t.Helper()
	gs, err := f.k.ExportGenesis(f.ctx)
	require.NoError(f.t, err)
	return gs
}

func (f *fixture) tip() types.TrustedHeader {
	f.t.Helper()
	tip, err := f.k.TrustedTip(f.ctx)
	require.NoError(f.t, err)
	return tip
}

func (f *fixture) requireKnown(height uint32, want bool) {
	f.t.Helper()
	h, found, err := f.k.KnownHeader(f.ctx, height)
	require.NoError(f.t, err)
	require.Equal(f.t, want, found, "known header at %d", height)
	if want && height <= f.chain.Tip() {
		hdr := f.chain.Header(height)
		require.Equal(f.t, hdr[:], h.Header, "known header at %d", height)
	}
}

func attrs(ev sdk.Event) map[string]string {
	out := map[string]string{}
	for _, a := range ev.Attributes {
		out[a.Key] = a.Value
	}
	return out
}

func findEvent(events sdk.Events, typ string) (sdk.Event, bool) {
	for _, ev := range events {
		if ev.Type == typ {
			return ev, true
		}
	}
	return sdk.Event{}, false
}

func TestAcceptedPacketAdvancesState(t *testing.T) {
	f := newFixture(t, nil)
	rec := btctest.NewRecord(hub, 7, 1)
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, rec)
	require.EqualValues(t, 101, b.Height)
	f.chain.Mine(2)
	data := f.chain.Packet(t, b, 0, 101, 103)

	gasBefore := f.ctx.GasMeter().GasConsumed()
	ack, events, err := f.receive(data)
	require.NoError(t, err)
	require.Equal(t, &packet.TimestampAck{ChainId: hub, Height: 7, BitcoinHeight: 101, Depth: 3}, ack)
	require.GreaterOrEqual(t, f.ctx.GasMeter().GasConsumed()-gasBefore, uint64(3*types.GasPerSha256dHeader))

	ts, found, err := f.k.Timestamp(f.ctx, hub, 7)
	require.NoError(t, err)
	require.True(t, found)
	anchor := f.chain.Header(101)
	anchorHash := btctest.Sha256d(anchor[:])
	leaf := rec.LeafHash()
	require.Equal(t, types.VerifiedTimestamp{
		ChainId: hub, Height: 7, BlockHash: rec.BlockHash[:], StakerSetDigest: rec.StakerSetDigest[:],
		RecordId: leaf[:], BitcoinHeight: 101, BitcoinBlock: anchorHash[:], Depth: 3, ConsumerHeight: 42,
	}, ts)
	latest, found, err := f.k.LatestTimestamp(f.ctx, hub)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, ts, latest)
	_, found, err = f.k.LatestTimestamp(f.ctx, osmo)
	require.NoError(t, err)
	require.False(t, found)

	tipHeader := f.chain.Header(103)
	require.Equal(t, types.TrustedHeader{Height: 103, Header: tipHeader[:]}, f.tip())
	for h := uint32(base); h <= 103; h++ {
		f.requireKnown(h, true)
	}
	f.requireKnown(104, false)

	ev, ok := findEvent(events, types.EventTimestampVerified)
	require.True(t, ok, "events: %v", events)
	require.Equal(t, map[string]string{"chain_id": hub, "height": "7", "bitcoin_height": "101", "depth": "3"}, attrs(ev))

	// A later, higher record of the same chain becomes its latest.
	rec2 := btctest.NewRecord(hub, 9, 1)
	b2 := f.chain.Anchor("regtest", btctest.DefaultTag, 1, rec2)
	f.chain.Mine(2)
	f.mustAccept(f.chain.Packet(t, b2, 0, 104, 106))
	latest, _, err = f.k.LatestTimestamp(f.ctx, hub)
	require.NoError(t, err)
	require.EqualValues(t, 9, latest.Height)
	require.EqualValues(t, 106, f.tip().Height)

	// A lower one afterwards is stored but does not lower the latest.
	rec3 := btctest.NewRecord(hub, 8, 1)
	b3 := f.chain.Anchor("regtest", btctest.DefaultTag, 2, rec3)
	f.chain.Mine(2)
	f.mustAccept(f.chain.Packet(t, b3, 0, 107, 109))
	latest, _, err = f.k.LatestTimestamp(f.ctx, hub)
	require.NoError(t, err)
	require.EqualValues(t, 9, latest.Height)
	_, found, err = f.k.Timestamp(f.ctx, hub, 8)
	require.NoError(t, err)
	require.True(t, found)
}

func TestWindowPrunesOldHeaders(t *testing.T) {
	f := newFixture(t, func(p *types.Params) { p.HeaderWindow = 5 })
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 1, 1))
	f.chain.Mine(11) // tip 112
	f.mustAccept(f.chain.Packet(t, b, 0, 101, 112))
	for h := uint32(base); h < 107; h++ {
		f.requireKnown(h, false)
	}
	for h := uint32(107); h <= 112; h++ {
		f.requireKnown(h, true)
	}
	require.EqualValues(t, 112, f.tip().Height)

	// The record anchored at 101 now needs header 100, which is pruned.
	_, _, err := f.receive(f.chain.Packet(t, b, 0, 101, 112))
	require.ErrorIs(t, err, types.ErrUnknownStartHeader)
	require.Contains(t, err.Error(), "no known header at height 100")
	require.Contains(t, err.Error(), "known: 107 to 112")
}

func TestPacketsAnchoredInOneBlockStartBelowTheTip(t *testing.T) {
	f := newFixture(t, nil)
	recA, recB := btctest.NewRecord(hub, 5, 1), btctest.NewRecord(osmo, 8, 2)
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, recA, recB)
	f.chain.Mine(4) // tip 105
	ackA := f.mustAccept(f.chain.Packet(t, b, 0, 101, 105))
	require.EqualValues(t, 5, ackA.Depth)
	// The second record of the same block starts below the tip, from the
	// known header 100, and ends at the tip.
	ackB := f.mustAccept(f.chain.Packet(t, b, 1, 101, 105))
	require.Equal(t, &packet.TimestampAck{ChainId: osmo, Height: 8, BitcoinHeight: 101, Depth: 5}, ackB)
	require.EqualValues(t, 105, f.tip().Height)

	// Later blocks: a record anchored at 106 starts from the known 105.
	b2 := f.chain.Anchor("regtest", btctest.DefaultTag, 1, btctest.NewRecord(hub, 6, 1))
	f.chain.Mine(2)
	f.mustAccept(f.chain.Packet(t, b2, 0, 106, 108))
	// And the osmo record again, starting at 101 and going to the new tip:
	// the same record, deeper.
	f.mustAccept(f.chain.Packet(t, b, 1, 101, 108))
	ts, _, err := f.k.Timestamp(f.ctx, osmo, 8)
	require.NoError(t, err)
	require.EqualValues(t, 8, ts.Depth)
	require.EqualValues(t, 42, ts.ConsumerHeight)
	conflicts, err := f.k.ChainConflicts(f.ctx, osmo)
	require.NoError(t, err)
	require.Empty(t, conflicts)
}

func TestLongerBranchReplacesKnownHeaders(t *testing.T) {
	f := newFixture(t, nil)
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 1, 1))
	f.chain.Mine(4) // tip 105
	f.mustAccept(f.chain.Packet(t, b, 0, 101, 105))

	fork := f.chain.Fork(102)
	fb := fork.Anchor("regtest", btctest.DefaultTag, 1, btctest.NewRecord(hub, 2, 1)) // 103
	fork.Mine(3)                                                                      // tip 106
	// Ending at 105 on the fork: not below the tip, accepted.
	f.mustAccept(fork.Packet(t, fb, 0, 103, 106))
	for h := uint32(103); h <= 106; h++ {
		got, found, err := f.k.KnownHeader(f.ctx, h)
		require.NoError(t, err)
		require.True(t, found)
		want := fork.Header(h)
		require.Equal(t, want[:], got.Header, "height %d is the fork's", h)
	}
	require.EqualValues(t, 106, f.tip().Height)
	// The old branch cannot come back shorter.
	_, _, err := f.receive(f.chain.Packet(t, b, 0, 101, 105))
	require.ErrorIs(t, err, types.ErrShorterChain)
}

func TestRefusedPacketsChangeNothing(t *testing.T) {
	f := newFixture(t, func(p *types.Params) { p.MaxHeadersPerPacket = 6 })
	c := f.chain
	good := c.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 1, 1)) // 101
	c.Mine(3)                                                                        // 104
	f.mustAccept(c.Packet(t, good, 0, 101, 104))

	foreign := c.Anchor("regtest", btctest.DefaultTag, 1, btctest.NewRecord("evil-1", 1, 1))      // 105
	c.Mine(2)                                                                                     // 107
	shallow := c.Anchor("regtest", btctest.DefaultTag, 2, btctest.NewRecord(hub, 2, 1))           // 108
	c.Mine(1)                                                                                     // 109
	otherTag := c.Anchor("regtest", [4]byte{'X', 'X', 'X', 'X'}, 3, btctest.NewRecord(hub, 3, 1)) // 110
	c.Mine(2)                                                                                     // 112
	stranger := btctest.NewChainSeeded(t, base, 1)                                                // another checkpoint at 100
	sb := stranger.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 4, 1))
	stranger.Mine(4)

	tests := []struct {
		name   string
		data   []byte
		kind   error
		reason string
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, types.ErrInvalidPacket, "packet does not decode"},
		{"no headers", c.PacketWith(t, foreign, 0, 105, 107, func(p *packet.TimestampPacket) { p.Headers = nil }),
			types.ErrTooManyHeaders, "headers: 0 headers; 1 to 6 are allowed"},
		{"too many headers", c.Packet(t, good, 0, 101, 107), types.ErrTooManyHeaders, "headers: 7 headers; 1 to 6 are allowed"},
		{"unknown start header", c.Packet(t, foreign, 0, 106, 107), types.ErrUnknownStartHeader,
			"headers: no known header at height 105, right before the first one (known: 100 to 104)"},
		{"shorter chain", c.Packet(t, good, 0, 101, 103), types.ErrShorterChain,
			"headers: they end at height 103, below the trusted tip at 104"},
		{"foreign chain", c.Packet(t, foreign, 0, 105, 107), types.ErrInvalidEvidence, "evil-1"},
		{"too shallow", c.Packet(t, shallow, 0, 105, 109), types.ErrInvalidEvidence, "depth 2 is below the required 3"},
		{"other tag", c.Packet(t, otherTag, 0, 105, 110), types.ErrInvalidEvidence, ""},
		{"claimed depth", c.PacketWith(t, good, 0, 101, 104, func(p *packet.TimestampPacket) { p.Depth = 9 }),
			types.ErrInvalidEvidence, "depth"},
		{"tampered proof", c.PacketWith(t, good, 0, 101, 104, func(p *packet.TimestampPacket) {
			p.Proof[len(p.Proof)/2] ^= 0x01
		}), types.ErrInvalidEvidence, "proof"},
		{"headers of another chain", stranger.Packet(t, sb, 0, 101, 105), types.ErrInvalidEvidence, "link"},
		{"tampered header", c.PacketWith(t, good, 0, 101, 104, func(p *packet.TimestampPacket) {
			p.Headers[1][70] ^= 0x01
		}), types.ErrInvalidEvidence, "header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.export()
			ack, events, err := f.receive(tc.data)
			require.Nil(t, ack)
			require.Error(t, err)
			require.True(t, keeper.IsRefusal(err), "a refusal, not a failure: %v", err)
			require.ErrorIs(t, err, tc.kind)
			require.Contains(t, err.Error(), tc.reason)
			require.NotContains(t, err.Error(), "\n")
			t.Logf("refused: %v", err)
			require.Equal(t, before, f.export(), "state changed")
			_, verified := findEvent(events, types.EventTimestampVerified)
			require.False(t, verified)
		})
	}
}

func TestConflictingHashKeepsTheFirst(t *testing.T) {
	f := newFixture(t, nil)
	honest := btctest.NewRecord(hub, 50, 1)
	fork := btctest.NewRecord(hub, 50, 2)
	third := btctest.NewRecord(hub, 50, 3)
	require.NotEqual(t, honest.BlockHash, fork.BlockHash)
	b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, honest, fork, third)
	f.chain.Mine(2)
	f.mustAccept(f.chain.Packet(t, b, 0, 101, 103))

	ack, events, err := f.receive(f.chain.Packet(t, b, 1, 101, 103))
	require.NoError(t, err, "the evidence verified: success ack")
	require.EqualValues(t, 50, ack.Height)
	ev, ok := findEvent(events, types.EventConflictingTimestamp)
	require.True(t, ok, "events: %v", events)
	a := attrs(ev)
	require.Equal(t, hub, a["chain_id"])
	require.Equal(t, "50", a["height"])
	require.NotEqual(t, a["first_block_hash"], a["second_block_hash"])

	ts, _, err := f.k.Timestamp(f.ctx, hub, 50)
	require.NoError(t, err)
	require.Equal(t, honest.BlockHash[:], ts.BlockHash, "the first stays")
	conflicts, err := f.k.ChainConflicts(f.ctx, hub)
	require.NoError(t, err)
	require.Len(t, conflicts, 1)
	require.Equal(t, honest.BlockHash[:], conflicts[0].First.BlockHash)
	require.Equal(t, fork.BlockHash[:], conflicts[0].Second.BlockHash)

	// A third record at that height: event again, the stored pair stays.
	_, events, err = f.receive(f.chain.Packet(t, b, 2, 101, 103))
	require.NoError(t, err)
	_, ok = findEvent(events, types.EventConflictingTimestamp)
	require.True(t, ok)
	conflicts, err = f.k.ChainConflicts(f.ctx, hub)
	require.NoError(t, err)
	require.Len(t, conflicts, 1)
	require.Equal(t, fork.BlockHash[:], conflicts[0].Second.BlockHash)
	other, err := f.k.ChainConflicts(f.ctx, osmo)
	require.NoError(t, err)
	require.Empty(t, other)
}

func TestGasPerHeader(t *testing.T) {
	tests := []struct {
		name    string
		perHdr  uint64
		headers uint32
	}{
		{"default sha256d, 3 headers", 0, 3},
		{"default sha256d, 10 headers", 0, 10},
		{"default sha256d, 100 headers", 0, 100},
		{"explicit 50000, 3 headers", 50_000, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(p *types.Params) { p.GasPerHeader = tc.perHdr })
			b := f.chain.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 1, 1))
			f.chain.Mine(int(tc.headers) - 1)
			data := f.chain.Packet(t, b, 0, 101, 100+tc.headers)
			charge := tc.perHdr
			if charge == 0 {
				charge = types.GasPerSha256dHeader
			}
			// A gas limit just below the header charge stops the packet
			// before anything is verified or written.
			ctx := f.ctx.WithGasMeter(storetypes.NewGasMeter(charge*uint64(tc.headers) - 1))
			require.Panics(t, func() { _, _ = f.k.ReceivePacket(ctx, data) })

			meter := storetypes.NewInfiniteGasMeter()
			_, err := f.k.ReceivePacket(f.ctx.WithGasMeter(meter), data)
			require.NoError(t, err)
			require.Greater(t, meter.GasConsumed(), charge*uint64(tc.headers))
			t.Logf("%d headers: %d gas in the keeper (%d for the headers)", tc.headers, meter.GasConsumed(), charge*uint64(tc.headers))
		})
	}
}

func TestLitecoinRegtestPacket(t *testing.T) {
	f := newFixture(t, func(p *types.Params) { p.Network = "litecoin-regtest" })
	f.chain.Scrypt = true
	b := f.chain.Anchor("litecoin-regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 3, 1))
	f.chain.Mine(2)
	data := f.chain.Packet(t, b, 0, 101, 103)

	ctx := f.ctx.WithGasMeter(storetypes.NewGasMeter(3*types.GasPerScryptHeader - 1))
	require.Panics(t, func() { _, _ = f.k.ReceivePacket(ctx, data) }, "scrypt headers cost the scrypt default")
	ack := f.mustAccept(data)
	require.Equal(t, &packet.TimestampAck{ChainId: hub, Height: 3, BitcoinHeight: 101, Depth: 3}, ack)

	// SHA-256d headers do not pass as Litecoin's.
	g := newFixture(t, func(p *types.Params) { p.Network = "litecoin-regtest" })
	gb := g.chain.Anchor("litecoin-regtest", btctest.DefaultTag, 0, btctest.NewRecord(hub, 3, 1))
	g.chain.Mine(6)
	var refused bool
	for last := uint32(103); last <= 107 && !refused; last++ {
		// Each SHA-256d header passes scrypt by chance half the time.
		_, _, err := g.receive(g.chain.Packet(t, gb, 0, 101, last))
		refused = err != nil && keeper.IsRefusal(err)
	}
	require.True(t, refused)
}

func TestStoreFailureIsNotARefusal(t *testing.T) {
	require.False(t, keeper.IsRefusal(errors.New("disk on fire")))
	require.True(t, keeper.IsRefusal(&keeper.Refusal{Kind: types.ErrShorterChain, Reason: "x"}))
}
