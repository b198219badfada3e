//! Cosmos SDK transactions: the relayer account's address, and a
//! SIGN_MODE_DIRECT `TxRaw` carrying IBC messages. Pure code; the gRPC path
//! that queries the account and broadcasts is built on top of it.

use bitcoin::bech32::{self, Bech32, Hrp};
use bitcoin::hashes::{ripemd160, sha256, Hash};
use bitcoin::secp256k1::{Message as SecpMessage, PublicKey, Secp256k1, SecretKey};
use ibc_proto::cosmos::base::v1beta1::Coin;
use ibc_proto::cosmos::tx::signing::v1beta1::SignMode;
use ibc_proto::cosmos::tx::v1beta1::mode_info::{Single, Sum};
use ibc_proto::cosmos::tx::v1beta1::{AuthInfo, Fee, ModeInfo, SignDoc, SignerInfo, TxBody, TxRaw};
use ibc_proto::google::protobuf::Any;
use prost::Message;

use crate::signer::public_key_any;

/// Why an address cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The bech32 prefix is not valid.
    #[error("invalid bech32 prefix {0:?}")]
    Prefix(String),
}

/// The account address of `key`: bech32 of `ripemd160(sha256(compressed key))`
/// with the chain's prefix (`cosmos`, `osmo`, …).
pub fn address(key: &PublicKey, prefix: &str) -> Result<String, AddressError> {
    let hrp = Hrp::parse(prefix).map_err(|_| AddressError::Prefix(prefix.into()))?;
    let id = ripemd160::Hash::hash(sha256::Hash::hash(&key.serialize()).as_byte_array());
    bech32::encode::<Bech32>(hrp, id.as_byte_array())
        .map_err(|_| AddressError::Prefix(prefix.into()))
}

/// What a transaction pays and where it may land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxParams {
    /// The consumer chain's id (it is signed).
    pub chain_id: String,
    /// The relayer account's number (`cosmos.auth`).
    pub account_number: u64,
    /// The relayer account's sequence (`cosmos.auth`).
    pub sequence: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Fee amount, in `fee_denom`.
    pub fee_amount: u128,
    /// Fee denomination.
    pub fee_denom: String,
    /// Memo.
    pub memo: String,
}

/// A signed transaction: the `TxRaw` bytes to broadcast, and the body and
/// auth-info bytes the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// Encoded `cosmos.tx.v1beta1.TxRaw`.
    pub tx_raw: Vec<u8>,
    /// The `SignDoc` that was signed.
    pub sign_doc: Vec<u8>,
}

/// Signs `messages` as one SIGN_MODE_DIRECT transaction of the account of
/// `key`: 64-byte low-S secp256k1 over `sha256(SignDoc)`.
pub fn sign_tx(messages: Vec<Any>, params: &TxParams, key: &SecretKey) -> SignedTx {
    let secp = Secp256k1::new();
    let public = key.public_key(&secp);
    let body_bytes = TxBody {
        messages,
        memo: params.memo.clone(),
        timeout_height: 0,
        extension_options: Vec::new(),
        non_critical_extension_options: Vec::new(),
    }
    .encode_to_vec();
    let auth_info_bytes = AuthInfo {
        signer_infos: vec![SignerInfo {
            public_key: Some(public_key_any(&public)),
            mode_info: Some(ModeInfo {
                sum: Some(Sum::Single(Single {
                    mode: SignMode::Direct as i32,
                })),
            }),
            sequence: params.sequence,
        }],
        fee: Some(Fee {
            amount: vec![Coin {
                denom: params.fee_denom.clone(),
                amount: params.fee_amount.to_string(),
            }],
            gas_limit: params.gas_limit,
            payer: String::new(),
            granter: String::new(),
        }),
        // `tip` is deprecated in the SDK and left unset.
        ..Default::default()
    }
    .encode_to_vec();
    let sign_doc = SignDoc {
        body_bytes: body_bytes.clone(),
        auth_info_bytes: auth_info_bytes.clone(),
        chain_id: params.chain_id.clone(),
        account_number: params.account_number,
    }
    .encode_to_vec();
    let digest = sha256::Hash::hash(&sign_doc).to_byte_array();
    let signature = secp
        .sign_ecdsa(&SecpMessage::from_digest(digest), key)
        .serialize_compact();
    let tx_raw = TxRaw {
        body_bytes,
        auth_info_bytes,
        signatures: vec![signature.to_vec()],
    }
    .encode_to_vec();
    SignedTx { tx_raw, sign_doc }
}

#[cfg(test)]
mod tests {
    use bitcoin::secp256k1::ecdsa::Signature;

    use super::*;

    fn params() -> TxParams {
        TxParams {
            chain_id: "consumer-1".into(),
            account_number: 7,
            sequence: 42,
            gas_limit: 400_000,
            fee_amount: 2_000,
            fee_denom: "stake".into(),
            memo: "btcts".into(),
        }
    }

    #[test]
    fn a_tx_carries_its_messages_and_a_signature_over_the_sign_doc() {
        let key = SecretKey::from_slice(&[3; 32]).expect("key");
        let msg = Any {
            type_url: "/ibc.core.channel.v1.MsgRecvPacket".into(),
            value: vec![1, 2, 3],
        };
        let tx = sign_tx(vec![msg.clone()], &params(), &key);
        let raw = TxRaw::decode(tx.tx_raw.as_slice()).expect("TxRaw");
        let body = TxBody::decode(raw.body_bytes.as_slice()).expect("body");
        assert_eq!((body.messages, body.memo.as_str()), (vec![msg], "btcts"));
        let auth = AuthInfo::decode(raw.auth_info_bytes.as_slice()).expect("auth info");
        let signer = &auth.signer_infos[0];
        assert_eq!(signer.sequence, 42);
        let secp = Secp256k1::new();
        assert_eq!(
            signer.public_key,
            Some(public_key_any(&key.public_key(&secp)))
        );
        let fee = auth.fee.expect("fee");
        assert_eq!(
            (fee.gas_limit, fee.amount[0].amount.as_str()),
            (400_000, "2000")
        );
        let doc = SignDoc::decode(tx.sign_doc.as_slice()).expect("sign doc");
        assert_eq!(
            (doc.chain_id.as_str(), doc.account_number),
            ("consumer-1", 7)
        );
        assert_eq!(
            (doc.body_bytes, doc.auth_info_bytes),
            (raw.body_bytes, raw.auth_info_bytes)
        );
        let sig = Signature::from_compact(&raw.signatures[0]).expect("64 bytes");
        let digest = sha256::Hash::hash(&tx.sign_doc).to_byte_array();
        secp.verify_ecdsa(
            &SecpMessage::from_digest(digest),
            &sig,
            &key.public_key(&secp),
        )
        .expect("verifies");
        // Another account sequence is another signature.
        let again = sign_tx(
            vec![],
            &TxParams {
                sequence: 43,
                ..params()
            },
            &key,
        );
        assert_ne!(again.sign_doc, tx.sign_doc);
    }

    #[test]
    fn addresses_are_bech32_of_the_key_hash() {
        let key = SecretKey::from_slice(&[3; 32]).expect("key");
        let public = key.public_key(&Secp256k1::new());
        let a = address(&public, "cosmos").expect("address");
        let (hrp, data) = bech32::decode(&a).expect("bech32");
        assert_eq!(hrp.as_str(), "cosmos");
        assert_eq!(data.len(), 20);
        assert_eq!(
            data,
            ripemd160::Hash::hash(sha256::Hash::hash(&public.serialize()).as_byte_array())
                .to_byte_array()
                .to_vec()
        );
        assert!(address(&public, "bad prefix").is_err());
    }
}
