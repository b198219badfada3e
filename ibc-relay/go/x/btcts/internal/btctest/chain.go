// Package btctest builds real btcts packets for the module's tests: it
// mines regtest header chains (bits 0x207fffff, so a nonce is found in a
// couple of tries), anchors batches of records in OP_RETURN transactions,
// and writes proof documents v1 in the canonical JSON layout
// (docs/proof-format.md), independently of the verifier under test.
package btctest

import (
	"crypto/sha256"
	"encoding/binary"
	"math/big"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// RegtestBits is the compact target of regtest networks.
const RegtestBits = 0x207fffff

// Chain is a header chain from a checkpoint at height Base.
type Chain struct {
	Base    uint32
	Headers [][80]byte
	// Blocks holds the transactions of blocks that anchor something.
	Blocks map[uint32]*Block
	// Scrypt mines Litecoin headers (scrypt proof of work) instead of
	// Bitcoin ones; set it before mining anything after the checkpoint.
	Scrypt bool
	time   uint32
}

// Block is an anchor block: its transactions (non-witness bytes).
type Block struct {
	Txs [][]byte
}

// Sha256d is SHA-256 applied twice.
func Sha256d(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// NewChain starts a chain with a checkpoint header at height base.
func NewChain(tb testing.TB, base uint32) *Chain { return NewChainSeeded(tb, base, 0) }

// NewChainSeeded is NewChain with another checkpoint for each seed.
func NewChainSeeded(tb testing.TB, base uint32, seed byte) *Chain {
	tb.Helper()
	c := &Chain{Base: base, Blocks: map[uint32]*Block{}, time: 1_700_000_000}
	var prev [32]byte
	for i := range prev {
		prev[i] = byte(base) + byte(i) + seed
	}
	c.Headers = append(c.Headers, c.mineHeader(prev, [32]byte{1}))
	return c
}

// Tip is the height of the last header.
func (c *Chain) Tip() uint32 { return c.Base + uint32(len(c.Headers)) - 1 }

// Header returns the header at height h.
func (c *Chain) Header(h uint32) [80]byte { return c.Headers[h-c.Base] }

// Range returns the headers from first to last, inclusive, as bytes.
func (c *Chain) Range(first, last uint32) [][]byte {
	var out [][]byte
	for h := first; h <= last; h++ {
		hdr := c.Header(h)
		out = append(out, append([]byte(nil), hdr[:]...))
	}
	return out
}

// Mine appends n empty blocks.
func (c *Chain) Mine(n int) {
	for range n {
		tip := c.Header(c.Tip())
		c.Headers = append(c.Headers, c.mineHeader(Sha256d(tip[:]), Sha256d([]byte{byte(c.Tip()), byte(c.Tip() >> 8), 7})))
	}
}

// Fork returns a copy of c cut back to height at; mining on it makes a
// different branch (its timestamps differ).
func (c *Chain) Fork(at uint32) *Chain {
	f := &Chain{Base: c.Base, Blocks: map[uint32]*Block{}, Scrypt: c.Scrypt, time: c.time + 1_000_000}
	f.Headers = append(f.Headers, c.Headers[:at-c.Base+1]...)
	for h, b := range c.Blocks {
		if h <= at {
			f.Blocks[h] = b
		}
	}
	return f
}

// MineBlock appends a block holding txs (the first plays the coinbase).
func (c *Chain) MineBlock(txs [][]byte) uint32 {
	var ids [][32]byte
	for _, tx := range txs {
		ids = append(ids, Sha256d(tx))
	}
	tip := c.Header(c.Tip())
	c.Headers = append(c.Headers, c.mineHeader(Sha256d(tip[:]), bitcoinMerkleRoot(ids)))
	c.Blocks[c.Tip()] = &Block{Txs: txs}
	return c.Tip()
}

func (c *Chain) mineHeader(prev, merkleRoot [32]byte) [80]byte {
	c.time += 600
	var h [80]byte
	binary.LittleEndian.PutUint32(h[0:4], 0x20000000)
	copy(h[4:36], prev[:])
	copy(h[36:68], merkleRoot[:])
	binary.LittleEndian.PutUint32(h[68:72], c.time)
	binary.LittleEndian.PutUint32(h[72:76], RegtestBits)
	target := compactToBig(RegtestBits)
	for nonce := uint32(0); ; nonce++ {
		binary.LittleEndian.PutUint32(h[76:80], nonce)
		hash := Sha256d(h[:])
		if c.Scrypt {
			// Parameters of Litecoin's proof of work; they are valid.
			key, _ := scrypt.Key(h[:], h[:], 1024, 1, 1, 32)
			copy(hash[:], key)
		}
		if leToBig(hash).Cmp(target) <= 0 {
			return h
		}
	}
}

func compactToBig(bits uint32) *big.Int {
	mantissa := big.NewInt(int64(bits & 0x007fffff))
	exp := uint(bits >> 24)
	if exp <= 3 {
		return mantissa.Rsh(mantissa, 8*(3-exp))
	}
	return mantissa.Lsh(mantissa, 8*(exp-3))
}

func leToBig(h [32]byte) *big.Int {
	var be [32]byte
	for i := range h {
		be[i] = h[31-i]
	}
	return new(big.Int).SetBytes(be[:])
}

// bitcoinMerkleRoot is Bitcoin's transaction tree (the last node of an odd
// level is paired with itself).
func bitcoinMerkleRoot(level [][32]byte) [32]byte {
	for len(level) > 1 {
		var next [][32]byte
		for i := 0; i < len(level); i += 2 {
			j := min(i+1, len(level)-1)
			next = append(next, Sha256d(append(level[i][:], level[j][:]...)))
		}
		level = next
	}
	return level[0]
}

// bitcoinBranch is the Merkle branch of transaction index in level.
func bitcoinBranch(level [][32]byte, index int) [][32]byte {
	var branch [][32]byte
	for len(level) > 1 {
		sibling := index ^ 1
		if sibling >= len(level) {
			sibling = index
		}
		branch = append(branch, level[sibling])
		var next [][32]byte
		for i := 0; i < len(level); i += 2 {
			j := min(i+1, len(level)-1)
			next = append(next, Sha256d(append(level[i][:], level[j][:]...)))
		}
		level = next
		index /= 2
	}
	return branch
}

// reversed returns b byte-reversed (Bitcoin's display order).
func reversed(b [32]byte) [32]byte {
	var r [32]byte
	for i := range b {
		r[i] = b[31-i]
	}
	return r
}
