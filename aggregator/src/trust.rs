//! Trust anchors: what a verifier knows about a network before it reads a
//! proof. For each mainnet (and testnet4) a list of checkpoints — blocks
//! known to be in the best chain — and a **difficulty floor**: the easiest
//! target a header may claim. A proof's headers below the floor are refused,
//! so forging one costs at least a block reward's worth of work at the
//! floor; a proof whose headers reach a checkpoint is pinned to the real
//! chain. The values are compiled in (sources cited beside each) and can be
//! replaced from a file ([`TrustAnchors::override_with`], docs/proof-format.md §7).
//!
//! Refreshing them: take newer checkpoints from the node software's own
//! source (Bitcoin Core `src/kernel/chainparams.cpp`: `m_assumeutxo_data`
//! and `defaultAssumeValid`; Litecoin Core `src/chainparams.cpp`:
//! `checkpointData` and `defaultAssumeValid`) or from your own node
//! (`getblockhash H`), and set the floor to a quarter of the difficulty of
//! a recent block whose header you checked (`getblockheader <hash>` →
//! `bits`; multiply the target by four), as below. A new floor only refuses
//! proofs anchored in blocks easier than it, so it must stay well below
//! the difficulty of every block btcts may have anchored in.

use bitcoin::pow::{CompactTarget, Target};
use bitcoin::BlockHash;
use serde::{Deserialize, Serialize};

use crate::chain::AnchorNetwork;

/// A block known to be in a network's best chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Its height.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
}

/// What a verifier trusts about one network.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAnchors {
    /// Blocks known to be in the best chain, by height.
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
    /// The easiest `bits` a header in a proof may claim; `None` on networks
    /// whose rules let any block fall to the proof-of-work limit (testnets,
    /// regtest), where proof of work proves nothing.
    #[serde(default, with = "opt_bits")]
    pub floor_bits: Option<CompactTarget>,
    /// The block subsidy now, in the coin's smallest unit (satoshis): the
    /// price of one block's work at the floor.
    #[serde(default)]
    pub subsidy: u64,
}

impl NetworkAnchors {
    /// The floor as a target, if the network has one.
    pub fn floor(&self) -> Option<Target> {
        self.floor_bits.map(Target::from_compact)
    }

    /// The checkpoint with this hash, if any.
    pub fn checkpoint(&self, hash: &BlockHash) -> Option<Checkpoint> {
        self.checkpoints.iter().copied().find(|c| c.hash == *hash)
    }

    /// The checkpoint at this height, if any.
    pub fn checkpoint_at(&self, height: u32) -> Option<Checkpoint> {
        self.checkpoints
            .iter()
            .copied()
            .find(|c| c.height == height)
    }
}

/// Trust anchors for every network.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TrustAnchors {
    by_network: Vec<(AnchorNetwork, NetworkAnchors)>,
}

/// How much a verifier should believe a verified anchor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// A header of the proof is one of the verifier's checkpoints: the
    /// anchor block is in the real chain.
    Checkpointed,
    /// The verifier's own node has the anchor block in its best chain.
    NodeChecked,
    /// Only the proof of work in the document, at or above the floor.
    WorkOnly,
    /// A test network: its proof of work proves nothing.
    TestNetwork,
}

impl Trust {
    /// The name used in `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Trust::Checkpointed => "checkpointed",
            Trust::NodeChecked => "node-checked",
            Trust::WorkOnly => "work-only",
            Trust::TestNetwork => "test-network",
        }
    }
}

/// A trust-anchor file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust anchors: {0}")]
pub struct AnchorsError(pub String);

fn hash(hex: &str) -> BlockHash {
    // Only called with the compile-time constants below (a test parses them all).
    hex.parse().expect("checkpoint constant is valid hex")
}

fn checkpoints(list: &[(u32, &str)]) -> Vec<Checkpoint> {
    list.iter()
        .map(|(height, h)| Checkpoint {
            height: *height,
            hash: hash(h),
        })
        .collect()
}

/// Bitcoin mainnet. Checkpoints: the genesis block, Bitcoin Core v30's
/// assumeutxo snapshot blocks (`src/kernel/chainparams.cpp`,
/// `m_assumeutxo_data`: 840,000, 880,000, 910,000) and its
/// `defaultAssumeValid` block (912,683).
const BITCOIN_CHECKPOINTS: &[(u32, &str)] = &[
    (
        0,
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    ),
    (
        840_000,
        "0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5",
    ),
    (
        880_000,
        "000000000000000000010b17283c3c400507969a9c2afd1dcf2082ec5cca2880",
    ),
    (
        910_000,
        "0000000000000000000108970acb9522ffd516eae17acddcb1bd16469194a821",
    ),
    (
        912_683,
        "00000000000000000000611fd22f2df7c8fbd0688745c3a6c3bb5109cc2a12cb",
    ),
];
/// Bitcoin mainnet floor: a quarter of the difficulty of block 840,000
/// (bits `0x17034219`, difficulty 86.39 T, April 2024; its header hashes to
/// the 840,000 checkpoint), i.e. difficulty 21.6 T, bits `0x170d0864`.
const BITCOIN_FLOOR_BITS: u32 = 0x170d_0864;
/// 3.125 BTC since block 840,000.
const BITCOIN_SUBSIDY: u64 = 312_500_000;

/// Bitcoin testnet4 (BIP94). Checkpoints: its genesis block, Bitcoin Core
/// v30's assumeutxo block (90,000) and `defaultAssumeValid` (91,000).
/// No floor: testnet4 still allows a minimum-difficulty block after 20
/// minutes without one (`fPowAllowMinDifficultyBlocks`, BIP94).
const TESTNET4_CHECKPOINTS: &[(u32, &str)] = &[
    (
        0,
        "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    ),
    (
        90_000,
        "0000000002ebe8bcda020e0dd6ccfbdfac531d2f6a81457191b99fc2df2dbe3b",
    ),
    (
        91_000,
        "000000000000000180a58e7fa3b0db84b5ea76377524894f53660d93ac839d9b",
    ),
];

/// Litecoin mainnet. Checkpoints: the genesis block, the last entry of
/// Litecoin Core's `checkpointData` (721,000) and its `defaultAssumeValid`
/// block (2,772,730), both from `src/chainparams.cpp` of v0.21.5.5.
const LITECOIN_CHECKPOINTS: &[(u32, &str)] = &[
    (
        0,
        "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
    ),
    (
        721_000,
        "198a7b4de1df9478e2463bd99d75b714eab235a2e63e741641dc8a759a9840e5",
    ),
    (
        2_772_730,
        "80cdb35c080484df5bf384b311fde3c4694d3405765bc0f596e9eb369ff286e5",
    ),
];
/// Litecoin mainnet floor: a quarter of the difficulty of block 2,500,000
/// (bits `0x1a00a2d0`, difficulty 26.4 M, June 2023), i.e. difficulty
/// 6.6 M, bits `0x1a028b40`. That header's scrypt work was checked, but its
/// hash is not one Litecoin Core pins (it comes from a miner's published
/// test vectors), hence the wide margin; refresh it from your own node.
const LITECOIN_FLOOR_BITS: u32 = 0x1a02_8b40;
/// 6.25 LTC since block 2,520,000.
const LITECOIN_SUBSIDY: u64 = 625_000_000;

impl TrustAnchors {
    /// The anchors compiled into this release.
    pub fn builtin() -> TrustAnchors {
        let none = NetworkAnchors {
            checkpoints: Vec::new(),
            floor_bits: None,
            subsidy: 0,
        };
        let by_network = AnchorNetwork::ALL
            .into_iter()
            .map(|n| {
                let a = match n {
                    AnchorNetwork::Bitcoin => NetworkAnchors {
                        checkpoints: checkpoints(BITCOIN_CHECKPOINTS),
                        floor_bits: Some(CompactTarget::from_consensus(BITCOIN_FLOOR_BITS)),
                        subsidy: BITCOIN_SUBSIDY,
                    },
                    AnchorNetwork::Testnet4 => NetworkAnchors {
                        checkpoints: checkpoints(TESTNET4_CHECKPOINTS),
                        ..none.clone()
                    },
                    AnchorNetwork::Litecoin => NetworkAnchors {
                        checkpoints: checkpoints(LITECOIN_CHECKPOINTS),
                        floor_bits: Some(CompactTarget::from_consensus(LITECOIN_FLOOR_BITS)),
                        subsidy: LITECOIN_SUBSIDY,
                    },
                    AnchorNetwork::Testnet
                    | AnchorNetwork::Signet
                    | AnchorNetwork::Regtest
                    | AnchorNetwork::LitecoinRegtest => NetworkAnchors {
                        checkpoints: vec![Checkpoint {
                            height: 0,
                            hash: n.genesis_hash(),
                        }],
                        ..none.clone()
                    },
                };
                (n, a)
            })
            .collect();
        TrustAnchors { by_network }
    }

    /// The compiled-in anchors, built once per process.
    pub fn shared() -> &'static TrustAnchors {
        static BUILTIN: std::sync::OnceLock<TrustAnchors> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(TrustAnchors::builtin)
    }

    /// The anchors of `network`.
    pub fn get(&self, network: AnchorNetwork) -> &NetworkAnchors {
        // `builtin` and `override_with` keep one entry per network.
        &self
            .by_network
            .iter()
            .find(|(n, _)| *n == network)
            .expect("an entry for every network")
            .1
    }

    /// Replaces the anchors of every network `file` names (a table per
    /// network name: `checkpoints`, `floor_bits`, `subsidy`). A file cannot
    /// set a floor on a network whose blocks may legally fall to the limit.
    pub fn override_with(
        &mut self,
        file: std::collections::BTreeMap<String, NetworkAnchors>,
    ) -> Result<(), AnchorsError> {
        for (name, anchors) in file {
            let network: AnchorNetwork = name
                .parse()
                .map_err(|e: crate::chain::UnknownNetwork| AnchorsError(e.to_string()))?;
            if anchors.floor_bits.is_some() && network.is_test_network() {
                return Err(AnchorsError(format!(
                    "{network}: a test network has no difficulty floor"
                )));
            }
            if let Some(floor) = anchors.floor() {
                if floor > network.pow_limit() {
                    return Err(AnchorsError(format!(
                        "{network}: floor_bits is easier than the network's proof-of-work limit"
                    )));
                }
            }
            if let Some(slot) = self.by_network.iter_mut().find(|(n, _)| *n == network) {
                slot.1 = anchors;
            }
        }
        Ok(())
    }
}

impl Default for TrustAnchors {
    fn default() -> Self {
        TrustAnchors::builtin()
    }
}

/// `floor_bits` as `"0x1d00ffff"` in files and JSON.
mod opt_bits {
    use bitcoin::pow::CompactTarget;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<CompactTarget>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&format!("{:#010x}", b.to_consensus())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CompactTarget>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| serde::de::Error::custom("floor_bits is hex, like \"0x170d0864\""))?;
        u32::from_str_radix(digits, 16)
            .map(|b| Some(CompactTarget::from_consensus(b)))
            .map_err(|_| serde::de::Error::custom("floor_bits is 8 hex digits after 0x"))
    }
}

/// The work a proof's headers prove, and what that work would cost.
#[derive(Clone, Copy, PartialEq, Debug, Serialize)]
pub struct WorkProven {
    /// Expected hashes to make the anchor block and the headers after it.
    pub expected_hashes: f64,
    /// `log2(expected_hashes)`.
    pub log2: f64,
    /// The same work in blocks at the floor difficulty (`None` without a floor).
    pub blocks_at_floor: Option<f64>,
    /// Those blocks' subsidy, in whole coins (BTC, LTC): what the work
    /// would have earned mining honestly at the floor.
    pub reward_equivalent: Option<f64>,
}

impl WorkProven {
    /// The work of `headers` against `anchors`.
    pub fn of<'a>(
        headers: impl IntoIterator<Item = &'a bitcoin::block::Header>,
        anchors: &NetworkAnchors,
    ) -> WorkProven {
        let total = headers.into_iter().map(|h| h.work()).reduce(|a, b| a + b);
        let expected_hashes = total.map_or(0.0, |w| w.log2().exp2());
        let blocks_at_floor = anchors
            .floor()
            .map(|f| expected_hashes / f.to_work().log2().exp2());
        WorkProven {
            expected_hashes,
            log2: expected_hashes.log2(),
            blocks_at_floor,
            reward_equivalent: blocks_at_floor.map(|b| b * anchors.subsidy as f64 / 1e8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_has_anchors_and_the_constants_parse() {
        let anchors = TrustAnchors::builtin();
        for n in AnchorNetwork::ALL {
            let a = anchors.get(n);
            assert_eq!(
                a.checkpoint_at(0).map(|c| c.hash),
                Some(n.genesis_hash()),
                "{n}: the genesis block is a checkpoint"
            );
            assert_eq!(a.floor().is_some(), !n.is_test_network(), "{n}");
            if let Some(f) = a.floor() {
                assert!(f < n.pow_limit(), "{n}: the floor is above the limit");
                assert!(a.subsidy > 0, "{n}");
            }
        }
    }

    #[test]
    fn the_real_block_840000_is_the_checkpoint_and_clears_the_floor() {
        // Block 840,000 as every Bitcoin node serves it.
        let header: bitcoin::block::Header = bitcoin::consensus::encode::deserialize_hex(
            "00e05f2aab948491071265ad552351d0ad625745668da54b0172010000000000000000004f89a5d7\
             3bd4d4887f25981fe81892ccafda10c27f52d6f3dd28183a7c411b03b7072366194203177d9863ea",
        )
        .expect("valid header");
        let anchors = TrustAnchors::builtin();
        let btc = anchors.get(AnchorNetwork::Bitcoin);
        assert_eq!(
            btc.checkpoint(&header.block_hash()).map(|c| c.height),
            Some(840_000)
        );
        assert_eq!(header.bits.to_consensus(), 0x1703_4219);
        assert_eq!(
            crate::headers::check_work(AnchorNetwork::Bitcoin, btc, &header),
            Ok(())
        );
        let w = WorkProven::of([header].iter(), btc);
        assert!((w.blocks_at_floor.expect("floor") - 4.0).abs() < 0.001);
    }

    #[test]
    fn each_floor_is_a_quarter_of_a_real_block_s_difficulty() {
        // Block 840,000 of Bitcoin, block 2,500,000 of Litecoin.
        for (network, bits) in [
            (AnchorNetwork::Bitcoin, 0x1703_4219),
            (AnchorNetwork::Litecoin, 0x1a00_a2d0),
        ] {
            let real = Target::from_compact(CompactTarget::from_consensus(bits));
            let floor = TrustAnchors::builtin()
                .get(network)
                .floor()
                .expect("a mainnet has a floor");
            let ratio = real.difficulty_float() / floor.difficulty_float();
            assert!((ratio - 4.0).abs() < 0.001, "{network}: {ratio}");
        }
    }

    #[test]
    fn a_file_replaces_one_network_and_refuses_nonsense() {
        let mut anchors = TrustAnchors::builtin();
        let file: std::collections::BTreeMap<String, NetworkAnchors> = serde_json::from_str(
            r#"{"litecoin": {"checkpoints": [{"height": 7, "hash": "00000000000000000000000000000000000000000000000000000000000000aa"}], "floor_bits": "0x1b00ffff", "subsidy": 1}}"#,
        )
        .expect("parses");
        anchors.override_with(file).expect("accepted");
        let ltc = anchors.get(AnchorNetwork::Litecoin);
        assert_eq!(ltc.checkpoints.len(), 1);
        assert_eq!(ltc.floor_bits.map(|b| b.to_consensus()), Some(0x1b00_ffff));
        assert_eq!(
            anchors.get(AnchorNetwork::Bitcoin),
            TrustAnchors::builtin().get(AnchorNetwork::Bitcoin)
        );
        for bad in [
            r#"{"regtest": {"floor_bits": "0x1d00ffff"}}"#,
            r#"{"bitcoin": {"floor_bits": "0x2100ffff"}}"#,
            r#"{"mainnet": {}}"#,
        ] {
            let file = serde_json::from_str(bad).expect("parses");
            assert!(anchors.clone().override_with(file).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<NetworkAnchors>(r#"{"floor_bits": "1d00ffff"}"#).is_err());
        assert!(serde_json::from_str::<NetworkAnchors>(r#"{"flor_bits": "0x1d00ffff"}"#).is_err());
    }

    #[test]
    fn work_is_counted_in_blocks_at_the_floor() {
        let anchors = TrustAnchors::builtin();
        let btc = anchors.get(AnchorNetwork::Bitcoin);
        let mut h = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header;
        h.bits = btc.floor_bits.expect("floor");
        let w = WorkProven::of([h, h, h].iter(), btc);
        let blocks = w.blocks_at_floor.expect("floor");
        assert!((blocks - 3.0).abs() < 1e-9, "{blocks}");
        assert!((w.reward_equivalent.expect("floor") - 9.375).abs() < 1e-9);
        // Difficulty 1 is about 2^32 hashes: a tiny fraction of a block.
        let one = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header;
        let w = WorkProven::of([one].iter(), btc);
        assert!((w.log2 - 32.0).abs() < 0.01, "{}", w.log2);
        assert!(w.blocks_at_floor.expect("floor") < 1e-10);
    }
}
