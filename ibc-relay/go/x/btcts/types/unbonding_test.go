package types_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cosmos/cosmos-sdk/codec"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"

	"example.invalid/btcts/consumer/x/btcts/types"
)

func TestDefaultUnbondingParams(t *testing.T) {
	p := types.DefaultParams()
	require.Equal(t, 21*24*time.Hour, p.MaxHold)
	require.EqualValues(t, 10_000, p.HashWindow)
}

func TestUnbondingGenesisValidate(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hash := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	base := func() types.GenesisState {
		own := types.VerifiedTimestamp{
			ChainId: "cosmoshub-4", Height: 9, BlockHash: hash(1), StakerSetDigest: hash(2),
			RecordId: hash(3), BitcoinHeight: 101, BitcoinBlock: hash(4), Depth: 6,
		}
		return types.GenesisState{
			Params: validParams(),
			Holds:  []types.Hold{{UnbondingId: 1, Height: 10, Time: at}, {UnbondingId: 2, Height: 10, Time: at}},
			Forks: []types.Fork{
				{Height: 8, OwnHash: hash(5), TimestampedHash: hash(6), RecordId: hash(7), BitcoinHeight: 101},
				{Height: 30, TimestampedHash: hash(6), RecordId: hash(8), BitcoinHeight: 102},
			},
			OwnHashes:    []types.OwnBlockHash{{Height: 9, Hash: hash(1)}, {Height: 10, Hash: hash(9)}},
			OwnTimestamp: &own,
		}
	}
	tests := []struct {
		name   string
		change func(*types.GenesisState)
		err    string
	}{
		{"valid", func(*types.GenesisState) {}, ""},
		{"no own timestamp", func(g *types.GenesisState) { g.OwnTimestamp = nil }, ""},
		{"hold at genesis height 0", func(g *types.GenesisState) { g.Holds[0].Height = 0 }, ""},
		{"duplicate hold", func(g *types.GenesisState) { g.Holds[1].UnbondingId = 1 }, "holds[1]: unbonding 1 appears twice"},
		{"negative hold height", func(g *types.GenesisState) { g.Holds[0].Height = -1 }, "height -1 is negative"},
		{"hold without time", func(g *types.GenesisState) { g.Holds[0].Time = time.Time{} }, "time is missing"},
		{"short own hash", func(g *types.GenesisState) { g.OwnHashes[0].Hash = hash(1)[:31] }, "31 bytes, not 32"},
		{"own hash at 0", func(g *types.GenesisState) { g.OwnHashes[0].Height = 0 }, "height 0 is not positive"},
		{"duplicate own hash", func(g *types.GenesisState) { g.OwnHashes[1].Height = 9 }, "height 9 appears twice"},
		{"fork own hash 31 bytes", func(g *types.GenesisState) { g.Forks[0].OwnHash = hash(5)[:31] }, "own_hash is 31 bytes"},
		{"fork without timestamped hash", func(g *types.GenesisState) { g.Forks[0].TimestampedHash = nil }, "timestamped_hash is 0 bytes"},
		{"fork short record id", func(g *types.GenesisState) { g.Forks[1].RecordId = hash(8)[:1] }, "record_id is 1 bytes"},
		{"fork of the own hash", func(g *types.GenesisState) { g.Forks[0].TimestampedHash = hash(5) }, "are the same"},
		{"duplicate fork", func(g *types.GenesisState) { g.Forks[1] = g.Forks[0] }, "forks[1]: record"},
		{"bad own timestamp", func(g *types.GenesisState) { g.OwnTimestamp.Depth = 0 }, "own_timestamp: depth is 0"},
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
			require.ErrorIs(t, err, types.ErrInvalidGenesis)
			require.Contains(t, err.Error(), tc.err)
		})
	}
}

// max_hold is a protobuf Duration: genesis files write it as "60s".
func TestMaxHoldInGenesisJSON(t *testing.T) {
	cdc := codec.NewProtoCodec(codectypes.NewInterfaceRegistry())
	g := types.GenesisState{Params: validParams()}
	g.Params.MaxHold = time.Minute
	bz, err := cdc.MarshalJSON(&g)
	require.NoError(t, err)
	require.Contains(t, string(bz), `"max_hold":"60s"`)
	require.Contains(t, string(bz), `"hash_window":"10000"`)

	var decoded types.GenesisState
	require.NoError(t, cdc.UnmarshalJSON(
		bytes.Replace(bz, []byte(`"max_hold":"60s"`), []byte(`"max_hold":"1.5s"`), 1), &decoded))
	require.Equal(t, 1500*time.Millisecond, decoded.Params.MaxHold)
}
