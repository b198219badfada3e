package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The proof document v1 (docs/proof-format.md §4), as Rust's
// aggregator::proof::Proof reads and writes it.

// ProofFormat is the format field of every proof document.
const ProofFormat = "btcts-proof"

// ProofVersion is the version this package verifies.
const ProofVersion = 1

// Proof is a parsed proof document v1.
type Proof struct {
	Format  string      `json:"format"`
	Version uint32      `json:"version"`
	Record  Record      `json:"record"`
	Leaf    LeafEvid    `json:"leaf"`
	Batch   BatchEvid   `json:"batch"`
	Path    []PathStep  `json:"path"`
	Anchor  *AnchorEvid `json:"anchor"`
}

// Record is a PoS block record (Kind "pos_block") or a raw digest (Kind "digest").
type Record struct {
	Kind            string
	ChainID         string
	Height          uint64
	BlockHash       [32]byte
	StakerSetDigest [32]byte
	Digest          [32]byte
}

// The record kinds.
const (
	KindPosBlock = "pos_block"
	KindDigest   = "digest"
)

type posBlockJSON struct {
	Kind            string `json:"kind"`
	ChainID         string `json:"chain_id"`
	Height          uint64 `json:"height"`
	BlockHash       hash32 `json:"block_hash"`
	StakerSetDigest hash32 `json:"staker_set_digest"`
}

type digestJSON struct {
	Kind   string `json:"kind"`
	Digest hash32 `json:"digest"`
}

// MarshalJSON writes the record internally tagged by "kind", as serde does.
func (r Record) MarshalJSON() ([]byte, error) {
	switch r.Kind {
	case KindPosBlock:
		return json.Marshal(posBlockJSON{r.Kind, r.ChainID, r.Height, r.BlockHash, r.StakerSetDigest})
	case KindDigest:
		return json.Marshal(digestJSON{r.Kind, r.Digest})
	}
	return nil, fmt.Errorf("unknown record kind %q", r.Kind)
}

// UnmarshalJSON reads a record by its "kind", refusing unknown fields and
// malformed chain ids.
func (r *Record) UnmarshalJSON(b []byte) error {
	var head struct {
		Kind *string `json:"kind"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	if head.Kind == nil {
		return errors.New("missing field `kind`")
	}
	switch *head.Kind {
	case KindPosBlock:
		var p posBlockJSON
		if err := strictUnmarshal(b, &p); err != nil {
			return err
		}
		if !validChainID(p.ChainID) {
			return fmt.Errorf("invalid chain id %q: expected 1-64 characters of [A-Za-z0-9._-]", p.ChainID)
		}
		*r = Record{Kind: p.Kind, ChainID: p.ChainID, Height: p.Height, BlockHash: p.BlockHash, StakerSetDigest: p.StakerSetDigest}
	case KindDigest:
		var d digestJSON
		if err := strictUnmarshal(b, &d); err != nil {
			return err
		}
		*r = Record{Kind: d.Kind, Digest: d.Digest}
	default:
		return fmt.Errorf("unknown variant %q, expected `pos_block` or `digest`", *head.Kind)
	}
	return nil
}

// LeafEvid is the leaf a record becomes.
type LeafEvid struct {
	Preimage hexBytes `json:"preimage"`
	Hash     hash32   `json:"hash"`
}

// BatchEvid is where the leaf sits in its batch.
type BatchEvid struct {
	Seq   uint64 `json:"seq"`
	Size  uint64 `json:"size"`
	Index uint64 `json:"index"`
	Root  hash32 `json:"root"`
}

// PathStep is one step from a node to its parent.
type PathStep struct {
	Side Side   `json:"side"`
	Hash hash32 `json:"hash"`
}

// Side is where a path step's sibling goes: "left" (parent = H(0x01 ‖
// sibling ‖ current)) or "right" (H(0x01 ‖ current ‖ sibling)).
type Side string

// The sides.
const (
	Left  Side = "left"
	Right Side = "right"
)

// UnmarshalJSON reads "left" or "right".
func (s *Side) UnmarshalJSON(b []byte) error {
	v, err := jsonString(b)
	if err != nil {
		return err
	}
	switch Side(v) {
	case Left, Right:
		*s = Side(v)
		return nil
	}
	return fmt.Errorf("unknown variant %q, expected `left` or `right`", v)
}

// AnchorEvid is the Bitcoin side of a proof.
type AnchorEvid struct {
	Network      Network      `json:"network"`
	Pow          PowFunction  `json:"pow"`
	Tag          tag4         `json:"tag"`
	Tx           hexBytes     `json:"tx"`
	Txid         btcHash      `json:"txid"`
	OutputIndex  uint32       `json:"output_index"`
	TxIndex      uint32       `json:"tx_index"`
	TxBranch     []btcHash    `json:"tx_branch"`
	Block        BlockEvid    `json:"block"`
	HeadersAfter []HeaderEvid `json:"headers_after"`
}

// BlockEvid is the block holding the anchor transaction.
type BlockEvid struct {
	Height uint32   `json:"height"`
	Hash   btcHash  `json:"hash"`
	Header hexBytes `json:"header"`
}

// HeaderEvid is a header built on the anchor block, and its hash.
type HeaderEvid struct {
	Hash   btcHash  `json:"hash"`
	Header hexBytes `json:"header"`
}

// hash32 is 32 bytes as 64 hex characters in natural order.
type hash32 = Hash32

// Hash32 is a btcts hash: hex in natural byte order at the JSON boundary.
type Hash32 [32]byte

// MarshalJSON writes lower-case hex.
func (h Hash32) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h[:])) }

// UnmarshalJSON reads exactly 64 hex characters, either case.
func (h *Hash32) UnmarshalJSON(b []byte) error {
	return unmarshalFixedHex(b, h[:], false)
}

// btcHash is a Bitcoin hash (txid, block hash, branch node): hex in the
// reversed byte order Bitcoin Core shows; the array holds natural order.
type btcHash [32]byte

func (h btcHash) MarshalJSON() ([]byte, error) {
	r := h
	reverse(r[:])
	return json.Marshal(hex.EncodeToString(r[:]))
}

func (h *btcHash) UnmarshalJSON(b []byte) error {
	return unmarshalFixedHex(b, h[:], true)
}

// tag4 is a deployment tag: 8 hex characters.
type tag4 [4]byte

func (t tag4) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(t[:])) }

func (t *tag4) UnmarshalJSON(b []byte) error { return unmarshalFixedHex(b, t[:], false) }

// hexBytes is bytes of any length as lower-case hex.
type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b)
	if err != nil {
		return err
	}
	out, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("invalid hex string of %d characters", len(s))
	}
	*h = out
	return nil
}

func jsonString(b []byte) (string, error) {
	if bytes.Equal(b, []byte("null")) {
		return "", errors.New("expected a string, got null")
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return s, nil
}

func unmarshalFixedHex(b []byte, dst []byte, reversed bool) error {
	s, err := jsonString(b)
	if err != nil {
		return err
	}
	if len(s) != 2*len(dst) {
		return fmt.Errorf("expected %d hex characters, got %d", 2*len(dst), len(s))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("invalid hex: %w", err)
	}
	if reversed {
		reverse(dst)
	}
	return nil
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// UnmarshalJSON reads a network name, refusing unknown ones.
func (n *Network) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b)
	if err != nil {
		return err
	}
	parsed, err := ParseNetwork(s)
	if err != nil {
		return err
	}
	*n = parsed
	return nil
}

// UnmarshalJSON reads "sha256d" or "scrypt".
func (p *PowFunction) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b)
	if err != nil {
		return err
	}
	switch PowFunction(s) {
	case Sha256d, Scrypt:
		*p = PowFunction(s)
		return nil
	}
	return fmt.Errorf("unknown variant %q, expected `sha256d` or `scrypt`", s)
}

// validChainID is ChainId::new's rule: 1-64 characters of [A-Za-z0-9._-].
func validChainID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if !onlySpace(b[dec.InputOffset():]) {
		return errors.New("trailing characters")
	}
	return nil
}

// onlySpace reports whether b is JSON whitespace only.
func onlySpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// ParseProof reads a proof document as Rust's Proof::from_json does:
// format and version first (so a newer document gets a version error),
// then the layout with no unknown and no missing fields.
func ParseProof(doc []byte) (*Proof, error) {
	var generic any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("malformed proof document: %w", err)
	}
	if !onlySpace(doc[dec.InputOffset():]) {
		return nil, errors.New("malformed proof document: trailing characters")
	}
	obj, _ := generic.(map[string]any)
	format, isString := obj["format"].(string)
	if !isString || format != ProofFormat {
		if !isString {
			return nil, errors.New("not a btcts proof document (format field is None)")
		}
		return nil, fmt.Errorf("not a btcts proof document (format field is Some(%q))", format)
	}
	version, _ := obj["version"].(json.Number)
	if v := version.String(); v != "1" {
		if _, err := version.Int64(); err != nil || strings.HasPrefix(v, "-") {
			v = "0"
		}
		return nil, fmt.Errorf("unsupported proof version %s (this verifier reads version 1)", v)
	}
	var p Proof
	if err := strictUnmarshal(doc, &p); err != nil {
		return nil, fmt.Errorf("malformed proof document: %w", err)
	}
	// encoding/json matches keys case-insensitively and lets null or a
	// missing key leave a zero value; serde does neither. The canonical
	// re-encoding has every field under its exact name, so the document
	// must have the same shape.
	canon, err := p.canonicalJSON()
	if err != nil {
		return nil, fmt.Errorf("malformed proof document: %w", err)
	}
	var want any
	if err := json.Unmarshal(canon, &want); err != nil {
		return nil, fmt.Errorf("malformed proof document: %w", err)
	}
	if where := sameShape(generic, want, "$"); where != "" {
		return nil, fmt.Errorf("malformed proof document: missing, misnamed or null field at %s", where)
	}
	return &p, nil
}

// sameShape returns "" if got has exactly the keys and value kinds of want
// (recursively), else the first place it does not.
func sameShape(got, want any, at string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return at
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return at + "." + k
			}
			if where := sameShape(gv, wv, at+"."+k); where != "" {
				return where
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return at
		}
		for i := range w {
			if where := sameShape(g[i], w[i], fmt.Sprintf("%s[%d]", at, i)); where != "" {
				return where
			}
		}
	case string:
		if _, ok := got.(string); !ok {
			return at
		}
	case float64:
		if _, ok := got.(json.Number); !ok {
			return at
		}
	case nil:
		if got != nil {
			return at
		}
	default:
		return at
	}
	return ""
}

// canonicalJSON is the text Rust's Proof::to_json writes: serde_json's
// pretty printer (two-space indent, `": "`, fields in declaration order,
// `[]` for an empty array, `null` for no anchor, lower-case hex) and one
// final newline. encoding/json's indenting encoder writes the same layout.
func (p *Proof) canonicalJSON() ([]byte, error) {
	c := *p
	if c.Path == nil {
		c.Path = []PathStep{}
	}
	if c.Anchor != nil {
		a := *c.Anchor
		if a.TxBranch == nil {
			a.TxBranch = []btcHash{}
		}
		if a.HeadersAfter == nil {
			a.HeadersAfter = []HeaderEvid{}
		}
		if a.Tx == nil {
			a.Tx = hexBytes{}
		}
		c.Anchor = &a
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CanonicalJSON is the proof's canonical text (see docs/ibc.md §1).
func (p *Proof) CanonicalJSON() ([]byte, error) { return p.canonicalJSON() }
