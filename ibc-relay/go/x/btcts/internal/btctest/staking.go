package btctest

import (
	"context"
	"fmt"

	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"
)

// Staking is a fake of the staking keeper's hold bookkeeping
// (types.StakingKeeper): unbondings exist once started, each has a hold
// count, and releasing one that is not held fails as the SDK's does.
type Staking struct {
	// Holds is each started unbonding's hold count.
	Holds map[uint64]int
	// Fail makes UnbondingCanComplete of an id fail with the error.
	Fail map[uint64]error
	// Released lists the ids passed to a successful UnbondingCanComplete, in
	// order.
	Released []uint64
}

// NewStaking returns a fake with no unbondings.
func NewStaking() *Staking {
	return &Staking{Holds: map[uint64]int{}, Fail: map[uint64]error{}}
}

// Start makes unbondings with the ids exist, not on hold.
func (s *Staking) Start(ids ...uint64) {
	for _, id := range ids {
		s.Holds[id] = 0
	}
}

// PutUnbondingOnHold raises the id's hold count.
func (s *Staking) PutUnbondingOnHold(_ context.Context, id uint64) error {
	if _, ok := s.Holds[id]; !ok {
		return fmt.Errorf("unbonding %d: %w", id, stakingtypes.ErrUnbondingNotFound)
	}
	s.Holds[id]++
	return nil
}

// UnbondingCanComplete lowers the id's hold count.
func (s *Staking) UnbondingCanComplete(_ context.Context, id uint64) error {
	if err := s.Fail[id]; err != nil {
		return err
	}
	n, ok := s.Holds[id]
	if !ok {
		return fmt.Errorf("unbonding %d: %w", id, stakingtypes.ErrNoUnbondingType)
	}
	if n == 0 {
		return fmt.Errorf("unbonding %d: %w", id, stakingtypes.ErrUnbondingOnHoldRefCountNegative)
	}
	s.Holds[id]--
	s.Released = append(s.Released, id)
	return nil
}
