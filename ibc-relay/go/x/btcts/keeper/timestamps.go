package keeper

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"cosmossdk.io/collections"

	sdk "github.com/cosmos/cosmos-sdk/types"

	"example.invalid/btcts/consumer/verify"
	"example.invalid/btcts/consumer/x/btcts/types"
)

// recordTimestamp stores a verified record: a new (chain, height) becomes a
// timestamp (and the chain's latest if highest); the same record again
// keeps the first and raises its depth if deeper; a different record at a
// known (chain, height) is a conflict: the first stays, the pair is stored
// once, and an event is emitted each time.
func (k Keeper) recordTimestamp(ctx sdk.Context, ts types.VerifiedTimestamp) error {
	key := collections.Join(ts.ChainId, ts.Height)
	stored, err := k.Timestamps.Get(ctx, key)
	switch {
	case errors.Is(err, collections.ErrNotFound):
		if err := k.Timestamps.Set(ctx, key, ts); err != nil {
			return fmt.Errorf("write timestamp %s/%d: %w", ts.ChainId, ts.Height, err)
		}
		if err := k.raiseLatest(ctx, ts.ChainId, ts.Height); err != nil {
			return err
		}
		emitVerified(ctx, ts)
		return nil
	case err != nil:
		return fmt.Errorf("read timestamp %s/%d: %w", ts.ChainId, ts.Height, err)
	case bytes.Equal(stored.RecordId, ts.RecordId):
		if ts.Depth > stored.Depth {
			stored.Depth = ts.Depth
			stored.BitcoinHeight = ts.BitcoinHeight
			stored.BitcoinBlock = ts.BitcoinBlock
			if err := k.Timestamps.Set(ctx, key, stored); err != nil {
				return fmt.Errorf("write timestamp %s/%d: %w", ts.ChainId, ts.Height, err)
			}
		}
		emitVerified(ctx, stored)
		return nil
	default:
		has, err := k.Conflicts.Has(ctx, key)
		if err != nil {
			return fmt.Errorf("read conflict %s/%d: %w", ts.ChainId, ts.Height, err)
		}
		if !has {
			if err := k.Conflicts.Set(ctx, key, types.Conflict{First: stored, Second: ts}); err != nil {
				return fmt.Errorf("write conflict %s/%d: %w", ts.ChainId, ts.Height, err)
			}
		}
		ctx.EventManager().EmitEvent(sdk.NewEvent(types.EventConflictingTimestamp,
			sdk.NewAttribute(types.AttributeChainID, ts.ChainId),
			sdk.NewAttribute(types.AttributeHeight, strconv.FormatUint(ts.Height, 10)),
			sdk.NewAttribute(types.AttributeFirstHash, hex.EncodeToString(stored.BlockHash)),
			sdk.NewAttribute(types.AttributeSecondHash, hex.EncodeToString(ts.BlockHash)),
		))
		return nil
	}
}

// newTimestamp is the timestamp a verified packet proves, first verified at
// this chain's current height.
func newTimestamp(ctx sdk.Context, v *verify.Verified) types.VerifiedTimestamp {
	return types.VerifiedTimestamp{
		ChainId:         v.ChainID,
		Height:          v.Height,
		BlockHash:       append([]byte(nil), v.BlockHash[:]...),
		StakerSetDigest: append([]byte(nil), v.StakerSetDigest[:]...),
		RecordId:        append([]byte(nil), v.RecordID[:]...),
		BitcoinHeight:   v.BitcoinHeight,
		BitcoinBlock:    append([]byte(nil), v.BitcoinBlock[:]...),
		Depth:           v.Depth,
		ConsumerHeight:  ctx.BlockHeight(),
	}
}

func (k Keeper) raiseLatest(ctx context.Context, chainID string, height uint64) error {
	latest, err := k.Latest.Get(ctx, chainID)
	if err != nil && !errors.Is(err, collections.ErrNotFound) {
		return fmt.Errorf("read latest of %s: %w", chainID, err)
	}
	if err == nil && latest >= height {
		return nil
	}
	if err := k.Latest.Set(ctx, chainID, height); err != nil {
		return fmt.Errorf("write latest of %s: %w", chainID, err)
	}
	return nil
}

func emitVerified(ctx sdk.Context, ts types.VerifiedTimestamp) {
	ctx.EventManager().EmitEvent(sdk.NewEvent(types.EventTimestampVerified,
		sdk.NewAttribute(types.AttributeChainID, ts.ChainId),
		sdk.NewAttribute(types.AttributeHeight, strconv.FormatUint(ts.Height, 10)),
		sdk.NewAttribute(types.AttributeBitcoinHeight, strconv.FormatUint(uint64(ts.BitcoinHeight), 10)),
		sdk.NewAttribute(types.AttributeDepth, strconv.FormatUint(uint64(ts.Depth), 10)),
	))
}

// Timestamp returns the verified timestamp of (chainID, height).
func (k Keeper) Timestamp(ctx context.Context, chainID string, height uint64) (types.VerifiedTimestamp, bool, error) {
	ts, err := k.Timestamps.Get(ctx, collections.Join(chainID, height))
	if errors.Is(err, collections.ErrNotFound) {
		return ts, false, nil
	}
	if err != nil {
		return ts, false, fmt.Errorf("read timestamp %s/%d: %w", chainID, height, err)
	}
	return ts, true, nil
}

// LatestTimestamp returns the chain's timestamp of its highest verified height.
func (k Keeper) LatestTimestamp(ctx context.Context, chainID string) (types.VerifiedTimestamp, bool, error) {
	height, err := k.Latest.Get(ctx, chainID)
	if errors.Is(err, collections.ErrNotFound) {
		return types.VerifiedTimestamp{}, false, nil
	}
	if err != nil {
		return types.VerifiedTimestamp{}, false, fmt.Errorf("read latest of %s: %w", chainID, err)
	}
	ts, found, err := k.Timestamp(ctx, chainID, height)
	if err == nil && !found {
		err = fmt.Errorf("latest of %s is height %d, which has no timestamp: %w", chainID, height, types.ErrMissingState)
	}
	return ts, found, err
}

// LatestTimestamps returns every source chain's latest timestamp, by chain id.
func (k Keeper) LatestTimestamps(ctx context.Context) ([]types.VerifiedTimestamp, error) {
	var out []types.VerifiedTimestamp
	err := k.Latest.Walk(ctx, nil, func(chainID string, height uint64) (bool, error) {
		ts, found, err := k.Timestamp(ctx, chainID, height)
		if err != nil {
			return true, err
		}
		if !found {
			return true, fmt.Errorf("latest of %s is height %d, which has no timestamp: %w",
				chainID, height, types.ErrMissingState)
		}
		out = append(out, ts)
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk latest timestamps: %w", err)
	}
	return out, nil
}

// ChainConflicts returns the chain's conflicts, by height.
func (k Keeper) ChainConflicts(ctx context.Context, chainID string) ([]types.Conflict, error) {
	var out []types.Conflict
	rng := collections.NewPrefixedPairRange[string, uint64](chainID)
	err := k.Conflicts.Walk(ctx, rng, func(_ collections.Pair[string, uint64], c types.Conflict) (bool, error) {
		out = append(out, c)
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk conflicts of %s: %w", chainID, err)
	}
	return out, nil
}
