package keeper

import (
	"context"
	"fmt"
	"strconv"

	"cosmossdk.io/collections"
	"cosmossdk.io/math"

	sdk "github.com/cosmos/cosmos-sdk/types"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// Hooks are the module's staking hooks: every new unbonding is put on
// hold. Register them with the staking keeper (next to the other modules'
// hooks in stakingtypes.NewMultiStakingHooks).
type Hooks struct{ k Keeper }

var _ stakingtypes.StakingHooks = Hooks{}

// Hooks returns the module's staking hooks.
func (k Keeper) Hooks() Hooks { return Hooks{k: k} }

// AfterUnbondingInitiated puts the new unbonding delegation, redelegation or
// validator unbonding on hold and records it with this block's height and
// time. Since SDK v0.47 an unbonding of the same delegator and validator in
// the same block merges into the existing entry and the hook fires only for
// new entries, so holds are tracked by unbonding id. The hold and its record
// are written together or not at all.
func (h Hooks) AfterUnbondingInitiated(ctx context.Context, id uint64) error {
	sdkCtx := sdk.UnwrapSDKContext(ctx)
	cacheCtx, write := sdkCtx.CacheContext()
	if err := h.k.staking.PutUnbondingOnHold(cacheCtx, id); err != nil {
		return fmt.Errorf("put unbonding %d on hold: %w", id, err)
	}
	hold := types.Hold{UnbondingId: id, Height: sdkCtx.BlockHeight(), Time: sdkCtx.BlockTime().UTC()}
	if err := h.k.Holds.Set(cacheCtx, collections.Join(hold.Height, id), hold); err != nil {
		return fmt.Errorf("write hold of unbonding %d: %w", id, err)
	}
	cacheCtx.EventManager().EmitEvent(sdk.NewEvent(types.EventUnbondingHeld,
		sdk.NewAttribute(types.AttributeUnbondingID, strconv.FormatUint(id, 10)),
		sdk.NewAttribute(types.AttributeHeight, strconv.FormatInt(hold.Height, 10)),
	))
	write()
	return nil
}

// AfterValidatorCreated does nothing.
func (Hooks) AfterValidatorCreated(context.Context, sdk.ValAddress) error { return nil }

// BeforeValidatorModified does nothing.
func (Hooks) BeforeValidatorModified(context.Context, sdk.ValAddress) error { return nil }

// AfterValidatorRemoved does nothing.
func (Hooks) AfterValidatorRemoved(context.Context, sdk.ConsAddress, sdk.ValAddress) error {
	return nil
}

// AfterValidatorBonded does nothing.
func (Hooks) AfterValidatorBonded(context.Context, sdk.ConsAddress, sdk.ValAddress) error { return nil }

// AfterValidatorBeginUnbonding does nothing: the validator's unbonding is
// held through AfterUnbondingInitiated.
func (Hooks) AfterValidatorBeginUnbonding(context.Context, sdk.ConsAddress, sdk.ValAddress) error {
	return nil
}

// BeforeDelegationCreated does nothing.
func (Hooks) BeforeDelegationCreated(context.Context, sdk.AccAddress, sdk.ValAddress) error {
	return nil
}

// BeforeDelegationSharesModified does nothing.
func (Hooks) BeforeDelegationSharesModified(context.Context, sdk.AccAddress, sdk.ValAddress) error {
	return nil
}

// BeforeDelegationRemoved does nothing.
func (Hooks) BeforeDelegationRemoved(context.Context, sdk.AccAddress, sdk.ValAddress) error {
	return nil
}

// AfterDelegationModified does nothing.
func (Hooks) AfterDelegationModified(context.Context, sdk.AccAddress, sdk.ValAddress) error {
	return nil
}

// BeforeValidatorSlashed does nothing: held entries stay slashable as the
// staking module slashes them.
func (Hooks) BeforeValidatorSlashed(context.Context, sdk.ValAddress, math.LegacyDec) error {
	return nil
}
