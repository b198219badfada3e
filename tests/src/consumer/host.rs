//! The host: ibc-rs's validation and execution contexts over plain maps,
//! with transaction semantics (a failed message changes nothing).

use super::*;

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
        Host::with_revision(0, start_ns)
    }

    /// A host of revision `revision` (a chain id `name-N` has revision N)
    /// at height 1, time `start_ns`.
    pub fn with_revision(revision: u64, start_ns: u64) -> Host {
        let height = Height::new(revision, 1).expect("non-zero");
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
    /// Moves the host one block forward, to `time_ns` (or 1 ns after the
    /// last block if that is later).
    pub fn advance_to(&mut self, time_ns: u64) {
        let next = self.host_time.nanoseconds().saturating_add(1).max(time_ns);
        self.host_height_v = self.host_height_v.increment();
        self.host_time = Timestamp::from_nanoseconds(next);
        self.host_history.insert(self.host_height_v, self.host_time);
    }

    /// Everything a transaction can change, to restore if one of its
    /// messages fails.
    pub fn snapshot(&self) -> (CoreStore, SoloStore) {
        let solo = self.solo.lock().map(|s| s.clone()).unwrap_or_default();
        (self.core.clone(), solo)
    }

    /// Puts back a [`Host::snapshot`].
    pub fn restore(&mut self, (core, solo): (CoreStore, SoloStore)) {
        self.core = core;
        if let Ok(mut s) = self.solo.lock() {
            *s = solo;
        }
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

fn key3(p: &PortId, c: &ChannelId, s: Sequence) -> (PortId, ChannelId, Sequence) {
    (p.clone(), c.clone(), s)
}

/// `map[key]`, or ibc-rs's missing-state error naming `what` (handlers
/// rely on an error, not a default, for absent state).
fn lookup<K: Ord, V: Clone>(map: &BTreeMap<K, V>, key: &K, what: &str) -> Result<V, HostError> {
    map.get(key)
        .cloned()
        .ok_or_else(|| HostError::missing_state(what))
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
        lookup(&self.core.connections, id, &format!("conn {id}"))
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
        lookup(&self.core.channels, &key2(&p.0, &p.1), "channel")
    }
    fn get_next_sequence_send(&self, p: &SeqSendPath) -> Result<Sequence, HostError> {
        lookup(&self.core.seq_send, &key2(&p.0, &p.1), "seq send")
    }
    fn get_next_sequence_recv(&self, p: &SeqRecvPath) -> Result<Sequence, HostError> {
        lookup(&self.core.seq_recv, &key2(&p.0, &p.1), "seq recv")
    }
    fn get_next_sequence_ack(&self, p: &SeqAckPath) -> Result<Sequence, HostError> {
        lookup(&self.core.seq_ack, &key2(&p.0, &p.1), "seq ack")
    }
    fn get_packet_commitment(&self, p: &CommitmentPath) -> Result<PacketCommitment, HostError> {
        lookup(
            &self.core.commitments,
            &key3(&p.port_id, &p.channel_id, p.sequence),
            "commitment",
        )
    }
    fn get_packet_receipt(&self, p: &ReceiptPath) -> Result<Receipt, HostError> {
        Ok(
            if self
                .core
                .receipts
                .contains(&key3(&p.port_id, &p.channel_id, p.sequence))
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
        lookup(
            &self.core.acks,
            &key3(&p.port_id, &p.channel_id, p.sequence),
            "ack",
        ) // MUST be Err when absent
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
            .insert(key3(&p.port_id, &p.channel_id, p.sequence), c);
        Ok(())
    }
    fn delete_packet_commitment(&mut self, p: &CommitmentPath) -> Result<(), HostError> {
        self.core
            .commitments
            .remove(&key3(&p.port_id, &p.channel_id, p.sequence));
        Ok(())
    }
    fn store_packet_receipt(&mut self, p: &ReceiptPath, _: Receipt) -> Result<(), HostError> {
        self.core
            .receipts
            .insert(key3(&p.port_id, &p.channel_id, p.sequence));
        Ok(())
    }
    fn store_packet_acknowledgement(
        &mut self,
        p: &AckPath,
        a: AcknowledgementCommitment,
    ) -> Result<(), HostError> {
        self.core
            .acks
            .insert(key3(&p.port_id, &p.channel_id, p.sequence), a);
        Ok(())
    }
    fn delete_packet_acknowledgement(&mut self, p: &AckPath) -> Result<(), HostError> {
        self.core
            .acks
            .remove(&key3(&p.port_id, &p.channel_id, p.sequence));
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
