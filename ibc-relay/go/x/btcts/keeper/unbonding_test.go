package keeper_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cosmossdk.io/collections"

	sdk "github.com/cosmos/cosmos-sdk/types"

	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/types"
)

// In these tests this chain is hub, one of the source chains: its own
// records come back to it as timestamps.
var genesisTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ownHash is this chain's block hash at a height in these tests.
func ownHash(height int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(height))
	h := sha256.Sum256(append([]byte("own"), b[:]...))
	return h[:]
}

// ownChain drives the module through blocks of this chain.
type ownChain struct {
	*fixture
	seq uint64 // of the next anchored batch
}

func newOwnChain(t *testing.T, change func(*types.Params)) *ownChain {
	return &ownChain{fixture: newFixture(t, change)}
}

// at is the context of block height, whose time is 6 s a block after
// genesisTime plus extra.
func (c *ownChain) at(height int64, extra time.Duration) sdk.Context {
	return c.ctx.WithChainID(hub).WithBlockHeight(height).
		WithBlockTime(genesisTime.Add(time.Duration(height)*6*time.Second + extra)).
		WithHeaderHash(ownHash(height)).WithEventManager(sdk.NewEventManager())
}

// begin runs BeginBlock of a block and returns its context.
func (c *ownChain) begin(height int64, extra time.Duration) sdk.Context {
	c.t.Helper()
	ctx := c.at(height, extra)
	require.NoError(c.t, c.k.BeginBlock(ctx))
	return ctx
}

// blocks runs BeginBlock of the heights from..to.
func (c *ownChain) blocks(from, to int64) {
	for h := from; h <= to; h++ {
		c.begin(h, 0)
	}
}

// unbond starts unbonding id in the staking fake and runs the hook.
func (c *ownChain) unbond(ctx sdk.Context, id uint64) {
	c.t.Helper()
	c.staking.Start(id)
	require.NoError(c.t, c.k.Hooks().AfterUnbondingInitiated(ctx, id))
}

// deliver anchors a record of chainID at height with the block hash, makes
// it k deep and receives the packet in ctx.
func (c *ownChain) deliver(ctx sdk.Context, chainID string, height uint64, hash []byte) {
	c.t.Helper()
	rec := btctest.NewRecord(chainID, height, byte(c.seq))
	copy(rec.BlockHash[:], hash)
	first := c.tip().Height + 1
	b := c.chain.Anchor("regtest", btctest.DefaultTag, c.seq, rec)
	c.seq++
	c.chain.Mine(int(c.params.K) - 1)
	_, err := c.k.ReceivePacket(ctx, c.chain.Packet(c.t, b, 0, first, c.chain.Tip()))
	require.NoError(c.t, err)
}

func (c *ownChain) holds() []types.Hold {
	c.t.Helper()
	gs := c.export()
	return gs.Holds
}

func (c *ownChain) heldIDs() []uint64 {
	var ids []uint64
	for _, h := range c.holds() {
		ids = append(ids, h.UnbondingId)
	}
	return ids
}

// released returns the released events' attributes.
func released(events sdk.Events) []map[string]string {
	var out []map[string]string
	for _, ev := range events {
		if ev.Type == types.EventUnbondingReleased {
			out = append(out, attrs(ev))
		}
	}
	return out
}

func TestHookPutsUnbondingsOnHold(t *testing.T) {
	c := newOwnChain(t, nil)
	ctx := c.begin(10, 0)
	c.unbond(ctx, 1)
	c.unbond(ctx, 2)
	require.Equal(t, map[uint64]int{1: 1, 2: 1}, c.staking.Holds)
	require.Equal(t, []types.Hold{
		{UnbondingId: 1, Height: 10, Time: genesisTime.Add(60 * time.Second)},
		{UnbondingId: 2, Height: 10, Time: genesisTime.Add(60 * time.Second)},
	}, c.holds())
	ev, ok := findEvent(ctx.EventManager().Events(), types.EventUnbondingHeld)
	require.True(t, ok)
	require.Equal(t, map[string]string{"unbonding_id": "1", "height": "10"}, attrs(ev))

	// An id the staking module does not know: an error, and no hold.
	err := c.k.Hooks().AfterUnbondingInitiated(ctx, 9)
	require.Error(t, err)
	require.Contains(t, err.Error(), "put unbonding 9 on hold")
	require.Equal(t, []uint64{1, 2}, c.heldIDs())

	// Nothing to release at the end of the block.
	require.NoError(t, c.k.EndBlock(ctx))
	require.Empty(t, c.staking.Released)
}

func TestOwnTimestampReleasesHoldsAtOrBelowItsHeight(t *testing.T) {
	c := newOwnChain(t, nil)
	c.blocks(1, 9)
	c.unbond(c.begin(10, 0), 1)
	c.blocks(11, 11)
	c.unbond(c.begin(12, 0), 2)
	c.blocks(13, 14)
	c.unbond(c.begin(15, 0), 3)
	c.blocks(16, 19)

	ctx := c.begin(20, 0)
	c.deliver(ctx, hub, 12, ownHash(12))
	// Holds at 10 and at 12 (the same height) are released, 15 is not.
	require.Equal(t, []uint64{1, 2}, c.staking.Released)
	require.Equal(t, []uint64{3}, c.heldIDs())
	require.Equal(t, []map[string]string{
		{"unbonding_id": "1", "height": "10", "by": "timestamp", "timestamp_height": "12"},
		{"unbonding_id": "2", "height": "12", "by": "timestamp", "timestamp_height": "12"},
	}, released(ctx.EventManager().Events()))
	own, err := c.k.OwnTimestamp.Get(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 12, own.Height)
	require.Equal(t, ownHash(12), own.BlockHash)

	// EndBlock does not release 3 (above the timestamp) nor again 1 and 2.
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{1, 2}, c.staking.Released)

	// A lower timestamp later does not lower the own timestamp.
	ctx = c.begin(21, 0)
	c.deliver(ctx, hub, 11, ownHash(11))
	own, err = c.k.OwnTimestamp.Get(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 12, own.Height)
	require.Equal(t, []uint64{3}, c.heldIDs())

	ctx = c.begin(22, 0)
	c.deliver(ctx, hub, 16, ownHash(16))
	require.Equal(t, []uint64{1, 2, 3}, c.staking.Released)
	require.Empty(t, c.holds())
	require.Equal(t, map[uint64]int{1: 0, 2: 0, 3: 0}, c.staking.Holds)
}

func TestEndBlockReleasesHoldsStartedAtAnOwnTimestampsHeight(t *testing.T) {
	c := newOwnChain(t, nil)
	c.blocks(1, 19)
	ctx := c.begin(20, 0)
	// The timestamp of height 20 arrives in block 20, then an unbonding
	// starts in the same block: the timestamp covers it.
	c.deliver(ctx, hub, 20, ownHash(20))
	c.unbond(ctx, 7)
	require.Empty(t, c.staking.Released)
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{7}, c.staking.Released)
	require.Equal(t, []map[string]string{
		{"unbonding_id": "7", "height": "20", "by": "timestamp", "timestamp_height": "20"},
	}, released(ctx.EventManager().Events()))

	// One in the next block needs a timestamp of 21 or higher.
	ctx = c.begin(21, 0)
	c.unbond(ctx, 8)
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{7}, c.staking.Released)
	require.Equal(t, []uint64{8}, c.heldIDs())
}

func TestForkReleasesNothingAndTheHonestTimestampStillDoes(t *testing.T) {
	c := newOwnChain(t, nil)
	c.blocks(1, 9)
	c.unbond(c.begin(10, 0), 1)
	c.blocks(11, 19)

	ctx := c.begin(20, 0)
	forged := sha256.Sum256([]byte("another history"))
	c.deliver(ctx, hub, 12, forged[:])
	require.Empty(t, c.staking.Released)
	require.Equal(t, []uint64{1}, c.heldIDs())
	_, err := c.k.OwnTimestamp.Get(ctx)
	require.ErrorIs(t, err, collections.ErrNotFound)
	ev, ok := findEvent(ctx.EventManager().Events(), types.EventFork)
	require.True(t, ok)
	got := attrs(ev)
	require.Equal(t, "12", got["height"])
	require.Equal(t, hex.EncodeToString(ownHash(12)), got["own_hash"])
	require.Equal(t, hex.EncodeToString(forged[:]), got["timestamped_hash"])
	require.NoError(t, c.k.EndBlock(ctx))
	require.Empty(t, c.staking.Released)

	forks := c.export().Forks
	require.Len(t, forks, 1)
	require.Equal(t, types.Fork{
		Height: 12, OwnHash: ownHash(12), TimestampedHash: forged[:], RecordId: forks[0].RecordId,
		BitcoinHeight: forks[0].BitcoinHeight, ConsumerHeight: 20,
	}, forks[0])
	require.Len(t, forks[0].RecordId, 32)

	// The honest record of the same height (a conflict for the timestamps'
	// bookkeeping, which keeps the first) releases.
	ctx = c.begin(21, 0)
	c.deliver(ctx, hub, 12, ownHash(12))
	require.Equal(t, []uint64{1}, c.staking.Released)
	require.Empty(t, c.holds())
	conflicts, err := c.k.ChainConflicts(ctx, hub)
	require.NoError(t, err)
	require.Len(t, conflicts, 1)
	require.Len(t, c.export().Forks, 1)
}

func TestTimestampsThatReleaseNothing(t *testing.T) {
	tests := []struct {
		name     string
		chain    string
		height   uint64
		hash     func() []byte
		wantFork bool
	}{
		{"another chain with the same hash", osmo, 12, func() []byte { return ownHash(12) }, false},
		{"a height whose own hash is not kept", hub, 14, func() []byte { return ownHash(14) }, false},
		{"a height above the current one", hub, 25, func() []byte { return ownHash(25) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newOwnChain(t, func(p *types.Params) { p.HashWindow = 8 })
			c.blocks(1, 11)
			c.unbond(c.begin(12, 0), 1)
			c.blocks(13, 19)
			ctx := c.begin(20, 0)
			require.NoError(t, c.k.OwnHashes.Remove(ctx, 14)) // e.g. before an upgrade added the module
			c.deliver(ctx, tt.chain, tt.height, tt.hash())
			require.NoError(t, c.k.EndBlock(ctx))
			require.Empty(t, c.staking.Released)
			require.Equal(t, []uint64{1}, c.heldIDs())
			forks := c.export().Forks
			if !tt.wantFork {
				require.Empty(t, forks)
				return
			}
			require.Len(t, forks, 1)
			require.Empty(t, forks[0].OwnHash)
			require.EqualValues(t, tt.height, forks[0].Height)
		})
	}
}

func TestMaxHoldReleases(t *testing.T) {
	c := newOwnChain(t, func(p *types.Params) { p.MaxHold = time.Minute })
	c.unbond(c.begin(10, 0), 1)       // at 60 s
	c.unbond(c.begin(15, 0), 2)       // at 90 s
	ctx := c.begin(19, 5*time.Second) // 119 s: 59 s after the first
	require.NoError(t, c.k.EndBlock(ctx))
	require.Empty(t, c.staking.Released)

	ctx = c.begin(20, 0) // 120 s
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{1}, c.staking.Released)
	require.Equal(t, []map[string]string{
		{"unbonding_id": "1", "height": "10", "by": "max_hold", "timestamp_height": ""},
	}, released(ctx.EventManager().Events()))

	ctx = c.begin(30, 0) // 180 s
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{1, 2}, c.staking.Released)
	require.Empty(t, c.holds())
}

func TestReleaseOfGoneAndFailingEntries(t *testing.T) {
	c := newOwnChain(t, nil)
	c.blocks(1, 9)
	ctx := c.begin(10, 0)
	c.unbond(ctx, 1)
	c.unbond(ctx, 2)
	c.unbond(ctx, 3)
	delete(c.staking.Holds, 1) // gone, e.g. completed or removed
	failure := errors.New("bank is broken")
	c.staking.Fail[2] = failure
	c.blocks(11, 19)

	ctx = c.begin(20, 0)
	c.deliver(ctx, hub, 10, ownHash(10))
	// 1 loses its hold silently, 2 stays to be tried again, 3 is released.
	require.Equal(t, []uint64{3}, c.staking.Released)
	require.Equal(t, []uint64{2}, c.heldIDs())
	require.Len(t, released(ctx.EventManager().Events()), 1)

	ctx = c.begin(21, 0)
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{2}, c.heldIDs())
	delete(c.staking.Fail, 2)
	ctx = c.begin(22, 0)
	require.NoError(t, c.k.EndBlock(ctx))
	require.Equal(t, []uint64{3, 2}, c.staking.Released)
	require.Empty(t, c.holds())
	require.Equal(t, []map[string]string{
		{"unbonding_id": "2", "height": "10", "by": "timestamp", "timestamp_height": "10"},
	}, released(ctx.EventManager().Events()))
}

func TestOwnHashesArePrunedOutsideTheWindowAndPendingHolds(t *testing.T) {
	c := newOwnChain(t, func(p *types.Params) { p.HashWindow = 5 })
	kept := func() []int64 {
		var heights []int64
		for _, h := range c.export().OwnHashes {
			require.Equal(t, ownHash(h.Height), h.Hash)
			heights = append(heights, h.Height)
		}
		return heights
	}
	c.blocks(1, 10)
	require.Equal(t, []int64{5, 6, 7, 8, 9, 10}, kept())

	c.unbond(c.begin(11, 0), 1)
	c.blocks(12, 20)
	// Kept from the pending hold's height on.
	require.Equal(t, []int64{11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, kept())

	ctx := c.begin(21, 0)
	c.deliver(ctx, hub, 18, ownHash(18))
	require.Equal(t, []uint64{1}, c.staking.Released)
	c.begin(22, 0)
	require.Equal(t, []int64{17, 18, 19, 20, 21, 22}, kept())

	// A block without a header hash (as in some tests) stores none.
	require.NoError(t, c.k.BeginBlock(c.at(23, 0).WithHeaderHash(nil)))
	require.Equal(t, []int64{18, 19, 20, 21, 22}, kept())
}

func TestUnbondingStateSurvivesGenesis(t *testing.T) {
	c := newOwnChain(t, nil)
	c.blocks(1, 9)
	c.unbond(c.begin(10, 0), 1)
	c.blocks(11, 13)
	c.unbond(c.begin(14, 0), 2)
	ctx := c.begin(15, 0)
	forged := sha256.Sum256([]byte("forged"))
	c.deliver(ctx, hub, 13, forged[:])
	c.deliver(ctx, hub, 12, ownHash(12))

	gs := c.export()
	require.Equal(t, []uint64{2}, c.heldIDs())
	require.Len(t, gs.Forks, 1)
	require.Len(t, gs.OwnHashes, 15)
	require.NotNil(t, gs.OwnTimestamp)
	require.EqualValues(t, 12, gs.OwnTimestamp.Height)
	require.NoError(t, gs.Validate())

	bz, err := c.cdc.MarshalJSON(gs)
	require.NoError(t, err)
	var decoded types.GenesisState
	require.NoError(t, c.cdc.UnmarshalJSON(bz, &decoded))
	d := newOwnChain(t, nil)
	require.NoError(t, d.k.InitGenesis(d.ctx, decoded))
	require.Equal(t, gs, d.export())

	// The imported hold is released by a timestamp on the new keeper.
	d.staking.Start(2)
	d.staking.Holds[2] = 1
	ctx = d.begin(16, 0)
	d.chain = c.chain
	d.seq = c.seq
	d.deliver(ctx, hub, 14, ownHash(14))
	require.Equal(t, []uint64{2}, d.staking.Released)
}
