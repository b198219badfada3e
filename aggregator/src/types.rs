//! Domain types: chain ids, heights, the 32-byte hashes btcts handles and the
//! records consumer chains submit. Everything is validated on construction;
//! hex appears only at the serde boundary.

use std::fmt;
use std::str::FromStr;

use bitcoin::hex::{DisplayHex, FromHex};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value from the outside could not become a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The chain id is empty, longer than [`ChainId::MAX_LEN`] or uses a
    /// character outside `[A-Za-z0-9._-]`.
    #[error("invalid chain id {0:?}: expected 1-64 characters of [A-Za-z0-9._-]")]
    ChainId(String),
    /// A hex string does not encode exactly the expected number of bytes.
    #[error("invalid hex for {what}: expected {expected} hex characters, got {got:?}")]
    Hex {
        /// Which field was being parsed.
        what: &'static str,
        /// How many hex characters were expected.
        expected: usize,
        /// The offending input, truncated to 80 characters.
        got: String,
    },
}

impl ParseError {
    pub(crate) fn hex(what: &'static str, expected: usize, got: &str) -> Self {
        let got = got.chars().take(80).collect();
        ParseError::Hex {
            what,
            expected,
            got,
        }
    }
}

/// Parses exactly `N` bytes from `2N` hex characters (either case).
pub(crate) fn parse_hex_array<const N: usize>(
    what: &'static str,
    s: &str,
) -> Result<[u8; N], ParseError> {
    if s.len() != 2 * N {
        return Err(ParseError::hex(what, 2 * N, s));
    }
    <[u8; N]>::from_hex(s).map_err(|_| ParseError::hex(what, 2 * N, s))
}

/// The identifier of a consumer chain: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(String);

impl ChainId {
    /// Longest accepted chain id, in bytes (and characters: the alphabet is ASCII).
    pub const MAX_LEN: usize = 64;

    /// Validates `s` as a chain id.
    pub fn new(s: impl Into<String>) -> Result<Self, ParseError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(ChainId(s))
        } else {
            Err(ParseError::ChainId(s.chars().take(80).collect()))
        }
    }

    /// The chain id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChainId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChainId::new(s)
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({})", self.0)
    }
}

impl Serialize for ChainId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChainId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChainId::new(s).map_err(serde::de::Error::custom)
    }
}

/// Defines a 32-byte hash newtype, hex (natural byte order) at the serde boundary.
macro_rules! hash32 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub fn to_byte_array(self) -> [u8; 32] {
                self.0
            }
            /// The raw bytes, borrowed.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lower-case hex of the bytes in their natural order.
            pub fn to_hex(&self) -> String {
                self.0.to_lower_hex_string()
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex_array($what, s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.as_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.as_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash32!(
    /// The hash of a consumer chain's block, as the chain reports it.
    PosBlockHash,
    "block_hash"
);
hash32!(
    /// A digest of the staker set that signed a consumer block.
    StakerSetDigest,
    "staker_set_digest"
);
hash32!(
    /// A raw 32-byte digest timestamped on its own (OpenTimestamps calendar use).
    RawDigest,
    "digest"
);
hash32!(
    /// `SHA-256(0x00 ‖ kind ‖ payload)`: a leaf of a batch tree and the id of its record.
    LeafHash,
    "leaf_hash"
);
hash32!(
    /// `SHA-256(0x01 ‖ left ‖ right)` at some level of a batch tree.
    NodeHash,
    "node_hash"
);
hash32!(
    /// The root of a batch tree: what the OP_RETURN output commits to.
    MerkleRoot,
    "merkle_root"
);

impl From<LeafHash> for NodeHash {
    fn from(h: LeafHash) -> Self {
        NodeHash(h.0)
    }
}

impl From<NodeHash> for MerkleRoot {
    fn from(h: NodeHash) -> Self {
        MerkleRoot(h.0)
    }
}

/// Bytes of any length, lower-case hex at the serde boundary.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexBytes({})", self.0.as_hex())
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_lower_hex_string())
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Vec::<u8>::from_hex(&s).map(HexBytes).map_err(|_| {
            serde::de::Error::custom(format!("invalid hex string of {} characters", s.len()))
        })
    }
}

/// A consumer-chain block height.
pub type Height = u64;

/// The sequence number of a batch: 0, 1, 2, … in sealing order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchSeq(pub u64);

impl fmt::Display for BatchSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One block of a consumer PoS chain together with the staker set that signed it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosBlock {
    /// The consumer chain.
    pub chain_id: ChainId,
    /// The block's height on that chain.
    pub height: Height,
    /// The block's hash.
    pub block_hash: PosBlockHash,
    /// The digest of the staker set that signed the block.
    pub staker_set_digest: StakerSetDigest,
}

/// Anything btcts timestamps. Its id is its [`LeafHash`](crate::leaf::leaf_hash).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// A consumer PoS block (leaf kind `0x01`).
    PosBlock(PosBlock),
    /// A raw 32-byte digest (leaf kind `0x02`), used by the OpenTimestamps calendar.
    Digest {
        /// The digest being timestamped.
        digest: RawDigest,
    },
}

impl Record {
    /// The consumer chain and height of a PoS block record.
    pub fn chain_height(&self) -> Option<(&ChainId, Height)> {
        match self {
            Record::PosBlock(b) => Some((&b.chain_id, b.height)),
            Record::Digest { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_accepts_the_documented_alphabet() {
        for ok in ["a", "cosmoshub-4", "osmo_1.test", &"x".repeat(64)] {
            assert_eq!(ChainId::new(ok).map(|c| c.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn chain_id_rejects_everything_else() {
        for bad in ["", " a", "a/b", "é", "a b", "a\0", &"x".repeat(65)] {
            assert!(
                matches!(ChainId::new(bad), Err(ParseError::ChainId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hashes_parse_exactly_64_hex_characters() {
        let good = "00".repeat(31) + "Ff";
        let h: LeafHash = good.parse().expect("valid");
        assert_eq!(h.0[31], 0xff);
        assert_eq!(h.to_string(), "00".repeat(31) + "ff");
        for bad in [
            "",
            "0",
            &"0".repeat(63),
            &"0".repeat(65),
            &"0".repeat(66),
            &"g".repeat(64),
        ] {
            assert!(
                matches!(bad.parse::<LeafHash>(), Err(ParseError::Hex { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn records_round_trip_through_json_and_reject_unknown_fields() {
        let r = Record::PosBlock(PosBlock {
            chain_id: ChainId::new("c").expect("valid"),
            height: 7,
            block_hash: PosBlockHash([1; 32]),
            staker_set_digest: StakerSetDigest([2; 32]),
        });
        let json = serde_json::to_string(&r).expect("serializes");
        assert_eq!(serde_json::from_str::<Record>(&json).expect("parses"), r);
        let extra = json.replacen('{', "{\"x\":1,", 1);
        assert!(serde_json::from_str::<Record>(&extra).is_err());
        let bad_chain = json.replace("\"c\"", "\"c/d\"");
        assert!(serde_json::from_str::<Record>(&bad_chain).is_err());
    }
}
