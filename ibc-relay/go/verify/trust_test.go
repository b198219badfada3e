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

// Rust writes every network's trust anchors (TrustAnchors::builtin) next
// to the packet vectors; the Go constants must be the same.
func TestTrustAnchorsAgreeWithRust(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vectorDir, "trust_anchors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rust map[string]struct {
		FloorBits   *string `json:"floor_bits"`
		Checkpoints []struct {
			Height uint32 `json:"height"`
			Hash   string `json:"hash"`
		} `json:"checkpoints"`
	}
	if err := json.Unmarshal(raw, &rust); err != nil {
		t.Fatal(err)
	}
	if len(rust) != len(Networks) {
		t.Errorf("Rust lists %d networks, Go %d", len(rust), len(Networks))
	}
	for name, want := range rust {
		n, err := ParseNetwork(name)
		if err != nil {
			t.Errorf("Rust network %q: %v", name, err)
			continue
		}
		bits, ok := FloorBits(n)
		switch {
		case want.FloorBits == nil && ok:
			t.Errorf("%s: Go has floor %#x, Rust none", n, bits)
		case want.FloorBits != nil && !ok:
			t.Errorf("%s: Rust has floor %s, Go none", n, *want.FloorBits)
		case want.FloorBits != nil:
			rust, err := strconv.ParseUint(strings.TrimPrefix(*want.FloorBits, "0x"), 16, 32)
			if err != nil || uint32(rust) != bits {
				t.Errorf("%s: Go floor %#x, Rust %s (%v)", n, bits, *want.FloorBits, err)
			}
		}
		got := Checkpoints(n)
		if len(got) != len(want.Checkpoints) || len(got) == 0 {
			t.Errorf("%s: Go has %d checkpoints, Rust %d", n, len(got), len(want.Checkpoints))
			continue
		}
		for i, c := range want.Checkpoints {
			if got[i].Height != c.Height || display(got[i].Hash) != c.Hash {
				t.Errorf("%s: Go checkpoint %d is %s at %d, Rust's %s at %d",
					n, i, display(got[i].Hash), got[i].Height, c.Hash, c.Height)
			}
		}
	}
}

// Every network's genesis block is its checkpoint at height 0.
func TestTheGenesisBlockIsACheckpoint(t *testing.T) {
	for n, genesis := range map[Network]string{
		Bitcoin:  bitcoinGenesis,
		Regtest:  regtestGenesis,
		Litecoin: litecoinGenesis,
	} {
		if got := Checkpoints(n); got[0] != (Checkpoint{Height: 0, Hash: BlockHash(header80(t, genesis))}) {
			t.Errorf("%s: checkpoint %s at %d", n, display(got[0].Hash), got[0].Height)
		}
	}
	// A copy: the caller cannot change the verifier's list.
	Checkpoints(Bitcoin)[0].Height = 7
	if Checkpoints(Bitcoin)[0].Height != 0 {
		t.Fatal("Checkpoints returned the verifier's own list")
	}
}

// The golden regtest proof (anchored at height 1) relabelled to height 0,
// where the regtest genesis block is the checkpoint, is refused for it.
func TestAProofAtACheckpointsHeightIsRefused(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(goldenDir, "bitcoin-regtest-pos-block.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProof(doc)
	if err != nil {
		t.Fatal(err)
	}
	if p.Anchor.Block.Height != 1 {
		t.Fatalf("the golden proof is anchored at %d", p.Anchor.Block.Height)
	}
	p.Anchor.Block.Height = 0
	_, err = p.Verify(nil, nil)
	var step *StepError
	want := "the proof's block at height 0 is 4a3bfe80aba87761de8eceb71ba2a63c69cf9d60d8abb9e67035e648abb57698, " +
		"the checkpoint there is 0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
	if !errors.As(err, &step) || step.Step != stepCheckpoint || step.Detail != want {
		t.Fatalf("got %v", err)
	}
	// Any other height is the proof's to claim on regtest.
	p.Anchor.Block.Height = 2
	if _, err := p.Verify(nil, nil); err != nil {
		t.Fatal(err)
	}
}

// A real checkpoint block at another height, and another block at a
// checkpoint's height, are refused; real blocks at their heights pass.
// No proof can carry these (a checkpoint block holds no btcts payload and
// the genesis block links to nothing; the mainnet ones are far above the
// floor), so the check is called on the blocks' hashes directly.
func TestACheckpointAtTheWrongHeightIsRefused(t *testing.T) {
	genesis := BlockHash(header80(t, bitcoinGenesis))
	block1 := BlockHash(header80(t, bitcoinBlock1))
	// Block 840,000 as every Bitcoin node serves it.
	block840000 := BlockHash(header80(t, "00e05f2aab948491071265ad552351d0ad625745668da54b0172010000000000000000004f89a5d73bd4d4887f25981fe81892ccafda10c27f52d6f3dd28183a7c411b03b7072366194203177d9863ea"))
	tests := []struct {
		name   string
		height uint32
		hashes [][32]byte
		detail string
	}{
		{"genesis and block 1", 0, [][32]byte{genesis, block1}, ""},
		{"block 1 alone", 1, [][32]byte{block1}, ""},
		{"block 840,000", 840_000, [][32]byte{block840000}, ""},
		{"block 840,000 after another", 839_999, [][32]byte{block1, block840000}, ""},
		{"genesis at height 1", 1, [][32]byte{genesis},
			"block 000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f is the checkpoint at height 0, the proof puts it at 1"},
		{"block 840,000 one higher", 840_001, [][32]byte{block840000},
			"block 0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5 is the checkpoint at height 840000, the proof puts it at 840001"},
		{"block 1 at height 0", 0, [][32]byte{block1},
			"the proof's block at height 0 is 00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048, the checkpoint there is 000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"},
		{"block 1 at 880,000 after the anchor", 879_999, [][32]byte{block1, block1},
			"the proof's block at height 880000 is 00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048, the checkpoint there is 000000000000000000010b17283c3c400507969a9c2afd1dcf2082ec5cca2880"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCheckpoints(Bitcoin, tt.height, tt.hashes)
			var step *StepError
			switch {
			case tt.detail == "" && err != nil:
				t.Fatal(err)
			case tt.detail != "" && (!errors.As(err, &step) || step.Step != stepCheckpoint || step.Detail != tt.detail):
				t.Fatalf("got %v, want %s", err, tt.detail)
			}
		})
	}
	// Another network's checkpoints do not apply.
	if err := checkCheckpoints(Testnet, 1, [][32]byte{genesis}); err != nil {
		t.Fatal(err)
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
		if c := Checkpoints(n); len(c) == 0 || c[0].Height != 0 {
			t.Errorf("%s: no checkpoint at height 0", n)
		}
	}
	unknown := Network("dogecoin")
	if _, ok := FloorBits(unknown); ok {
		t.Error("an unknown network has a floor")
	}
	if c := Checkpoints(unknown); c != nil {
		t.Errorf("an unknown network has checkpoints: %v", c)
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
