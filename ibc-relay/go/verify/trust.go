package verify

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
)

// Trust anchors, ported from aggregator/src/trust.rs (TrustAnchors::builtin,
// where the sources of every value are cited). The difficulty floor: on a
// mainnet a header in a proof or a packet must claim at least the floor's
// difficulty, so that forging one costs real work (Bitcoin's genesis block
// has valid work at difficulty 1, which a GPU makes in seconds). Test
// networks have no floor: their rules let any block fall to the
// proof-of-work limit. The checkpoints: blocks known to be in a network's
// best chain; a proof may not put one at another height, nor another block
// at a checkpoint's height. The values must equal Rust's;
// TestTrustAnchorsAgreeWithRust checks them against
// ibc-relay/tests/data/vectors/trust_anchors.json, which Rust writes.

const (
	// bitcoinFloorBits is a quarter of the difficulty of block 840,000
	// (difficulty 21.6 T).
	bitcoinFloorBits uint32 = 0x170d0864
	// litecoinFloorBits is a quarter of the difficulty of Litecoin block
	// 2,500,000 (difficulty 6.6 M).
	litecoinFloorBits uint32 = 0x1a028b40
)

// Checkpoint is a block known to be in a network's best chain.
type Checkpoint struct {
	Height uint32
	// Hash is the block hash in natural byte order, as BlockHash returns
	// it (the reverse of the hex Bitcoin Core shows).
	Hash [32]byte
}

// The checkpoints of each network, as trust.rs lists them (hashes in
// display hex). Every network's genesis block is its checkpoint at 0.
var (
	bitcoinCheckpoints = checkpoints([]checkpointHex{
		{0, "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"},
		{840_000, "0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5"},
		{880_000, "000000000000000000010b17283c3c400507969a9c2afd1dcf2082ec5cca2880"},
		{910_000, "0000000000000000000108970acb9522ffd516eae17acddcb1bd16469194a821"},
		{912_683, "00000000000000000000611fd22f2df7c8fbd0688745c3a6c3bb5109cc2a12cb"},
	})
	testnetCheckpoints = checkpoints([]checkpointHex{
		{0, "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"},
	})
	testnet4Checkpoints = checkpoints([]checkpointHex{
		{0, "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"},
		{90_000, "0000000002ebe8bcda020e0dd6ccfbdfac531d2f6a81457191b99fc2df2dbe3b"},
		{91_000, "000000000000000180a58e7fa3b0db84b5ea76377524894f53660d93ac839d9b"},
	})
	signetCheckpoints = checkpoints([]checkpointHex{
		{0, "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"},
	})
	regtestCheckpoints = checkpoints([]checkpointHex{
		{0, "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"},
	})
	litecoinCheckpoints = checkpoints([]checkpointHex{
		{0, "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2"},
		{721_000, "198a7b4de1df9478e2463bd99d75b714eab235a2e63e741641dc8a759a9840e5"},
		{2_772_730, "80cdb35c080484df5bf384b311fde3c4694d3405765bc0f596e9eb369ff286e5"},
	})
	litecoinRegtestCheckpoints = checkpoints([]checkpointHex{
		{0, "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"},
	})
)

// checkpointHex is a checkpoint as trust.rs writes it, its hash in display hex.
type checkpointHex struct {
	height uint32
	hash   string
}

// checkpoints parses a list. It is only called with the constants above,
// which every test run parses, so a bad one panics when the package loads,
// never on a proof.
func checkpoints(list []checkpointHex) []Checkpoint {
	out := make([]Checkpoint, 0, len(list))
	for _, c := range list {
		raw, err := hex.DecodeString(c.hash)
		if err != nil || len(raw) != 32 {
			panic(fmt.Sprintf("checkpoint constant %q is not a 32-byte hash", c.hash))
		}
		cp := Checkpoint{Height: c.height}
		copy(cp.Hash[:], raw)
		reverse(cp.Hash[:])
		out = append(out, cp)
	}
	return out
}

// checkpointsOf is n's checkpoint list, shared: callers must not change it.
func checkpointsOf(n Network) []Checkpoint {
	switch n {
	case Bitcoin:
		return bitcoinCheckpoints
	case Testnet:
		return testnetCheckpoints
	case Testnet4:
		return testnet4Checkpoints
	case Signet:
		return signetCheckpoints
	case Regtest:
		return regtestCheckpoints
	case Litecoin:
		return litecoinCheckpoints
	case LitecoinRegtest:
		return litecoinRegtestCheckpoints
	}
	return nil
}

// Checkpoints is n's checkpoints, lowest first; nil for an unknown network.
func Checkpoints(n Network) []Checkpoint {
	return slices.Clone(checkpointsOf(n))
}

// FloorBits is the easiest compact target a header on n may claim, and
// false if n has no floor (a test network, or an unknown one).
func FloorBits(n Network) (uint32, bool) {
	switch n {
	case Bitcoin:
		return bitcoinFloorBits, true
	case Litecoin:
		return litecoinFloorBits, true
	case Testnet, Testnet4, Signet, Regtest, LitecoinRegtest:
		return 0, false
	}
	return 0, false
}

// difficultyOneTarget is the target of difficulty 1 (bits 0x1d00ffff), the
// numerator of every difficulty as rust-bitcoin computes it.
var difficultyOneTarget = CompactToTarget(0x1d00ffff)

// difficulty is the target's difficulty, rounded down; target is not zero.
func difficulty(target *big.Int) *big.Int {
	return new(big.Int).Quo(difficultyOneTarget, target)
}

// checkWork checks the floor, then the proof of work, of one header: the
// floor first, so that a header below it is refused for that reason
// whatever its hash.
func checkWork(n Network, header [80]byte) error {
	if n.PowLimit() == nil {
		return fmt.Errorf("unknown anchor network %q", string(n))
	}
	if floorBits, ok := FloorBits(n); ok {
		bits := headerBits(header)
		floor := CompactToTarget(floorBits)
		// Above a non-zero floor, the target is not zero either.
		if target := CompactToTarget(bits); target.Cmp(floor) > 0 {
			return fmt.Errorf("difficulty %s is below the %s floor of %s (bits 0x%08x, floor 0x%08x)",
				difficulty(target), n, difficulty(floor), bits, floorBits)
		}
	}
	return CheckPoW(n, header)
}

// checkCheckpoints checks the proof's blocks — the anchor block at height,
// then the headers after it, one height each — against n's checkpoints, as
// check_checkpoints in aggregator/src/verify.rs does: a checkpoint's hash
// must sit at the checkpoint's height, and a block at a checkpoint's
// height must be the checkpoint.
func checkCheckpoints(n Network, height uint32, hashes [][32]byte) error {
	list := checkpointsOf(n)
	for i, hash := range hashes {
		at := saturatingAdd(height, uint32(i))
		if j := slices.IndexFunc(list, func(c Checkpoint) bool { return c.Hash == hash }); j >= 0 {
			if c := list[j]; c.Height != at {
				return fail(stepCheckpoint, "block %s is the checkpoint at height %d, the proof puts it at %d",
					display(hash), c.Height, at)
			}
		} else if j := slices.IndexFunc(list, func(c Checkpoint) bool { return c.Height == at }); j >= 0 {
			return fail(stepCheckpoint, "the proof's block at height %d is %s, the checkpoint there is %s",
				at, display(hash), display(list[j].Hash))
		}
	}
	return nil
}
