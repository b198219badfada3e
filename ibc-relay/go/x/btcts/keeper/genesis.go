package keeper

import (
	"context"
	"fmt"
	"strconv"

	"cosmossdk.io/collections"

	"example.invalid/btcts/consumer/x/btcts/types"
)

func fmtUint(v uint64) string { return strconv.FormatUint(v, 10) }

// InitGenesis stores a validated genesis: params, the known headers (or the
// trusted header alone if none are listed), timestamps with each chain's
// latest, conflicts, and the fast-unbonding state (holds, forks, own block
// hashes, own timestamp).
func (k Keeper) InitGenesis(ctx context.Context, gs types.GenesisState) error {
	if err := gs.Validate(); err != nil {
		return err
	}
	if err := k.Params.Set(ctx, gs.Params); err != nil {
		return fmt.Errorf("write params: %w", err)
	}
	if err := k.ResetHeaders(ctx, gs.Params.TrustedHeader); err != nil {
		return err
	}
	if len(gs.KnownHeaders) > 0 {
		if err := k.Headers.Clear(ctx, nil); err != nil {
			return fmt.Errorf("clear known headers: %w", err)
		}
		var tip uint32
		for _, h := range gs.KnownHeaders {
			if err := k.Headers.Set(ctx, h.Height, h.Header); err != nil {
				return fmt.Errorf("write known header at height %d: %w", h.Height, err)
			}
			tip = max(tip, h.Height)
		}
		if err := k.Tip.Set(ctx, tip); err != nil {
			return fmt.Errorf("write trusted tip: %w", err)
		}
	}
	for _, ts := range gs.Timestamps {
		if err := k.Timestamps.Set(ctx, collections.Join(ts.ChainId, ts.Height), ts); err != nil {
			return fmt.Errorf("write timestamp %s/%d: %w", ts.ChainId, ts.Height, err)
		}
		if err := k.raiseLatest(ctx, ts.ChainId, ts.Height); err != nil {
			return err
		}
	}
	for _, c := range gs.Conflicts {
		key := collections.Join(c.First.ChainId, c.First.Height)
		if err := k.Conflicts.Set(ctx, key, c); err != nil {
			return fmt.Errorf("write conflict %s/%d: %w", c.First.ChainId, c.First.Height, err)
		}
	}
	return k.initUnbondingGenesis(ctx, gs)
}

// ExportGenesis returns the whole state, known headers by height, timestamps
// and conflicts by (chain, height), then the fast-unbonding state.
func (k Keeper) ExportGenesis(ctx context.Context) (*types.GenesisState, error) {
	params, err := k.GetParams(ctx)
	if err != nil {
		return nil, err
	}
	gs := &types.GenesisState{Params: params}
	err = k.Headers.Walk(ctx, nil, func(height uint32, header []byte) (bool, error) {
		gs.KnownHeaders = append(gs.KnownHeaders, types.TrustedHeader{Height: height, Header: header})
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk known headers: %w", err)
	}
	err = k.Timestamps.Walk(ctx, nil, func(_ collections.Pair[string, uint64], ts types.VerifiedTimestamp) (bool, error) {
		gs.Timestamps = append(gs.Timestamps, ts)
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk timestamps: %w", err)
	}
	err = k.Conflicts.Walk(ctx, nil, func(_ collections.Pair[string, uint64], c types.Conflict) (bool, error) {
		gs.Conflicts = append(gs.Conflicts, c)
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk conflicts: %w", err)
	}
	if err := k.exportUnbondingGenesis(ctx, gs); err != nil {
		return nil, err
	}
	return gs, nil
}
