// Package types holds the x/btcts module's identifiers, parameters, genesis,
// messages, errors and events, and the protobuf types generated from
// ibc-relay/proto/btcts/consumer/v1.
package types

import "cosmossdk.io/collections"

const (
	// ModuleName is the module's name.
	ModuleName = "btcts"
	// StoreKey is the module's KV store key.
	StoreKey = ModuleName
	// PortID is the IBC port the module binds; the counterparty's is the same.
	PortID = "btcts"
	// Version is the only channel version the module speaks.
	Version = "btcts-1"
)

// Store prefixes of the module's collections.
var (
	ParamsKey     = collections.NewPrefix(0)
	HeadersKey    = collections.NewPrefix(1)
	TipKey        = collections.NewPrefix(2)
	TimestampsKey = collections.NewPrefix(3)
	LatestKey     = collections.NewPrefix(4)
	ConflictsKey  = collections.NewPrefix(5)
	// Fast unbonding (docs/fast-unbonding.md).
	HoldsKey        = collections.NewPrefix(6)
	OwnHashesKey    = collections.NewPrefix(7)
	OwnTimestampKey = collections.NewPrefix(8)
	ForksKey        = collections.NewPrefix(9)
)
