package verify

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"example.invalid/btcts/consumer/packet"
)

// The cross-language vectors written by the Rust test
// ibc-relay/consumer/tests/vectors.rs: every entry must get the verdict
// (and, when accepted, the depth) Rust's verify_packet gave it.

const vectorDir = "../../tests/data/vectors"

type vector struct {
	Name    string `json:"name"`
	Base    string `json:"base"`
	Trusted struct {
		Height uint32 `json:"height"`
		Header string `json:"header"`
	} `json:"trusted"`
	Params struct {
		ChainID string `json:"chain_id"`
		Network string `json:"network"`
		Tag     string `json:"tag"`
		K       uint32 `json:"k"`
	} `json:"params"`
	Mutation mutation `json:"mutation"`
	Accept   bool     `json:"accept"`
	Depth    *uint32  `json:"depth"`
}

type mutation struct {
	Kind    string `json:"kind"`
	From    int    `json:"from"`
	To      int    `json:"to"`
	Header  int    `json:"header"`
	ChainID string `json:"chain_id"`
	K       uint32 `json:"k"`
	N       int    `json:"n"`
	Depth   uint32 `json:"depth"`
	Delta   int64  `json:"delta"`
	Network string `json:"network"`
	Tag     string `json:"tag"`
}

// ranged reports whether the mutation stands for one per index in [From, To].
func (m mutation) ranged() bool {
	switch m.Kind {
	case "flip_proof_bits", "flip_header_bits", "truncate":
		return true
	}
	return false
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("parsing vectors: %v", err)
	}
	return vs
}

// setup is one vector's inputs before the mutation.
type setup struct {
	data    []byte
	trusted TrustedHeader
	params  Params
}

func vectorSetup(t testing.TB, v vector, bases map[string][]byte) setup {
	t.Helper()
	data, ok := bases[v.Base]
	if !ok {
		var err error
		if data, err = os.ReadFile(filepath.Join(vectorDir, v.Base)); err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		bases[v.Base] = data
	}
	s := setup{data: data, trusted: TrustedHeader{Height: v.Trusted.Height}}
	if h, err := hex.DecodeString(v.Trusted.Header); err != nil || len(h) != 80 {
		t.Fatalf("%s: trusted header: %v", v.Name, err)
	} else {
		copy(s.trusted.Header[:], h)
	}
	network, err := ParseNetwork(v.Params.Network)
	if err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	s.params = Params{SourceChains: []string{v.Params.ChainID}, Network: network, K: v.Params.K}
	if tag, err := hex.DecodeString(v.Params.Tag); err != nil || len(tag) != 4 {
		t.Fatalf("%s: tag: %v", v.Name, err)
	} else {
		copy(s.params.Tag[:], tag)
	}
	return s
}

func flipBit(b []byte, bit int) error {
	if bit < 0 || bit/8 >= len(b) {
		return fmt.Errorf("bit %d outside %d bytes", bit, len(b))
	}
	b[bit/8] ^= 1 << (bit % 8)
	return nil
}

// apply mutates a copy of s as the Rust test did; i is the index of a
// ranged mutation. Packet fields are changed on the decoded packet, which
// is then encoded again (canonically).
func apply(s setup, m mutation, i int) (setup, error) {
	if m.Kind == "truncate" {
		if i < 0 || i > len(s.data) {
			return s, fmt.Errorf("truncation to %d of %d bytes", i, len(s.data))
		}
		s.data = s.data[:i]
		return s, nil
	}
	var pkt packet.TimestampPacket
	if err := pkt.Unmarshal(s.data); err != nil {
		return s, fmt.Errorf("base packet: %w", err)
	}
	switch m.Kind {
	case "none":
	case "flip_proof_bits":
		if err := flipBit(pkt.Proof, i); err != nil {
			return s, err
		}
	case "flip_header_bits":
		if m.Header < 0 || m.Header >= len(pkt.Headers) {
			return s, fmt.Errorf("no header %d", m.Header)
		}
		if err := flipBit(pkt.Headers[m.Header], i); err != nil {
			return s, err
		}
	case "chain_id":
		pkt.Record.ChainId = m.ChainID
	case "set_k":
		s.params.K = m.K
	case "drop_first_header":
		pkt.Headers = pkt.Headers[1:]
	case "advance_trusted":
		if m.N < 1 || m.N > len(pkt.Headers) {
			return s, fmt.Errorf("cannot advance by %d", m.N)
		}
		s.trusted.Height += uint32(m.N)
		copy(s.trusted.Header[:], pkt.Headers[m.N-1])
		pkt.Headers = pkt.Headers[m.N:]
		pkt.FirstHeight += uint32(m.N)
	case "claim_depth":
		pkt.Depth = m.Depth
	case "trusted_height":
		s.trusted.Height = uint32(int64(s.trusted.Height) + m.Delta)
	case "network":
		n, err := ParseNetwork(m.Network)
		if err != nil {
			return s, err
		}
		s.params.Network = n
	case "tag":
		tag, err := hex.DecodeString(m.Tag)
		if err != nil || len(tag) != 4 {
			return s, fmt.Errorf("tag %q", m.Tag)
		}
		copy(s.params.Tag[:], tag)
	default:
		return s, fmt.Errorf("unknown mutation kind %q", m.Kind)
	}
	data, err := pkt.Marshal()
	if err != nil {
		return s, fmt.Errorf("encoding: %w", err)
	}
	s.data = data
	return s, nil
}

func TestCrossLanguageVectors(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	bases := map[string][]byte{}
	kinds := map[string]int{}
	checked := 0
	for _, v := range vs {
		base := vectorSetup(t, v, bases)
		from, to := 0, 0
		if v.Mutation.ranged() {
			from, to = v.Mutation.From, v.Mutation.To
			if to < from {
				t.Fatalf("%s: empty range", v.Name)
			}
		}
		for i := from; i <= to; i++ {
			s, err := apply(base, v.Mutation, i)
			if err != nil {
				t.Fatalf("%s [%d]: %v", v.Name, i, err)
			}
			got, err := VerifyPacket(s.data, s.trusted, s.params)
			checked++
			kinds[v.Mutation.Kind]++
			switch {
			case v.Accept && err != nil:
				t.Errorf("%s [%d]: Rust accepts, Go refuses: %v", v.Name, i, err)
			case !v.Accept && err == nil:
				t.Errorf("%s [%d]: Rust refuses, Go accepts (depth %d)", v.Name, i, got.Depth)
			case v.Accept && (v.Depth == nil || got.Depth != *v.Depth):
				t.Errorf("%s [%d]: depth %d, Rust computed %v", v.Name, i, got.Depth, v.Depth)
			}
		}
	}
	for _, k := range []string{"none", "flip_proof_bits", "flip_header_bits", "truncate", "chain_id",
		"set_k", "drop_first_header", "advance_trusted", "claim_depth", "trusted_height"} {
		if kinds[k] == 0 {
			t.Errorf("no %s vector", k)
		}
	}
	t.Logf("%d vectors, %d mutated packets checked", len(vs), checked)
}

// Each base packet that verifies must be the canonical encoding of what it
// decodes to, and cover every bit of its proof and headers in the vectors;
// a base refused as it stands has its unmutated verdict only.
func TestVectorsCoverEveryBit(t *testing.T) {
	vs := loadVectors(t)
	bases := map[string][]byte{}
	covered := map[string]map[string]int{}
	accepting := map[string]bool{}
	for _, v := range vs {
		vectorSetup(t, v, bases) // loads the base packet
		if covered[v.Base] == nil {
			covered[v.Base] = map[string]int{}
		}
		m := v.Mutation
		if m.Kind == "none" && v.Accept {
			accepting[v.Base] = true
		}
		switch m.Kind {
		case "flip_proof_bits":
			covered[v.Base]["proof"] += m.To - m.From + 1
		case "flip_header_bits":
			covered[v.Base][fmt.Sprintf("header %d", m.Header)] += m.To - m.From + 1
		case "truncate":
			covered[v.Base]["truncate"] += m.To - m.From + 1
		}
	}
	if len(accepting) == 0 || len(accepting) == len(bases) {
		t.Errorf("%d of %d bases verify unmutated; want some, not all", len(accepting), len(bases))
	}
	for name, data := range bases {
		var pkt packet.TimestampPacket
		if err := pkt.Unmarshal(data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !accepting[name] {
			if len(covered[name]) != 0 {
				t.Errorf("%s: refused as it stands, yet mutated", name)
			}
			continue
		}
		if got := covered[name]["proof"]; got != len(pkt.Proof)*8 {
			t.Errorf("%s: %d proof bits covered of %d", name, got, len(pkt.Proof)*8)
		}
		for j := range pkt.Headers {
			if got := covered[name][fmt.Sprintf("header %d", j)]; got != 640 {
				t.Errorf("%s: %d bits of header %d covered", name, got, j)
			}
		}
		if got := covered[name]["truncate"]; got != len(data) {
			t.Errorf("%s: %d truncations of %d", name, got, len(data))
		}
	}
}

// The base whose anchor transaction carries a second btcts payload output
// (another root) is refused by Go for that reason, as by Rust.
func TestVectorWithTwoPayloadOutputsIsRefusedForThem(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Name != "regtest-two-payloads/unchanged" {
			continue
		}
		s := vectorSetup(t, v, map[string][]byte{})
		_, err := VerifyPacket(s.data, s.trusted, s.params)
		want := "proof: op_return payload: the transaction has 2 btcts payload outputs; a v1 anchor has exactly one"
		if v.Accept || err == nil || err.Error() != want {
			t.Fatalf("accept %v, got %v, want %q", v.Accept, err, want)
		}
		return
	}
	t.Fatal("no regtest-two-payloads vector")
}
