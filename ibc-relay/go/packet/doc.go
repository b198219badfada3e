// Package packet holds the btcts IBC packet format v1 (docs/ibc.md §1):
// TimestampPacket, PosBlockRecord and TimestampAck, generated from
// ibc-relay/proto/btcts/v1/packet.proto.
package packet
