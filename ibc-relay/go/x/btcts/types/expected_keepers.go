package types

import "context"

// StakingKeeper is what x/btcts needs of the staking keeper to hold
// unbondings (Cosmos SDK v0.54 x/staking; the SDK documents that every
// PutUnbondingOnHold must be matched by one UnbondingCanComplete).
type StakingKeeper interface {
	// PutUnbondingOnHold stops the unbonding with the id from completing.
	PutUnbondingOnHold(ctx context.Context, id uint64) error
	// UnbondingCanComplete undoes one hold; a mature entry completes at once.
	UnbondingCanComplete(ctx context.Context, id uint64) error
}
