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
const HOST_CS_URL: &str = "/btcts.test.HostConsensusState";

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

// ---------------------------------------------------------------- solo store (shared)
#[derive(Debug, Clone, Default)]
pub struct SoloStore {
    pub clients: BTreeMap<ClientId, sm::ClientState>,
    pub update_meta: BTreeMap<ClientId, (Timestamp, Height)>,
}
pub type SharedSolo = Arc<Mutex<SoloStore>>;

// ---------------------------------------------------------------- client state (handle)
#[derive(Debug, Clone)]
pub struct SoloClientState {
    pub raw: sm::ClientState,
    /// Set when loaded from the host store; lets `&self` verify_membership persist sequence++.
    bound: Option<(ClientId, SharedSolo)>,
}

impl TryFrom<Any> for SoloClientState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        if any.type_url != SM_CLIENT_STATE_URL {
            return Err(ClientError::InvalidClientStateType(any.type_url));
        }
        let raw = sm::ClientState::decode(any.value.as_slice()).map_err(cerr)?;
        if raw.sequence == 0 || raw.consensus_state.is_none() {
            return Err(cerr("invalid solomachine client state"));
        }
        Ok(Self { raw, bound: None })
    }
}
impl From<SoloClientState> for Any {
    fn from(cs: SoloClientState) -> Any {
        Any {
            type_url: SM_CLIENT_STATE_URL.into(),
            value: cs.raw.encode_to_vec(),
        }
    }
}

impl ClientStateCommon for SoloClientState {
    fn verify_consensus_state(&self, cs: Any, _host_ts: &Timestamp) -> Result<(), ClientError> {
        SoloConsensusState::try_from(cs).map(|_| ())
    }
    fn client_type(&self) -> ClientType {
        "06-solomachine".parse().expect("valid client type")
    }
    fn latest_height(&self) -> Height {
        Height::new(0, self.raw.sequence).expect("sequence != 0")
    }
    fn validate_proof_height(&self, h: Height) -> Result<(), ClientError> {
        if h.revision_number() != 0 {
            return Err(cerr("solomachine proof height revision must be 0"));
        }
        Ok(())
    }
    fn verify_upgrade_client(
        &self,
        _: Any,
        _: Any,
        _: CommitmentProofBytes,
        _: CommitmentProofBytes,
        _: &CommitmentRoot,
    ) -> Result<(), ClientError> {
        Err(cerr("solomachine cannot be upgraded"))
    }
    fn serialize_path(&self, path: Path) -> Result<PathBytes, ClientError> {
        Ok(PathBytes::from_bytes(path.to_string().as_bytes()))
    }
    fn verify_membership_raw(
        &self,
        _prefix: &CommitmentPrefix,
        proof: &CommitmentProofBytes,
        _root: &CommitmentRoot,
        path: PathBytes,
        value: Vec<u8>,
    ) -> Result<(), ClientError> {
        let (id, shared) = self
            .bound
            .as_ref()
            .ok_or_else(|| cerr("unbound client state"))?;
        let mut st = shared.lock().map_err(|_| cerr("poisoned"))?;
        let cs = st
            .clients
            .get_mut(id)
            .ok_or_else(|| cerr("missing client"))?;
        if cs.is_frozen {
            return Err(ClientError::InvalidStatus(Status::Frozen));
        }
        let tsd = sm::TimestampedSignatureData::decode(proof.as_ref()).map_err(cerr)?;
        if tsd.encode_to_vec().as_slice() != AsRef::<[u8]>::as_ref(proof) {
            return Err(cerr("proof is not canonically encoded"));
        }
        let cons = cs
            .consensus_state
            .clone()
            .ok_or_else(|| cerr("no consensus state"))?;
        if tsd.signature_data.is_empty() || cons.timestamp > tsd.timestamp {
            return Err(cerr("bad proof"));
        }
        let sign_bytes = sm::SignBytes {
            sequence: cs.sequence,
            timestamp: tsd.timestamp,
            diversifier: cons.diversifier.clone(),
            path: path.into_vec(),
            data: value,
        }
        .encode_to_vec();
        verify_sig(&cons, &sign_bytes, &tsd.signature_data)?;
        cs.sequence += 1;
        if let Some(c) = cs.consensus_state.as_mut() {
            c.timestamp = tsd.timestamp;
        }
        Ok(())
    }
    fn verify_non_membership_raw(
        &self,
        _: &CommitmentPrefix,
        _: &CommitmentProofBytes,
        _: &CommitmentRoot,
        _: PathBytes,
    ) -> Result<(), ClientError> {
        Err(cerr("non-membership (timeouts) not supported"))
    }
}

impl ClientStateValidation<Host> for SoloClientState {
    fn verify_client_message(
        &self,
        _ctx: &Host,
        _id: &ClientId,
        msg: Any,
    ) -> Result<(), ClientError> {
        let cons = self
            .raw
            .consensus_state
            .clone()
            .ok_or_else(|| cerr("no consensus state"))?;
        match msg.type_url.as_str() {
            SM_HEADER_URL => {
                let h = sm::Header::decode(msg.value.as_slice()).map_err(cerr)?;
                if h.timestamp < cons.timestamp {
                    return Err(cerr("header timestamp goes backwards"));
                }
                if h.new_public_key.is_none() || h.new_diversifier.trim().is_empty() {
                    return Err(cerr("header without a new key or diversifier"));
                }
                let data = sm::HeaderData {
                    new_pub_key: h.new_public_key.clone(),
                    new_diversifier: h.new_diversifier.clone(),
                }
                .encode_to_vec();
                let sign_bytes = sm::SignBytes {
                    sequence: self.raw.sequence,
                    timestamp: h.timestamp,
                    diversifier: cons.diversifier.clone(),
                    path: SENTINEL_HEADER_PATH.to_vec(),
                    data,
                }
                .encode_to_vec();
                verify_sig(&cons, &sign_bytes, &h.signature)
            }
            SM_MISBEHAVIOUR_URL => {
                let m = sm::Misbehaviour::decode(msg.value.as_slice()).map_err(cerr)?;
                let (one, two) = match (&m.signature_one, &m.signature_two) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(cerr("misbehaviour needs two signatures")),
                };
                if m.sequence == 0 {
                    return Err(cerr("misbehaviour at sequence 0"));
                }
                if one.signature == two.signature {
                    return Err(cerr("misbehaviour signatures cannot be equal"));
                }
                if one.path == two.path && one.data == two.data {
                    return Err(cerr("misbehaviour must sign different messages"));
                }
                for sd in [one, two] {
                    let sign_bytes = sm::SignBytes {
                        sequence: m.sequence,
                        timestamp: sd.timestamp,
                        diversifier: cons.diversifier.clone(),
                        path: sd.path.clone(),
                        data: sd.data.clone(),
                    }
                    .encode_to_vec();
                    verify_sig(&cons, &sign_bytes, &sd.signature)?;
                }
                Ok(())
            }
            other => Err(ClientError::InvalidHeaderType(other.to_string())),
        }
    }
    fn check_for_misbehaviour(
        &self,
        _: &Host,
        _: &ClientId,
        msg: Any,
    ) -> Result<bool, ClientError> {
        Ok(msg.type_url == SM_MISBEHAVIOUR_URL)
    }
    fn status(&self, _: &Host, _: &ClientId) -> Result<Status, ClientError> {
        Ok(if self.raw.is_frozen {
            Status::Frozen
        } else {
            Status::Active
        })
    }
    fn check_substitute(&self, _: &Host, _: Any) -> Result<(), ClientError> {
        Err(cerr("unsupported"))
    }
}

impl ClientStateExecution<Host> for SoloClientState {
    fn initialise(&self, ctx: &mut Host, id: &ClientId, cons: Any) -> Result<(), ClientError> {
        let cons = SoloConsensusState::try_from(cons)?;
        if Some(&cons.raw) != self.raw.consensus_state.as_ref() {
            return Err(cerr("initial consensus state mismatch"));
        }
        let h = self.latest_height();
        ctx.store_client_state(ClientStatePath::new(id.clone()), self.clone())?;
        ctx.store_consensus_state(
            ClientConsensusStatePath::new(id.clone(), 0, h.revision_height()),
            cons,
        )?;
        let (t, hh) = (ctx.host_time, ctx.host_height_v);
        ctx.store_update_meta(id.clone(), h, t, hh)?;
        Ok(())
    }
    fn update_state(
        &self,
        ctx: &mut Host,
        id: &ClientId,
        header: Any,
    ) -> Result<Vec<Height>, ClientError> {
        let h = sm::Header::decode(header.value.as_slice()).map_err(cerr)?;
        let mut raw = self.raw.clone();
        raw.sequence += 1;
        raw.consensus_state = Some(sm::ConsensusState {
            public_key: h.new_public_key,
            diversifier: h.new_diversifier,
            timestamp: h.timestamp,
        });
        let new = SoloClientState { raw, bound: None };
        let height = new.latest_height();
        ctx.store_client_state(ClientStatePath::new(id.clone()), new)?;
        Ok(vec![height])
    }
    fn update_state_on_misbehaviour(
        &self,
        ctx: &mut Host,
        id: &ClientId,
        _: Any,
    ) -> Result<(), ClientError> {
        let mut raw = self.raw.clone();
        raw.is_frozen = true;
        ctx.store_client_state(
            ClientStatePath::new(id.clone()),
            SoloClientState { raw, bound: None },
        )?;
        Ok(())
    }
    fn update_state_on_upgrade(
        &self,
        _: &mut Host,
        _: &ClientId,
        _: Any,
        _: Any,
    ) -> Result<Height, ClientError> {
        Err(cerr("unsupported"))
    }
    fn update_on_recovery(
        &self,
        _: &mut Host,
        _: &ClientId,
        _: Any,
        _: Any,
    ) -> Result<(), ClientError> {
        Err(cerr("unsupported"))
    }
}

// ---------------------------------------------------------------- consensus state
#[derive(Debug, Clone, PartialEq)]
pub struct SoloConsensusState {
    pub raw: sm::ConsensusState,
    root: CommitmentRoot,
}
impl TryFrom<Any> for SoloConsensusState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        if any.type_url != SM_CONSENSUS_STATE_URL {
            return Err(cerr("not a solomachine consensus state"));
        }
        let raw = sm::ConsensusState::decode(any.value.as_slice()).map_err(cerr)?;
        if raw.timestamp == 0 || raw.diversifier.trim().is_empty() || raw.public_key.is_none() {
            return Err(cerr("invalid solomachine consensus state"));
        }
        Ok(Self::from_raw(raw))
    }
}
impl SoloConsensusState {
    pub fn from_raw(raw: sm::ConsensusState) -> Self {
        Self {
            raw,
            root: CommitmentRoot::from_bytes(&[0]),
        }
    }
}
impl From<SoloConsensusState> for Any {
    fn from(c: SoloConsensusState) -> Any {
        Any {
            type_url: SM_CONSENSUS_STATE_URL.into(),
            value: c.raw.encode_to_vec(),
        }
    }
}
impl ConsensusState for SoloConsensusState {
    fn root(&self) -> &CommitmentRoot {
        &self.root
    }
    fn timestamp(&self) -> Result<Timestamp, ClientError> {
        Ok(Timestamp::from_nanoseconds(self.raw.timestamp))
    }
}

// ---------------------------------------------------------------- host's own consensus state + opaque self client
#[derive(Debug, Clone, PartialEq)]
pub struct HostConsState {
    pub height: Height,
    pub time: Timestamp,
    root: CommitmentRoot,
}
impl TryFrom<Any> for HostConsState {
    type Error = ClientError;
    fn try_from(_: Any) -> Result<Self, ClientError> {
        Err(cerr("never decoded"))
    }
}
impl From<HostConsState> for Any {
    fn from(c: HostConsState) -> Any {
        let raw = ibc_proto::ibc::core::client::v1::Height {
            revision_number: c.height.revision_number(),
            revision_height: c.height.revision_height(),
        };
        let mut value = raw.encode_to_vec();
        value.extend_from_slice(&c.time.nanoseconds().to_be_bytes());
        Any {
            type_url: HOST_CS_URL.into(),
            value,
        }
    }
}
impl ConsensusState for HostConsState {
    fn root(&self) -> &CommitmentRoot {
        &self.root
    }
    fn timestamp(&self) -> Result<Timestamp, ClientError> {
        Ok(self.time)
    }
}

/// Whatever `client_state` Any the counterparty put in MsgConnectionOpenAck; accepted as-is.
#[derive(Debug, Clone)]
pub struct OpaqueSelfClient(pub Any);
impl TryFrom<Any> for OpaqueSelfClient {
    type Error = ClientError;
    fn try_from(a: Any) -> Result<Self, ClientError> {
        Ok(Self(a))
    }
}
impl From<OpaqueSelfClient> for Any {
    fn from(c: OpaqueSelfClient) -> Any {
        c.0
    }
}
impl ClientStateCommon for OpaqueSelfClient {
    fn verify_consensus_state(&self, _: Any, _: &Timestamp) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
    fn client_type(&self) -> ClientType {
        "99-opaque".parse().expect("valid")
    }
    fn latest_height(&self) -> Height {
        Height::min(0)
    }
    fn validate_proof_height(&self, _: Height) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
    fn verify_upgrade_client(
        &self,
        _: Any,
        _: Any,
        _: CommitmentProofBytes,
        _: CommitmentProofBytes,
        _: &CommitmentRoot,
    ) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
    fn serialize_path(&self, _: Path) -> Result<PathBytes, ClientError> {
        Err(cerr("opaque"))
    }
    fn verify_membership_raw(
        &self,
        _: &CommitmentPrefix,
        _: &CommitmentProofBytes,
        _: &CommitmentRoot,
        _: PathBytes,
        _: Vec<u8>,
    ) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
    fn verify_non_membership_raw(
        &self,
        _: &CommitmentPrefix,
        _: &CommitmentProofBytes,
        _: &CommitmentRoot,
        _: PathBytes,
    ) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
}
impl ClientStateValidation<Host> for OpaqueSelfClient {
    fn verify_client_message(&self, _: &Host, _: &ClientId, _: Any) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
    fn check_for_misbehaviour(&self, _: &Host, _: &ClientId, _: Any) -> Result<bool, ClientError> {
        Err(cerr("opaque"))
    }
    fn status(&self, _: &Host, _: &ClientId) -> Result<Status, ClientError> {
        Ok(Status::Active)
    }
    fn check_substitute(&self, _: &Host, _: Any) -> Result<(), ClientError> {
        Err(cerr("opaque"))
    }
}

// ---------------------------------------------------------------- host
#[derive(Debug, Clone, Default)]
pub struct CoreStore {
    pub client_counter: u64,
    pub conn_counter: u64,
    pub chan_counter: u64,
    pub connections: BTreeMap<ConnectionId, ConnectionEnd>,
    pub client_conns: BTreeMap<ClientId, Vec<ConnectionId>>,
    pub channels: BTreeMap<(PortId, ChannelId), ChannelEnd>,
    pub seq_send: BTreeMap<(PortId, ChannelId), Sequence>,
    pub seq_recv: BTreeMap<(PortId, ChannelId), Sequence>,
    pub seq_ack: BTreeMap<(PortId, ChannelId), Sequence>,
    pub commitments: BTreeMap<(PortId, ChannelId, Sequence), PacketCommitment>,
    pub receipts: BTreeSet<(PortId, ChannelId, Sequence)>,
    pub acks: BTreeMap<(PortId, ChannelId, Sequence), AcknowledgementCommitment>,
    pub events: Vec<IbcEvent>,
    pub logs: Vec<String>,
}

#[derive(Debug)]
pub struct Host {
    pub solo: SharedSolo,
    pub core: CoreStore,
    pub host_height_v: Height,
    pub host_time: Timestamp,
    pub host_history: BTreeMap<Height, Timestamp>,
}

impl Host {
    /// A host at height 1, time `start_ns`.
    pub fn new(start_ns: u64) -> Host {
        let height = Height::new(0, 1).expect("non-zero");
        let time = Timestamp::from_nanoseconds(start_ns);
        Host {
            solo: Arc::new(Mutex::new(SoloStore::default())),
            core: CoreStore::default(),
            host_height_v: height,
            host_time: time,
            host_history: BTreeMap::from([(height, time)]),
        }
    }

    /// Decodes `any` as ibc-rs does for a transaction's message and delivers it.
    pub fn deliver_any(&mut self, router: &mut impl Router, any: Any) -> anyhow::Result<()> {
        let msg = MsgEnvelope::try_from(any).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
        self.deliver(router, msg)
            .map_err(|e| anyhow::anyhow!("handler: {e}"))
    }

    /// The client's current state.
    pub fn solo_client(&self, id: &str) -> Option<sm::ClientState> {
        let id: ClientId = id.parse().ok()?;
        self.solo.lock().ok()?.clients.get(&id).cloned()
    }

    /// The host's own consensus state at `height`, as the counterparty proves it.
    pub fn self_consensus_any(&self, height: Height) -> Option<Any> {
        self.host_consensus_state(&height).ok().map(Any::from)
    }

    /// Moves the host one block and `dt` forward.
    pub fn advance(&mut self, dt: Duration) {
        self.host_height_v = self.host_height_v.increment();
        self.host_time = (self.host_time + dt).expect("no overflow");
        self.host_history.insert(self.host_height_v, self.host_time);
    }
    /// tx semantics: any Err rolls back everything, including solo sequence bumps made in validate.
    pub fn deliver(
        &mut self,
        router: &mut impl Router,
        msg: MsgEnvelope,
    ) -> Result<(), HandlerError> {
        let core = self.core.clone();
        let solo = self.solo.lock().expect("lock").clone();
        let r = dispatch(self, router, msg);
        if r.is_err() {
            self.core = core;
            *self.solo.lock().expect("lock") = solo;
        }
        r
    }
}

fn key2(p: &PortId, c: &ChannelId) -> (PortId, ChannelId) {
    (p.clone(), c.clone())
}

impl ClientValidationContext for Host {
    type ClientStateRef = SoloClientState;
    type ConsensusStateRef = SoloConsensusState;
    fn client_state(&self, id: &ClientId) -> Result<SoloClientState, HostError> {
        let st = self
            .solo
            .lock()
            .map_err(|_| HostError::invalid_state("poisoned"))?;
        let raw = st
            .clients
            .get(id)
            .cloned()
            .ok_or_else(|| HostError::missing_state(format!("client {id}")))?;
        Ok(SoloClientState {
            raw,
            bound: Some((id.clone(), self.solo.clone())),
        })
    }
    /// Solo machine has ONE current consensus state; height in the path is ignored.
    fn consensus_state(
        &self,
        p: &ClientConsensusStatePath,
    ) -> Result<SoloConsensusState, HostError> {
        let st = self
            .solo
            .lock()
            .map_err(|_| HostError::invalid_state("poisoned"))?;
        let cs = st
            .clients
            .get(&p.client_id)
            .and_then(|c| c.consensus_state.clone())
            .ok_or_else(|| HostError::missing_state("consensus state"))?;
        Ok(SoloConsensusState::from_raw(cs))
    }
    fn client_update_meta(
        &self,
        id: &ClientId,
        _h: &Height,
    ) -> Result<(Timestamp, Height), HostError> {
        let st = self
            .solo
            .lock()
            .map_err(|_| HostError::invalid_state("poisoned"))?;
        st.update_meta
            .get(id)
            .copied()
            .ok_or_else(|| HostError::missing_state("update meta"))
    }
}

impl ClientExecutionContext for Host {
    type ClientStateMut = SoloClientState;
    fn store_client_state(
        &mut self,
        p: ClientStatePath,
        cs: SoloClientState,
    ) -> Result<(), HostError> {
        self.solo
            .lock()
            .map_err(|_| HostError::invalid_state("poisoned"))?
            .clients
            .insert(p.0, cs.raw);
        Ok(())
    }
    fn store_consensus_state(
        &mut self,
        _p: ClientConsensusStatePath,
        _c: SoloConsensusState,
    ) -> Result<(), HostError> {
        Ok(()) // lives inside sm::ClientState.consensus_state
    }
    fn delete_consensus_state(&mut self, _: ClientConsensusStatePath) -> Result<(), HostError> {
        Ok(())
    }
    fn store_update_meta(
        &mut self,
        id: ClientId,
        _h: Height,
        t: Timestamp,
        hh: Height,
    ) -> Result<(), HostError> {
        self.solo
            .lock()
            .map_err(|_| HostError::invalid_state("poisoned"))?
            .update_meta
            .insert(id, (t, hh));
        Ok(())
    }
    fn delete_update_meta(&mut self, _: ClientId, _: Height) -> Result<(), HostError> {
        Ok(())
    }
}

impl ValidationContext for Host {
    type V = Self;
    type HostClientState = OpaqueSelfClient;
    type HostConsensusState = HostConsState;
    fn get_client_validation_context(&self) -> &Self {
        self
    }
    fn host_height(&self) -> Result<Height, HostError> {
        Ok(self.host_height_v)
    }
    fn host_timestamp(&self) -> Result<Timestamp, HostError> {
        Ok(self.host_time)
    }
    fn host_consensus_state(&self, h: &Height) -> Result<HostConsState, HostError> {
        let t = self
            .host_history
            .get(h)
            .copied()
            .ok_or_else(|| HostError::missing_state(format!("host cs at {h}")))?;
        Ok(HostConsState {
            height: *h,
            time: t,
            root: CommitmentRoot::from_bytes(&[0]),
        })
    }
    fn client_counter(&self) -> Result<u64, HostError> {
        Ok(self.core.client_counter)
    }
    fn connection_end(&self, id: &ConnectionId) -> Result<ConnectionEnd, HostError> {
        self.core
            .connections
            .get(id)
            .cloned()
            .ok_or_else(|| HostError::missing_state(format!("conn {id}")))
    }
    fn validate_self_client(&self, _cs: OpaqueSelfClient) -> Result<(), HostError> {
        Ok(())
    }
    fn commitment_prefix(&self) -> CommitmentPrefix {
        CommitmentPrefix::from(b"ibc".to_vec())
    }
    fn connection_counter(&self) -> Result<u64, HostError> {
        Ok(self.core.conn_counter)
    }
    fn channel_end(&self, p: &ChannelEndPath) -> Result<ChannelEnd, HostError> {
        self.core
            .channels
            .get(&key2(&p.0, &p.1))
            .cloned()
            .ok_or_else(|| HostError::missing_state("channel"))
    }
    fn get_next_sequence_send(&self, p: &SeqSendPath) -> Result<Sequence, HostError> {
        self.core
            .seq_send
            .get(&key2(&p.0, &p.1))
            .copied()
            .ok_or_else(|| HostError::missing_state("seq send"))
    }
    fn get_next_sequence_recv(&self, p: &SeqRecvPath) -> Result<Sequence, HostError> {
        self.core
            .seq_recv
            .get(&key2(&p.0, &p.1))
            .copied()
            .ok_or_else(|| HostError::missing_state("seq recv"))
    }
    fn get_next_sequence_ack(&self, p: &SeqAckPath) -> Result<Sequence, HostError> {
        self.core
            .seq_ack
            .get(&key2(&p.0, &p.1))
            .copied()
            .ok_or_else(|| HostError::missing_state("seq ack"))
    }
    fn get_packet_commitment(&self, p: &CommitmentPath) -> Result<PacketCommitment, HostError> {
        self.core
            .commitments
            .get(&(p.port_id.clone(), p.channel_id.clone(), p.sequence))
            .cloned()
            .ok_or_else(|| HostError::missing_state("commitment"))
    }
    fn get_packet_receipt(&self, p: &ReceiptPath) -> Result<Receipt, HostError> {
        Ok(
            if self
                .core
                .receipts
                .contains(&(p.port_id.clone(), p.channel_id.clone(), p.sequence))
            {
                Receipt::Ok
            } else {
                Receipt::None
            },
        )
    }
    fn get_packet_acknowledgement(
        &self,
        p: &AckPath,
    ) -> Result<AcknowledgementCommitment, HostError> {
        self.core
            .acks
            .get(&(p.port_id.clone(), p.channel_id.clone(), p.sequence))
            .cloned()
            .ok_or_else(|| HostError::missing_state("ack")) // MUST be Err when absent
    }
    fn channel_counter(&self) -> Result<u64, HostError> {
        Ok(self.core.chan_counter)
    }
    fn max_expected_time_per_block(&self) -> Duration {
        Duration::from_secs(3)
    }
    fn validate_message_signer(&self, _: &Signer) -> Result<(), HostError> {
        Ok(())
    }
}

impl ExecutionContext for Host {
    type E = Self;
    fn get_client_execution_context(&mut self) -> &mut Self {
        self
    }
    fn increase_client_counter(&mut self) -> Result<(), HostError> {
        self.core.client_counter += 1;
        Ok(())
    }
    fn store_connection(&mut self, p: &ConnectionPath, c: ConnectionEnd) -> Result<(), HostError> {
        self.core.connections.insert(p.0.clone(), c);
        Ok(())
    }
    fn store_connection_to_client(
        &mut self,
        p: &ClientConnectionPath,
        id: ConnectionId,
    ) -> Result<(), HostError> {
        self.core
            .client_conns
            .entry(p.0.clone())
            .or_default()
            .push(id);
        Ok(())
    }
    fn increase_connection_counter(&mut self) -> Result<(), HostError> {
        self.core.conn_counter += 1;
        Ok(())
    }
    fn store_packet_commitment(
        &mut self,
        p: &CommitmentPath,
        c: PacketCommitment,
    ) -> Result<(), HostError> {
        self.core
            .commitments
            .insert((p.port_id.clone(), p.channel_id.clone(), p.sequence), c);
        Ok(())
    }
    fn delete_packet_commitment(&mut self, p: &CommitmentPath) -> Result<(), HostError> {
        self.core
            .commitments
            .remove(&(p.port_id.clone(), p.channel_id.clone(), p.sequence));
        Ok(())
    }
    fn store_packet_receipt(&mut self, p: &ReceiptPath, _: Receipt) -> Result<(), HostError> {
        self.core
            .receipts
            .insert((p.port_id.clone(), p.channel_id.clone(), p.sequence));
        Ok(())
    }
    fn store_packet_acknowledgement(
        &mut self,
        p: &AckPath,
        a: AcknowledgementCommitment,
    ) -> Result<(), HostError> {
        self.core
            .acks
            .insert((p.port_id.clone(), p.channel_id.clone(), p.sequence), a);
        Ok(())
    }
    fn delete_packet_acknowledgement(&mut self, p: &AckPath) -> Result<(), HostError> {
        self.core
            .acks
            .remove(&(p.port_id.clone(), p.channel_id.clone(), p.sequence));
        Ok(())
    }
    fn store_channel(&mut self, p: &ChannelEndPath, c: ChannelEnd) -> Result<(), HostError> {
        self.core.channels.insert(key2(&p.0, &p.1), c);
        Ok(())
    }
    fn store_next_sequence_send(&mut self, p: &SeqSendPath, s: Sequence) -> Result<(), HostError> {
        self.core.seq_send.insert(key2(&p.0, &p.1), s);
        Ok(())
    }
    fn store_next_sequence_recv(&mut self, p: &SeqRecvPath, s: Sequence) -> Result<(), HostError> {
        self.core.seq_recv.insert(key2(&p.0, &p.1), s);
        Ok(())
    }
    fn store_next_sequence_ack(&mut self, p: &SeqAckPath, s: Sequence) -> Result<(), HostError> {
        self.core.seq_ack.insert(key2(&p.0, &p.1), s);
        Ok(())
    }
    fn increase_channel_counter(&mut self) -> Result<(), HostError> {
        self.core.chan_counter += 1;
        Ok(())
    }
    fn emit_ibc_event(&mut self, e: IbcEvent) -> Result<(), HostError> {
        self.core.events.push(e);
        Ok(())
    }
    fn log_message(&mut self, m: String) -> Result<(), HostError> {
        self.core.logs.push(m);
        Ok(())
    }
}

// ---------------------------------------------------------------- app module + router
/// The consumer's `btcts` application: checks each packet from its trusted
/// Bitcoin header and acknowledges with the result.
#[derive(Debug)]
pub struct BtctsModule {
    /// The Bitcoin header this chain trusts.
    pub trusted: TrustedHeader,
    /// What it expects of packets.
    pub params: ConsumerParams,
    /// Every packet received, in order, with the app's verdict.
    pub received: Vec<(Packet, Result<VerifiedPacket, PacketError>)>,
}

impl BtctsModule {
    /// An app trusting `trusted` with `params`.
    pub fn new(trusted: TrustedHeader, params: ConsumerParams) -> BtctsModule {
        BtctsModule {
            trusted,
            params,
            received: Vec::new(),
        }
    }
}

/// The acknowledgement the app writes for a verdict.
pub fn acknowledgement(verdict: &Result<VerifiedPacket, PacketError>) -> Acknowledgement {
    use base64::Engine;
    let status = match verdict {
        Ok(v) => {
            let ack = btcts_consumer::TimestampAck {
                chain_id: v.record.chain_id.to_string(),
                height: v.record.height,
                bitcoin_height: v.bitcoin_height,
                depth: v.depth,
            };
            let text = base64::engine::general_purpose::STANDARD.encode(ack.encode_to_vec());
            StatusValue::new(text).map(AcknowledgementStatus::success)
        }
        Err(e) => StatusValue::new(e.to_string()).map(AcknowledgementStatus::error),
    };
    // Neither text is empty.
    status
        .unwrap_or_else(|_| {
            AcknowledgementStatus::error(StatusValue::new("error").expect("non-empty"))
        })
        .into()
}

const BTCTS_VERSION: &str = "btcts-1";

impl Module for BtctsModule {
    fn on_chan_open_init_validate(
        &self,
        order: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        v: &ChanVersion,
    ) -> Result<ChanVersion, ChannelError> {
        if order != Order::Unordered || v.as_str() != BTCTS_VERSION {
            return Err(ChannelError::InvalidState {
                expected: "UNORDERED/btcts-1".into(),
                actual: format!("{order}/{v}"),
            });
        }
        Ok(v.clone())
    }
    fn on_chan_open_init_execute(
        &mut self,
        _: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        v: &ChanVersion,
    ) -> Result<(ModuleExtras, ChanVersion), ChannelError> {
        Ok((ModuleExtras::empty(), v.clone()))
    }
    fn on_chan_open_try_validate(
        &self,
        _: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        _: &ChanVersion,
    ) -> Result<ChanVersion, ChannelError> {
        Err(ChannelError::InvalidState {
            expected: "init side only".into(),
            actual: "try".into(),
        })
    }
    fn on_chan_open_try_execute(
        &mut self,
        _: Order,
        _: &[ConnectionId],
        _: &PortId,
        _: &ChannelId,
        _: &ChanCounterparty,
        _: &ChanVersion,
    ) -> Result<(ModuleExtras, ChanVersion), ChannelError> {
        Err(ChannelError::InvalidState {
            expected: "init side only".into(),
            actual: "try".into(),
        })
    }
    fn on_chan_open_ack_validate(
        &self,
        _: &PortId,
        _: &ChannelId,
        v: &ChanVersion,
    ) -> Result<(), ChannelError> {
        if v.as_str() != BTCTS_VERSION {
            return Err(ChannelError::InvalidState {
                expected: BTCTS_VERSION.into(),
                actual: v.to_string(),
            });
        }
        Ok(())
    }
    fn on_recv_packet_execute(
        &mut self,
        packet: &Packet,
        _: &Signer,
    ) -> (ModuleExtras, Option<Acknowledgement>) {
        let verdict = verify_packet(&packet.data, &self.trusted, &self.params);
        let ack = acknowledgement(&verdict);
        self.received.push((packet.clone(), verdict));
        (ModuleExtras::empty(), Some(ack))
    }
    fn on_acknowledgement_packet_validate(
        &self,
        _: &Packet,
        _: &Acknowledgement,
        _: &Signer,
    ) -> Result<(), ChannelError> {
        Ok(())
    }
    fn on_acknowledgement_packet_execute(
        &mut self,
        _: &Packet,
        _: &Acknowledgement,
        _: &Signer,
    ) -> (ModuleExtras, Result<(), ChannelError>) {
        (ModuleExtras::empty(), Ok(()))
    }
    fn on_timeout_packet_validate(&self, _: &Packet, _: &Signer) -> Result<(), ChannelError> {
        Ok(())
    }
    fn on_timeout_packet_execute(
        &mut self,
        _: &Packet,
        _: &Signer,
    ) -> (ModuleExtras, Result<(), ChannelError>) {
        (ModuleExtras::empty(), Ok(()))
    }
}

#[derive(Debug)]
pub struct BtctsRouter {
    pub module: BtctsModule,
}
impl Router for BtctsRouter {
    fn get_route(&self, id: &ModuleId) -> Option<&dyn Module> {
        (id == &ModuleId::new("btcts".into())).then_some(&self.module as &dyn Module)
    }
    fn get_route_mut(&mut self, id: &ModuleId) -> Option<&mut dyn Module> {
        if id == &ModuleId::new("btcts".into()) {
            Some(&mut self.module)
        } else {
            None
        }
    }
    fn lookup_module(&self, port: &PortId) -> Option<ModuleId> {
        (port.as_str() == "btcts").then(|| ModuleId::new("btcts".into()))
    }
}
