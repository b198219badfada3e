package btctest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"testing"

	"example.invalid/btcts/consumer/packet"
)

// Record is a PoS block record.
type Record struct {
	ChainID         string
	Height          uint64
	BlockHash       [32]byte
	StakerSetDigest [32]byte
}

// NewRecord makes a record whose hashes derive from (chainID, height, salt).
func NewRecord(chainID string, height uint64, salt byte) Record {
	r := Record{ChainID: chainID, Height: height}
	r.BlockHash = sha256.Sum256([]byte{salt, byte(height), 'b'})
	r.StakerSetDigest = sha256.Sum256([]byte{salt, byte(height), 's'})
	return r
}

// Preimage is the leaf preimage v1 of the record.
func (r Record) Preimage() []byte {
	var b bytes.Buffer
	b.Write([]byte{0x00, 0x01, byte(len(r.ChainID))})
	b.WriteString(r.ChainID)
	_ = binary.Write(&b, binary.BigEndian, r.Height)
	b.Write(r.BlockHash[:])
	b.Write(r.StakerSetDigest[:])
	return b.Bytes()
}

// LeafHash is the record id.
func (r Record) LeafHash() [32]byte { return sha256.Sum256(r.Preimage()) }

// Batch is a batch of records anchored in a block of a Chain.
type Batch struct {
	Seq      uint64
	Records  []Record
	Tag      [4]byte
	Network  string
	Height   uint32 // of the anchor block
	TxIndex  int    // of the anchor transaction in its block
	Tx       []byte
	Leaves   [][32]byte
	RootHash [32]byte
}

// DefaultTag is "BTCT".
var DefaultTag = [4]byte{'B', 'T', 'C', 'T'}

// Anchor mines a block holding a coinbase and the batch's OP_RETURN
// transaction.
func (c *Chain) Anchor(network string, tag [4]byte, seq uint64, records ...Record) *Batch {
	b := &Batch{Seq: seq, Records: records, Tag: tag, Network: network, TxIndex: 1}
	for _, r := range records {
		b.Leaves = append(b.Leaves, r.LeafHash())
	}
	b.RootHash = treeRoot(b.Leaves)
	b.Tx = anchorTx(tag, seq, b.RootHash)
	coinbase := []byte{0x02, byte(c.Tip()), byte(c.Tip() >> 8), byte(seq), 'c', 'o', 'i', 'n'}
	b.Height = c.MineBlock([][]byte{coinbase, b.Tx})
	return b
}

func parent(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

// treeRoot is the btcts batch tree (docs/proof-format.md §2: an odd last
// node is carried up unchanged).
func treeRoot(level [][32]byte) [32]byte {
	for len(level) > 1 {
		level = nextLevel(level)
	}
	return level[0]
}

func nextLevel(level [][32]byte) [][32]byte {
	var next [][32]byte
	for i := 0; i < len(level); i += 2 {
		if i+1 < len(level) {
			next = append(next, parent(level[i], level[i+1]))
		} else {
			next = append(next, level[i])
		}
	}
	return next
}

type step struct {
	Side string `json:"side"`
	Hash string `json:"hash"`
}

func treePath(level [][32]byte, index int) []step {
	path := []step{}
	for len(level) > 1 {
		sibling := index ^ 1
		if sibling < len(level) {
			side := "right"
			if sibling < index {
				side = "left"
			}
			path = append(path, step{Side: side, Hash: hex.EncodeToString(level[sibling][:])})
		}
		level = nextLevel(level)
		index /= 2
	}
	return path
}

// anchorTx is a version-2 transaction with one input and the OP_RETURN
// output of payload v1 (non-witness serialization).
func anchorTx(tag [4]byte, seq uint64, root [32]byte) []byte {
	var b bytes.Buffer
	le32 := func(v uint32) { _ = binary.Write(&b, binary.LittleEndian, v) }
	le32(2)
	b.WriteByte(1) // inputs
	prev := sha256.Sum256([]byte{byte(seq), 'p', 'r', 'e', 'v'})
	b.Write(prev[:])
	le32(0)
	b.WriteByte(0) // empty script_sig
	le32(0xfffffffd)
	b.WriteByte(1) // outputs
	_ = binary.Write(&b, binary.LittleEndian, uint64(0))
	payload := append(append(append([]byte{}, tag[:]...), 0x01), make([]byte, 8)...)
	binary.BigEndian.PutUint64(payload[5:13], seq)
	payload = append(payload, root[:]...)
	script := append([]byte{0x6a, byte(len(payload))}, payload...)
	b.WriteByte(byte(len(script)))
	b.Write(script)
	le32(0) // lock time
	return b.Bytes()
}

type hashedHeader struct {
	Hash   string `json:"hash"`
	Header string `json:"header"`
}

type proofDoc struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Record  struct {
		Kind            string `json:"kind"`
		ChainID         string `json:"chain_id"`
		Height          uint64 `json:"height"`
		BlockHash       string `json:"block_hash"`
		StakerSetDigest string `json:"staker_set_digest"`
	} `json:"record"`
	Leaf struct {
		Preimage string `json:"preimage"`
		Hash     string `json:"hash"`
	} `json:"leaf"`
	Batch struct {
		Seq   uint64 `json:"seq"`
		Size  int    `json:"size"`
		Index int    `json:"index"`
		Root  string `json:"root"`
	} `json:"batch"`
	Path   []step `json:"path"`
	Anchor struct {
		Network     string   `json:"network"`
		Pow         string   `json:"pow"`
		Tag         string   `json:"tag"`
		Tx          string   `json:"tx"`
		Txid        string   `json:"txid"`
		OutputIndex int      `json:"output_index"`
		TxIndex     int      `json:"tx_index"`
		TxBranch    []string `json:"tx_branch"`
		Block       struct {
			Height uint32 `json:"height"`
			Hash   string `json:"hash"`
			Header string `json:"header"`
		} `json:"block"`
		HeadersAfter []hashedHeader `json:"headers_after"`
	} `json:"anchor"`
}

// Proof writes record index's proof document in canonical JSON (serde's
// pretty layout plus a final newline), with the headers after the anchor
// block up to height last.
func (c *Chain) Proof(tb testing.TB, b *Batch, index int, last uint32) []byte {
	tb.Helper()
	r := b.Records[index]
	var d proofDoc
	d.Format, d.Version = "btcts-proof", 1
	d.Record.Kind = "pos_block"
	d.Record.ChainID, d.Record.Height = r.ChainID, r.Height
	d.Record.BlockHash = hex.EncodeToString(r.BlockHash[:])
	d.Record.StakerSetDigest = hex.EncodeToString(r.StakerSetDigest[:])
	leaf := r.LeafHash()
	d.Leaf.Preimage, d.Leaf.Hash = hex.EncodeToString(r.Preimage()), hex.EncodeToString(leaf[:])
	d.Batch.Seq, d.Batch.Size, d.Batch.Index = b.Seq, len(b.Records), index
	d.Batch.Root = hex.EncodeToString(b.RootHash[:])
	d.Path = treePath(b.Leaves, index)

	a := &d.Anchor
	a.Network, a.Pow, a.Tag = b.Network, "sha256d", hex.EncodeToString(b.Tag[:])
	if b.Network == "litecoin" || b.Network == "litecoin-regtest" {
		a.Pow = "scrypt"
	}
	a.Tx = hex.EncodeToString(b.Tx)
	txid := Sha256d(b.Tx)
	rtxid := reversed(txid)
	a.Txid = hex.EncodeToString(rtxid[:])
	a.OutputIndex, a.TxIndex = 0, b.TxIndex
	var ids [][32]byte
	for _, tx := range c.Blocks[b.Height].Txs {
		ids = append(ids, Sha256d(tx))
	}
	a.TxBranch = []string{}
	for _, s := range bitcoinBranch(ids, b.TxIndex) {
		rs := reversed(s)
		a.TxBranch = append(a.TxBranch, hex.EncodeToString(rs[:]))
	}
	header := c.Header(b.Height)
	bh := reversed(Sha256d(header[:]))
	a.Block.Height, a.Block.Hash, a.Block.Header = b.Height, hex.EncodeToString(bh[:]), hex.EncodeToString(header[:])
	a.HeadersAfter = []hashedHeader{}
	for h := b.Height + 1; h <= last; h++ {
		hdr := c.Header(h)
		hh := reversed(Sha256d(hdr[:]))
		a.HeadersAfter = append(a.HeadersAfter, hashedHeader{Hash: hex.EncodeToString(hh[:]), Header: hex.EncodeToString(hdr[:])})
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		tb.Fatalf("encode proof: %v", err)
	}
	return out.Bytes() // Encode ends with the newline
}

// Packet builds the packet of record index of b with the headers from
// first to last and the depth they show.
func (c *Chain) Packet(tb testing.TB, b *Batch, index int, first, last uint32) []byte {
	tb.Helper()
	return c.PacketWith(tb, b, index, first, last, func(*packet.TimestampPacket) {})
}

// PacketWith is Packet with a change to the packet before it is encoded.
func (c *Chain) PacketWith(tb testing.TB, b *Batch, index int, first, last uint32, change func(*packet.TimestampPacket)) []byte {
	tb.Helper()
	r := b.Records[index]
	p := packet.TimestampPacket{
		Version: 1,
		Record: &packet.PosBlockRecord{
			ChainId:         r.ChainID,
			Height:          r.Height,
			BlockHash:       append([]byte(nil), r.BlockHash[:]...),
			StakerSetDigest: append([]byte(nil), r.StakerSetDigest[:]...),
		},
		Proof:       c.Proof(tb, b, index, last),
		FirstHeight: first,
		Headers:     c.Range(first, last),
		Depth:       last - b.Height + 1,
	}
	change(&p)
	bz, err := p.Marshal()
	if err != nil {
		tb.Fatalf("encode packet: %v", err)
	}
	return bz
}
