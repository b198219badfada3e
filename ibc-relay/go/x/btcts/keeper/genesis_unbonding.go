package keeper

import (
	"context"
	"errors"
	"fmt"

	"cosmossdk.io/collections"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// initUnbondingGenesis stores the holds, forks, own block hashes and own
// timestamp of a validated genesis. The staking module's genesis carries
// each held entry's hold count, so the holds are not put on hold again.
func (k Keeper) initUnbondingGenesis(ctx context.Context, gs types.GenesisState) error {
	for _, h := range gs.Holds {
		if err := k.Holds.Set(ctx, collections.Join(h.Height, h.UnbondingId), h); err != nil {
			return fmt.Errorf("write hold of unbonding %d: %w", h.UnbondingId, err)
		}
	}
	for _, f := range gs.Forks {
		if err := k.Forks.Set(ctx, collections.Join(f.Height, f.RecordId), f); err != nil {
			return fmt.Errorf("write fork at height %d: %w", f.Height, err)
		}
	}
	for _, h := range gs.OwnHashes {
		if err := k.OwnHashes.Set(ctx, h.Height, h.Hash); err != nil {
			return fmt.Errorf("write own block hash at height %d: %w", h.Height, err)
		}
	}
	if gs.OwnTimestamp != nil {
		if err := k.OwnTimestamp.Set(ctx, *gs.OwnTimestamp); err != nil {
			return fmt.Errorf("write own timestamp: %w", err)
		}
	}
	return nil
}

// exportUnbondingGenesis adds the holds, forks, own block hashes and own
// timestamp to gs, each in its store order.
func (k Keeper) exportUnbondingGenesis(ctx context.Context, gs *types.GenesisState) error {
	err := k.Holds.Walk(ctx, nil, func(_ collections.Pair[int64, uint64], h types.Hold) (bool, error) {
		gs.Holds = append(gs.Holds, h)
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("walk holds: %w", err)
	}
	err = k.Forks.Walk(ctx, nil, func(_ collections.Pair[uint64, []byte], f types.Fork) (bool, error) {
		gs.Forks = append(gs.Forks, f)
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("walk forks: %w", err)
	}
	err = k.OwnHashes.Walk(ctx, nil, func(height int64, hash []byte) (bool, error) {
		gs.OwnHashes = append(gs.OwnHashes, types.OwnBlockHash{Height: height, Hash: hash})
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("walk own block hashes: %w", err)
	}
	own, found, err := getOptional(ctx, k.OwnTimestamp)
	if err != nil {
		return fmt.Errorf("read own timestamp: %w", err)
	}
	if found {
		gs.OwnTimestamp = &own
	}
	return nil
}

// getOptional reads an item that may be absent.
func getOptional[V any](ctx context.Context, item collections.Item[V]) (V, bool, error) {
	v, err := item.Get(ctx)
	if errors.Is(err, collections.ErrNotFound) {
		return v, false, nil
	}
	return v, err == nil, err
}
