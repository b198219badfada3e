//! OpenTimestamps: the `.ots` binary format, a proof document turned into
//! one, and replaying a timestamp's operations.
//!
//! The format is OpenTimestamps' (python-opentimestamps `core/timestamp.py`,
//! `op.py`, `notary.py`): a detached timestamp file is
//!
//! ```text
//! magic (31 bytes) ‖ varuint major version (1) ‖ file hash op (0x08 = SHA-256)
//! ‖ file digest (32 bytes) ‖ timestamp
//! ```
//!
//! and a timestamp is a tree whose every node is a message: a list of
//! attestations about it and of operations leading to child messages, each
//! entry but the last prefixed by `0xff`. Integers are unsigned LEB128,
//! byte strings are a varuint length and the bytes.
//!
//! A btcts proof maps onto it one hash at a time (`docs/opentimestamps.md`):
//! the file digest is the leaf hash; each path step is `prepend 0x01[‖left]`,
//! `append right`, `sha256`; the root is wrapped into the anchor transaction
//! with `prepend`/`append` and hashed twice into the txid; each level of the
//! block's transaction tree is `append`/`prepend` and two `sha256`; the block
//! Merkle root carries a block-header attestation at the block's height.

use std::cmp::Ordering;

use bitcoin::consensus::{deserialize, serialize, Encodable};
use bitcoin::hashes::{ripemd160, sha1, sha256, Hash};
use bitcoin::{Transaction, VarInt};

use crate::chain::AnchorNetwork;
use crate::merkle::Side;
use crate::payload::PAYLOAD_LEN;
use crate::proof::Proof;

/// The first bytes of every detached timestamp file.
pub const MAGIC: &[u8; 31] = b"\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94";
/// The only major version of the file format.
pub const MAJOR_VERSION: u64 = 1;
/// The longest message (and operation argument) the format allows.
pub const MAX_MSG_LEN: usize = 4096;
/// Deepest timestamp tree the reference implementation reads.
pub const MAX_DEPTH: usize = 256;
/// Longest pending-attestation URI.
pub const MAX_URI_LEN: usize = 1000;
/// Longest attestation payload.
pub const MAX_PAYLOAD_LEN: usize = 8192;
/// The most message bytes one [`Timestamp::replay`] may produce: every
/// operation's result plus the copy of the message each attestation returns.
/// A real timestamp produces a few KiB (32-byte messages, one transaction of
/// at most [`MAX_MSG_LEN`] per path); a crafted one could otherwise turn an
/// 11-byte attestation under a 4 KiB message into a 4 KiB copy (~370× its
/// size). A replay that would exceed this is refused.
pub const MAX_REPLAY_BYTES: usize = 1 << 20;
/// The only characters a pending-attestation URI may contain.
pub const URI_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._/:";
/// Media type of `.ots` files and calendar responses.
pub const MEDIA_TYPE: &str = "application/vnd.opentimestamps.v1";

const TAG_SHA1: u8 = 0x02;
const TAG_RIPEMD160: u8 = 0x03;
const TAG_SHA256: u8 = 0x08;
const TAG_KECCAK256: u8 = 0x67;
const TAG_APPEND: u8 = 0xf0;
const TAG_PREPEND: u8 = 0xf1;
const TAG_REVERSE: u8 = 0xf2;
const TAG_HEXLIFY: u8 = 0xf3;

const ATT_PENDING: [u8; 8] = [0x83, 0xdf, 0xe3, 0x0d, 0x2e, 0xf9, 0x0c, 0x8e];
const ATT_BITCOIN: [u8; 8] = [0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01];
const ATT_LITECOIN: [u8; 8] = [0x06, 0x86, 0x9a, 0x0d, 0x73, 0xd7, 0x1b, 0x45];

/// Why bytes are not a timestamp, or a proof cannot become one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtsError {
    /// The file does not start with the detached-timestamp magic.
    #[error("not an OpenTimestamps file (bad magic)")]
    Magic,
    /// A major version other than 1.
    #[error("OpenTimestamps major version {0} is not supported")]
    Version(u64),
    /// The input ended early.
    #[error("truncated timestamp")]
    Truncated,
    /// Bytes left after the timestamp.
    #[error("{0} trailing bytes after the timestamp")]
    Trailing(usize),
    /// An operation tag this format does not define.
    #[error("unknown operation tag 0x{0:02x}")]
    UnknownOp(u8),
    /// A file hash other than SHA-256.
    #[error("file hash operation 0x{0:02x} is not supported (only SHA-256)")]
    FileHash(u8),
    /// A length, depth or value outside the format's limits.
    #[error("invalid timestamp: {0}")]
    Invalid(String),
    /// An operation this verifier cannot compute (KECCAK-256).
    #[error("operation {0} is not supported by this verifier")]
    Unsupported(&'static str),
    /// The proof document cannot be expressed as a timestamp.
    #[error("proof cannot be converted: {0}")]
    Proof(String),
}

/// One operation on a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// SHA-1 (read, evaluated, never written by btcts).
    Sha1,
    /// RIPEMD-160 (read, evaluated, never written by btcts).
    Ripemd160,
    /// SHA-256.
    Sha256,
    /// KECCAK-256 (read but not evaluated).
    Keccak256,
    /// `msg ‖ arg`.
    Append(Vec<u8>),
    /// `arg ‖ msg`.
    Prepend(Vec<u8>),
    /// The message's bytes reversed (deprecated in OpenTimestamps).
    Reverse,
    /// The message as lowercase hex.
    Hexlify,
}

impl Op {
    fn tag(&self) -> u8 {
        match self {
            Op::Sha1 => TAG_SHA1,
            Op::Ripemd160 => TAG_RIPEMD160,
            Op::Sha256 => TAG_SHA256,
            Op::Keccak256 => TAG_KECCAK256,
            Op::Append(_) => TAG_APPEND,
            Op::Prepend(_) => TAG_PREPEND,
            Op::Reverse => TAG_REVERSE,
            Op::Hexlify => TAG_HEXLIFY,
        }
    }

    fn arg(&self) -> &[u8] {
        match self {
            Op::Append(a) | Op::Prepend(a) => a,
            _ => &[],
        }
    }

    /// The operation's name as OpenTimestamps prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Sha1 => "sha1",
            Op::Ripemd160 => "ripemd160",
            Op::Sha256 => "sha256",
            Op::Keccak256 => "keccak256",
            Op::Append(_) => "append",
            Op::Prepend(_) => "prepend",
            Op::Reverse => "reverse",
            Op::Hexlify => "hexlify",
        }
    }

    /// The result of this operation on `msg`, with the format's length limits.
    pub fn apply(&self, msg: &[u8]) -> Result<Vec<u8>, OtsError> {
        if msg.len() > MAX_MSG_LEN {
            return Err(OtsError::Invalid(format!(
                "message of {} bytes exceeds {MAX_MSG_LEN}",
                msg.len()
            )));
        }
        let out = match self {
            Op::Sha1 => sha1::Hash::hash(msg).to_byte_array().to_vec(),
            Op::Ripemd160 => ripemd160::Hash::hash(msg).to_byte_array().to_vec(),
            Op::Sha256 => sha256::Hash::hash(msg).to_byte_array().to_vec(),
            Op::Keccak256 => return Err(OtsError::Unsupported("keccak256")),
            Op::Append(a) => [msg, a].concat(),
            Op::Prepend(a) => [a, msg].concat(),
            Op::Reverse => {
                if msg.is_empty() {
                    return Err(OtsError::Invalid("reverse of an empty message".into()));
                }
                msg.iter().rev().copied().collect()
            }
            Op::Hexlify => {
                if msg.is_empty() || msg.len() > MAX_MSG_LEN / 2 {
                    return Err(OtsError::Invalid(
                        "hexlify needs 1 to 2048 bytes".to_owned(),
                    ));
                }
                msg.iter()
                    .flat_map(|b| format!("{b:02x}").into_bytes())
                    .collect()
            }
        };
        if out.len() > MAX_MSG_LEN {
            return Err(OtsError::Invalid(format!(
                "result of {} bytes exceeds {MAX_MSG_LEN}",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// The reference implementation's order: by tag, then by argument.
impl Ord for Op {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.tag(), self.arg()).cmp(&(other.tag(), other.arg()))
    }
}

impl PartialOrd for Op {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A claim that a message existed at some time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attestation {
    /// "Ask this calendar later": the message is its commitment.
    Pending {
        /// The calendar's base URL.
        uri: String,
    },
    /// The message is the Merkle root of the Bitcoin block at `height`.
    Bitcoin {
        /// Block height.
        height: u64,
    },
    /// The message is the Merkle root of the Litecoin block at `height`.
    Litecoin {
        /// Block height.
        height: u64,
    },
    /// An attestation this code does not know, kept as is.
    Unknown {
        /// Its 8-byte tag.
        tag: [u8; 8],
        /// Its payload.
        payload: Vec<u8>,
    },
}

impl Attestation {
    fn tag(&self) -> [u8; 8] {
        match self {
            Attestation::Pending { .. } => ATT_PENDING,
            Attestation::Bitcoin { .. } => ATT_BITCOIN,
            Attestation::Litecoin { .. } => ATT_LITECOIN,
            Attestation::Unknown { tag, .. } => *tag,
        }
    }

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Attestation::Pending { uri } => write_varbytes(&mut out, uri.as_bytes()),
            Attestation::Bitcoin { height } | Attestation::Litecoin { height } => {
                write_varuint(&mut out, *height)
            }
            Attestation::Unknown { payload, .. } => out.extend_from_slice(payload),
        }
        out
    }

    /// The attestation a block on `network` gives: OpenTimestamps has tags
    /// for Bitcoin and Litecoin blocks only, and its clients verify Bitcoin
    /// ones, so every regtest block (the Litecoin test node included) is
    /// attested as a Bitcoin block; Litecoin mainnet blocks as Litecoin ones.
    pub fn block(network: AnchorNetwork, height: u64) -> Attestation {
        match network {
            AnchorNetwork::Litecoin => Attestation::Litecoin { height },
            AnchorNetwork::Bitcoin
            | AnchorNetwork::Testnet
            | AnchorNetwork::Testnet4
            | AnchorNetwork::Signet
            | AnchorNetwork::Regtest
            | AnchorNetwork::LitecoinRegtest => Attestation::Bitcoin { height },
        }
    }

    /// A pending attestation for calendar `uri`, if the format allows the URI.
    pub fn pending(uri: &str) -> Result<Attestation, OtsError> {
        check_uri(uri.as_bytes())?;
        Ok(Attestation::Pending {
            uri: uri.to_owned(),
        })
    }
}

/// Checks a calendar URI against the format's length and character rules.
pub fn check_uri(uri: &[u8]) -> Result<(), OtsError> {
    if uri.len() > MAX_URI_LEN {
        return Err(OtsError::Invalid(format!(
            "calendar URI longer than {MAX_URI_LEN} bytes"
        )));
    }
    match uri.iter().find(|c| !URI_CHARS.contains(c)) {
        Some(c) => Err(OtsError::Invalid(format!(
            "calendar URI contains {:?}; allowed are letters, digits and -._/:",
            char::from(*c)
        ))),
        None => Ok(()),
    }
}

/// The reference implementation's order: by tag, then by content.
impl Ord for Attestation {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Attestation::Pending { uri: a }, Attestation::Pending { uri: b }) => a.cmp(b),
            (Attestation::Bitcoin { height: a }, Attestation::Bitcoin { height: b })
            | (Attestation::Litecoin { height: a }, Attestation::Litecoin { height: b }) => {
                a.cmp(b)
            }
            _ => (self.tag(), self.payload()).cmp(&(other.tag(), other.payload())),
        }
    }
}

impl PartialOrd for Attestation {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A timestamp: attestations about a message and operations to further ones.
/// The message itself is not stored; it is the input of [`Timestamp::replay`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timestamp {
    /// Attestations about this node's message.
    pub attestations: Vec<Attestation>,
    /// Operations on this node's message, each with the timestamp of its result.
    pub ops: Vec<(Op, Timestamp)>,
}

impl Timestamp {
    /// A linear timestamp: `ops` applied in order, then `attestation`.
    pub fn chain(ops: Vec<Op>, attestation: Attestation) -> Timestamp {
        let mut node = Timestamp {
            attestations: vec![attestation],
            ops: Vec::new(),
        };
        for op in ops.into_iter().rev() {
            node = Timestamp {
                attestations: Vec::new(),
                ops: vec![(op, node)],
            };
        }
        node
    }

    /// Every attestation with the message it attests, replaying the
    /// operations from `msg`, depth first (only the current path's messages
    /// are alive besides the result). Fails on the first operation that
    /// cannot run, and once the replay has produced more than
    /// [`MAX_REPLAY_BYTES`] of messages.
    pub fn replay(&self, msg: &[u8]) -> Result<Vec<(Vec<u8>, Attestation)>, OtsError> {
        let mut out = Vec::new();
        let mut budget = MAX_REPLAY_BYTES;
        self.replay_into(msg, 0, &mut budget, &mut out)?;
        Ok(out)
    }

    fn replay_into(
        &self,
        msg: &[u8],
        depth: usize,
        budget: &mut usize,
        out: &mut Vec<(Vec<u8>, Attestation)>,
    ) -> Result<(), OtsError> {
        if depth > MAX_DEPTH {
            return Err(OtsError::Invalid("timestamp nested too deeply".into()));
        }
        for a in &self.attestations {
            spend(budget, msg.len())?;
            out.push((msg.to_vec(), a.clone()));
        }
        for (op, child) in &self.ops {
            let next = op.apply(msg)?;
            spend(budget, next.len())?;
            child.replay_into(&next, depth + 1, budget, out)?;
        }
        Ok(())
    }

    /// The canonical encoding (entries sorted as the reference does).
    pub fn to_bytes(&self) -> Result<Vec<u8>, OtsError> {
        let mut out = Vec::new();
        self.write(&mut out, 0)?;
        Ok(out)
    }

    fn write(&self, out: &mut Vec<u8>, depth: usize) -> Result<(), OtsError> {
        if depth > MAX_DEPTH {
            return Err(OtsError::Invalid("timestamp nested too deeply".into()));
        }
        if self.attestations.is_empty() && self.ops.is_empty() {
            return Err(OtsError::Invalid("empty timestamp".into()));
        }
        let mut attestations: Vec<&Attestation> = self.attestations.iter().collect();
        attestations.sort();
        let mut ops: Vec<&(Op, Timestamp)> = self.ops.iter().collect();
        ops.sort_by(|a, b| a.0.cmp(&b.0));
        let entries = attestations.len() + ops.len();
        let mut written = 0;
        for a in attestations {
            written += 1;
            if written < entries {
                out.push(0xff);
            }
            out.push(0x00);
            out.extend_from_slice(&a.tag());
            write_varbytes(out, &a.payload());
        }
        for (op, child) in ops {
            written += 1;
            if written < entries {
                out.push(0xff);
            }
            out.push(op.tag());
            if let Op::Append(arg) | Op::Prepend(arg) = op {
                if arg.is_empty() || arg.len() > MAX_MSG_LEN {
                    return Err(OtsError::Invalid(format!(
                        "{} argument of {} bytes",
                        op.name(),
                        arg.len()
                    )));
                }
                write_varbytes(out, arg);
            }
            child.write(out, depth + 1)?;
        }
        Ok(())
    }

    /// Parses a timestamp that must fill `bytes` exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Timestamp, OtsError> {
        let mut r = Reader { bytes, at: 0 };
        let t = Timestamp::read(&mut r, 0)?;
        r.finish()?;
        Ok(t)
    }

    fn read(r: &mut Reader<'_>, depth: usize) -> Result<Timestamp, OtsError> {
        if depth > MAX_DEPTH {
            return Err(OtsError::Invalid("timestamp nested too deeply".into()));
        }
        let mut t = Timestamp::default();
        loop {
            let mut tag = r.byte()?;
            let more = tag == 0xff;
            if more {
                tag = r.byte()?;
            }
            if tag == 0x00 {
                let att_tag: [u8; 8] = r.take(8)?.try_into().map_err(|_| OtsError::Truncated)?;
                let payload = r.varbytes(MAX_PAYLOAD_LEN, 0)?;
                t.attestations.push(read_attestation(att_tag, payload)?);
            } else {
                let op = match tag {
                    TAG_SHA1 => Op::Sha1,
                    TAG_RIPEMD160 => Op::Ripemd160,
                    TAG_SHA256 => Op::Sha256,
                    TAG_KECCAK256 => Op::Keccak256,
                    TAG_APPEND => Op::Append(r.varbytes(MAX_MSG_LEN, 1)?.to_vec()),
                    TAG_PREPEND => Op::Prepend(r.varbytes(MAX_MSG_LEN, 1)?.to_vec()),
                    TAG_REVERSE => Op::Reverse,
                    TAG_HEXLIFY => Op::Hexlify,
                    other => return Err(OtsError::UnknownOp(other)),
                };
                let child = Timestamp::read(r, depth + 1)?;
                t.ops.push((op, child));
            }
            if !more {
                return Ok(t);
            }
        }
    }
}

/// Takes `n` bytes from a replay's budget, or refuses the replay.
fn spend(budget: &mut usize, n: usize) -> Result<(), OtsError> {
    *budget = budget.checked_sub(n).ok_or_else(|| {
        OtsError::Invalid(format!(
            "replay would produce more than {MAX_REPLAY_BYTES} bytes of messages"
        ))
    })?;
    Ok(())
}

fn read_attestation(tag: [u8; 8], payload: &[u8]) -> Result<Attestation, OtsError> {
    let mut r = Reader {
        bytes: payload,
        at: 0,
    };
    let a = match tag {
        ATT_PENDING => {
            let uri = r.varbytes(MAX_URI_LEN, 0)?;
            check_uri(uri)?;
            Attestation::Pending {
                // check_uri admits ASCII only.
                uri: String::from_utf8_lossy(uri).into_owned(),
            }
        }
        ATT_BITCOIN => Attestation::Bitcoin {
            height: r.varuint()?,
        },
        ATT_LITECOIN => Attestation::Litecoin {
            height: r.varuint()?,
        },
        _ => {
            return Ok(Attestation::Unknown {
                tag,
                payload: payload.to_vec(),
            })
        }
    };
    r.finish()?;
    Ok(a)
}

/// A detached timestamp: the `.ots` file of a SHA-256 file digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedTimestamp {
    /// SHA-256 of the timestamped file (for btcts records: the leaf hash,
    /// SHA-256 of the leaf preimage).
    pub digest: [u8; 32],
    /// The timestamp of `digest`.
    pub timestamp: Timestamp,
}

impl DetachedTimestamp {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, OtsError> {
        let mut out = MAGIC.to_vec();
        write_varuint(&mut out, MAJOR_VERSION);
        out.push(TAG_SHA256);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.timestamp.to_bytes()?);
        Ok(out)
    }

    /// Whether `bytes` start like a `.ots` file.
    pub fn looks_like(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    /// Parses a `.ots` file.
    pub fn from_bytes(bytes: &[u8]) -> Result<DetachedTimestamp, OtsError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(OtsError::Magic)?;
        let mut r = Reader { bytes: rest, at: 0 };
        let major = r.varuint()?;
        if major != MAJOR_VERSION {
            return Err(OtsError::Version(major));
        }
        let hash = r.byte()?;
        if hash != TAG_SHA256 {
            return Err(OtsError::FileHash(hash));
        }
        let digest: [u8; 32] = r.take(32)?.try_into().map_err(|_| OtsError::Truncated)?;
        let timestamp = Timestamp::read(&mut r, 0)?;
        r.finish()?;
        Ok(DetachedTimestamp { digest, timestamp })
    }
}

mod wire;
use wire::{write_varbytes, write_varuint, Reader};

mod convert;
pub use convert::{detached_of, path_ops, timestamp_of};

#[cfg(test)]
mod tests;
