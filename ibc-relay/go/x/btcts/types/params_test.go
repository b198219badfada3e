package types_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"example.invalid/btcts/consumer/x/btcts/types"
)

func validParams() types.Params {
	p := types.DefaultParams()
	p.Network = "regtest"
	p.SourceChains = []string{"cosmoshub-4", "osmosis-1"}
	p.TrustedHeader = types.TrustedHeader{Height: 100, Header: bytes.Repeat([]byte{7}, 80)}
	return p
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*types.Params)
		err    string // "" = valid
	}{
		{"valid", func(*types.Params) {}, ""},
		{"litecoin", func(p *types.Params) { p.Network = "litecoin-regtest" }, ""},
		{"checkpoint at height 0", func(p *types.Params) { p.TrustedHeader.Height = 0 }, ""},
		{"64-character chain id", func(p *types.Params) { p.SourceChains = []string{strings.Repeat("a", 64)} }, ""},
		{"unknown network", func(p *types.Params) { p.Network = "dogecoin" }, `network "dogecoin"`},
		{"empty network", func(p *types.Params) { p.Network = "" }, `network ""`},
		{"upper-case tag", func(p *types.Params) { p.Tag = "4254435A" }, "lower-case hex"},
		{"short tag", func(p *types.Params) { p.Tag = "425443" }, "not 8 hex"},
		{"ascii tag", func(p *types.Params) { p.Tag = "BTCTBTCT" }, "lower-case hex"},
		{"k 0", func(p *types.Params) { p.K = 0 }, "k must be at least 1"},
		{"no source chains", func(p *types.Params) { p.SourceChains = nil }, "source_chains: missing"},
		{"duplicate chain", func(p *types.Params) { p.SourceChains = []string{"a", "a"} }, "listed twice"},
		{"long chain id", func(p *types.Params) { p.SourceChains = []string{strings.Repeat("a", 65)} }, "1 to 64"},
		{"empty chain id", func(p *types.Params) { p.SourceChains = []string{""} }, "1 to 64"},
		{"bad character", func(p *types.Params) { p.SourceChains = []string{"hub/4"} }, "outside [A-Za-z0-9._-]"},
		{"no trusted header", func(p *types.Params) { p.TrustedHeader = types.TrustedHeader{} }, "trusted_header: missing"},
		{"79-byte header", func(p *types.Params) { p.TrustedHeader.Header = p.TrustedHeader.Header[:79] }, "79 bytes, not 80"},
		{"81-byte header", func(p *types.Params) { p.TrustedHeader.Header = append(p.TrustedHeader.Header, 0) }, "81 bytes"},
		{"window 0", func(p *types.Params) { p.HeaderWindow = 0 }, "header_window"},
		{"max headers 0", func(p *types.Params) { p.MaxHeadersPerPacket = 0 }, "max_headers_per_packet 0"},
		{"max headers 10001", func(p *types.Params) { p.MaxHeadersPerPacket = 10_001 }, "1 to 10000"},
		{"max headers 10000", func(p *types.Params) { p.MaxHeadersPerPacket = 10_000 }, ""},
		{"k above max headers", func(p *types.Params) { p.K, p.MaxHeadersPerPacket = 7, 6 }, "k 7 exceeds"},
		{"gas too high", func(p *types.Params) { p.GasPerHeader = types.MaxGasPerHeader + 1 }, "gas_per_header"},
		{"max_hold 0", func(p *types.Params) { p.MaxHold = 0 }, "max_hold 0s must be positive"},
		{"max_hold negative", func(p *types.Params) { p.MaxHold = -time.Second }, "max_hold -1s must be positive"},
		{"max_hold 1ns", func(p *types.Params) { p.MaxHold = 1 }, ""},
		{"hash_window 0", func(p *types.Params) { p.HashWindow = 0 }, "hash_window must be at least 1"},
		{"hash_window 1", func(p *types.Params) { p.HashWindow = 1 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validParams()
			tc.change(&p)
			err := p.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, types.ErrInvalidParams)
			require.Contains(t, err.Error(), tc.err)
		})
	}
}

func TestDefaultGenesisNamesWhatIsMissing(t *testing.T) {
	err := types.DefaultGenesis().Validate()
	require.ErrorIs(t, err, types.ErrInvalidParams)
	require.Contains(t, err.Error(), "source_chains: missing")
	require.Contains(t, err.Error(), "trusted_header: missing")
}

func TestEffectiveGasPerHeader(t *testing.T) {
	tests := []struct {
		network string
		set     uint64
		want    uint64
	}{
		{"bitcoin", 0, types.GasPerSha256dHeader},
		{"regtest", 0, types.GasPerSha256dHeader},
		{"litecoin", 0, types.GasPerScryptHeader},
		{"litecoin-regtest", 0, types.GasPerScryptHeader},
		{"litecoin", 7, 7},
	}
	for _, tc := range tests {
		p := validParams()
		p.Network, p.GasPerHeader = tc.network, tc.set
		require.Equal(t, tc.want, p.EffectiveGasPerHeader(), tc.network)
	}
}

func TestVerifyParams(t *testing.T) {
	p := validParams()
	vp, err := p.VerifyParams()
	require.NoError(t, err)
	require.Equal(t, [4]byte{'B', 'T', 'C', 'T'}, vp.Tag)
	require.EqualValues(t, "regtest", vp.Network)
	require.Equal(t, p.SourceChains, vp.SourceChains)
	require.Equal(t, p.K, vp.K)
}
