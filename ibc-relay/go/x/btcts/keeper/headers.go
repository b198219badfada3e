package keeper

import (
	"context"
	"errors"
	"fmt"

	"cosmossdk.io/collections"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// KnownHeader returns the known header at height; found is false if the
// module does not know one there (never had it, or pruned it).
func (k Keeper) KnownHeader(ctx context.Context, height uint32) (h types.TrustedHeader, found bool, err error) {
	header, err := k.Headers.Get(ctx, height)
	if errors.Is(err, collections.ErrNotFound) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("read known header at height %d: %w", height, err)
	}
	return types.TrustedHeader{Height: height, Header: header}, true, nil
}

// TrustedTip returns the highest known header.
func (k Keeper) TrustedTip(ctx context.Context) (types.TrustedHeader, error) {
	height, err := k.Tip.Get(ctx)
	if errors.Is(err, collections.ErrNotFound) {
		return types.TrustedHeader{}, fmt.Errorf("trusted tip: %w", types.ErrMissingState)
	}
	if err != nil {
		return types.TrustedHeader{}, fmt.Errorf("read trusted tip: %w", err)
	}
	h, found, err := k.KnownHeader(ctx, height)
	if err != nil {
		return h, err
	}
	if !found {
		return h, fmt.Errorf("trusted tip at height %d has no header: %w", height, types.ErrMissingState)
	}
	return h, nil
}

// KnownRange returns the lowest and highest known heights.
func (k Keeper) KnownRange(ctx context.Context) (lowest, highest uint32, err error) {
	it, err := k.Headers.Iterate(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("iterate known headers: %w", err)
	}
	defer it.Close()
	if !it.Valid() {
		return 0, 0, fmt.Errorf("known headers: %w", types.ErrMissingState)
	}
	lowest, err = it.Key()
	if err != nil {
		return 0, 0, fmt.Errorf("known headers: %w", err)
	}
	highest, err = k.Tip.Get(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read trusted tip: %w", err)
	}
	return lowest, highest, nil
}

// ResetHeaders forgets every known header and trusts h alone (genesis, or a
// governance override of the checkpoint).
func (k Keeper) ResetHeaders(ctx context.Context, h types.TrustedHeader) error {
	if err := h.Validate(); err != nil {
		return fmt.Errorf("trusted header: %w", err)
	}
	if err := k.Headers.Clear(ctx, nil); err != nil {
		return fmt.Errorf("clear known headers: %w", err)
	}
	if err := k.Headers.Set(ctx, h.Height, h.Header); err != nil {
		return fmt.Errorf("write known header at height %d: %w", h.Height, err)
	}
	if err := k.Tip.Set(ctx, h.Height); err != nil {
		return fmt.Errorf("write trusted tip: %w", err)
	}
	return nil
}

// extendHeaders stores headers (consecutive, verified, linked to a known
// header), overwriting what is known at their heights, makes the last one the
// tip and prunes heights more than window below it.
func (k Keeper) extendHeaders(ctx context.Context, headers []types.TrustedHeader, window uint32) error {
	if len(headers) == 0 {
		return nil
	}
	for _, h := range headers {
		if err := k.Headers.Set(ctx, h.Height, h.Header); err != nil {
			return fmt.Errorf("write known header at height %d: %w", h.Height, err)
		}
	}
	tip := headers[len(headers)-1].Height
	if err := k.Tip.Set(ctx, tip); err != nil {
		return fmt.Errorf("write trusted tip: %w", err)
	}
	if tip <= window {
		return nil
	}
	below := new(collections.Range[uint32]).EndExclusive(tip - window)
	if err := k.Headers.Clear(ctx, below); err != nil {
		return fmt.Errorf("prune known headers below height %d: %w", tip-window, err)
	}
	return nil
}
