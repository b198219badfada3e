package verify

import (
	"fmt"
	"math/big"
)

// The difficulty floor, ported from aggregator/src/trust.rs: on a mainnet
// a header in a proof or a packet must claim at least the floor's
// difficulty, so that forging one costs real work (Bitcoin's genesis block
// has valid work at difficulty 1, which a GPU makes in seconds). Test
// networks have no floor: their rules let any block fall to the
// proof-of-work limit. The values must equal TrustAnchors::builtin();
// TestFloorBitsAgreeWithRust checks them against
// ibc-relay/tests/data/vectors/trust_anchors.json, which Rust writes.

const (
	// bitcoinFloorBits is a quarter of the difficulty of block 840,000
	// (difficulty 21.6 T).
	bitcoinFloorBits uint32 = 0x170d0864
	// litecoinFloorBits is Litecoin mainnet's floor (difficulty 2^24).
	litecoinFloorBits uint32 = 0x1a00ffff
)

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
