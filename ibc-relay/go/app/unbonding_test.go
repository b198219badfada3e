package app

import (
	"slices"
	"testing"

	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"

	btctskeeper "example.invalid/btcts/consumer/x/btcts/keeper"
	btctstypes "example.invalid/btcts/consumer/x/btcts/types"
)

// x/btcts holds unbondings: its hooks are the staking module's (next to
// slashing's), and it runs in BeginBlock (own block hashes) and in EndBlock
// after staking (releases).
func TestBtctsHoldsUnbondings(t *testing.T) {
	a := newTestApp(t, options{})
	multi, ok := a.StakingKeeper.Hooks().(stakingtypes.MultiStakingHooks)
	if !ok {
		t.Fatalf("staking hooks are %T, want MultiStakingHooks", a.StakingKeeper.Hooks())
	}
	found := false
	for _, h := range multi {
		if _, ok := h.(btctskeeper.Hooks); ok {
			found = true
		}
	}
	if !found || len(multi) != 2 {
		t.Fatalf("staking hooks %T: want slashing's and x/btcts's", multi)
	}
	if !slices.Contains(a.ModuleManager.OrderBeginBlockers, btctstypes.ModuleName) {
		t.Errorf("x/btcts is not a begin blocker: %v", a.ModuleManager.OrderBeginBlockers)
	}
	end := a.ModuleManager.OrderEndBlockers
	staking, btcts := slices.Index(end, stakingtypes.ModuleName), slices.Index(end, btctstypes.ModuleName)
	if staking < 0 || btcts < staking {
		t.Errorf("x/btcts must end blocks after staking: %v", end)
	}
}
