package verify

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"example.invalid/btcts/consumer/packet"
)

// bitcoinBlock1 is Bitcoin mainnet block 1
// (00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048):
// linked to the genesis block, valid proof of work at difficulty 1.
const bitcoinBlock1 = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299"

// Rust writes every network's floor (TrustAnchors::builtin) next to the
// packet vectors; the Go constants must be the same.
func TestFloorBitsAgreeWithRust(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vectorDir, "trust_anchors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var floors map[string]*string
	if err := json.Unmarshal(raw, &floors); err != nil {
		t.Fatal(err)
	}
	if len(floors) != len(Networks) {
		t.Errorf("Rust lists %d networks, Go %d", len(floors), len(Networks))
	}
	for name, want := range floors {
		n, err := ParseNetwork(name)
		if err != nil {
			t.Errorf("Rust network %q: %v", name, err)
			continue
		}
		bits, ok := FloorBits(n)
		switch {
		case want == nil && ok:
			t.Errorf("%s: Go has floor %#x, Rust none", n, bits)
		case want != nil && !ok:
			t.Errorf("%s: Rust has floor %s, Go none", n, *want)
		case want != nil:
			rust, err := strconv.ParseUint(strings.TrimPrefix(*want, "0x"), 16, 32)
			if err != nil || uint32(rust) != bits {
				t.Errorf("%s: Go floor %#x, Rust %s (%v)", n, bits, *want, err)
			}
		}
	}
}

// Every switch over networks knows every network, and refuses one it does not know.
func TestEveryNetworkIsKnownToEverySwitch(t *testing.T) {
	h := header80(t, regtestGenesis)
	for _, n := range Networks {
		if n.Pow() == "" || n.PowLimit() == nil {
			t.Errorf("%s: no proof-of-work function or limit", n)
		}
		if _, err := PowHash(n, h); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if err := checkDifficulty(n, 1, h, h); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if floor, ok := FloorBits(n); ok && CompactToTarget(floor).Cmp(n.PowLimit()) >= 0 {
			t.Errorf("%s: the floor is not below the proof-of-work limit", n)
		}
	}
	unknown := Network("dogecoin")
	if _, ok := FloorBits(unknown); ok {
		t.Error("an unknown network has a floor")
	}
	for name, err := range map[string]error{
		"checkDifficulty": checkDifficulty(unknown, 1, h, h),
		"checkWork":       checkWork(unknown, h),
		"CheckPoW":        CheckPoW(unknown, h),
	} {
		if err == nil || !strings.Contains(err.Error(), "unknown anchor network") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTheFloorIsCheckedBeforeTheHash(t *testing.T) {
	genesis := header80(t, bitcoinGenesis)
	if err := CheckPoW(Bitcoin, genesis); err != nil {
		t.Fatalf("genesis has valid work: %v", err)
	}
	err := checkWork(Bitcoin, genesis)
	if err == nil || err.Error() != "difficulty 1 is below the bitcoin floor of 21597139731292 (bits 0x1d00ffff, floor 0x170d0864)" {
		t.Fatalf("got %v", err)
	}
	// No work at all: still refused for the floor.
	lazy := genesis
	lazy[76] ^= 1
	if err := checkWork(Bitcoin, lazy); err == nil || !strings.Contains(err.Error(), "below the bitcoin floor") {
		t.Fatalf("got %v", err)
	}
	// At the floor with no work: refused for the work.
	atFloor := genesis
	atFloor[72], atFloor[73], atFloor[74], atFloor[75] = 0x64, 0x08, 0x0d, 0x17
	if err := checkWork(Bitcoin, atFloor); err == nil || err.Error() != errInsufficientWork {
		t.Fatalf("got %v", err)
	}
	// Test networks have no floor: only the work counts.
	for _, n := range []Network{Testnet, Testnet4} {
		if err := checkWork(n, genesis); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	// Litecoin's genesis (difficulty 0.000244) is below Litecoin's floor.
	if err := checkWork(Litecoin, header80(t, litecoinGenesis)); err == nil || !strings.Contains(err.Error(), "below the litecoin floor") {
		t.Fatalf("litecoin: %v", err)
	}
}

func TestAMainnetPacketBelowTheFloorIsRefused(t *testing.T) {
	genesis := header80(t, bitcoinGenesis)
	block1 := header80(t, bitcoinBlock1)
	if got := hex.EncodeToString(reversed(BlockHash(block1))); got != "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048" {
		t.Fatalf("block 1 hashes to %s", got)
	}
	if err := CheckPoW(Bitcoin, block1); err != nil {
		t.Fatalf("block 1 has valid work: %v", err)
	}
	trusted := TrustedHeader{Height: 0, Header: genesis}
	pkt := &packet.TimestampPacket{FirstHeight: 1, Headers: [][]byte{block1[:]}}
	_, err := checkHeaders(pkt, trusted, Bitcoin)
	if err == nil || !strings.HasPrefix(err.Error(), "header at height 1: difficulty 1 is below the bitcoin floor") {
		t.Fatalf("got %v", err)
	}
	// The floor is what refuses it: without one the same headers pass.
	if got, err := checkHeaders(pkt, trusted, Testnet); err != nil || len(got) != 1 || got[0].Header != block1 {
		t.Fatalf("testnet: %v", err)
	}
	// Before the hash: block 1 with its nonce changed is refused for the floor too.
	block1[76] ^= 1
	pkt.Headers = [][]byte{block1[:]}
	if _, err := checkHeaders(pkt, trusted, Bitcoin); err == nil || !strings.Contains(err.Error(), "below the bitcoin floor") {
		t.Fatalf("no work: %v", err)
	}
	if _, err := checkHeaders(pkt, trusted, Testnet); err == nil || !strings.Contains(err.Error(), errInsufficientWork) {
		t.Fatalf("no work on testnet: %v", err)
	}
}

// A proof anchored in a block below the floor fails at "proof of work":
// the golden regtest proof, relabelled as a Bitcoin mainnet proof.
func TestAProofBelowTheFloorIsRefused(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(goldenDir, "bitcoin-regtest-pos-block.json"))
	if err != nil {
		t.Fatal(err)
	}
	mainnet := strings.Replace(string(doc), `"network": "regtest"`, `"network": "bitcoin"`, 1)
	_, err = VerifyProof([]byte(mainnet), nil, nil)
	var step *StepError
	if !errors.As(err, &step) || step.Step != stepProofOfWork || !strings.Contains(step.Detail, "below the bitcoin floor") {
		t.Fatalf("got %v", err)
	}
}

// withOutputs is the golden proof with outputs appended to its anchor
// transaction (and the txid to match): the payload check comes before the
// transaction's inclusion in the block.
func withOutputs(t *testing.T, scripts ...[]byte) *Proof {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(goldenDir, "bitcoin-regtest-pos-block.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProof(doc)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := decodeTx(p.Anchor.Tx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scripts {
		tx.outputs = append(tx.outputs, txOut{script: s})
	}
	p.Anchor.Tx = tx.serialize()
	p.Anchor.Txid = sha256d(p.Anchor.Tx)
	return p
}

func TestAnAnchorHasExactlyOnePayloadOutput(t *testing.T) {
	golden := withOutputs(t)
	// The payload output's script: OP_RETURN, a 45-byte push.
	script := golden.Anchor.Tx[mustIndex(t, golden.Anchor.Tx, []byte{0x2f, 0x6a, 0x2d})+1:][:47]
	otherRoot := append([]byte(nil), script...)
	otherRoot[46] ^= 1
	version2 := append([]byte(nil), script...)
	version2[6] = 2
	tests := []struct {
		name    string
		outputs [][]byte
		step    string
		detail  string
	}{
		{"another root", [][]byte{otherRoot}, stepPayload, "the transaction has 2 btcts payload outputs; a v1 anchor has exactly one"},
		{"another tag and version", [][]byte{append([]byte{0x6a, 0x2d, 'X', 'X', 'X', 'X', 2}, script[7:]...)}, stepPayload, "the transaction has 2 btcts payload outputs"},
		{"three", [][]byte{otherRoot, version2}, stepPayload, "the transaction has 3 btcts payload outputs"},
		// Other OP_RETURNs are not payloads: the check passes and the
		// changed transaction fails to be in the block.
		{"a push short of its length", [][]byte{script[:46]}, stepInclusion, ""},
		{"a 46-byte push", [][]byte{append([]byte{0x6a, 0x2e}, append(script[2:47:47], 0)...)}, stepInclusion, ""},
		{"OP_RETURN OP_PUSHDATA1 45", [][]byte{append([]byte{0x6a, 0x4c, 0x2d}, script[2:]...)}, stepInclusion, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := withOutputs(t, tt.outputs...).Verify(nil, nil)
			var step *StepError
			if !errors.As(err, &step) || step.Step != tt.step || !strings.HasPrefix(step.Detail, tt.detail) {
				t.Fatalf("got %v, want %s: %s", err, tt.step, tt.detail)
			}
		})
	}
	// The golden transaction itself, rebuilt, still verifies.
	if _, err := golden.Verify(nil, nil); err != nil {
		t.Fatal(err)
	}
}

func mustIndex(t *testing.T, b, sub []byte) int {
	t.Helper()
	i := strings.Index(string(b), string(sub))
	if i < 0 {
		t.Fatalf("%x not found", sub)
	}
	return i
}
