// Package verify checks a btcts IBC packet on a consumer chain: a faithful
// port of the Rust btcts_consumer::verify_packet (ibc-relay/consumer) and
// of the proof verifier it calls (aggregator/src/verify.rs), following
// docs/ibc.md §1–2 and docs/proof-format.md.
//
// It trusts the btcts service for delivery only: from a Bitcoin header the
// chain already trusts it checks that the packet's headers link and carry
// valid work at an acceptable difficulty (on a mainnet, at least the
// difficulty floor), that the anchor transaction is in the anchor block and
// carries the one btcts OP_RETURN, that it commits the batch root, that the
// leaf's path reaches that root, and it computes the depth itself.
//
// Pure functions: no I/O, no clocks, no global state, no panics on any
// input. Every error is a short lower-case reason fit for an error
// acknowledgement.
package verify

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"example.invalid/btcts/consumer/packet"
)

// PacketVersion is the packet layout version this package verifies.
const PacketVersion = 1

// MaxHeaders is the most headers one packet may carry.
const MaxHeaders = 10_000

// retargetInterval is the blocks between difficulty adjustments.
const retargetInterval = 2016

// TrustedHeader is a Bitcoin header the consumer chain trusts, and its height.
type TrustedHeader struct {
	Height uint32
	Header [80]byte
}

// Params is what the consumer chain expects of every packet.
type Params struct {
	// SourceChains are the chain ids whose records are accepted.
	SourceChains []string
	// Network is the chain anchors must be on.
	Network Network
	// Tag is the btcts deployment tag.
	Tag [4]byte
	// K is the blocks required from the anchor block (counted as 1) to the last header.
	K uint32
}

// Verified is a packet that passed every check.
type Verified struct {
	ChainID         string
	Height          uint64
	BlockHash       [32]byte
	StakerSetDigest [32]byte
	// RecordID is the record's leaf hash.
	RecordID      [32]byte
	BitcoinHeight uint32
	// BitcoinBlock is the anchor block's hash in natural byte order (sha256d of its header).
	BitcoinBlock [32]byte
	// Depth is the anchor block's depth under the last header, computed here.
	Depth uint32
	// Headers is every header of the packet with its height, in order.
	Headers []TrustedHeader
	// Tip is the last header: the consumer's next trusted-header candidate.
	Tip TrustedHeader
}

// VerifyPacket checks packet data from trusted on: it decodes canonically
// as a version-1 TimestampPacket; the record is well formed and of a
// source chain; the proof is canonical JSON, about exactly this record,
// and verifies in full on p.Network with p.Tag; the headers start right
// after trusted, link, and each carries valid work at an acceptable
// difficulty; the anchor block is one of them, byte for byte, at the
// proof's block.height, and the proof's headers_after are the packet's
// next headers; the depth
// computed from the headers equals the claim and is at least p.K.
func VerifyPacket(data []byte, trusted TrustedHeader, p Params) (*Verified, error) {
	var pkt packet.TimestampPacket
	if err := pkt.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("packet does not decode: %w", err)
	}
	// One encoding per packet: no unknown fields, no alternative varints.
	again, err := pkt.Marshal()
	if err != nil || !bytes.Equal(again, data) {
		return nil, fmt.Errorf("packet does not decode: not the canonical encoding")
	}
	if pkt.Version != PacketVersion {
		return nil, fmt.Errorf("packet version %d is not supported", pkt.Version)
	}
	if pkt.Record == nil {
		return nil, fmt.Errorf("record: missing")
	}
	rec := pkt.Record
	if !validChainID(rec.ChainId) || len(rec.BlockHash) != 32 || len(rec.StakerSetDigest) != 32 {
		return nil, fmt.Errorf("record: malformed chain id or hash")
	}
	if !contains(p.SourceChains, rec.ChainId) {
		return nil, fmt.Errorf("record: for chain %s, not %s", rec.ChainId, strings.Join(p.SourceChains, " or "))
	}
	record := Record{Kind: KindPosBlock, ChainID: rec.ChainId, Height: rec.Height}
	copy(record.BlockHash[:], rec.BlockHash)
	copy(record.StakerSetDigest[:], rec.StakerSetDigest)

	if !utf8.Valid(pkt.Proof) {
		return nil, fmt.Errorf("proof: not UTF-8")
	}
	proof, err := ParseProof(pkt.Proof)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	canon, err := proof.canonicalJSON()
	if err != nil || !bytes.Equal(canon, pkt.Proof) {
		return nil, fmt.Errorf("proof: not the canonical JSON layout")
	}
	if proof.Record != record {
		return nil, fmt.Errorf("record: the proof is for another record")
	}
	network, tag := p.Network, p.Tag
	verified, err := proof.Verify(&network, &tag)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	if proof.Anchor == nil {
		return nil, fmt.Errorf("proof: not anchored")
	}
	anchor := proof.Anchor

	headers, err := checkHeaders(&pkt, trusted, p.Network)
	if err != nil {
		return nil, err
	}
	if anchor.Block.Height < pkt.FirstHeight {
		return nil, errAnchorNotInHeaders
	}
	index := uint64(anchor.Block.Height - pkt.FirstHeight)
	if index >= uint64(len(headers)) || !bytes.Equal(headers[index].Header[:], anchor.Block.Header) {
		return nil, errAnchorNotInHeaders
	}
	// The proof's own headers after the anchor must be the packet's next
	// ones, so that a packet never carries two branches.
	after := headers[index+1:]
	if len(anchor.HeadersAfter) > len(after) {
		return nil, errHeadersAfter
	}
	for i, h := range anchor.HeadersAfter {
		if !bytes.Equal(h.Header, after[i].Header[:]) {
			return nil, errHeadersAfter
		}
	}
	// At most MaxHeaders, so this fits.
	depth := uint32(uint64(len(headers)) - index)
	if depth != pkt.Depth {
		return nil, fmt.Errorf("claimed depth %d but the headers show %d", pkt.Depth, depth)
	}
	if depth < p.K {
		return nil, fmt.Errorf("depth %d is below the required %d", depth, p.K)
	}
	return &Verified{
		ChainID:         record.ChainID,
		Height:          record.Height,
		BlockHash:       record.BlockHash,
		StakerSetDigest: record.StakerSetDigest,
		RecordID:        verified.Leaf,
		BitcoinHeight:   anchor.Block.Height,
		BitcoinBlock:    verified.Anchor.BlockHash,
		Depth:           depth,
		Headers:         headers,
		Tip:             headers[len(headers)-1],
	}, nil
}

var errHeadersAfter = fmt.Errorf("proof: its headers_after are not the packet's headers after the anchor block")

var errAnchorNotInHeaders = fmt.Errorf("the anchor block is not among the packet's headers")

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkHeaders parses the headers and checks linkage from trusted, the
// difficulty floor, work and difficulty changes.
func checkHeaders(pkt *packet.TimestampPacket, trusted TrustedHeader, network Network) ([]TrustedHeader, error) {
	if len(pkt.Headers) == 0 || len(pkt.Headers) > MaxHeaders {
		return nil, fmt.Errorf("headers: %d headers; 1 to %d are allowed", len(pkt.Headers), MaxHeaders)
	}
	if trusted.Height == ^uint32(0) || pkt.FirstHeight != trusted.Height+1 {
		return nil, fmt.Errorf("headers: they start at height %d, not right after the trusted header at %d",
			pkt.FirstHeight, trusted.Height)
	}
	out := make([]TrustedHeader, 0, len(pkt.Headers))
	prev := trusted.Header
	for i, raw := range pkt.Headers {
		height := saturatingAdd(pkt.FirstHeight, uint32(i))
		if len(raw) != 80 {
			return nil, fmt.Errorf("headers: header at height %d is %d bytes, not 80", height, len(raw))
		}
		var h [80]byte
		copy(h[:], raw)
		prevHash := BlockHash(prev)
		if !bytes.Equal(h[4:36], prevHash[:]) {
			return nil, fmt.Errorf("headers: header at height %d does not link to the one before it", height)
		}
		if err := checkWork(network, h); err != nil {
			return nil, fmt.Errorf("header at height %d: %w", height, err)
		}
		if err := checkDifficulty(network, height, prev, h); err != nil {
			return nil, fmt.Errorf("header at height %d: %w", height, err)
		}
		out = append(out, TrustedHeader{Height: height, Header: h})
		prev = h
	}
	return out, nil
}

func saturatingAdd(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint32(0)
}

// checkDifficulty is the rule a light client can check without the whole
// period: no change inside a retarget period, and at a period boundary at
// most a factor of four either way (Bitcoin's clamp). Regtest networks
// never retarget. On testnet and testnet4 a block may fall back to the
// minimum difficulty, so only the proof-of-work limit is enforced there.
func checkDifficulty(network Network, height uint32, prev, header [80]byte) error {
	switch network {
	case Testnet, Testnet4:
		return nil
	case Regtest, LitecoinRegtest:
		if headerBits(header) != headerBits(prev) {
			return fmt.Errorf("difficulty changed on a network that never retargets")
		}
		return nil
	case Bitcoin, Signet, Litecoin:
		if height%retargetInterval != 0 {
			if headerBits(header) != headerBits(prev) {
				return fmt.Errorf("difficulty changed inside a retarget period")
			}
			return nil
		}
		old, next := CompactToTarget(headerBits(prev)), CompactToTarget(headerBits(header))
		// As rust-bitcoin: old << 2 wraps at 256 bits; old >> 2 is exact.
		easiest := shl256(old, 2)
		hardest := old.Rsh(old, 2)
		if next.Cmp(easiest) > 0 || next.Cmp(hardest) < 0 {
			return fmt.Errorf("difficulty moved more than a factor of four at a retarget")
		}
		return nil
	}
	return fmt.Errorf("unknown anchor network %q", string(network))
}
