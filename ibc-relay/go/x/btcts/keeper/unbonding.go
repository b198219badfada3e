package keeper

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"

	"cosmossdk.io/collections"

	sdk "github.com/cosmos/cosmos-sdk/types"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// BeginBlock stores this chain's own block hash at the current height (the
// CometBFT block id hash, which baseapp passes as ctx.HeaderHash() and
// cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight returns as
// block_id.hash) and prunes the hashes below both the oldest pending hold's
// height and the current height minus hash_window.
func (k Keeper) BeginBlock(ctx sdk.Context) error {
	height := ctx.BlockHeight()
	if hash := ctx.HeaderHash(); len(hash) == types.HashSize {
		if err := k.OwnHashes.Set(ctx, height, append([]byte(nil), hash...)); err != nil {
			return fmt.Errorf("write own block hash at height %d: %w", height, err)
		}
	}
	params, err := k.GetParams(ctx)
	if err != nil {
		return err
	}
	keepFrom := height - int64(min(params.HashWindow, uint64(math.MaxInt64)))
	oldest, found, err := k.oldestHold(ctx)
	if err != nil {
		return err
	}
	if found && oldest.Height < keepFrom {
		keepFrom = oldest.Height
	}
	rng := new(collections.Range[int64]).EndExclusive(keepFrom)
	if err := k.OwnHashes.Clear(ctx, rng); err != nil {
		return fmt.Errorf("prune own block hashes below height %d: %w", keepFrom, err)
	}
	return nil
}

// EndBlock releases the holds that the own timestamp covers (a hold started
// at or below its height, e.g. in the block of an earlier timestamp of the
// same height) and those older than max_hold. Holds are walked by height,
// so this stops at the first one that stays.
func (k Keeper) EndBlock(ctx sdk.Context) error {
	params, err := k.GetParams(ctx)
	if err != nil {
		return err
	}
	own, hasOwn, err := getOptional(ctx, k.OwnTimestamp)
	if err != nil {
		return fmt.Errorf("read own timestamp: %w", err)
	}
	hasOwn = hasOwn && own.Depth >= params.K
	now := ctx.BlockTime()
	var byTimestamp, byMaxHold []types.Hold
	err = k.Holds.Walk(ctx, nil, func(_ collections.Pair[int64, uint64], h types.Hold) (bool, error) {
		switch {
		case hasOwn && covers(own, h):
			byTimestamp = append(byTimestamp, h)
		case !now.Before(h.Time.Add(params.MaxHold)):
			byMaxHold = append(byMaxHold, h)
		default:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("walk holds: %w", err)
	}
	for _, h := range byTimestamp {
		if err := k.release(ctx, h, types.ReleasedByTimestamp, &own); err != nil {
			return err
		}
	}
	for _, h := range byMaxHold {
		if err := k.release(ctx, h, types.ReleasedByMaxHold, nil); err != nil {
			return err
		}
	}
	return nil
}

// covers tells whether a timestamp of this chain releases the hold: its
// height is at or above the hold's.
func covers(ts types.VerifiedTimestamp, h types.Hold) bool {
	return h.Height < 0 || ts.Height >= uint64(h.Height)
}

// checkOwnTimestamp acts on a timestamp that just verified. A timestamp of
// another chain is none of its business. One of this chain whose block hash
// is the chain's own at its height (and at least k deep) becomes the own
// timestamp if highest and releases every hold at or below its height; one
// with another hash is stored as a fork and releases nothing; one at a
// height whose own hash is no longer kept releases nothing.
func (k Keeper) checkOwnTimestamp(ctx sdk.Context, ts types.VerifiedTimestamp, minDepth uint32) error {
	if ts.ChainId != ctx.ChainID() {
		return nil
	}
	if ts.Height > uint64(ctx.BlockHeight()) {
		return k.recordFork(ctx, ts, nil)
	}
	own, err := k.OwnHashes.Get(ctx, int64(ts.Height))
	if errors.Is(err, collections.ErrNotFound) {
		ctx.Logger().Info("btcts: timestamp of this chain at a height whose own hash is not kept; it releases nothing",
			"height", ts.Height)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read own block hash at height %d: %w", ts.Height, err)
	}
	if !bytes.Equal(own, ts.BlockHash) {
		return k.recordFork(ctx, ts, own)
	}
	if ts.Depth < minDepth {
		return nil
	}
	best, found, err := getOptional(ctx, k.OwnTimestamp)
	if err != nil {
		return fmt.Errorf("read own timestamp: %w", err)
	}
	if !found || ts.Height > best.Height || (ts.Height == best.Height && ts.Depth > best.Depth) {
		if err := k.OwnTimestamp.Set(ctx, ts); err != nil {
			return fmt.Errorf("write own timestamp: %w", err)
		}
	}
	var covered []types.Hold
	err = k.Holds.Walk(ctx, nil, func(_ collections.Pair[int64, uint64], h types.Hold) (bool, error) {
		if !covers(ts, h) {
			return true, nil
		}
		covered = append(covered, h)
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("walk holds up to height %d: %w", ts.Height, err)
	}
	for _, h := range covered {
		if err := k.release(ctx, h, types.ReleasedByTimestamp, &ts); err != nil {
			return err
		}
	}
	return nil
}

// recordFork stores a timestamp of this chain whose block hash is not the
// chain's own (own is nil above the current height) once per (height,
// record id), and emits btcts_fork each time it is verified.
func (k Keeper) recordFork(ctx sdk.Context, ts types.VerifiedTimestamp, own []byte) error {
	key := collections.Join(ts.Height, ts.RecordId)
	has, err := k.Forks.Has(ctx, key)
	if err != nil {
		return fmt.Errorf("read fork at height %d: %w", ts.Height, err)
	}
	if !has {
		fork := types.Fork{
			Height: ts.Height, OwnHash: own, TimestampedHash: ts.BlockHash, RecordId: ts.RecordId,
			BitcoinHeight: ts.BitcoinHeight, ConsumerHeight: ctx.BlockHeight(),
		}
		if err := k.Forks.Set(ctx, key, fork); err != nil {
			return fmt.Errorf("write fork at height %d: %w", ts.Height, err)
		}
	}
	ctx.Logger().Error("btcts: a verified timestamp of this chain names a block hash that is not the chain's own",
		"height", ts.Height, "own_hash", hex.EncodeToString(own), "timestamped_hash", hex.EncodeToString(ts.BlockHash))
	ctx.EventManager().EmitEvent(sdk.NewEvent(types.EventFork,
		sdk.NewAttribute(types.AttributeHeight, strconv.FormatUint(ts.Height, 10)),
		sdk.NewAttribute(types.AttributeOwnHash, hex.EncodeToString(own)),
		sdk.NewAttribute(types.AttributeTimestampedHash, hex.EncodeToString(ts.BlockHash)),
		sdk.NewAttribute(types.AttributeRecordID, hex.EncodeToString(ts.RecordId)),
		sdk.NewAttribute(types.AttributeBitcoinHeight, strconv.FormatUint(uint64(ts.BitcoinHeight), 10)),
	))
	return nil
}

// release ends a hold: the staking module may complete the unbonding (at
// once if mature). An entry that is gone (completed or removed) or no
// longer on hold only loses its record. Any other staking error keeps the
// hold, to be tried again at the next EndBlock, so that one entry cannot
// stop the chain or refuse a packet; the staking module's writes of a failed
// attempt are discarded. ts is the releasing timestamp (nil for max_hold).
func (k Keeper) release(ctx sdk.Context, h types.Hold, by string, ts *types.VerifiedTimestamp) error {
	cacheCtx, write := ctx.CacheContext()
	err := k.staking.UnbondingCanComplete(cacheCtx, h.UnbondingId)
	switch {
	case err == nil:
		write()
		tsHeight := ""
		if ts != nil {
			tsHeight = strconv.FormatUint(ts.Height, 10)
		}
		ctx.EventManager().EmitEvent(sdk.NewEvent(types.EventUnbondingReleased,
			sdk.NewAttribute(types.AttributeUnbondingID, strconv.FormatUint(h.UnbondingId, 10)),
			sdk.NewAttribute(types.AttributeHeight, strconv.FormatInt(h.Height, 10)),
			sdk.NewAttribute(types.AttributeBy, by),
			sdk.NewAttribute(types.AttributeTimestampHeight, tsHeight),
		))
	case isGone(err):
		ctx.Logger().Info("btcts: held unbonding is gone; dropping its hold", "unbonding_id", h.UnbondingId, "error", err)
	default:
		ctx.Logger().Error("btcts: could not release a held unbonding; trying again next block",
			"unbonding_id", h.UnbondingId, "by", by, "error", err)
		return nil
	}
	if err := k.Holds.Remove(ctx, collections.Join(h.Height, h.UnbondingId)); err != nil {
		return fmt.Errorf("remove hold of unbonding %d: %w", h.UnbondingId, err)
	}
	return nil
}

// isGone tells whether the staking module no longer has the unbonding on
// hold: it is unknown, completed, removed, or its hold count is already 0.
func isGone(err error) bool {
	for _, gone := range []error{
		stakingtypes.ErrUnbondingNotFound, stakingtypes.ErrNoUnbondingType,
		stakingtypes.ErrNoUnbondingDelegation, stakingtypes.ErrNoRedelegation,
		stakingtypes.ErrNoValidatorFound, stakingtypes.ErrUnbondingOnHoldRefCountNegative,
	} {
		if errors.Is(err, gone) {
			return true
		}
	}
	return false
}

// oldestHold returns the hold with the lowest (height, unbonding id).
func (k Keeper) oldestHold(ctx sdk.Context) (types.Hold, bool, error) {
	var oldest types.Hold
	found := false
	err := k.Holds.Walk(ctx, nil, func(_ collections.Pair[int64, uint64], h types.Hold) (bool, error) {
		oldest, found = h, true
		return true, nil
	})
	if err != nil {
		return oldest, false, fmt.Errorf("walk holds: %w", err)
	}
	return oldest, found, nil
}
