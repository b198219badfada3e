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

use aggregator::{BatchSeq, ChainId, LeafHash, Record, Store, StoreError, StoredRecord};
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
mod follow;
mod setup;

use events::acknowledgement;
pub use events::{client_state_of, consensus_state_of, revision_number};
use follow::HeaderCache;

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
    /// The height of the Bitcoin header the consumer trusted at setup. A
    /// consumer that answers the `btcts.consumer.v1.Query` service is asked
    /// for the headers it trusts now instead; for one that does not, packets
    /// carry the headers after this one.
    pub checkpoint_height: u32,
    /// How long after it is created a packet times out (consumer time).
    pub packet_timeout: Duration,
    /// The chains whose records this consumer receives (its own id, and any
    /// other chain it follows).
    pub sources: Vec<ChainId>,
    /// Which records of an anchored batch become packets.
    pub deliver: Deliver,
    /// Sign the client- and consensus-state proofs of `ConnOpenAck` too
    /// (ibc-go 7.3–8.4 and ibc-rs verify them; ibc-go ≥ 8.5 verifies only
    /// the connection proof, and a proof it does not verify must not use a
    /// solo-machine sequence).
    pub legacy_connection_proofs: bool,
}

/// Which records of an anchored batch are sent to a consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deliver {
    /// Per source chain, only the record with the highest height: a
    /// timestamp of height `h` covers the chain's history up to `h`.
    #[default]
    Latest,
    /// Every record.
    All,
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

/// The records of one batch that become packets, as (id, height), in
/// batch order.
fn select(records: Vec<StoredRecord>, deliver: Deliver) -> Vec<(LeafHash, u64)> {
    let mut out: Vec<(LeafHash, ChainId, u64)> = Vec::with_capacity(records.len());
    for r in records {
        let Record::PosBlock(b) = r.record else {
            continue;
        };
        if deliver == Deliver::Latest {
            if let Some(i) = out.iter().position(|(_, chain, _)| *chain == b.chain_id) {
                if out[i].2 < b.height {
                    out[i] = (r.id, b.chain_id, b.height);
                }
                continue;
            }
        }
        out.push((r.id, b.chain_id, b.height));
    }
    out.into_iter().map(|(id, _, h)| (id, h)).collect()
}

/// One consumer chain's relay.
#[derive(Debug)]
pub struct Relay {
    config: ConsumerConfig,
    node: Box<dyn ConsumerNode>,
    signer: Arc<Signer>,
    store: RelayStore,
    sender: TxSender,
    headers: HeaderCache,
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
            headers: HeaderCache::default(),
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
            match self.deliver(store, bitcoin, &link, packet)? {
                Delivered::Done => report.delivered += 1,
                Delivered::Resent => report.resent += 1,
                Delivered::Later => break,
            }
        }
        metrics::gauge!("btcts_ibc_solo_machine_sequence", "chain" => self.config.chain_id.to_string())
            .set(self.signer.state()?.sequence as f64);
        Ok(report)
    }

    /// Creates packets for the records of the consumer's source chains in
    /// every batch, from the cursor on, whose anchor is at least `k` deep
    /// (per chain only the highest record, when delivering the latest).
    fn discover(&mut self, store: &Store, bitcoin: &dyn BitcoinNode) -> Result<usize, RelayError> {
        let mut created = 0;
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
            let sources = &self.config.sources;
            let records = store.batch_records(
                &batch,
                |r| matches!(r, Record::PosBlock(b) if sources.contains(&b.chain_id)),
            )?;
            let records = select(records, self.config.deliver);
            if mined.height <= self.config.checkpoint_height {
                // Anchored before the consumer's checkpoint: it cannot be
                // proven from there. Not an error.
                debug!(chain = %self.config.chain_id, batch = %batch.seq, height = mined.height, "anchored before the consumer's checkpoint: not sent");
                metrics::counter!("btcts_ibc_before_checkpoint_total", "chain" => self.config.chain_id.to_string()).increment(records.len() as u64);
                self.store.add_packets(Vec::new(), cursor + 1)?;
                continue;
            }
            let timeout_ns = now_ns().saturating_add(nanos(self.config.packet_timeout));
            let packets = records
                .into_iter()
                .map(|(id, height)| PacketRecord::new(id, height, mined.height, timeout_ns))
                .collect();
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
    fn deliver(
        &mut self,
        store: &Store,
        bitcoin: &dyn BitcoinNode,
        link: &Link,
        mut packet: PacketRecord,
    ) -> Result<Delivered, RelayError> {
        let mut data = self.store.data(packet.sequence)?;
        if packet.proof.is_none() {
            // Not signed yet: a packet past (or about to pass) its timeout
            // is replaced, never signed.
            // The consumer's time, or ours if its last block is older: a
            // packet is never signed when either clock says it expired.
            let now = self.node.latest_block()?.time_ns.max(now_ns());
            if now.saturating_add(nanos(TIMEOUT_MARGIN)) >= packet.timeout_ns {
                let timeout = now.saturating_add(nanos(self.config.packet_timeout));
                let new = self.store.resend(&packet, timeout)?;
                info!(chain = %self.config.chain_id, packet = packet.sequence, resent_as = new, "packet timed out unsent; re-sent as a new packet");
                self.count("timed_out");
                return Ok(Delivered::Resent);
            }
            // Built now, from the headers the consumer trusts now; fixed
            // with the proof's inputs before anything is signed.
            let Some(built) = self.build(store, bitcoin, &mut packet)? else {
                return Ok(Delivered::Later);
            };
            data = built;
            packet.proof = Some((self.signer.state()?.sequence, self.timestamp()?));
            packet.state = PacketState::Sent;
            self.store.put_sent_packet(&packet, &data)?;
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

#[cfg(test)]
mod tests {
    use aggregator::{PosBlockHash, StakerSetDigest};

    use super::*;

    fn record(chain: &str, height: u64, id: u8) -> StoredRecord {
        StoredRecord {
            id: LeafHash([id; 32]),
            record: Record::PosBlock(aggregator::PosBlock {
                chain_id: ChainId::new(chain).expect("chain id"),
                height,
                block_hash: PosBlockHash([id; 32]),
                staker_set_digest: StakerSetDigest([0; 32]),
            }),
            received_unix_ms: 0,
            batch: None,
        }
    }

    #[test]
    fn latest_keeps_the_highest_record_of_each_chain_in_batch_order() {
        let batch = || {
            vec![
                record("a", 5, 1),
                record("b", 2, 2),
                record("a", 9, 3),
                record("a", 7, 4),
                record("c", 1, 5),
                record("b", 3, 6),
            ]
        };
        let ids = |v: Vec<(LeafHash, u64)>| {
            v.into_iter()
                .map(|(id, h)| (id.0[0], h))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(select(batch(), Deliver::Latest)),
            vec![(3, 9), (6, 3), (5, 1)]
        );
        assert_eq!(ids(select(batch(), Deliver::All)).len(), 6);
        assert!(select(Vec::new(), Deliver::Latest).is_empty());
    }
}
