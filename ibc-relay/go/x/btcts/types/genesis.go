package types

import (
	"bytes"
	"fmt"

	errorsmod "cosmossdk.io/errors"

	"example.invalid/btcts/consumer/verify"
)

// DefaultGenesis is incomplete on purpose: the chain must choose its source
// chains and its Bitcoin checkpoint, and Validate says so until it has.
func DefaultGenesis() *GenesisState {
	return &GenesisState{Params: DefaultParams()}
}

// Validate checks the params, that the known headers are 80 bytes each at
// distinct heights and link where heights are consecutive, and that
// timestamps and conflicts are well formed and unique per (chain, height),
// and that holds, forks and own hashes are well formed and unique.
func (gs GenesisState) Validate() error {
	if err := gs.Params.Validate(); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	if err := validateKnownHeaders(gs.Params.TrustedHeader, gs.KnownHeaders); err != nil {
		return errorsmod.Wrapf(ErrInvalidGenesis, "known_headers: %v", err)
	}
	seen := make(map[string]bool, len(gs.Timestamps))
	for i, ts := range gs.Timestamps {
		if err := ts.Validate(); err != nil {
			return errorsmod.Wrapf(ErrInvalidGenesis, "timestamps[%d]: %v", i, err)
		}
		key := fmt.Sprintf("%s/%d", ts.ChainId, ts.Height)
		if seen[key] {
			return errorsmod.Wrapf(ErrInvalidGenesis, "timestamps[%d]: %s appears twice", i, key)
		}
		seen[key] = true
	}
	conflicts := make(map[string]bool, len(gs.Conflicts))
	for i, c := range gs.Conflicts {
		if err := c.Validate(); err != nil {
			return errorsmod.Wrapf(ErrInvalidGenesis, "conflicts[%d]: %v", i, err)
		}
		key := fmt.Sprintf("%s/%d", c.First.ChainId, c.First.Height)
		if conflicts[key] {
			return errorsmod.Wrapf(ErrInvalidGenesis, "conflicts[%d]: %s appears twice", i, key)
		}
		conflicts[key] = true
	}
	return gs.validateUnbonding()
}

func validateKnownHeaders(trusted TrustedHeader, known []TrustedHeader) error {
	byHeight := make(map[uint32][]byte, len(known))
	for _, h := range known {
		if err := h.Validate(); err != nil {
			return err
		}
		if _, dup := byHeight[h.Height]; dup {
			return fmt.Errorf("height %d appears twice", h.Height)
		}
		if h.Height < trusted.Height {
			return fmt.Errorf("height %d is below the trusted header's %d", h.Height, trusted.Height)
		}
		byHeight[h.Height] = h.Header
	}
	if h, ok := byHeight[trusted.Height]; ok && !bytes.Equal(h, trusted.Header) {
		return fmt.Errorf("the header at height %d is not the trusted header", trusted.Height)
	}
	for height, header := range byHeight {
		prev, ok := byHeight[height-1]
		if height == 0 || !ok {
			continue
		}
		if !Links(prev, header) {
			return fmt.Errorf("header at height %d does not link to the one before it", height)
		}
	}
	return nil
}

// Links tells whether header (80 bytes) names prev (80 bytes) as its parent.
func Links(prev, header []byte) bool {
	if len(prev) != HeaderSize || len(header) != HeaderSize {
		return false
	}
	var p [HeaderSize]byte
	copy(p[:], prev)
	hash := verify.BlockHash(p)
	return bytes.Equal(header[4:36], hash[:])
}

// Validate checks a timestamp's chain id and hash sizes.
func (ts VerifiedTimestamp) Validate() error {
	if err := ValidateChainID(ts.ChainId); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"block_hash", ts.BlockHash},
		{"staker_set_digest", ts.StakerSetDigest},
		{"record_id", ts.RecordId},
		{"bitcoin_block", ts.BitcoinBlock},
	} {
		if len(f.b) != 32 {
			return fmt.Errorf("%s is %d bytes, not 32", f.name, len(f.b))
		}
	}
	if ts.Depth == 0 {
		return fmt.Errorf("depth is 0")
	}
	return nil
}

// Validate checks that both sides are well formed, of one (chain, height),
// and different records.
func (c Conflict) Validate() error {
	if err := c.First.Validate(); err != nil {
		return fmt.Errorf("first: %w", err)
	}
	if err := c.Second.Validate(); err != nil {
		return fmt.Errorf("second: %w", err)
	}
	if c.First.ChainId != c.Second.ChainId || c.First.Height != c.Second.Height {
		return fmt.Errorf("first is %s/%d, second %s/%d",
			c.First.ChainId, c.First.Height, c.Second.ChainId, c.Second.Height)
	}
	if bytes.Equal(c.First.RecordId, c.Second.RecordId) {
		return fmt.Errorf("first and second are the same record")
	}
	return nil
}
