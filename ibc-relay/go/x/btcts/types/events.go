package types

// Events the module emits, and their attributes.
//
// Fast unbonding:
//   - btcts_unbonding_held (unbonding_id, height): the staking module
//     started an unbonding and the module put it on hold.
//   - btcts_unbonding_released (unbonding_id, height, by, timestamp_height):
//     a hold ended. by is "timestamp" (a verified timestamp of this chain at
//     timestamp_height >= height, whose block hash is the chain's own) or
//     "max_hold" (max_hold passed; timestamp_height is then empty).
//   - btcts_fork (height, own_hash, timestamped_hash, record_id,
//     bitcoin_height): a verified timestamp of this chain names a block
//     hash that is not the chain's own at that height (own_hash is empty
//     when the height is above the current one). It releases nothing.
const (
	EventTimestampVerified    = "btcts_timestamp_verified"
	EventConflictingTimestamp = "btcts_conflicting_timestamp"
	EventPacketRefused        = "btcts_packet_refused"
	EventTrustedHeaderReset   = "btcts_trusted_header_reset"
	EventUnbondingHeld        = "btcts_unbonding_held"
	EventUnbondingReleased    = "btcts_unbonding_released"
	EventFork                 = "btcts_fork"

	AttributeChainID       = "chain_id"
	AttributeHeight        = "height"
	AttributeBitcoinHeight = "bitcoin_height"
	AttributeDepth         = "depth"
	AttributeReason        = "reason"
	AttributeFirstHash     = "first_block_hash"
	AttributeSecondHash    = "second_block_hash"

	AttributeUnbondingID     = "unbonding_id"
	AttributeBy              = "by"
	AttributeTimestampHeight = "timestamp_height"
	AttributeOwnHash         = "own_hash"
	AttributeTimestampedHash = "timestamped_hash"
	AttributeRecordID        = "record_id"

	// Values of AttributeBy.
	ReleasedByTimestamp = "timestamp"
	ReleasedByMaxHold   = "max_hold"
)
