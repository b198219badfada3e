package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// The offline proof verifier, a port of aggregator/src/verify.rs: leaf
// preimage → leaf hash → Merkle path → root → OP_RETURN payload in the
// transaction → txid → transaction Merkle branch → header Merkle root →
// header hash, difficulty floor and proof of work → headers after it
// (linkage, floor, work, difficulty changes) → checkpoints.

// VerifiedProof is what a valid proof document shows.
type VerifiedProof struct {
	Record Record
	// Leaf is the leaf hash: the record id.
	Leaf  [32]byte
	Batch uint64
	Root  [32]byte
	// Anchor is nil for a proof verified up to the root, not anchored yet.
	Anchor *VerifiedAnchor
}

// VerifiedAnchor is the Bitcoin facts of a valid anchored proof; hashes
// in natural byte order.
type VerifiedAnchor struct {
	Network     Network
	Txid        [32]byte
	BlockHash   [32]byte
	BlockHeight uint32
	BlockTime   uint32
	// Confirmations is 1 + the headers after the block in the proof.
	Confirmations uint32
}

// The steps of verification, named as the Rust verifier names them in
// its errors.
const (
	stepLeaf         = "leaf"
	stepPath         = "merkle path"
	stepNetwork      = "network"
	stepTransaction  = "transaction"
	stepPayload      = "op_return payload"
	stepInclusion    = "transaction inclusion"
	stepHeader       = "block header"
	stepProofOfWork  = "proof of work"
	stepHeadersAfter = "headers after the block"
	stepCheckpoint   = "checkpoint"
)

// StepError is a failed verification step.
type StepError struct {
	Step   string
	Detail string
}

func (e *StepError) Error() string { return e.Step + ": " + e.Detail }

func fail(step, format string, args ...any) error {
	return &StepError{Step: step, Detail: fmt.Sprintf(format, args...)}
}

// VerifyProof parses and verifies a proof document alone. A non-nil
// network or tag must match the anchor's.
func VerifyProof(doc []byte, network *Network, tag *[4]byte) (*VerifiedProof, error) {
	if !utf8.Valid(doc) {
		return nil, fmt.Errorf("malformed proof document: not UTF-8")
	}
	p, err := ParseProof(doc)
	if err != nil {
		return nil, err
	}
	return p.Verify(network, tag)
}

// Verify checks every step of the proof.
func (p *Proof) Verify(network *Network, tag *[4]byte) (*VerifiedProof, error) {
	leaf, err := checkLeaf(p)
	if err != nil {
		return nil, err
	}
	b := p.Batch
	want, inRange := pathSides(b.Index, b.Size)
	if !inRange {
		return nil, fail(stepPath, "leaf index %d is outside a batch of %d", b.Index, b.Size)
	}
	if !sameSides(want, p.Path) {
		return nil, fail(stepPath, "path shape does not fit leaf %d of %d", b.Index, b.Size)
	}
	root := leaf
	for _, s := range p.Path {
		if s.Side == Left {
			root = hashNodes(s.Hash, root)
		} else {
			root = hashNodes(root, s.Hash)
		}
	}
	if root != b.Root {
		return nil, fail(stepPath, "path leads to %x, not to the batch root %x", root, b.Root[:])
	}
	out := &VerifiedProof{Record: p.Record, Leaf: leaf, Batch: b.Seq, Root: root}
	if p.Anchor != nil {
		if out.Anchor, err = checkAnchor(p.Anchor, b.Seq, root, network, tag); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LeafPreimage is 0x00 ‖ kind ‖ payload (docs/proof-format.md §1).
func LeafPreimage(r Record) []byte {
	if r.Kind == KindDigest {
		return append([]byte{0x00, 0x02}, r.Digest[:]...)
	}
	out := []byte{0x00, 0x01, byte(len(r.ChainID))}
	out = append(out, r.ChainID...)
	out = binary.BigEndian.AppendUint64(out, r.Height)
	out = append(out, r.BlockHash[:]...)
	return append(out, r.StakerSetDigest[:]...)
}

// decodeLeaf parses a leaf preimage back into its record.
func decodeLeaf(pre []byte) (Record, error) {
	if len(pre) == 0 || pre[0] != 0x00 {
		return Record{}, fmt.Errorf("leaf preimage does not start with 0x00")
	}
	if len(pre) < 2 {
		return Record{}, fmt.Errorf("leaf payload has the wrong length for its kind")
	}
	payload := pre[2:]
	switch pre[1] {
	case 0x01:
		if len(payload) == 0 || len(payload)-1 != int(payload[0])+72 {
			return Record{}, fmt.Errorf("leaf payload has the wrong length for its kind")
		}
		n := int(payload[0])
		id := string(payload[1 : 1+n])
		if !validChainID(id) {
			return Record{}, fmt.Errorf("invalid chain id %q: expected 1-64 characters of [A-Za-z0-9._-]", id)
		}
		rest := payload[1+n:]
		r := Record{Kind: KindPosBlock, ChainID: id, Height: binary.BigEndian.Uint64(rest[:8])}
		copy(r.BlockHash[:], rest[8:40])
		copy(r.StakerSetDigest[:], rest[40:72])
		return r, nil
	case 0x02:
		if len(payload) != 32 {
			return Record{}, fmt.Errorf("leaf payload has the wrong length for its kind")
		}
		r := Record{Kind: KindDigest}
		copy(r.Digest[:], payload)
		return r, nil
	}
	return Record{}, fmt.Errorf("unknown leaf kind 0x%02x", pre[1])
}

func checkLeaf(p *Proof) ([32]byte, error) {
	rec, err := decodeLeaf(p.Leaf.Preimage)
	if err != nil {
		return [32]byte{}, fail(stepLeaf, "%s", err)
	}
	if rec != p.Record {
		return [32]byte{}, fail(stepLeaf, "the leaf preimage encodes a different record")
	}
	hash := sha256.Sum256(p.Leaf.Preimage)
	if hash != p.Leaf.Hash {
		return [32]byte{}, fail(stepLeaf, "preimage hashes to %x, not %x", hash, p.Leaf.Hash[:])
	}
	return hash, nil
}

// hashNodes is SHA-256(0x01 ‖ left ‖ right).
func hashNodes(left, right [32]byte) [32]byte {
	var buf [65]byte
	buf[0] = 0x01
	copy(buf[1:33], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// pathSides is the sides a valid path for leaf index of a tree of size
// leaves has, bottom-up; false if index is out of range.
func pathSides(index, size uint64) ([]Side, bool) {
	if index >= size {
		return nil, false
	}
	lengths := []uint64{size}
	for n := size; n > 1; {
		n = n/2 + n%2
		lengths = append(lengths, n)
	}
	var sides []Side
	for level := 0; level < len(lengths)-1; level++ {
		idx := index >> uint(level)
		sibling := idx ^ 1
		if sibling < lengths[level] {
			if sibling < idx {
				sides = append(sides, Left)
			} else {
				sides = append(sides, Right)
			}
		}
	}
	return sides, true
}

func sameSides(want []Side, path []PathStep) bool {
	if len(want) != len(path) {
		return false
	}
	for i := range want {
		if want[i] != path[i].Side {
			return false
		}
	}
	return true
}

// display writes a natural-order Bitcoin hash in Bitcoin's reversed hex.
func display(h [32]byte) string {
	reverse(h[:])
	return hex.EncodeToString(h[:])
}

func checkAnchor(a *AnchorEvid, seq uint64, root [32]byte, network *Network, tag *[4]byte) (*VerifiedAnchor, error) {
	if a.Pow != a.Network.Pow() {
		return nil, fail(stepNetwork, "%s uses %s proof of work, not %s", a.Network, a.Network.Pow(), a.Pow)
	}
	if network != nil && *network != a.Network {
		return nil, fail(stepNetwork, "anchored on %s, expected %s", a.Network, *network)
	}
	txid, err := checkTx(a, seq, root, tag)
	if err != nil {
		return nil, err
	}
	header, err := parseHeader(a.Block.Header, stepHeader)
	if err != nil {
		return nil, err
	}
	blockHash := BlockHash(header)
	if blockHash != a.Block.Hash {
		return nil, fail(stepHeader, "header hashes to %s, not %s", display(blockHash), display(a.Block.Hash))
	}
	computed, err := branchRoot(txid, a.TxIndex, a.TxBranch)
	if err != nil {
		return nil, err
	}
	var merkle [32]byte
	copy(merkle[:], header[36:68])
	if computed != merkle {
		return nil, fail(stepInclusion, "branch leads to %s, header commits to %s", display(computed), display(merkle))
	}
	if err := checkWork(a.Network, header); err != nil {
		return nil, fail(stepProofOfWork, "block %s: %s", display(blockHash), err)
	}
	prev, prevHeader := blockHash, header
	hashes := make([][32]byte, 0, 1+len(a.HeadersAfter))
	hashes = append(hashes, blockHash)
	for i, after := range a.HeadersAfter {
		h, err := parseHeader(after.Header, stepHeadersAfter)
		if err != nil {
			return nil, err
		}
		hash := BlockHash(h)
		if hash != after.Hash {
			return nil, fail(stepHeadersAfter, "header %d hashes to %s, not %s", i+1, display(hash), display(after.Hash))
		}
		if !bytes.Equal(h[4:36], prev[:]) {
			return nil, fail(stepHeadersAfter, "header %d does not build on %s", i+1, display(prev))
		}
		if err := checkWork(a.Network, h); err != nil {
			return nil, fail(stepHeadersAfter, "header %d (%s): %s", i+1, display(hash), err)
		}
		height := saturatingAdd(a.Block.Height, uint32(i+1))
		if err := checkDifficulty(a.Network, height, prevHeader, h); err != nil {
			return nil, fail(stepHeadersAfter, "header %d (%s): %s", i+1, display(hash), err)
		}
		prev, prevHeader = hash, h
		hashes = append(hashes, hash)
	}
	if err := checkCheckpoints(a.Network, a.Block.Height, hashes); err != nil {
		return nil, err
	}
	confirmations := uint32(0xffff_ffff)
	if n := uint64(len(a.HeadersAfter)); n < 0xffff_ffff {
		confirmations = uint32(n) + 1
	}
	return &VerifiedAnchor{
		Network:       a.Network,
		Txid:          txid,
		BlockHash:     blockHash,
		BlockHeight:   a.Block.Height,
		BlockTime:     binary.LittleEndian.Uint32(header[68:72]),
		Confirmations: confirmations,
	}, nil
}

func checkTx(a *AnchorEvid, seq uint64, root [32]byte, tag *[4]byte) ([32]byte, error) {
	raw := []byte(a.Tx)
	// A 64-byte "transaction" could pose as an inner node of the block tree.
	if len(raw) == 64 {
		return [32]byte{}, fail(stepTransaction, "a 64-byte transaction is not accepted")
	}
	t, err := decodeTx(raw)
	if err != nil {
		return [32]byte{}, fail(stepTransaction, "cannot decode: %s", err)
	}
	if !bytes.Equal(t.serialize(), raw) || t.hasWitness() {
		return [32]byte{}, fail(stepTransaction, "not in non-witness serialization")
	}
	txid := sha256d(raw)
	if txid != a.Txid {
		return [32]byte{}, fail(stepTransaction, "transaction hashes to %s, not %s", display(txid), display(a.Txid))
	}
	payloads := 0
	for _, out := range t.outputs {
		if isPayloadScript(out.script) {
			payloads++
		}
	}
	if payloads > 1 {
		return [32]byte{}, fail(stepPayload, "the transaction has %d btcts payload outputs; a v1 anchor has exactly one", payloads)
	}
	if uint64(a.OutputIndex) >= uint64(len(t.outputs)) {
		return [32]byte{}, fail(stepPayload, "transaction has no output %d", a.OutputIndex)
	}
	script := t.outputs[a.OutputIndex].script
	if !isPayloadScript(script) {
		return [32]byte{}, fail(stepPayload, "output script is not OP_RETURN with a single 45-byte push")
	}
	payload := script[2:]
	if payload[4] != 1 {
		return [32]byte{}, fail(stepPayload, "unsupported payload version %d", payload[4])
	}
	var ptag [4]byte
	copy(ptag[:], payload[:4])
	if ptag != a.Tag {
		return [32]byte{}, fail(stepPayload, "payload tag %x differs from the proof's %x", ptag, a.Tag[:])
	}
	if tag != nil && *tag != ptag {
		return [32]byte{}, fail(stepPayload, "payload tag %x, expected %x", ptag, *tag)
	}
	if batch := binary.BigEndian.Uint64(payload[5:13]); batch != seq {
		return [32]byte{}, fail(stepPayload, "payload commits batch %d, the proof is for batch %d", batch, seq)
	}
	var proot [32]byte
	copy(proot[:], payload[13:])
	if proot != root {
		return [32]byte{}, fail(stepPayload, "payload commits root %x, the path leads to %x", proot, root)
	}
	return txid, nil
}

// isPayloadScript reports whether an output script has the shape of a
// btcts payload, OP_RETURN and a single 45-byte push (tag ‖ version ‖
// batch seq ‖ root), whatever its tag or version.
func isPayloadScript(script []byte) bool {
	return len(script) == 47 && script[0] == 0x6a && script[1] == 45
}

func parseHeader(raw []byte, step string) ([80]byte, error) {
	var h [80]byte
	if len(raw) != 80 {
		return h, fail(step, "a header is 80 bytes, got %d", len(raw))
	}
	copy(h[:], raw)
	return h, nil
}

// branchRoot applies Bitcoin's transaction Merkle branch: at each level
// the running hash is on the left if that bit of index is 0.
func branchRoot(txid [32]byte, index uint32, branch []btcHash) ([32]byte, error) {
	if len(branch) < 32 && index>>uint(len(branch)) != 0 {
		return [32]byte{}, fail(stepInclusion, "transaction index %d needs more than %d branch steps", index, len(branch))
	}
	if len(branch) > 32 {
		return [32]byte{}, fail(stepInclusion, "branch longer than 32 steps")
	}
	current := txid
	var buf [64]byte
	for level, sibling := range branch {
		if (index>>uint(level))&1 == 0 {
			copy(buf[:32], current[:])
			copy(buf[32:], sibling[:])
		} else {
			copy(buf[:32], sibling[:])
			copy(buf[32:], current[:])
		}
		current = sha256d(buf[:])
	}
	return current, nil
}
