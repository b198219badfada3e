package verify

import (
	"crypto/sha256"
	"fmt"
	"math/big"

	"golang.org/x/crypto/scrypt"
)

// Network is a chain btcts anchors into, by its name in configuration and
// in proofs.
type Network string

// The supported networks (docs/proof-format.md §4).
const (
	Bitcoin         Network = "bitcoin"
	Testnet         Network = "testnet"
	Testnet4        Network = "testnet4"
	Signet          Network = "signet"
	Regtest         Network = "regtest"
	Litecoin        Network = "litecoin"
	LitecoinRegtest Network = "litecoin-regtest"
)

// Networks lists every supported network.
var Networks = []Network{Bitcoin, Testnet, Testnet4, Signet, Regtest, Litecoin, LitecoinRegtest}

// PowFunction is the hash a network's proof of work is computed with.
type PowFunction string

// The proof-of-work functions.
const (
	Sha256d PowFunction = "sha256d"
	Scrypt  PowFunction = "scrypt"
)

// ParseNetwork returns the network named s.
func ParseNetwork(s string) (Network, error) {
	for _, n := range Networks {
		if string(n) == s {
			return n, nil
		}
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return "", fmt.Errorf("unknown anchor network %q (expected one of bitcoin, testnet, testnet4, signet, regtest, litecoin, litecoin-regtest)", s)
}

// Pow is the network's proof-of-work function; "" for an unknown network.
func (n Network) Pow() PowFunction {
	switch n {
	case Litecoin, LitecoinRegtest:
		return Scrypt
	case Bitcoin, Testnet, Testnet4, Signet, Regtest:
		return Sha256d
	}
	return ""
}

// two256 is 2^256: targets are 256-bit numbers and wrap like rust-bitcoin's U256.
var two256 = new(big.Int).Lsh(big.NewInt(1), 256)

// PowLimit is the easiest target a header on the network may claim; nil
// for an unknown network.
func (n Network) PowLimit() *big.Int {
	shl := func(x int64, s uint) *big.Int { return new(big.Int).Lsh(big.NewInt(x), s) }
	switch n {
	case Bitcoin, Testnet, Testnet4:
		return shl(0xffff, 208)
	case Signet:
		return shl(0x0377ae, 216)
	case Regtest:
		return shl(0x7fffff, 232)
	case Litecoin: // 00000fff…ff
		return new(big.Int).Sub(shl(1, 236), big.NewInt(1))
	case LitecoinRegtest: // 7fff…ff
		return new(big.Int).Sub(shl(1, 255), big.NewInt(1))
	}
	return nil
}

// sha256d is SHA-256 applied twice.
func sha256d(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// BlockHash is SHA-256d of the header, in natural byte order (the reverse
// of the hex Bitcoin Core shows).
func BlockHash(header [80]byte) [32]byte { return sha256d(header[:]) }

// leInt reads 32 bytes as a little-endian 256-bit number.
func leInt(b [32]byte) *big.Int {
	var be [32]byte
	for i := range b {
		be[31-i] = b[i]
	}
	return new(big.Int).SetBytes(be[:])
}

// headerBits is the header's compact target (bytes 72..76, little-endian).
func headerBits(h [80]byte) uint32 {
	return uint32(h[72]) | uint32(h[73])<<8 | uint32(h[74])<<16 | uint32(h[75])<<24
}

// CompactToTarget expands a compact target exactly as rust-bitcoin's
// Target::from_compact does: a negative mantissa is zero, and the shift
// wraps modulo 256 bits like its U256 (it does not saturate).
func CompactToTarget(bits uint32) *big.Int {
	var mant, expt uint32
	if e := bits >> 24; e <= 3 {
		mant = (bits & 0xffffff) >> (8 * (3 - e))
	} else {
		mant = bits & 0xffffff
		expt = 8 * (e - 3)
	}
	if mant > 0x7fffff {
		return new(big.Int)
	}
	return shl256(big.NewInt(int64(mant)), uint(expt&0xff))
}

// shl256 is x << s truncated to 256 bits.
func shl256(x *big.Int, s uint) *big.Int {
	r := new(big.Int).Lsh(x, s)
	return r.Mod(r, two256)
}

// PowHash is the header's proof-of-work hash as a number to compare with
// a target: SHA-256d for Bitcoin networks, scrypt(N=1024, r=1, p=1) with
// the header as password and salt for Litecoin, read little-endian.
func PowHash(n Network, header [80]byte) (*big.Int, error) {
	switch n.Pow() {
	case Sha256d:
		return leInt(BlockHash(header)), nil
	case Scrypt:
		out, err := scrypt.Key(header[:], header[:], 1024, 1, 1, 32)
		if err != nil {
			return nil, fmt.Errorf("scrypt: %w", err)
		}
		var h [32]byte
		copy(h[:], out)
		return leInt(h), nil
	}
	return nil, fmt.Errorf("unknown anchor network %q", string(n))
}

// The reasons CheckPoW gives, as the Rust verifier words them.
const (
	errTargetAboveLimit = "header target is easier than the network's proof-of-work limit"
	errInsufficientWork = "header hash does not meet its target"
)

// CheckPoW checks that the header carries the work its own bits claim and
// that those bits are no easier than the network allows.
func CheckPoW(n Network, header [80]byte) error {
	limit := n.PowLimit()
	if limit == nil {
		return fmt.Errorf("unknown anchor network %q", string(n))
	}
	target := CompactToTarget(headerBits(header))
	if target.Cmp(limit) > 0 {
		return fmt.Errorf("%s", errTargetAboveLimit)
	}
	hash, err := PowHash(n, header)
	if err != nil {
		return err
	}
	if hash.Cmp(target) > 0 {
		return fmt.Errorf("%s", errInsufficientWork)
	}
	return nil
}
