//! OP_RETURN payload v1: what an anchor transaction carries.
//!
//! ```text
//! payload = tag (4 bytes) ‖ version (1 byte, 0x01) ‖ batch seq (u64 big-endian) ‖ root (32 bytes)
//! script  = OP_RETURN (0x6a) ‖ OP_PUSHBYTES_45 (0x2d) ‖ payload
//! ```
//!
//! 45 data bytes: well inside the 80 bytes every Bitcoin Core version relays.

use std::fmt;
use std::str::FromStr;

use bitcoin::hex::DisplayHex;
use bitcoin::ScriptBuf;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::{parse_hex_array, BatchSeq, MerkleRoot, ParseError};

/// The payload version this code writes and reads.
pub const PAYLOAD_VERSION: u8 = 1;
/// Length of a v1 payload in bytes.
pub const PAYLOAD_LEN: usize = 4 + 1 + 8 + 32;
/// `OP_RETURN`.
const OP_RETURN: u8 = 0x6a;

/// A deployment's 4-byte tag, so its anchors can be told from anyone else's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub [u8; 4]);

impl Tag {
    /// The default tag: ASCII `BTCT`.
    pub const DEFAULT: Tag = Tag(*b"BTCT");
}

impl Default for Tag {
    fn default() -> Self {
        Tag::DEFAULT
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_hex())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0.as_hex())
    }
}

impl FromStr for Tag {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex_array("tag", s).map(Tag)
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The contents of an anchor's OP_RETURN output.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Payload {
    /// The deployment tag.
    pub tag: Tag,
    /// The batch this anchor commits.
    pub batch: BatchSeq,
    /// The batch's Merkle root.
    pub root: MerkleRoot,
}

/// Why bytes are not a v1 anchor payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The output script is not `OP_RETURN <45-byte push>`.
    #[error("output script is not OP_RETURN with a single 45-byte push")]
    Script,
    /// The version byte is not [`PAYLOAD_VERSION`].
    #[error("unsupported payload version {0}")]
    Version(u8),
}

impl Payload {
    /// The 45 payload bytes.
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[..4].copy_from_slice(&self.tag.0);
        out[4] = PAYLOAD_VERSION;
        out[5..13].copy_from_slice(&self.batch.0.to_be_bytes());
        out[13..].copy_from_slice(self.root.as_bytes());
        out
    }

    /// The full output script: `OP_RETURN OP_PUSHBYTES_45 <payload>`.
    pub fn script_pubkey(&self) -> ScriptBuf {
        let mut script = Vec::with_capacity(2 + PAYLOAD_LEN);
        script.push(OP_RETURN);
        script.push(PAYLOAD_LEN as u8);
        script.extend_from_slice(&self.to_bytes());
        ScriptBuf::from_bytes(script)
    }

    /// Parses 45 payload bytes.
    pub fn from_bytes(bytes: &[u8; PAYLOAD_LEN]) -> Result<Self, PayloadError> {
        if bytes[4] != PAYLOAD_VERSION {
            return Err(PayloadError::Version(bytes[4]));
        }
        let mut tag = [0u8; 4];
        tag.copy_from_slice(&bytes[..4]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[5..13]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[13..]);
        Ok(Payload {
            tag: Tag(tag),
            batch: BatchSeq(u64::from_be_bytes(seq)),
            root: MerkleRoot(root),
        })
    }

    /// Whether `script` has the shape of a btcts payload output,
    /// `OP_RETURN OP_PUSHBYTES_45 <45 bytes>`, whatever its tag or version:
    /// a v1 anchor transaction carries exactly one such output.
    pub fn is_payload_script(script: &bitcoin::Script) -> bool {
        !matches!(Payload::from_script(script), Err(PayloadError::Script))
    }

    /// Parses an output script that must be exactly `OP_RETURN OP_PUSHBYTES_45 <payload>`.
    pub fn from_script(script: &bitcoin::Script) -> Result<Self, PayloadError> {
        let bytes = script.as_bytes();
        match bytes {
            [OP_RETURN, len, rest @ ..]
                if usize::from(*len) == PAYLOAD_LEN && rest.len() == PAYLOAD_LEN =>
            {
                let mut payload = [0u8; PAYLOAD_LEN];
                payload.copy_from_slice(rest);
                Payload::from_bytes(&payload)
            }
            _ => Err(PayloadError::Script),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Payload {
        Payload {
            tag: Tag::DEFAULT,
            batch: BatchSeq(0x0102),
            root: MerkleRoot([0xee; 32]),
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let script = sample().script_pubkey();
        let hex = script.as_bytes().to_lower_hex_string();
        assert_eq!(
            hex,
            format!(
                "6a2d{}{}{}{}",
                "42544354",
                "01",
                "0000000000000102",
                "ee".repeat(32)
            )
        );
        assert!(script.is_op_return());
        assert!(script.len() <= 83, "fits the 80-byte data carrier limit");
        assert_eq!(Payload::from_script(&script), Ok(sample()));
    }

    #[test]
    fn rejects_other_scripts_and_versions() {
        let good = sample().script_pubkey().into_bytes();
        let mut v2 = good.clone();
        v2[2 + 4] = 2;
        assert_eq!(
            Payload::from_script(ScriptBuf::from_bytes(v2).as_script()),
            Err(PayloadError::Version(2))
        );
        for bad in [
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            [vec![0x6a, 0x4c, 45], good[2..].to_vec()].concat(), // OP_PUSHDATA1 form
            [vec![0x51], good[1..].to_vec()].concat(),
            vec![],
        ] {
            assert_eq!(
                Payload::from_script(ScriptBuf::from_bytes(bad).as_script()),
                Err(PayloadError::Script)
            );
        }
        assert!("4254435".parse::<Tag>().is_err());
        assert_eq!("42544354".parse::<Tag>(), Ok(Tag::DEFAULT));
    }
}
