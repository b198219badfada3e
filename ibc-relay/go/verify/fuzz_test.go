package verify

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Native fuzzing: `go test` runs the seeds only; explore with e.g.
//
//	go test ./verify -run '^$' -fuzz FuzzVerifyPacket -fuzztime 60s
//	go test ./verify -run '^$' -fuzz FuzzVerifyProof -fuzztime 60s

func FuzzVerifyPacket(f *testing.F) {
	for _, name := range []string{"vectors/regtest.bin", "vectors/litecoin-regtest.bin", "packet-v1.bin"} {
		data, err := os.ReadFile(filepath.Join("../../tests/data", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint32(100), uint32(3))
		f.Add(data[:len(data)/2], uint32(2013), uint32(1))
	}
	f.Add([]byte{}, uint32(0), uint32(0))
	f.Add([]byte{0x08, 0x01, 0x12, 0x00}, uint32(0), uint32(1))
	vs := loadVectorsFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte, height uint32, k uint32) {
		for _, s := range vs {
			trusted := s.trusted
			trusted.Height = height
			params := s.params
			params.K = k
			v, err := VerifyPacket(data, trusted, params)
			if err == nil && (v.Depth < k || len(v.Headers) == 0 || v.Tip != v.Headers[len(v.Headers)-1]) {
				t.Fatalf("accepted an inconsistent result %+v", v)
			}
			if err != nil && err.Error() == "" {
				t.Fatal("empty error")
			}
		}
	})
}

// loadVectorsFuzz is each base packet's unmutated setup.
func loadVectorsFuzz(f *testing.F) []setup {
	var out []setup
	bases := map[string][]byte{}
	for _, v := range loadVectors(f) {
		if v.Mutation.Kind == "none" {
			out = append(out, vectorSetup(f, v, bases))
		}
	}
	if len(out) == 0 {
		f.Fatal("no base packets")
	}
	return out
}

func FuzzVerifyProof(f *testing.F) {
	for _, name := range []string{"bitcoin-regtest-pos-block.json", "litecoin-regtest-pos-block.json", "litecoin-regtest-digest.json"} {
		doc, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	f.Add([]byte(`{"format":"btcts-proof","version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _ = VerifyProof(doc, nil, nil)
		p, err := ParseProof(doc)
		if err != nil {
			return
		}
		// What parses re-encodes to a canonical text that parses to the same.
		canon, err := p.CanonicalJSON()
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		again, err := ParseProof(canon)
		if err != nil {
			t.Fatalf("canonical text does not parse: %v\n%s", err, canon)
		}
		canon2, err := again.CanonicalJSON()
		if err != nil || !bytes.Equal(canon, canon2) {
			t.Fatalf("canonical text is not stable: %v", err)
		}
	})
}
