//! The test consumer chain over the network: the ibc-rs host of
//! [`crate::consumer`] behind an in-process gRPC server speaking the Cosmos
//! SDK services the relay uses — `cosmos.tx.v1beta1.Service/BroadcastTx`
//! and `GetTx`, `cosmos.auth.v1beta1.Query/Account` and
//! `cosmos.base.tendermint.v1beta1.Service/GetLatestBlock`.
//!
//! A broadcast transaction is checked as a Cosmos SDK ante handler would
//! (one SIGN_MODE_DIRECT secp256k1 signer, a known account, its account
//! number and exact sequence, the signature over the `SignDoc`), charged
//! nothing, and its messages run on the host in a new block whose time is
//! the wall clock: all of them or none. A transaction whose messages fail
//! is refused like a failing `CheckTx` (not in a block, sequence unused).
//!
//! Faults for tests: [`TestConsumer::stop`]/[`TestConsumer::restart`] (the
//! port refuses connections in between), going down right after executing
//! the n-th next transaction (the answer is lost), bumping an account's
//! sequence (someone else used it), a clock offset, a per-transaction delay.
//! Every solo-machine proof seen in any transaction is kept by sequence, so
//! a test can tell whether two different proofs were ever sent for one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, Message as SecpMessage, PublicKey, Secp256k1};
use btcts_consumer::{ConsumerParams, PacketError, TrustedHeader, VerifiedPacket};
use cosmos_sdk_proto::cosmos::auth::v1beta1::query_server::{Query, QueryServer};
use cosmos_sdk_proto::cosmos::auth::v1beta1::{self as auth, BaseAccount};
use cosmos_sdk_proto::cosmos::base::abci::v1beta1::TxResponse;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_server::{
    Service as NodeService, ServiceServer as NodeServer,
};
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::{self as node};
use cosmos_sdk_proto::cosmos::tx::v1beta1::service_server::{
    Service as TxService, ServiceServer as TxServer,
};
use cosmos_sdk_proto::cosmos::tx::v1beta1::{self as txs, AuthInfo, SignDoc, TxBody, TxRaw};
use ibc::channel::types::packet::Packet;
use ibc::handler::types::events::IbcEvent;
use ibc_proto::cosmos::crypto::secp256k1::PubKey;
use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::core::channel::v1::{MsgChannelOpenAck, MsgRecvPacket};
use ibc_proto::ibc::core::connection::v1::MsgConnectionOpenAck;
use prost::{Message, Name};
use tonic::{Request, Response, Status};

use crate::consumer::{BtctsModule, BtctsRouter, Host, NEXT_VALIDATORS_HASH};

mod services;
use services::Shared;

/// The bech32 prefix of the test chain's accounts.
pub const PREFIX: &str = "cosmos";

#[derive(Debug, Clone, Copy)]
struct AccountState {
    number: u64,
    sequence: u64,
}

/// The chain behind the server.
#[derive(Debug)]
pub struct Chain {
    /// Its id.
    pub chain_id: String,
    /// The ibc-rs host.
    pub host: Host,
    /// Its `btcts` application.
    pub router: BtctsRouter,
    accounts: BTreeMap<String, AccountState>,
    txs: BTreeMap<String, TxResponse>,
    /// solo-machine sequence → the proof first seen for it.
    proofs: BTreeMap<u64, Vec<u8>>,
    /// Sequences for which a different proof was seen later.
    pub equivocations: Vec<u64>,
    /// Transactions refused for a wrong account sequence.
    pub sequence_mismatches: u64,
    /// Transactions refused because a message failed.
    pub refused: Vec<String>,
    /// Transactions broadcast (valid or not).
    pub broadcasts: u64,
    clock_offset_ns: u64,
    down_after: Option<u64>,
    delay: Duration,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn answer(code: u32, log: impl Into<String>, hash: &str) -> TxResponse {
    TxResponse {
        txhash: hash.to_owned(),
        codespace: if code == 0 {
            String::new()
        } else {
            "sdk".into()
        },
        code,
        raw_log: log.into(),
        ..Default::default()
    }
}

impl Chain {
    fn now(&self) -> u64 {
        now_ns().saturating_add(self.clock_offset_ns)
    }

    /// Remembers every solo-machine proof in `msg` by sequence.
    fn note_proofs(&mut self, msg: &Any) {
        let mut seen: Vec<(u64, Vec<u8>)> = Vec::new();
        if msg.type_url == MsgRecvPacket::type_url() {
            if let Ok(m) = MsgRecvPacket::decode(msg.value.as_slice()) {
                let h = m.proof_height.map_or(0, |h| h.revision_height);
                seen.push((h, m.proof_commitment));
            }
        } else if msg.type_url == MsgChannelOpenAck::type_url() {
            if let Ok(m) = MsgChannelOpenAck::decode(msg.value.as_slice()) {
                let h = m.proof_height.map_or(0, |h| h.revision_height);
                seen.push((h, m.proof_try));
            }
        } else if msg.type_url == MsgConnectionOpenAck::type_url() {
            if let Ok(m) = MsgConnectionOpenAck::decode(msg.value.as_slice()) {
                let h = m.proof_height.map_or(0, |h| h.revision_height);
                seen.push((h, m.proof_try));
                seen.push((h + 1, m.proof_client));
                seen.push((h + 2, m.proof_consensus));
            }
        }
        for (sequence, proof) in seen {
            match self.proofs.get(&sequence) {
                Some(p) if *p != proof => self.equivocations.push(sequence),
                Some(_) => {}
                None => {
                    self.proofs.insert(sequence, proof);
                }
            }
        }
    }

    /// The ante checks, then the messages on the host in a new block.
    fn execute(&mut self, tx_bytes: &[u8]) -> TxResponse {
        let hash = ibc_relay::grpc::tx_hash(tx_bytes);
        let raw = match TxRaw::decode(tx_bytes) {
            Ok(r) => r,
            Err(e) => return answer(2, format!("tx parse error: {e}"), &hash),
        };
        let (Ok(body), Ok(auth_info)) = (
            TxBody::decode(raw.body_bytes.as_slice()),
            AuthInfo::decode(raw.auth_info_bytes.as_slice()),
        ) else {
            return answer(2, "tx parse error", &hash);
        };
        let ([signer], [signature]) = (&auth_info.signer_infos[..], &raw.signatures[..]) else {
            return answer(4, "expected exactly one signer and one signature", &hash);
        };
        let key = signer
            .public_key
            .as_ref()
            .filter(|k| k.type_url == ibc_relay::signer::SECP256K1_PUBKEY_TYPE_URL)
            .and_then(|k| PubKey::decode(k.value.as_slice()).ok())
            .and_then(|k| PublicKey::from_slice(&k.key).ok());
        let Some(key) = key else {
            return answer(8, "invalid public key", &hash);
        };
        let Ok(address) = ibc_relay::cosmos::address(&key, PREFIX) else {
            return answer(8, "invalid public key", &hash);
        };
        let Some(account) = self.accounts.get(&address).copied() else {
            return answer(9, format!("account {address} not found"), &hash);
        };
        if signer.sequence != account.sequence {
            self.sequence_mismatches += 1;
            return answer(
                32,
                format!(
                    "account sequence mismatch, expected {}, got {}: incorrect account sequence",
                    account.sequence, signer.sequence
                ),
                &hash,
            );
        }
        let doc = SignDoc {
            body_bytes: raw.body_bytes.clone(),
            auth_info_bytes: raw.auth_info_bytes.clone(),
            chain_id: self.chain_id.clone(),
            account_number: account.number,
        };
        let digest = sha256::Hash::hash(&doc.encode_to_vec()).to_byte_array();
        let verified = Signature::from_compact(signature).ok().is_some_and(|sig| {
            Secp256k1::verification_only()
                .verify_ecdsa(&SecpMessage::from_digest(digest), &sig, &key)
                .is_ok()
        });
        if !verified {
            return answer(4, "signature verification failed", &hash);
        }
        for msg in &body.messages {
            self.note_proofs(msg);
        }
        if self.txs.contains_key(&hash) {
            return answer(19, "tx already exists in cache", &hash);
        }
        // A new block for the transaction.
        let time = self.now();
        self.host.advance_to(time);
        let before = self.host.snapshot();
        let events_before = self.host.core.events.len();
        for msg in &body.messages {
            if let Err(e) = self.host.deliver_any(&mut self.router, msg.clone()) {
                self.host.restore(before);
                let log = format!("{}: {e:#}", msg.type_url);
                self.refused.push(log.clone());
                let mut r = answer(1, log, &hash);
                r.codespace = "ibc".into();
                return r;
            }
        }
        if let Some(a) = self.accounts.get_mut(&address) {
            a.sequence += 1;
        }
        let events = self.host.core.events[events_before..]
            .iter()
            .filter_map(abci_event)
            .collect();
        let response = TxResponse {
            height: self.host.host_height_v.revision_height() as i64,
            events,
            ..answer(0, "", &hash)
        };
        self.txs.insert(hash, response.clone());
        response
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn event(kind: &str, attributes: Vec<(&str, String)>) -> tendermint_proto::abci::Event {
    tendermint_proto::abci::Event {
        r#type: kind.to_owned(),
        attributes: attributes
            .into_iter()
            .map(|(key, value)| tendermint_proto::abci::EventAttribute {
                key: key.to_owned(),
                value,
                index: true,
            })
            .collect(),
    }
}

/// An ibc-rs event as the ABCI event a Cosmos SDK chain emits. ibc-rs
/// cannot render packet events whose data is not UTF-8 (ours is
/// protobuf), so `write_acknowledgement` is written out as ibc-go does it.
fn abci_event(e: &IbcEvent) -> Option<tendermint_proto::abci::Event> {
    if let IbcEvent::WriteAcknowledgement(w) = e {
        let ack: &[u8] = w.acknowledgement().as_ref();
        return Some(event(
            "write_acknowledgement",
            vec![
                ("packet_data_hex", hex(w.packet_data())),
                ("packet_sequence", w.seq_on_a().value().to_string()),
                ("packet_src_port", w.port_id_on_a().to_string()),
                ("packet_src_channel", w.chan_id_on_a().to_string()),
                ("packet_dst_port", w.port_id_on_b().to_string()),
                ("packet_dst_channel", w.chan_id_on_b().to_string()),
                ("packet_ack", String::from_utf8_lossy(ack).into_owned()),
                ("packet_ack_hex", hex(ack)),
                ("packet_connection", w.conn_id_on_b().to_string()),
            ],
        ));
    }
    let e = tendermint::abci::Event::try_from(e.clone()).ok()?;
    Some(event(
        &e.kind,
        e.attributes
            .iter()
            .map(|a| {
                (
                    a.key_str().unwrap_or_default(),
                    a.value_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    ))
}

/// A test consumer chain serving gRPC on a loopback port.
#[derive(Debug)]
pub struct TestConsumer {
    shared: Shared,
    addr: SocketAddr,
    /// The server's runtime (shut down in the background on drop, so a
    /// test may drop this inside its own runtime).
    rt: Option<tokio::runtime::Runtime>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestConsumer {
    /// A chain `chain_id` whose `btcts` app trusts `trusted` and expects
    /// `params`, with `funded` accounts (bech32 `cosmos` addresses), serving
    /// on a free loopback port.
    pub fn start(
        chain_id: &str,
        trusted: TrustedHeader,
        params: ConsumerParams,
        funded: &[String],
    ) -> Result<TestConsumer> {
        let revision = ibc::host::types::identifiers::ChainId::new(chain_id)
            .map_err(|e| anyhow::anyhow!("chain id {chain_id}: {e}"))?
            .revision_number();
        let mut host = Host::with_revision(revision, now_ns());
        host.advance_to(now_ns());
        let chain = Chain {
            chain_id: chain_id.to_owned(),
            host,
            router: BtctsRouter {
                module: BtctsModule::new(trusted, params),
            },
            accounts: funded
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    (
                        a.clone(),
                        AccountState {
                            number: i as u64 + 7,
                            sequence: 0,
                        },
                    )
                })
                .collect(),
            txs: BTreeMap::new(),
            proofs: BTreeMap::new(),
            equivocations: Vec::new(),
            sequence_mismatches: 0,
            refused: Vec::new(),
            broadcasts: 0,
            clock_offset_ns: 0,
            down_after: None,
            delay: Duration::ZERO,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // A port from below the kernel's ephemeral range: `restart` binds it
        // again, and while the consumer is down a port from that range can
        // be taken as the source port of a connection (the relay's retries
        // can even connect to themselves on it).
        let listener = on_own_thread(&rt, async {
            let port = btc_submitter::regtest::loopback_port()?;
            anyhow::Ok(tokio::net::TcpListener::bind(("127.0.0.1", port)).await?)
        })?;
        let addr = listener.local_addr()?;
        let mut consumer = TestConsumer {
            shared: Shared {
                chain: Arc::new(Mutex::new(chain)),
                stop: Arc::new(Mutex::new(None)),
                down: Arc::default(),
            },
            addr,
            rt: Some(rt),
            server: None,
        };
        consumer.serve(listener)?;
        Ok(consumer)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        *self
            .shared
            .stop
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = Some(tx);
        let shared = self.shared.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let rt = self.rt.as_ref().context("runtime gone")?;
        self.shared
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // Dropping the server future on the signal closes the listener at
        // once (no graceful drain: the node just goes away).
        self.server = Some(rt.spawn(async move {
            let serve = tonic::transport::Server::builder()
                .add_service(TxServer::new(shared.clone()))
                .add_service(QueryServer::new(shared.clone()))
                .add_service(NodeServer::new(shared))
                .serve_with_incoming(incoming);
            tokio::select! {
                _ = serve => {}
                _ = rx => {}
            }
        }));
        Ok(())
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The chain, to inspect or to change.
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        self.shared.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops serving: the port refuses connections until [`Self::restart`].
    pub fn stop(&mut self) {
        self.shared.go_down();
        if let (Some(server), Some(rt)) = (self.server.take(), self.rt.as_ref()) {
            let _ = on_own_thread(rt, async {
                tokio::time::timeout(Duration::from_secs(5), server).await
            });
        }
    }

    /// Serves again on the same port (the chain kept its state).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let rt = self.rt.as_ref().context("runtime gone")?;
        let listener = on_own_thread(rt, tokio::net::TcpListener::bind(self.addr))
            .context("re-binding the consumer's port")?;
        self.serve(listener)
    }

    /// Goes down right after executing the `n`-th next transaction; its
    /// answer is lost.
    pub fn go_down_after(&self, n: u64) {
        self.chain().down_after = Some(n);
    }

    /// Whether the server is serving.
    pub fn is_up(&self) -> bool {
        !self.shared.down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Uses `address`'s next sequence, as another transaction would.
    pub fn bump_sequence(&self, address: &str) {
        if let Some(a) = self.chain().accounts.get_mut(address) {
            a.sequence += 1;
        }
    }

    /// Moves the chain's clock `by` ahead of the wall clock.
    pub fn jump_clock(&self, by: Duration) {
        self.chain().clock_offset_ns += by.as_nanos() as u64;
    }

    /// Answers each broadcast only after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.chain().delay = delay;
    }

    /// Every packet the app received, with its verdict.
    pub fn received(&self) -> Vec<(Packet, Result<VerifiedPacket, PacketError>)> {
        self.chain().router.module.received.clone()
    }

    /// How many clients, connections and channels were created.
    pub fn counts(&self) -> (u64, u64, u64) {
        let c = self.chain();
        (
            c.host.core.client_counter,
            c.host.core.conn_counter,
            c.host.core.chan_counter,
        )
    }

    /// The solo-machine client `id`'s sequence and whether it is frozen.
    pub fn client(&self, id: &str) -> Option<(u64, bool)> {
        self.chain()
            .host
            .solo_client(id)
            .map(|c| (c.sequence, c.is_frozen))
    }
}

impl Drop for TestConsumer {
    fn drop(&mut self) {
        self.shared.go_down();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `rt.block_on(f)` on a thread of its own, so it also works when the
/// caller is inside another runtime (an async test).
fn on_own_thread<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(f))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
