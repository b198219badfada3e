//! The solo-machine signer: the service's secp256k1 key, with the client's
//! sequence, timestamp and diversifier kept in a redb file.
//!
//! A consumer chain freezes the solo-machine client for good when it sees
//! two signatures at one sequence over different bytes. So every signature
//! is written to the store, with the bytes it signs, *before* it leaves
//! this type; a sequence once used only ever yields that same signature
//! again, also after a crash and restart.

use std::path::Path;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, Message, PublicKey, Secp256k1, SecretKey};
use ibc_proto::cosmos::crypto::secp256k1::PubKey;
use ibc_proto::cosmos::tx::signing::v1beta1::signature_descriptor::{data, Data};
use ibc_proto::cosmos::tx::signing::v1beta1::SignMode;
use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::lightclients::solomachine::v3::{
    Header as SmHeader, HeaderData, SignBytes, TimestampedSignatureData,
};
use prost::Message as _;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// `type_url` of a Cosmos secp256k1 public key.
pub const SECP256K1_PUBKEY_TYPE_URL: &str = "/cosmos.crypto.secp256k1.PubKey";
/// The path a key-rotation header signs over.
pub const HEADER_PATH: &[u8] = b"solomachine:header";

/// `key` → value: the signer's state.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("solomachine_state");
/// sequence → sign bytes ‖ 64-byte signature, for every sequence ever used.
const SIGNED: TableDefinition<u64, &[u8]> = TableDefinition::new("solomachine_signed");

/// Why the signer refuses or fails.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The store could not be read or written.
    #[error("signer store: {0}")]
    Store(String),
    /// The key file is missing or not a 32-byte secret key in hex.
    #[error("key file: {0}")]
    Key(String),
    /// The key does not match the public key the store was set up with.
    #[error("the key file's public key is not the one this store signs with")]
    KeyMismatch,
    /// Signing other bytes at a sequence already used would freeze the client.
    #[error("sequence {0} already signed different bytes; refusing to equivocate")]
    WouldEquivocate(u64),
    /// A sequence that is neither used nor the next one.
    #[error("sequence {asked} is not the next one ({next})")]
    NotNext {
        /// Asked for.
        asked: u64,
        /// The next unused sequence.
        next: u64,
    },
    /// Solo-machine timestamps must not go backwards.
    #[error("timestamp {asked} is before the last one used ({last})")]
    TimestampBackwards {
        /// Asked for.
        asked: u64,
        /// The last used.
        last: u64,
    },
}

fn store_err(e: impl std::fmt::Display) -> SignerError {
    SignerError::Store(e.to_string())
}

/// The signer's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerState {
    /// The next unused sequence: the client's sequence once everything
    /// signed so far is delivered.
    pub sequence: u64,
    /// The last timestamp signed (0 before the first).
    pub timestamp: u64,
    /// The diversifier in the client's consensus state.
    pub diversifier: String,
    /// The compressed public key proofs verify under.
    pub public_key: PublicKey,
}

/// One produced proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The sequence it consumed.
    pub sequence: u64,
    /// Its timestamp.
    pub timestamp: u64,
    /// The exact bytes signed (an encoded `SignBytes` or `HeaderData` sign bytes).
    pub sign_bytes: Vec<u8>,
    /// The 64-byte compact, low-S signature over `sha256(sign_bytes)`.
    pub signature: [u8; 64],
}

impl Signed {
    /// The solo-machine proof: an encoded `TimestampedSignatureData`.
    pub fn proof(&self) -> Vec<u8> {
        TimestampedSignatureData {
            signature_data: signature_data(&self.signature),
            timestamp: self.timestamp,
        }
        .encode_to_vec()
    }
}

/// The encoded `SignatureDescriptor.Data` of a single signature.
pub fn signature_data(signature: &[u8; 64]) -> Vec<u8> {
    Data {
        sum: Some(data::Sum::Single(data::Single {
            mode: SignMode::Direct as i32,
            signature: signature.to_vec(),
        })),
    }
    .encode_to_vec()
}

/// A secp256k1 public key as the `Any` a solo-machine consensus state holds.
pub fn public_key_any(key: &PublicKey) -> Any {
    Any {
        type_url: SECP256K1_PUBKEY_TYPE_URL.into(),
        value: PubKey {
            key: key.serialize().to_vec(),
        }
        .encode_to_vec(),
    }
}

/// Reads a key file: 64 hex characters (surrounding whitespace ignored).
pub fn read_key_file(path: &Path) -> Result<SecretKey, SignerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SignerError::Key(format!("{}: {e}", path.display())))?;
    text.trim().parse::<SecretKey>().map_err(|_| {
        SignerError::Key(format!(
            "{}: not a 32-byte secret key in hex",
            path.display()
        ))
    })
}

/// The solo machine's signing key and its persisted state.
pub struct Signer {
    db: Database,
    /// Behind a lock so that a rotation can switch it through `&self`.
    key: std::sync::RwLock<SecretKey>,
    secp: Secp256k1<bitcoin::secp256k1::All>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// Opens (or creates, with `diversifier` and sequence `first_sequence`)
    /// the signer store at `path` for `key`. A store set up for another
    /// key is refused.
    pub fn open(
        path: &Path,
        key: SecretKey,
        diversifier: &str,
        first_sequence: u64,
    ) -> Result<Signer, SignerError> {
        let db = Database::create(path).map_err(store_err)?;
        let secp = Secp256k1::new();
        let public = key.public_key(&secp);
        let txn = db.begin_write().map_err(store_err)?;
        {
            let mut state = txn.open_table(STATE).map_err(store_err)?;
            txn.open_table(SIGNED).map_err(store_err)?;
            let stored = state
                .get("public_key")
                .map_err(store_err)?
                .map(|v| v.value().to_vec());
            match stored {
                Some(pk) if pk != public.serialize() => return Err(SignerError::KeyMismatch),
                Some(_) => {}
                None => {
                    state
                        .insert("public_key", public.serialize().as_slice())
                        .map_err(store_err)?;
                    state
                        .insert("diversifier", diversifier.as_bytes())
                        .map_err(store_err)?;
                    state
                        .insert("sequence", first_sequence.to_be_bytes().as_slice())
                        .map_err(store_err)?;
                    state
                        .insert("timestamp", 0u64.to_be_bytes().as_slice())
                        .map_err(store_err)?;
                }
            }
        }
        txn.commit().map_err(store_err)?;
        Ok(Signer {
            db,
            key: std::sync::RwLock::new(key),
            secp,
        })
    }

    /// The persisted state.
    pub fn state(&self) -> Result<SignerState, SignerError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(STATE).map_err(store_err)?;
        read_state(|k| {
            table
                .get(k)
                .map(|v| v.map(|v| v.value().to_vec()))
                .map_err(store_err)
        })
    }

    /// A membership proof at the next sequence: the signature over
    /// `SignBytes { sequence, timestamp, diversifier, path, data }`.
    pub fn sign(&self, path: &[u8], data: &[u8], timestamp: u64) -> Result<Signed, SignerError> {
        let state = self.state()?;
        self.sign_at(state.sequence, path, data, timestamp)
    }

    /// The proof at `sequence`: a new one if `sequence` is the next unused
    /// one, the same one again if it was used for exactly these bytes, and
    /// a refusal otherwise.
    pub fn sign_at(
        &self,
        sequence: u64,
        path: &[u8],
        data: &[u8],
        timestamp: u64,
    ) -> Result<Signed, SignerError> {
        let state = self.state()?;
        let sign_bytes = SignBytes {
            sequence,
            timestamp,
            diversifier: state.diversifier.clone(),
            path: path.to_vec(),
            data: data.to_vec(),
        }
        .encode_to_vec();
        self.commit_signature(sequence, timestamp, sign_bytes, None)
    }

    /// Rotates to `new_key` and `new_diversifier`: the solo-machine header
    /// for `MsgUpdateClient`, signed by the current key at the next
    /// sequence. From then on this signer signs with the new key.
    pub fn rotate(
        &self,
        new_key: SecretKey,
        new_diversifier: &str,
        timestamp: u64,
    ) -> Result<SmHeader, SignerError> {
        let state = self.state()?;
        let new_public = new_key.public_key(&self.secp);
        let header_data = HeaderData {
            new_pub_key: Some(public_key_any(&new_public)),
            new_diversifier: new_diversifier.to_owned(),
        }
        .encode_to_vec();
        let sign_bytes = SignBytes {
            sequence: state.sequence,
            timestamp,
            diversifier: state.diversifier.clone(),
            path: HEADER_PATH.to_vec(),
            data: header_data,
        }
        .encode_to_vec();
        let signed = self.commit_signature(
            state.sequence,
            timestamp,
            sign_bytes,
            Some((new_public, new_diversifier)),
        )?;
        *self
            .key
            .write()
            .map_err(|_| SignerError::Store("key lock poisoned".into()))? = new_key;
        Ok(SmHeader {
            timestamp,
            signature: signature_data(&signed.signature),
            new_public_key: Some(public_key_any(&new_public)),
            new_diversifier: new_diversifier.to_owned(),
        })
    }

    /// The key-rotation header signed at `sequence`, rebuilt from the store
    /// (so an interrupted rotation can be submitted again), if `sequence`
    /// was used for one.
    pub fn rotation_header(&self, sequence: u64) -> Result<Option<SmHeader>, SignerError> {
        let Some(signed) = self.signed(sequence)? else {
            return Ok(None);
        };
        let corrupt = |e: String| SignerError::Store(format!("signature {sequence}: {e}"));
        let bytes =
            SignBytes::decode(signed.sign_bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        if bytes.path != HEADER_PATH {
            return Ok(None);
        }
        let data = HeaderData::decode(bytes.data.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(SmHeader {
            timestamp: bytes.timestamp,
            signature: signature_data(&signed.signature),
            new_public_key: data.new_pub_key,
            new_diversifier: data.new_diversifier,
        }))
    }

    /// The proof stored for `sequence`, if it was used.
    pub fn signed(&self, sequence: u64) -> Result<Option<Signed>, SignerError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(SIGNED).map_err(store_err)?;
        let Some(v) = table.get(sequence).map_err(store_err)? else {
            return Ok(None);
        };
        Ok(Some(decode_signed(sequence, v.value())?))
    }

    /// Signs `sign_bytes` in memory, then in one durable transaction checks
    /// the sequence and timestamp rules and records the signature (and, for
    /// a rotation, the new key and diversifier). Only then is it returned.
    fn commit_signature(
        &self,
        sequence: u64,
        timestamp: u64,
        sign_bytes: Vec<u8>,
        rotation: Option<(PublicKey, &str)>,
    ) -> Result<Signed, SignerError> {
        let key = *self
            .key
            .read()
            .map_err(|_| SignerError::Store("key lock poisoned".into()))?;
        let digest = sha256::Hash::hash(&sign_bytes).to_byte_array();
        let signature: Signature = self.secp.sign_ecdsa(&Message::from_digest(digest), &key);
        let signed = Signed {
            sequence,
            timestamp,
            sign_bytes,
            signature: signature.serialize_compact(),
        };
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut signed_table = txn.open_table(SIGNED).map_err(store_err)?;
            if let Some(existing) = signed_table.get(sequence).map_err(store_err)? {
                let existing = decode_signed(sequence, existing.value())?;
                return if existing.sign_bytes == signed.sign_bytes {
                    Ok(existing)
                } else {
                    Err(SignerError::WouldEquivocate(sequence))
                };
            }
            let mut state_table = txn.open_table(STATE).map_err(store_err)?;
            let state = read_state(|k| {
                state_table
                    .get(k)
                    .map(|v| v.map(|v| v.value().to_vec()))
                    .map_err(store_err)
            })?;
            if state.public_key != key.public_key(&self.secp) {
                return Err(SignerError::KeyMismatch);
            }
            if sequence != state.sequence {
                return Err(SignerError::NotNext {
                    asked: sequence,
                    next: state.sequence,
                });
            }
            if timestamp < state.timestamp {
                return Err(SignerError::TimestampBackwards {
                    asked: timestamp,
                    last: state.timestamp,
                });
            }
            let mut value = signed.sign_bytes.clone();
            value.extend_from_slice(&signed.signature);
            signed_table
                .insert(sequence, value.as_slice())
                .map_err(store_err)?;
            state_table
                .insert("sequence", (sequence + 1).to_be_bytes().as_slice())
                .map_err(store_err)?;
            state_table
                .insert("timestamp", timestamp.to_be_bytes().as_slice())
                .map_err(store_err)?;
            if let Some((key, diversifier)) = rotation {
                state_table
                    .insert("public_key", key.serialize().as_slice())
                    .map_err(store_err)?;
                state_table
                    .insert("diversifier", diversifier.as_bytes())
                    .map_err(store_err)?;
            }
        }
        txn.commit().map_err(store_err)?;
        Ok(signed)
    }
}

fn read_state(
    get: impl Fn(&str) -> Result<Option<Vec<u8>>, SignerError>,
) -> Result<SignerState, SignerError> {
    let missing = |k: &str| SignerError::Store(format!("state key {k} missing"));
    let u64_of = |k: &str| -> Result<u64, SignerError> {
        let v = get(k)?.ok_or_else(|| missing(k))?;
        Ok(u64::from_be_bytes(
            v.as_slice().try_into().map_err(|_| missing(k))?,
        ))
    };
    let diversifier = String::from_utf8(get("diversifier")?.ok_or_else(|| missing("diversifier"))?)
        .map_err(|_| missing("diversifier"))?;
    let public_key =
        PublicKey::from_slice(&get("public_key")?.ok_or_else(|| missing("public_key"))?)
            .map_err(|_| missing("public_key"))?;
    Ok(SignerState {
        sequence: u64_of("sequence")?,
        timestamp: u64_of("timestamp")?,
        diversifier,
        public_key,
    })
}

fn decode_signed(sequence: u64, value: &[u8]) -> Result<Signed, SignerError> {
    let split = value
        .len()
        .checked_sub(64)
        .ok_or_else(|| SignerError::Store(format!("signature {sequence} truncated")))?;
    let (sign_bytes, signature) = value.split_at(split);
    let timestamp = SignBytes::decode(sign_bytes)
        .map_err(|e| SignerError::Store(format!("signature {sequence}: {e}")))?
        .timestamp;
    Ok(Signed {
        sequence,
        timestamp,
        sign_bytes: sign_bytes.to_vec(),
        signature: signature
            .try_into()
            .map_err(|_| SignerError::Store(format!("signature {sequence} truncated")))?,
    })
}

#[cfg(test)]
mod tests;
