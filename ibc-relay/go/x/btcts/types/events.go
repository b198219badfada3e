package types

// Events the module emits, and their attributes.
const (
	EventTimestampVerified    = "btcts_timestamp_verified"
	EventConflictingTimestamp = "btcts_conflicting_timestamp"
	EventPacketRefused        = "btcts_packet_refused"
	EventTrustedHeaderReset   = "btcts_trusted_header_reset"

	AttributeChainID       = "chain_id"
	AttributeHeight        = "height"
	AttributeBitcoinHeight = "bitcoin_height"
	AttributeDepth         = "depth"
	AttributeReason        = "reason"
	AttributeFirstHash     = "first_block_hash"
	AttributeSecondHash    = "second_block_hash"
)
