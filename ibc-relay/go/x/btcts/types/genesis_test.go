package types_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/types"
)

func TestGenesisValidate(t *testing.T) {
	chain := btctest.NewChain(t, 100)
	chain.Mine(3)
	hdr := func(h uint32) types.TrustedHeader {
		b := chain.Header(h)
		return types.TrustedHeader{Height: h, Header: b[:]}
	}
	ts := func(chainID string, height uint64, salt byte) types.VerifiedTimestamp {
		return types.VerifiedTimestamp{
			ChainId: chainID, Height: height, BlockHash: bytes.Repeat([]byte{salt}, 32),
			StakerSetDigest: make([]byte, 32), RecordId: bytes.Repeat([]byte{salt}, 32),
			BitcoinHeight: 101, BitcoinBlock: make([]byte, 32), Depth: 3,
		}
	}
	base := func() types.GenesisState {
		p := validParams()
		p.TrustedHeader = hdr(100)
		return types.GenesisState{
			Params:       p,
			KnownHeaders: []types.TrustedHeader{hdr(100), hdr(101), hdr(102), hdr(103)},
			Timestamps:   []types.VerifiedTimestamp{ts("cosmoshub-4", 5, 1)},
			Conflicts:    []types.Conflict{{First: ts("cosmoshub-4", 5, 1), Second: ts("cosmoshub-4", 5, 2)}},
		}
	}
	tests := []struct {
		name   string
		change func(*types.GenesisState)
		err    string
	}{
		{"valid", func(*types.GenesisState) {}, ""},
		{"no known headers", func(g *types.GenesisState) { g.KnownHeaders = nil }, ""},
		{"checkpoint pruned", func(g *types.GenesisState) { g.KnownHeaders = g.KnownHeaders[2:] }, ""},
		{"gap in known headers", func(g *types.GenesisState) {
			g.KnownHeaders = append(g.KnownHeaders[:1], g.KnownHeaders[2:]...)
		}, ""},
		{"bad params", func(g *types.GenesisState) { g.Params.K = 0 }, "params: "},
		{"duplicate height", func(g *types.GenesisState) { g.KnownHeaders = append(g.KnownHeaders, hdr(101)) }, "height 101 appears twice"},
		{"header not linked", func(g *types.GenesisState) { g.KnownHeaders[2].Height = 104 }, "does not link"},
		{"below the checkpoint", func(g *types.GenesisState) {
			g.KnownHeaders = append(g.KnownHeaders, types.TrustedHeader{Height: 99, Header: make([]byte, 80)})
		}, "below the trusted header"},
		{"other checkpoint header", func(g *types.GenesisState) {
			g.KnownHeaders[0] = types.TrustedHeader{Height: 100, Header: make([]byte, 80)}
		}, "not the trusted header"},
		{"short header", func(g *types.GenesisState) { g.KnownHeaders[3].Header = g.KnownHeaders[3].Header[:10] }, "10 bytes"},
		{"duplicate timestamp", func(g *types.GenesisState) { g.Timestamps = append(g.Timestamps, ts("cosmoshub-4", 5, 3)) }, "appears twice"},
		{"short block hash", func(g *types.GenesisState) { g.Timestamps[0].BlockHash = []byte{1} }, "block_hash is 1 bytes"},
		{"bad chain id", func(g *types.GenesisState) { g.Timestamps[0].ChainId = "a b" }, "outside"},
		{"zero depth", func(g *types.GenesisState) { g.Timestamps[0].Depth = 0 }, "depth is 0"},
		{"conflict of one record", func(g *types.GenesisState) { g.Conflicts[0].Second = g.Conflicts[0].First }, "same record"},
		{"conflict across heights", func(g *types.GenesisState) { g.Conflicts[0].Second.Height = 6 }, "first is cosmoshub-4/5"},
		{"duplicate conflict", func(g *types.GenesisState) { g.Conflicts = append(g.Conflicts, g.Conflicts[0]) }, "appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := base()
			tc.change(&g)
			err := g.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.err)
		})
	}
}
