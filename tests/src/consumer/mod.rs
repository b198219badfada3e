//! A consumer chain for tests, on the real ibc-rs 0.57 core handlers: an
//! in-process host whose light client of btcts is a 06-solomachine v3 client
//! written to ibc-go's rules (signatures over `SignBytes` with the raw ICS-24
//! key, sequence incremented per verified proof, timestamps never going
//! back, key rotation by header, two signatures at one sequence freezing the
//! client), and the `btcts` application that checks every packet with
//! [`btcts_consumer::verify_packet`] and acknowledges with the result.
//!
//! ibc-testkit's contexts are fixed to its own client types (Tendermint and
//! mock), so the host is this module's; everything else — message decoding,
//! the connection, channel and packet handlers, commitments, events — is
//! ibc-rs's own, reached through `ibc::entrypoint::dispatch`.
#![allow(clippy::too_many_arguments)]

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ibc::channel::types::acknowledgement::{Acknowledgement, AcknowledgementStatus, StatusValue};
use ibc::channel::types::channel::{ChannelEnd, Counterparty as ChanCounterparty, Order};
use ibc::channel::types::commitment::{AcknowledgementCommitment, PacketCommitment};
use ibc::channel::types::error::ChannelError;
use ibc::channel::types::packet::{Packet, Receipt};
use ibc::channel::types::Version as ChanVersion;
use ibc::client::context::client_state::{
    ClientStateCommon, ClientStateExecution, ClientStateValidation,
};
use ibc::client::context::consensus_state::ConsensusState;
use ibc::client::context::{ClientExecutionContext, ClientValidationContext};
use ibc::client::types::error::ClientError;
use ibc::client::types::{Height, Status};
use ibc::commitment_types::commitment::{CommitmentPrefix, CommitmentProofBytes, CommitmentRoot};
use ibc::connection::types::ConnectionEnd;
use ibc::entrypoint::dispatch;
use ibc::handler::types::error::HandlerError;
use ibc::handler::types::events::IbcEvent;
use ibc::handler::types::msgs::MsgEnvelope;
use ibc::host::types::error::HostError;
use ibc::host::types::identifiers::{
    ChannelId, ClientId, ClientType, ConnectionId, PortId, Sequence,
};
use ibc::host::types::path::{
    AckPath, ChannelEndPath, ClientConnectionPath, ClientConsensusStatePath, ClientStatePath,
    CommitmentPath, ConnectionPath, Path, PathBytes, ReceiptPath, SeqAckPath, SeqRecvPath,
    SeqSendPath,
};
use ibc::host::{ExecutionContext, ValidationContext};
use ibc::primitives::proto::Any;
use ibc::primitives::{Signer, Timestamp};
use ibc::router::module::Module;
use ibc::router::router::Router;
use ibc::router::types::module::{ModuleExtras, ModuleId};
use ibc_proto::cosmos::tx::signing::v1beta1::signature_descriptor::{data::Sum, Data as SigData};
use ibc_proto::ibc::lightclients::solomachine::v3 as sm;
use prost::Message;

use btcts_consumer::verify_packet;
use btcts_consumer::{ConsumerParams, PacketError, TrustedHeader, VerifiedPacket};

pub const SM_CLIENT_STATE_URL: &str = "/ibc.lightclients.solomachine.v3.ClientState";
pub const SM_CONSENSUS_STATE_URL: &str = "/ibc.lightclients.solomachine.v3.ConsensusState";
pub const SM_HEADER_URL: &str = "/ibc.lightclients.solomachine.v3.Header";
pub const SM_MISBEHAVIOUR_URL: &str = "/ibc.lightclients.solomachine.v3.Misbehaviour";
pub const SENTINEL_HEADER_PATH: &[u8] = b"solomachine:header";
const HOST_CS_URL: &str = "/ibc.lightclients.tendermint.v1.ConsensusState";

fn cerr(s: impl ToString) -> ClientError {
    ClientError::ClientSpecific {
        description: s.to_string(),
    }
}

/// Verifies a solo-machine signature as ibc-go does for a secp256k1 key:
/// `signature_data` is a single `SignatureDescriptor.Data` with a 64-byte
/// low-S `r ‖ s` over `sha256(sign_bytes)`, under the consensus state's key.
pub fn verify_sig(
    consensus: &sm::ConsensusState,
    sign_bytes: &[u8],
    signature_data: &[u8],
) -> Result<(), ClientError> {
    use bitcoin::hashes::{sha256, Hash};
    use bitcoin::secp256k1::{ecdsa::Signature, Message as SecpMessage, PublicKey, Secp256k1};
    let key_any = consensus
        .public_key
        .as_ref()
        .ok_or_else(|| cerr("no public key"))?;
    if key_any.type_url != ibc_relay::signer::SECP256K1_PUBKEY_TYPE_URL {
        return Err(cerr(format!("unsupported key type {}", key_any.type_url)));
    }
    let key = ibc_proto::cosmos::crypto::secp256k1::PubKey::decode(key_any.value.as_slice())
        .map_err(cerr)?;
    let key = PublicKey::from_slice(&key.key).map_err(cerr)?;
    let data = SigData::decode(signature_data).map_err(cerr)?;
    // Stricter than ibc-go, which ignores the mode and re-encodings of the
    // proof wrapper (they do not change what is signed): here a proof must
    // be exactly what the service's signer writes, so that no bit of it can
    // change unnoticed.
    if data.encode_to_vec() != signature_data {
        return Err(cerr("signature data is not canonically encoded"));
    }
    let signature = match data.sum {
        Some(Sum::Single(s))
            if s.signature.len() == 64
                && s.mode == ibc_proto::cosmos::tx::signing::v1beta1::SignMode::Direct as i32 =>
        {
            s.signature
        }
        _ => return Err(cerr("expected a single 64-byte SIGN_MODE_DIRECT signature")),
    };
    let signature = Signature::from_compact(&signature).map_err(cerr)?;
    let mut low = signature;
    low.normalize_s();
    if low != signature {
        return Err(cerr("signature is not low-S"));
    }
    let digest = sha256::Hash::hash(sign_bytes).to_byte_array();
    Secp256k1::verification_only()
        .verify_ecdsa(&SecpMessage::from_digest(digest), &signature, &key)
        .map_err(|_| cerr("signature verification failed"))
}

mod app;
mod host;
mod solo;

pub use app::*;
pub use host::*;
pub use solo::*;
