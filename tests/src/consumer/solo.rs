//! The 06-solomachine v3 client (to ibc-go's rules) and the host's own
//! consensus state as counterparties prove it.

use super::*;

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
    pub(crate) bound: Option<(ClientId, SharedSolo)>,
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
    pub(crate) root: CommitmentRoot,
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
    pub(crate) root: CommitmentRoot,
}
impl TryFrom<Any> for HostConsState {
    type Error = ClientError;
    fn try_from(_: Any) -> Result<Self, ClientError> {
        Err(cerr("never decoded"))
    }
}
impl From<HostConsState> for Any {
    /// A Tendermint consensus state, as a light client of this host holds
    /// it: block time, the app hash as root, the next validators' hash.
    fn from(c: HostConsState) -> Any {
        use ibc_proto::ibc::lightclients::tendermint::v1::ConsensusState as TmConsensusState;
        let ns = c.time.nanoseconds();
        let state = TmConsensusState {
            timestamp: Some(ibc_proto::google::protobuf::Timestamp {
                seconds: (ns / 1_000_000_000) as i64,
                nanos: (ns % 1_000_000_000) as i32,
            }),
            root: Some(ibc_proto::ibc::core::commitment::v1::MerkleRoot {
                hash: app_hash(c.height.revision_height()),
            }),
            next_validators_hash: NEXT_VALIDATORS_HASH.to_vec(),
        };
        Any {
            type_url: HOST_CS_URL.into(),
            value: state.encode_to_vec(),
        }
    }
}

/// The host's app hash at `height` (a stand-in for its state root).
pub fn app_hash(height: u64) -> Vec<u8> {
    use bitcoin::hashes::{sha256, Hash};
    let mut preimage = b"btcts test consumer app hash".to_vec();
    preimage.extend_from_slice(&height.to_be_bytes());
    sha256::Hash::hash(&preimage).to_byte_array().to_vec()
}

/// The host's (fixed) next validator set hash.
pub const NEXT_VALIDATORS_HASH: [u8; 32] = [0x5a; 32];

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
