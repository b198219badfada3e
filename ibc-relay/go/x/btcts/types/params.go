package types

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	errorsmod "cosmossdk.io/errors"

	"example.invalid/btcts/consumer/verify"
)

// Defaults and bounds of the parameters.
const (
	DefaultTag                 = "42544354" // ASCII "BTCT"
	DefaultK                   = 6
	DefaultHeaderWindow        = 4032 // two retarget periods, about four weeks of Bitcoin blocks
	DefaultMaxHeadersPerPacket = 2016
	// MaxHeadersPerPacket is the verifier's own limit (docs/ibc.md §1).
	MaxHeadersPerPacket = 10_000
	// MaxGasPerHeader bounds gas_per_header so that the charge for a full
	// packet cannot overflow.
	MaxGasPerHeader = 100_000_000
	// GasPerSha256dHeader and GasPerScryptHeader are the charges per header
	// when gas_per_header is 0, on top of the SDK's own charges for the
	// transaction's bytes and the store writes. Measured on this project's
	// 2-core machine (Go 1.26): a secp256k1 signature check, for which the
	// SDK charges 1,000 gas, takes 168 µs; a scrypt header hash (N=1024, r=1,
	// p=1) 447 µs, i.e. about 2,700 gas at the same rate; a SHA-256d header
	// hash 0.25 µs. Scrypt gets that with a margin of about 3.5 for slower
	// validators; SHA-256d's compute is negligible, so its 2,000 mainly
	// prices the header's share of the linkage and difficulty checks.
	GasPerSha256dHeader = 2_000
	GasPerScryptHeader  = 10_000
	// HeaderSize is the size of a Bitcoin block header.
	HeaderSize = 80
	// DefaultMaxHold is the Cosmos SDK's default unbonding period.
	DefaultMaxHold = 21 * 24 * time.Hour
	// DefaultHashWindow is how many of its own block hashes below the
	// current height the chain keeps (besides those of pending holds).
	DefaultHashWindow = 10_000
)

// DefaultParams returns parameters that are complete except for what only
// the chain can choose: the source chains and the trusted header (the
// Bitcoin checkpoint). ValidateGenesis names both while they are missing.
func DefaultParams() Params {
	return Params{
		Network:             string(verify.Network("bitcoin")),
		Tag:                 DefaultTag,
		K:                   DefaultK,
		HeaderWindow:        DefaultHeaderWindow,
		MaxHeadersPerPacket: DefaultMaxHeadersPerPacket,
		MaxHold:             DefaultMaxHold,
		HashWindow:          DefaultHashWindow,
	}
}

// Validate checks every parameter strictly and names every problem.
func (p Params) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if _, err := verify.ParseNetwork(p.Network); err != nil {
		bad("network %q: %v", p.Network, err)
	}
	if _, err := parseTag(p.Tag); err != nil {
		bad("tag: %v", err)
	}
	if p.K == 0 {
		bad("k must be at least 1")
	}
	if err := validateSourceChains(p.SourceChains); err != nil {
		bad("source_chains: %v", err)
	}
	if err := p.TrustedHeader.Validate(); err != nil {
		bad("trusted_header: %v (the Bitcoin checkpoint: its height and 80-byte header)", err)
	}
	if p.HeaderWindow == 0 {
		bad("header_window must be at least 1 (default %d)", DefaultHeaderWindow)
	}
	if p.MaxHeadersPerPacket == 0 || p.MaxHeadersPerPacket > MaxHeadersPerPacket {
		bad("max_headers_per_packet %d: 1 to %d are allowed (default %d)",
			p.MaxHeadersPerPacket, MaxHeadersPerPacket, DefaultMaxHeadersPerPacket)
	} else if p.K > p.MaxHeadersPerPacket {
		bad("k %d exceeds max_headers_per_packet %d: no packet could ever be deep enough",
			p.K, p.MaxHeadersPerPacket)
	}
	if p.GasPerHeader > MaxGasPerHeader {
		bad("gas_per_header %d exceeds %d", p.GasPerHeader, uint64(MaxGasPerHeader))
	}
	if p.MaxHold <= 0 {
		bad("max_hold %s must be positive (default %s, the SDK's unbonding period)", p.MaxHold, DefaultMaxHold)
	}
	if p.HashWindow == 0 {
		bad("hash_window must be at least 1 (default %d)", DefaultHashWindow)
	}
	if len(problems) > 0 {
		return errorsmod.Wrap(ErrInvalidParams, strings.Join(problems, "; "))
	}
	return nil
}

// VerifyParams returns what the verifier needs of p; p must be valid.
func (p Params) VerifyParams() (verify.Params, error) {
	network, err := verify.ParseNetwork(p.Network)
	if err != nil {
		return verify.Params{}, errorsmod.Wrapf(ErrInvalidParams, "network %q: %v", p.Network, err)
	}
	tag, err := parseTag(p.Tag)
	if err != nil {
		return verify.Params{}, errorsmod.Wrapf(ErrInvalidParams, "tag: %v", err)
	}
	return verify.Params{
		SourceChains: append([]string(nil), p.SourceChains...),
		Network:      network,
		Tag:          tag,
		K:            p.K,
	}, nil
}

// EffectiveGasPerHeader is gas_per_header, or when it is 0 the default for
// the network's proof-of-work function.
func (p Params) EffectiveGasPerHeader() uint64 {
	if p.GasPerHeader != 0 {
		return p.GasPerHeader
	}
	if IsScryptNetwork(p.Network) {
		return GasPerScryptHeader
	}
	return GasPerSha256dHeader
}

// IsScryptNetwork tells whether headers of the network are hashed with
// scrypt (Litecoin) rather than SHA-256d (Bitcoin), as the verify package
// knows it.
func IsScryptNetwork(network string) bool {
	return verify.Network(network).Pow() == verify.Scrypt
}

// Validate checks that h is a height and an 80-byte header.
func (h TrustedHeader) Validate() error {
	switch len(h.Header) {
	case 0:
		return fmt.Errorf("missing")
	case HeaderSize:
		return nil
	default:
		return fmt.Errorf("header at height %d is %d bytes, not %d", h.Height, len(h.Header), HeaderSize)
	}
}

// ToVerify converts a validated header for the verifier.
func (h TrustedHeader) ToVerify() (verify.TrustedHeader, error) {
	if err := h.Validate(); err != nil {
		return verify.TrustedHeader{}, err
	}
	out := verify.TrustedHeader{Height: h.Height}
	copy(out.Header[:], h.Header)
	return out, nil
}

// FromVerify converts a verifier header for the store.
func FromVerify(h verify.TrustedHeader) TrustedHeader {
	return TrustedHeader{Height: h.Height, Header: append([]byte(nil), h.Header[:]...)}
}

func parseTag(s string) ([4]byte, error) {
	var tag [4]byte
	if len(s) != 2*len(tag) {
		return tag, fmt.Errorf("%q is not 8 hex characters", s)
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return tag, fmt.Errorf("%q is not lower-case hex", s)
		}
	}
	if _, err := hex.Decode(tag[:], []byte(s)); err != nil {
		return tag, fmt.Errorf("%q: %w", s, err)
	}
	return tag, nil
}

func validateSourceChains(chains []string) error {
	if len(chains) == 0 {
		return fmt.Errorf("missing: name at least one chain whose records are accepted")
	}
	seen := make(map[string]bool, len(chains))
	for _, id := range chains {
		if err := ValidateChainID(id); err != nil {
			return err
		}
		if seen[id] {
			return fmt.Errorf("chain id %q is listed twice", id)
		}
		seen[id] = true
	}
	return nil
}

// ValidateChainID checks a source chain id: 1-64 characters of [A-Za-z0-9._-]
// (the record format's rule, docs/proof-format.md §1).
func ValidateChainID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("chain id %q must be 1 to 64 characters", id)
	}
	for _, c := range id {
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("chain id %q has a character outside [A-Za-z0-9._-]", id)
		}
	}
	return nil
}

// Same tells whether h and o are the same header at the same height.
func (h TrustedHeader) Same(o TrustedHeader) bool {
	return h.Height == o.Height && bytes.Equal(h.Header, o.Header)
}
