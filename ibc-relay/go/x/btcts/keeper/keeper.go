// Package keeper owns the x/btcts state: the params, the Bitcoin headers the
// module trusts (by height, the highest being the trusted tip), the verified
// timestamps per source chain with each chain's latest height, and the
// conflicts between timestamps. A packet changes state only after it
// verified in full; a refused one writes nothing.
//
// Fast unbonding (unbonding.go, hooks.go): the keeper puts every new
// unbonding of the staking module on hold, keeps this chain's own block
// hashes, and releases holds on a k-deep timestamp of this chain whose
// block hash is the chain's own, or after max_hold.
package keeper

import (
	"context"
	"errors"
	"fmt"

	"cosmossdk.io/collections"
	corestore "cosmossdk.io/core/store"

	"github.com/cosmos/cosmos-sdk/codec"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// Keeper reads and writes the module's store. It is a value type: its
// collections refer to the store service, so copies share the state.
type Keeper struct {
	cdc          codec.BinaryCodec
	storeService corestore.KVStoreService
	// authority may send MsgUpdateParams (usually the gov module account).
	authority string
	staking   types.StakingKeeper

	Schema collections.Schema
	Params collections.Item[types.Params]
	// Headers are the known Bitcoin headers (80 bytes) by height.
	Headers collections.Map[uint32, []byte]
	// Tip is the height of the trusted tip, the highest known header.
	Tip collections.Item[uint32]
	// Timestamps by (source chain, height).
	Timestamps collections.Map[collections.Pair[string, uint64], types.VerifiedTimestamp]
	// Latest is each source chain's highest verified height.
	Latest collections.Map[string, uint64]
	// Conflicts by (source chain, height): the first timestamp and the first
	// different one verified after it.
	Conflicts collections.Map[collections.Pair[string, uint64], types.Conflict]
	// Holds are the unbondings on hold, by (height, unbonding id).
	Holds collections.Map[collections.Pair[int64, uint64], types.Hold]
	// OwnHashes are this chain's own block hashes by height.
	OwnHashes collections.Map[int64, []byte]
	// OwnTimestamp is the highest verified timestamp of this chain whose
	// block hash matched the chain's own hash at its height.
	OwnTimestamp collections.Item[types.VerifiedTimestamp]
	// Forks are this chain's timestamps with a block hash not its own, by
	// (height, record id).
	Forks collections.Map[collections.Pair[uint64, []byte], types.Fork]
}

// NewKeeper builds the keeper over the module's store. authority must not be
// empty; staking is the chain's staking keeper, whose unbondings the module
// holds (register Hooks() with it).
func NewKeeper(
	cdc codec.BinaryCodec, storeService corestore.KVStoreService, authority string, staking types.StakingKeeper,
) Keeper {
	if authority == "" {
		panic("x/btcts: the keeper needs an authority address for MsgUpdateParams")
	}
	if staking == nil {
		panic("x/btcts: the keeper needs the staking keeper to hold unbondings")
	}
	sb := collections.NewSchemaBuilder(storeService)
	k := Keeper{
		cdc:          cdc,
		storeService: storeService,
		authority:    authority,
		staking:      staking,
		Params:       collections.NewItem(sb, types.ParamsKey, "params", codec.CollValue[types.Params](cdc)),
		Headers:      collections.NewMap(sb, types.HeadersKey, "headers", collections.Uint32Key, collections.BytesValue),
		Tip:          collections.NewItem(sb, types.TipKey, "tip", collections.Uint32Value),
		Timestamps: collections.NewMap(sb, types.TimestampsKey, "timestamps",
			collections.PairKeyCodec(collections.StringKey, collections.Uint64Key),
			codec.CollValue[types.VerifiedTimestamp](cdc)),
		Latest: collections.NewMap(sb, types.LatestKey, "latest", collections.StringKey, collections.Uint64Value),
		Conflicts: collections.NewMap(sb, types.ConflictsKey, "conflicts",
			collections.PairKeyCodec(collections.StringKey, collections.Uint64Key),
			codec.CollValue[types.Conflict](cdc)),
		Holds: collections.NewMap(sb, types.HoldsKey, "holds",
			collections.PairKeyCodec(collections.Int64Key, collections.Uint64Key),
			codec.CollValue[types.Hold](cdc)),
		OwnHashes: collections.NewMap(sb, types.OwnHashesKey, "own_hashes", collections.Int64Key, collections.BytesValue),
		OwnTimestamp: collections.NewItem(sb, types.OwnTimestampKey, "own_timestamp",
			codec.CollValue[types.VerifiedTimestamp](cdc)),
		Forks: collections.NewMap(sb, types.ForksKey, "forks",
			collections.PairKeyCodec(collections.Uint64Key, collections.BytesKey),
			codec.CollValue[types.Fork](cdc)),
	}
	schema, err := sb.Build()
	if err != nil {
		panic(fmt.Sprintf("x/btcts: store schema: %v", err))
	}
	k.Schema = schema
	return k
}

// Authority is the address allowed to update the params.
func (k Keeper) Authority() string { return k.authority }

// GetParams returns the params; they exist from genesis on.
func (k Keeper) GetParams(ctx context.Context) (types.Params, error) {
	p, err := k.Params.Get(ctx)
	if errors.Is(err, collections.ErrNotFound) {
		return p, fmt.Errorf("params: %w", types.ErrMissingState)
	}
	if err != nil {
		return p, fmt.Errorf("read params: %w", err)
	}
	return p, nil
}

// SetParams validates and stores params. If the trusted header changes (or
// none was stored yet), the known headers are reset to it.
func (k Keeper) SetParams(ctx context.Context, p types.Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	old, err := k.Params.Get(ctx)
	reset := errors.Is(err, collections.ErrNotFound) || !old.TrustedHeader.Same(p.TrustedHeader)
	if err != nil && !errors.Is(err, collections.ErrNotFound) {
		return fmt.Errorf("read params: %w", err)
	}
	if err := k.Params.Set(ctx, p); err != nil {
		return fmt.Errorf("write params: %w", err)
	}
	if reset {
		return k.ResetHeaders(ctx, p.TrustedHeader)
	}
	return nil
}
