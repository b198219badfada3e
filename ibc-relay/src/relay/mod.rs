//! One consumer chain's relay: the setup (client, connection, channel) and
//! the delivery of each of the chain's records once its anchor is `k` deep.
//!
//! Delivery is strictly one packet at a time, in packet order: each proof
//! uses the solo-machine client's next sequence, so proof `n + 1` is only
//! signed once proof `n` is in a block. Every input of a proof (its
//! sequence and timestamp) is written down before it is signed, and the
//! transaction carrying it before it is broadcast: after a crash the relay
//! signs (gets back) the very same proof and looks its transaction up
//! before it sends anything else. The signer itself refuses to sign other
//! bytes at a used sequence, so nothing here can freeze the client.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aggregator::{BatchSeq, ChainId, Record, Store, StoreError};
use bitcoin::block::Header;
use bitcoin::secp256k1::SecretKey;
use btc_submitter::{complete_proof, BitcoinNode, NodeError};
use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::core::client::v1::Height;
use ibc_proto::ibc::lightclients::tendermint::v1::{
    ClientState as TmClientState, ConsensusState as TmConsensusState,
};
use prost::{Message, Name};
use tracing::{debug, info, warn};

use crate::grpc::{BlockInfo, ChainError, ConsumerNode, TxResult};
use crate::msgs::{self, Link};
use crate::packet::{build_packet, BuildError};
use crate::signer::{Signer, SignerError};
use crate::state::{PacketRecord, PacketState, ProofIntent, RelayStore, SetupState, StateError};
use crate::tx::{Fee, TxError, TxOutcome, TxSender};

mod events;
mod setup;

use events::acknowledgement;
pub use events::{client_state_of, consensus_state_of, revision_number};

/// One consumer chain, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The chain id: of its records here, and of its Cosmos transactions.
    pub chain_id: ChainId,
    /// Its gRPC endpoint.
    pub grpc: String,
    /// Its account address prefix.
    pub bech32_prefix: String,
    /// What each transaction pays.
    pub fee: Fee,
    /// The depth at which a record's proof is sent.
    pub k: u32,
    /// The height of the Bitcoin header the consumer trusts: packets carry
    /// the headers after it.
    pub checkpoint_height: u32,
    /// How long after it is created a packet times out (consumer time).
    pub packet_timeout: Duration,
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The consumer did not answer: try again later.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A transaction could not be submitted.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The relay store.
    #[error(transparent)]
    State(#[from] StateError),
    /// The signer.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The aggregator store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Bitcoin node.
    #[error("bitcoin node: {0}")]
    Node(#[from] NodeError),
    /// The consumer refused a setup step.
    #[error("the consumer refused {step}: {log}")]
    Refused {
        /// The step.
        step: String,
        /// Its reason.
        log: String,
    },
    /// Delivery is halted until the operator acts.
    #[error("delivery halted: {0}")]
    Halted(String),
}

impl RelayError {
    /// Whether retrying later may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        match self {
            RelayError::Chain(e) => e.is_transient(),
            RelayError::Tx(TxError::Chain(e)) => e.is_transient(),
            RelayError::Node(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// What one delivery step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Packets created.
    pub created: usize,
    /// Packets whose transaction landed.
    pub delivered: usize,
    /// Packets timed out and re-created.
    pub resent: usize,
}

/// How many packets one step delivers at most (then the loop polls again).
const PACKETS_PER_STEP: usize = 64;
/// Failed deliveries of one packet before it needs the operator.
const MAX_ATTEMPTS: u32 = 10;
/// A packet is not signed when less than this is left before its timeout.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(5);
/// The most headers a packet carries (the consumer's limit).
const MAX_HEADERS: usize = btcts_consumer::MAX_HEADERS;

/// One consumer chain's relay.
#[derive(Debug)]
pub struct Relay {
    config: ConsumerConfig,
    node: Box<dyn ConsumerNode>,
    signer: Arc<Signer>,
    store: RelayStore,
    sender: TxSender,
    headers: Vec<Header>,
}

/// Now, in nanoseconds since the Unix epoch.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Relay {
    /// The relay of `config`, talking to `node`, proving with `signer`,
    /// paying with `account_key`, remembering in `store`.
    pub fn new(
        config: ConsumerConfig,
        node: Box<dyn ConsumerNode>,
        signer: Arc<Signer>,
        store: RelayStore,
        account_key: SecretKey,
    ) -> Result<Relay, RelayError> {
        let public = account_key.public_key(&bitcoin::secp256k1::Secp256k1::signing_only());
        let address = crate::cosmos::address(&public, &config.bech32_prefix)
            .map_err(|e| RelayError::Halted(e.to_string()))?;
        let sender = TxSender::new(
            account_key,
            address,
            config.chain_id.to_string(),
            config.fee.clone(),
        );
        Ok(Relay {
            config,
            node,
            signer,
            store,
            sender,
            headers: Vec::new(),
        })
    }

    /// The chain's configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// The relayer account's address on the consumer.
    pub fn relayer(&self) -> &str {
        self.sender.address()
    }

    /// The relay store.
    pub fn store(&self) -> &RelayStore {
        &self.store
    }

    pub(crate) fn link(&self, setup: &SetupState) -> Link {
        let mut link = Link::new(setup.client_id.as_deref().unwrap_or_default());
        link.connection_on_consumer = setup.connection_id.clone().unwrap_or_default();
        link.channel_on_consumer = setup.channel_id.clone().unwrap_or_default();
        link
    }

    /// A proof timestamp: now, and never before the last one signed.
    pub(crate) fn timestamp(&self) -> Result<u64, RelayError> {
        Ok(now_ns().max(self.signer.state()?.timestamp))
    }

    /// One round: create packets for records that reached depth `k`, then
    /// deliver open packets in order.
    pub fn step(
        &mut self,
        store: &Store,
        bitcoin: &dyn BitcoinNode,
    ) -> Result<StepReport, RelayError> {
        let mut report = StepReport::default();
        let setup = self.store.setup()?;
        if !setup.complete() {
            return Ok(report);
        }
        if let Some(reason) = self.store.halted()? {
            return Err(RelayError::Halted(reason));
        }
        report.created = self.discover(store, bitcoin)?;
        let link = self.link(&setup);
        for _ in 0..PACKETS_PER_STEP {
            let Some(packet) = self.store.next_open()? else {
                break;
            };
            match self.deliver(&link, packet)? {
                Delivered::Done => report.delivered += 1,
                Delivered::Resent => report.resent += 1,
                Delivered::Later => break,
            }
        }
        metrics::gauge!("btcts_ibc_solo_machine_sequence", "chain" => self.config.chain_id.to_string())
            .set(self.signer.state()?.sequence as f64);
        Ok(report)
    }

    /// Keeps `self.headers` equal to the best chain from the checkpoint's
    /// successor to the tip (at most [`MAX_HEADERS`]).
    fn refresh_headers(&mut self, bitcoin: &dyn BitcoinNode) -> Result<(), RelayError> {
        let first = self.config.checkpoint_height + 1;
        while let Some(last) = self.headers.last() {
            let height = first + (self.headers.len() as u32 - 1);
            if bitcoin.block_hash_at(height)? == Some(last.block_hash()) {
                break;
            }
            self.headers.pop();
        }
        let tip = bitcoin.chain_info()?.tip_height;
        while self.headers.len() < MAX_HEADERS {
            let height = first + self.headers.len() as u32;
            if height > tip {
                break;
            }
            let Some(hash) = bitcoin.block_hash_at(height)? else {
                break;
            };
            self.headers.push(bitcoin.header(&hash)?);
        }
        Ok(())
    }

    /// Creates packets for the records of this chain in every batch, from
    /// the cursor on, whose anchor is at least `k` deep.
    fn discover(&mut self, store: &Store, bitcoin: &dyn BitcoinNode) -> Result<usize, RelayError> {
        let mut created = 0;
        let mut refreshed = false;
        loop {
            let cursor = self.store.cursor()?;
            let Some(batch) = store.batch(BatchSeq(cursor))? else {
                break;
            };
            let Some(mined) = store.anchor(batch.seq)?.and_then(|a| a.mined) else {
                break;
            };
            let deep = bitcoin
                .block_status(&mined.block_hash)?
                .is_some_and(|s| s.confirmations >= i64::from(self.config.k));
            if !deep {
                break;
            }
            if !refreshed {
                self.refresh_headers(bitcoin)?;
                refreshed = true;
            }
            let chain = self.config.chain_id.clone();
            let records = store.batch_records(
                &batch,
                |r| matches!(r, Record::PosBlock(b) if b.chain_id == chain),
            )?;
            let timeout_ns = now_ns().saturating_add(nanos(self.config.packet_timeout));
            let mut packets = Vec::with_capacity(records.len());
            for r in records {
                let Some(proof) = store.proof(&r.id)? else {
                    continue;
                };
                let proof = complete_proof(bitcoin, proof, 0)?;
                let Some(anchor) = proof.anchor.as_ref() else {
                    // Reorged out since: look again next round.
                    return Ok(created);
                };
                let height = match &r.record {
                    Record::PosBlock(b) => b.height,
                    _ => 0,
                };
                let bitcoin_height = anchor.block.height;
                match build_packet(&proof, self.config.checkpoint_height + 1, &self.headers) {
                    Ok(p) => packets.push((
                        PacketRecord::new(r.id, height, bitcoin_height, timeout_ns),
                        p.encode_to_vec(),
                    )),
                    Err(BuildError::AnchorNotInHeaders)
                        if bitcoin_height <= self.config.checkpoint_height =>
                    {
                        // Anchored before the consumer's checkpoint: it
                        // cannot be proven from there. Not an error.
                        debug!(chain = %self.config.chain_id, record = %r.id, bitcoin_height, "anchored before the consumer's checkpoint: not sent");
                        metrics::counter!("btcts_ibc_before_checkpoint_total", "chain" => self.config.chain_id.to_string()).increment(1);
                    }
                    Err(BuildError::AnchorNotInHeaders) => {
                        // Beyond the headers a packet may carry: wait, do
                        // not skip it.
                        return Err(RelayError::Halted(format!(
                            "record {} is anchored at height {bitcoin_height}, more than {MAX_HEADERS} blocks after the consumer's checkpoint ({}): advance the checkpoint on the consumer and in ibc.chains.{}.checkpoint_height",
                            r.id, self.config.checkpoint_height, self.config.chain_id
                        )));
                    }
                    Err(e) => warn!(record = %r.id, error = %e, "not sent"),
                }
            }
            let new = self.store.add_packets(packets, cursor + 1)?;
            for _ in &new {
                self.count("created");
            }
            created += new.len();
        }
        Ok(created)
    }

    fn count(&self, state: &'static str) {
        metrics::counter!("btcts_ibc_packets_total", "chain" => self.config.chain_id.to_string(), "state" => state)
            .increment(1);
    }

    /// Delivers `packet`, or finds it timed out and re-creates it.
    fn deliver(&mut self, link: &Link, mut packet: PacketRecord) -> Result<Delivered, RelayError> {
        let data = self.store.data(packet.sequence)?;
        if packet.proof.is_none() {
            // Not signed yet: a packet past (or about to pass) its timeout
            // is replaced, never signed.
            // The consumer's time, or ours if its last block is older: a
            // packet is never signed when either clock says it expired.
            let now = self.node.latest_block()?.time_ns.max(now_ns());
            if now.saturating_add(nanos(TIMEOUT_MARGIN)) >= packet.timeout_ns {
                let timeout = now.saturating_add(nanos(self.config.packet_timeout));
                let new = self.store.resend(&packet, timeout, &data)?;
                info!(chain = %self.config.chain_id, packet = packet.sequence, resent_as = new, "packet timed out unsent; re-sent as a new packet");
                self.count("timed_out");
                return Ok(Delivered::Resent);
            }
            packet.proof = Some((self.signer.state()?.sequence, self.timestamp()?));
            packet.state = PacketState::Sent;
            self.store.put_packet(&packet)?;
            self.count("sent");
        }
        let Some((sequence, timestamp)) = packet.proof else {
            return Ok(Delivered::Later);
        };
        let ibc_packet = msgs::packet(link, packet.sequence, data, packet.timeout_ns);
        let signer = self.signer.clone();
        let relayer = self.relayer().to_owned();
        let purpose = format!("packet {}", packet.sequence);
        let outcome = self
            .sender
            .submit(self.node.as_ref(), &self.store, &purpose, || {
                msgs::recv_packet(&signer, sequence, ibc_packet, timestamp, &relayer)
                    .map(|(msg, _)| msg)
                    .map_err(|e| StateError(e.to_string()).into())
            });
        let failure = match outcome {
            Ok(TxOutcome::Included(r)) if r.code == 0 => {
                packet.tx_hash = Some(r.hash.clone());
                packet.state = acknowledgement(&r, packet.sequence);
                self.count(packet.state.name());
                self.store.put_packet(&packet)?;
                return Ok(Delivered::Done);
            }
            Ok(TxOutcome::Included(r)) => r.log,
            Ok(TxOutcome::Rejected(b)) => b.log,
            Err(e) => {
                packet.last_error = Some(e.to_string());
                self.store.put_packet(&packet)?;
                return Err(e.into());
            }
        };
        // Its proof was not used: the client still waits for `sequence`.
        packet.attempts += 1;
        packet.last_error = Some(failure.clone());
        let now = self.node.latest_block()?.time_ns;
        let reason = if now >= packet.timeout_ns {
            Some(format!(
                "packet {} timed out after its proof was signed at solo-machine sequence {sequence}; \
                 signing another packet there would let anyone freeze the client. Recover the client \
                 on the consumer, then run `btcts ibc setup --new-client`",
                packet.sequence
            ))
        } else if packet.attempts >= MAX_ATTEMPTS {
            Some(format!(
                "packet {} refused {} times (last: {failure})",
                packet.sequence, packet.attempts
            ))
        } else {
            None
        };
        warn!(chain = %self.config.chain_id, packet = packet.sequence, attempts = packet.attempts, error = %failure, "packet not delivered");
        if let Some(reason) = reason {
            packet.state = PacketState::Stalled {
                reason: reason.clone(),
            };
            self.count("stalled");
            self.store.put_packet(&packet)?;
            self.store.halt(&reason)?;
            return Err(RelayError::Halted(reason));
        }
        self.store.put_packet(&packet)?;
        Ok(Delivered::Later)
    }
}

enum Delivered {
    Done,
    Resent,
    Later,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
