package types

import (
	"fmt"

	errorsmod "cosmossdk.io/errors"
)

// HashSize is the size of a CometBFT block hash, of a record id and of the
// hashes in a timestamp.
const HashSize = 32

// Validate checks an own block hash: a positive height and 32 bytes.
func (h OwnBlockHash) Validate() error {
	if h.Height <= 0 {
		return fmt.Errorf("height %d is not positive", h.Height)
	}
	if len(h.Hash) != HashSize {
		return fmt.Errorf("hash at height %d is %d bytes, not %d", h.Height, len(h.Hash), HashSize)
	}
	return nil
}

// Validate checks a hold: a non-negative height (0 is genesis) and a time.
func (h Hold) Validate() error {
	if h.Height < 0 {
		return fmt.Errorf("unbonding %d: height %d is negative", h.UnbondingId, h.Height)
	}
	if h.Time.IsZero() {
		return fmt.Errorf("unbonding %d: time is missing", h.UnbondingId)
	}
	return nil
}

// Validate checks a fork's hash sizes and that the two hashes differ.
func (f Fork) Validate() error {
	if len(f.OwnHash) != 0 && len(f.OwnHash) != HashSize {
		return fmt.Errorf("own_hash is %d bytes, not empty or %d", len(f.OwnHash), HashSize)
	}
	if len(f.TimestampedHash) != HashSize {
		return fmt.Errorf("timestamped_hash is %d bytes, not %d", len(f.TimestampedHash), HashSize)
	}
	if len(f.RecordId) != HashSize {
		return fmt.Errorf("record_id is %d bytes, not %d", len(f.RecordId), HashSize)
	}
	if string(f.OwnHash) == string(f.TimestampedHash) {
		return fmt.Errorf("own_hash and timestamped_hash are the same")
	}
	return nil
}

// validateUnbonding checks the fast-unbonding part of a genesis: holds
// unique by unbonding id, forks unique by (height, record id), own hashes
// unique by height, and the own timestamp well formed.
func (gs GenesisState) validateUnbonding() error {
	ids := make(map[uint64]bool, len(gs.Holds))
	for i, h := range gs.Holds {
		if err := h.Validate(); err != nil {
			return errorsmod.Wrapf(ErrInvalidGenesis, "holds[%d]: %v", i, err)
		}
		if ids[h.UnbondingId] {
			return errorsmod.Wrapf(ErrInvalidGenesis, "holds[%d]: unbonding %d appears twice", i, h.UnbondingId)
		}
		ids[h.UnbondingId] = true
	}
	forks := make(map[string]bool, len(gs.Forks))
	for i, f := range gs.Forks {
		if err := f.Validate(); err != nil {
			return errorsmod.Wrapf(ErrInvalidGenesis, "forks[%d]: %v", i, err)
		}
		key := fmt.Sprintf("%d/%x", f.Height, f.RecordId)
		if forks[key] {
			return errorsmod.Wrapf(ErrInvalidGenesis, "forks[%d]: record %x at height %d appears twice",
				i, f.RecordId, f.Height)
		}
		forks[key] = true
	}
	heights := make(map[int64]bool, len(gs.OwnHashes))
	for i, h := range gs.OwnHashes {
		if err := h.Validate(); err != nil {
			return errorsmod.Wrapf(ErrInvalidGenesis, "own_hashes[%d]: %v", i, err)
		}
		if heights[h.Height] {
			return errorsmod.Wrapf(ErrInvalidGenesis, "own_hashes[%d]: height %d appears twice", i, h.Height)
		}
		heights[h.Height] = true
	}
	if gs.OwnTimestamp != nil {
		if err := gs.OwnTimestamp.Validate(); err != nil {
			return errorsmod.Wrapf(ErrInvalidGenesis, "own_timestamp: %v", err)
		}
	}
	return nil
}
