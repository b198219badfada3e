//! Leaf encoding v1: how a [`Record`] becomes the bytes a batch tree commits to.
//!
//! ```text
//! leaf_preimage = 0x00 ‖ kind ‖ payload
//! leaf_hash     = SHA-256(leaf_preimage)
//!
//! kind 0x01 (PoS block): len(chain_id) as u8 ‖ chain_id (ASCII)
//!                        ‖ height as u64 big-endian ‖ block_hash (32) ‖ staker_set_digest (32)
//! kind 0x02 (digest):    digest (32)
//! ```
//!
//! The `0x00` prefix separates leaves from inner nodes (`0x01`, see
//! [`crate::merkle`]). Every payload has a fixed layout or an explicit length,
//! so two different records never share a preimage. New encodings get new kind
//! bytes; existing ones never change (`docs/proof-format.md`).

use crate::types::{
    ChainId, LeafHash, ParseError, PosBlock, PosBlockHash, RawDigest, Record, StakerSetDigest,
};

/// Domain-separation prefix of every leaf preimage.
pub const LEAF_PREFIX: u8 = 0x00;
/// Kind byte of a PoS block record.
pub const KIND_POS_BLOCK: u8 = 0x01;
/// Kind byte of a raw digest record.
pub const KIND_DIGEST: u8 = 0x02;

/// Longest leaf preimage: a PoS block with a 64-byte chain id.
pub const MAX_PREIMAGE_LEN: usize = 2 + 1 + ChainId::MAX_LEN + 8 + 32 + 32;

/// Why bytes are not a v1 leaf preimage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// The first byte is not the leaf prefix `0x00`.
    #[error("leaf preimage does not start with 0x00")]
    Prefix,
    /// The kind byte is not one this version knows.
    #[error("unknown leaf kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The payload is shorter or longer than its kind's layout.
    #[error("leaf payload has the wrong length for its kind")]
    Length,
    /// The chain id inside the payload is not a valid [`ChainId`].
    #[error(transparent)]
    ChainId(#[from] ParseError),
}

/// Appends the leaf preimage of `record` to `out`.
pub fn append_preimage(record: &Record, out: &mut Vec<u8>) {
    out.push(LEAF_PREFIX);
    match record {
        Record::PosBlock(b) => {
            out.push(KIND_POS_BLOCK);
            let id = b.chain_id.as_str().as_bytes();
            // ChainId guarantees 1..=64 bytes, so the length fits in a u8.
            out.push(id.len() as u8);
            out.extend_from_slice(id);
            out.extend_from_slice(&b.height.to_be_bytes());
            out.extend_from_slice(b.block_hash.as_bytes());
            out.extend_from_slice(b.staker_set_digest.as_bytes());
        }
        Record::Digest { digest } => {
            out.push(KIND_DIGEST);
            out.extend_from_slice(digest.as_bytes());
        }
    }
}

/// The leaf preimage of `record`.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_PREIMAGE_LEN);
    append_preimage(record, &mut out);
    out
}

/// `SHA-256(leaf preimage)`: the record's id and its leaf in a batch tree.
pub fn leaf_hash(record: &Record) -> LeafHash {
    let mut buf = [0u8; MAX_PREIMAGE_LEN];
    let n = write_preimage(record, &mut buf);
    LeafHash(crate::merkle::sha256_short(&buf[..n]))
}

/// Writes the preimage into a fixed buffer without allocating; returns its length.
fn write_preimage(record: &Record, buf: &mut [u8; MAX_PREIMAGE_LEN]) -> usize {
    buf[0] = LEAF_PREFIX;
    match record {
        Record::PosBlock(b) => {
            let id = b.chain_id.as_str().as_bytes();
            buf[1] = KIND_POS_BLOCK;
            buf[2] = id.len() as u8;
            let mut at = 3 + id.len();
            buf[3..at].copy_from_slice(id);
            buf[at..at + 8].copy_from_slice(&b.height.to_be_bytes());
            at += 8;
            buf[at..at + 32].copy_from_slice(b.block_hash.as_bytes());
            at += 32;
            buf[at..at + 32].copy_from_slice(b.staker_set_digest.as_bytes());
            at + 32
        }
        Record::Digest { digest } => {
            buf[1] = KIND_DIGEST;
            buf[2..34].copy_from_slice(digest.as_bytes());
            34
        }
    }
}

/// Parses a leaf preimage back into the record it encodes.
pub fn decode(preimage: &[u8]) -> Result<Record, LeafError> {
    let (&prefix, rest) = preimage.split_first().ok_or(LeafError::Prefix)?;
    if prefix != LEAF_PREFIX {
        return Err(LeafError::Prefix);
    }
    let (&kind, payload) = rest.split_first().ok_or(LeafError::Length)?;
    match kind {
        KIND_POS_BLOCK => decode_pos_block(payload).map(Record::PosBlock),
        KIND_DIGEST => {
            let digest: [u8; 32] = payload.try_into().map_err(|_| LeafError::Length)?;
            Ok(Record::Digest {
                digest: RawDigest(digest),
            })
        }
        other => Err(LeafError::UnknownKind(other)),
    }
}

fn decode_pos_block(payload: &[u8]) -> Result<PosBlock, LeafError> {
    let (&len, rest) = payload.split_first().ok_or(LeafError::Length)?;
    let len = usize::from(len);
    if rest.len() != len + 8 + 32 + 32 {
        return Err(LeafError::Length);
    }
    let (id, rest) = rest.split_at(len);
    let id = std::str::from_utf8(id)
        .map_err(|_| ParseError::ChainId(String::from_utf8_lossy(id).into()))?;
    let chain_id = ChainId::new(id)?;
    let (height, rest) = rest.split_at(8);
    let (hash, digest) = rest.split_at(32);
    Ok(PosBlock {
        chain_id,
        height: u64::from_be_bytes(height.try_into().map_err(|_| LeafError::Length)?),
        block_hash: PosBlockHash(hash.try_into().map_err(|_| LeafError::Length)?),
        staker_set_digest: StakerSetDigest(digest.try_into().map_err(|_| LeafError::Length)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hex::{DisplayHex, FromHex};

    fn pos(chain: &str, height: u64, hash: u8, digest: u8) -> Record {
        Record::PosBlock(PosBlock {
            chain_id: ChainId::new(chain).expect("valid chain id"),
            height,
            block_hash: PosBlockHash([hash; 32]),
            staker_set_digest: StakerSetDigest([digest; 32]),
        })
    }

    /// Vectors computed independently with Python's hashlib
    /// (`scripts/test_vectors.py`).
    #[test]
    fn leaf_vectors() {
        let vectors = [
            (
                pos("cosmoshub-4", 1, 0x11, 0x22),
                "00010b636f736d6f736875622d340000000000000001\
                 1111111111111111111111111111111111111111111111111111111111111111\
                 2222222222222222222222222222222222222222222222222222222222222222",
                "220cd8cae1fa279b5696c2b52eec4662ad0195f8952b53ca68b3e14e647eb98e",
            ),
            (
                Record::Digest {
                    digest: RawDigest([0xab; 32]),
                },
                "0002abababababababababababababababababababababababababababababababab",
                "0aa1be6e41310abd9cd19c49f2ffe71ecf4e7c14579b514614f67c24b817330c",
            ),
        ];
        for (record, preimage, hash) in &vectors {
            assert_eq!(encode(record).to_lower_hex_string(), *preimage);
            let bytes = Vec::<u8>::from_hex(preimage).expect("hex");
            assert_eq!(&decode(&bytes).expect("decodes"), record);
            assert_eq!(leaf_hash(record).to_hex(), *hash);
        }
    }

    #[test]
    fn different_records_have_different_preimages() {
        // A longer chain id must not be confusable with a shorter one plus height bytes.
        let a = pos("ab", 0x0100_0000_0000_0000, 1, 2);
        let b = pos("a", 0x0000_0000_0000_0001, 1, 2);
        assert_ne!(encode(&a), encode(&b));
        assert_ne!(leaf_hash(&a), leaf_hash(&b));
        assert_ne!(leaf_hash(&pos("a", 1, 1, 2)), leaf_hash(&pos("a", 1, 2, 1)));
    }

    #[test]
    fn decode_rejects_malformed_preimages() {
        let good = encode(&pos("chain", 5, 1, 2));
        assert_eq!(decode(&[]), Err(LeafError::Prefix));
        assert_eq!(decode(&[0x01, 0x01]), Err(LeafError::Prefix));
        assert_eq!(decode(&[0x00]), Err(LeafError::Length));
        assert_eq!(decode(&[0x00, 0x07]), Err(LeafError::UnknownKind(7)));
        assert_eq!(decode(&good[..good.len() - 1]), Err(LeafError::Length));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(LeafError::Length));
        let mut bad_char = good.clone();
        bad_char[3] = b'/';
        assert!(matches!(decode(&bad_char), Err(LeafError::ChainId(_))));
        let mut empty_id = vec![0x00, 0x01, 0x00];
        empty_id.extend_from_slice(&[0; 72]);
        assert!(matches!(decode(&empty_id), Err(LeafError::ChainId(_))));
        assert_eq!(decode(&[0x00, 0x02, 0x01]), Err(LeafError::Length));
    }
}
