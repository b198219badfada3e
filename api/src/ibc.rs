//! IBC in the daemon and the CLI: opening each consumer chain's relay, the
//! delivery loop beside the anchoring loop, `GET /v1/chains/{id}/ibc`, and
//! `btcts ibc setup|status`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use aggregator::Store;
use anyhow::Context;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use bitcoin::secp256k1::SecretKey;
use btc_submitter::BitcoinNode;
use ibc_relay::grpc::GrpcNode;
use ibc_relay::state::RelayStore;
use ibc_relay::{Relay, RelayError, Signer, SignerError};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::config::{IbcChain, IbcSettings};
use crate::error::ApiError;
use crate::routes::{parse_chain, Reader};
use crate::server::AppState;

/// What the API shows of one chain's relay (shares the relay's stores).
#[derive(Debug, Clone)]
pub struct IbcView {
    /// The relay store.
    pub store: RelayStore,
    /// The signer.
    pub signer: Arc<Signer>,
    /// The relayer account's address.
    pub relayer: String,
    /// The depth packets are sent at.
    pub k: u32,
}

impl IbcView {
    /// The status document: setup, solo-machine state, packet counts and
    /// up to `limit` packets from sequence `from`.
    pub fn status(&self, from: u64, limit: usize) -> anyhow::Result<Value> {
        let setup = self.store.setup()?;
        let signer = self.signer.state()?;
        let packets = self.store.packets(from, limit + 1)?;
        let next = packets.get(limit).map(|p| p.sequence);
        let packets: Vec<Value> = packets
            .iter()
            .take(limit)
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        Ok(json!({
            "relayer": self.relayer,
            "confirmations_required": self.k,
            "setup": {
                "complete": setup.complete(),
                "client_id": setup.client_id,
                "connection_id": setup.connection_id,
                "channel_id": setup.channel_id,
            },
            "solo_machine": {
                "sequence": signer.sequence,
                "diversifier": signer.diversifier,
            },
            "halted": self.store.halted()?,
            "counts": self.store.counts()?,
            "packets": packets,
            "next_from": next,
        }))
    }
}

/// One chain's relay and its view.
pub fn open(ibc: &IbcSettings, chain: &IbcChain) -> anyhow::Result<(Relay, IbcView)> {
    let key = ibc_relay::signer::read_key_file(&ibc.key_file)?;
    open_with(chain, &[key])
}

/// One chain's relay, signing with the first of `keys` its store accepts.
fn open_with(chain: &IbcChain, keys: &[SecretKey]) -> anyhow::Result<(Relay, IbcView)> {
    let id = &chain.relay.chain_id;
    if let Some(dir) = chain.relay_store.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opened = None;
    for key in keys {
        match Signer::open(&chain.signer_store, *key, &chain.diversifier, 1) {
            Ok(s) => {
                opened = Some(s);
                break;
            }
            Err(SignerError::KeyMismatch) => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the solo-machine signer of {id} (is btcts running?)"
                )))
            }
        }
    }
    let signer = Arc::new(opened.with_context(|| {
        format!("the solo-machine signer of {id} was set up with another key than ibc.key_file")
    })?);
    let store = RelayStore::open(&chain.relay_store)?;
    let node = GrpcNode::with_ca(&chain.relay.grpc, chain.grpc_ca.as_deref())?;
    let account = ibc_relay::signer::read_key_file(&chain.account_key_file)?;
    let relay = Relay::new(
        chain.relay.clone(),
        Box::new(node),
        signer.clone(),
        store.clone(),
        account,
    )?;
    let view = IbcView {
        store,
        signer,
        relayer: relay.relayer().to_owned(),
        k: chain.relay.k,
    };
    Ok((relay, view))
}

/// One consumer chain's delivery: its relay, opened and run on blocking
/// threads only. The relay's gRPC client owns a runtime, which may be
/// neither created nor dropped in async code (tokio panics), so a
/// `Delivery` never lives in a task: [`Deliveries::start`] opens every
/// chain and starts its loop from one blocking call.
#[derive(Debug)]
pub struct Delivery {
    relay: Relay,
    poll: Duration,
}

impl Delivery {
    /// Opens `chain`'s relay and its view (blocking). Errors name the chain.
    pub fn open(ibc: &IbcSettings, chain: &IbcChain) -> anyhow::Result<(Delivery, IbcView)> {
        let (relay, view) = open(ibc, chain)
            .with_context(|| format!("cannot open IBC chain {}", chain.relay.chain_id))?;
        Ok((
            Delivery {
                relay,
                poll: ibc.poll,
            },
            view,
        ))
    }

    /// The delivery loop: a step every `poll`, backing off to a minute while
    /// the consumer or the Bitcoin node is unavailable, until `shutdown`
    /// turns true or its sender is gone. Blocking; the relay is dropped on
    /// this thread.
    pub fn run(
        mut self,
        store: &Store,
        node: &dyn BitcoinNode,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) {
        let chain = self.relay.config().chain_id.to_string();
        let poll = self.poll;
        let mut pause = poll;
        let mut halted = false;
        let mut failed_polls = 0u32;
        while !stopped(shutdown) {
            match self.relay.step(store, node) {
                Ok(report) => {
                    if report.created + report.delivered + report.resent > 0 {
                        info!(
                            chain,
                            created = report.created,
                            delivered = report.delivered,
                            resent = report.resent,
                            "IBC delivery"
                        );
                    }
                    pause = poll;
                    halted = false;
                    failed_polls = 0;
                }
                Err(e) => {
                    let kind = if e.is_transient() {
                        "transient"
                    } else {
                        "other"
                    };
                    metrics::counter!("btcts_ibc_errors_total", "chain" => chain.clone(), "kind" => kind)
                        .increment(1);
                    match &e {
                        RelayError::Halted(reason) => {
                            if !halted {
                                error!(chain, reason, "IBC delivery halted");
                            }
                            halted = true;
                        }
                        e if e.is_transient() => {
                            warn!(chain, error = %e, "IBC delivery: will retry")
                        }
                        e => error!(chain, error = %e, "IBC delivery failed; will retry"),
                    }
                    pause = (pause * 2).min(poll * 32).min(Duration::from_secs(60));
                    failed_polls = failed_polls.saturating_add(1);
                }
            }
            let stuck = halted || failed_polls >= HALTED_AFTER_FAILED_POLLS;
            metrics::gauge!("btcts_ibc_chain_halted", "chain" => chain.clone())
                .set(f64::from(u8::from(stuck)));
            let until = std::time::Instant::now() + pause;
            while std::time::Instant::now() < until && !stopped(shutdown) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Consecutive failed delivery steps (consumer or node unreachable) after
/// which `btcts_ibc_chain_halted` reports the chain as halted; a
/// [`RelayError::Halted`] reports it at once.
const HALTED_AFTER_FAILED_POLLS: u32 = 5;

/// Whether a loop watching `shutdown` should end: asked to, or nobody is
/// left to ask (the daemon returned early).
fn stopped(shutdown: &tokio::sync::watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Every configured chain's delivery loop, each on a thread of its own.
#[derive(Debug, Default)]
pub struct Deliveries {
    threads: Vec<(String, std::thread::JoinHandle<()>)>,
}

impl Deliveries {
    /// Opens every configured chain's relay, then starts their loops: all or
    /// none. A chain that cannot be opened fails start-up with its id, and
    /// the relays opened before it are dropped here. Blocking: call it on a
    /// blocking thread, never in async code.
    pub fn start(
        ibc: Option<&IbcSettings>,
        store: &Store,
        node: &Arc<dyn BitcoinNode>,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<(Deliveries, BTreeMap<String, IbcView>)> {
        let mut opened = Vec::new();
        let mut views = BTreeMap::new();
        let chains = ibc
            .into_iter()
            .flat_map(|ibc| ibc.chains.iter().map(move |c| (ibc, c)));
        for (ibc, chain) in chains {
            let (delivery, view) = Delivery::open(ibc, chain)?;
            let id = chain.relay.chain_id.to_string();
            if !view
                .store
                .setup()
                .with_context(|| format!("IBC chain {id}: the relay store"))?
                .complete()
            {
                warn!(chain = %id, "IBC is not set up for this chain: stop btcts and run `btcts ibc setup --chain {id}`");
            }
            views.insert(id.clone(), view);
            opened.push((id, delivery));
        }
        let mut threads = Vec::new();
        for (id, delivery) in opened {
            let (store, node, shutdown) = (store.clone(), node.clone(), shutdown.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ibc-{id}"))
                .spawn(move || delivery.run(&store, node.as_ref(), &shutdown))
                .with_context(|| format!("IBC chain {id}: cannot start its delivery thread"))?;
            threads.push((id, thread));
        }
        Ok((Deliveries { threads }, views))
    }

    /// Waits until every loop has ended (after the shutdown was sent).
    /// Blocking.
    pub fn join(self) {
        for (chain, thread) in self.threads {
            if thread.join().is_err() {
                error!(chain, "the IBC delivery loop panicked");
            }
        }
    }
}

/// `GET /v1/chains/{chain_id}/ibc` query.
#[derive(Debug, Deserialize)]
pub(crate) struct IbcQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// The most packets one answer lists.
const MAX_LIMIT: usize = 1000;

pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    Path(chain): Path<String>,
    query: Result<Query<IbcQuery>, QueryRejection>,
    _reader: Reader,
) -> Result<Json<Value>, ApiError> {
    let chain = parse_chain(&chain)?;
    let query = query
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?
        .0;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let view = state.ibc.get(chain.as_str()).cloned().ok_or_else(|| {
        ApiError::not_found(
            "ibc_not_configured",
            format!("chain {chain} has no IBC delivery configured"),
        )
    })?;
    let from = query.from.unwrap_or(0);
    let mut body = tokio::task::spawn_blocking(move || view.status(from, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    body["chain_id"] = json!(chain);
    Ok(Json(body))
}

/// `btcts ibc …`.
#[derive(Debug, clap::Subcommand)]
pub enum IbcCommand {
    /// Create the solo-machine client on a consumer chain and open the
    /// connection and the channel. Resumes an interrupted setup; never
    /// creates a second client unless `--new-client` is given. Run it with
    /// the daemon stopped (they share the chain's stores).
    Setup {
        /// The consumer chain (a table under `[ibc.chains]`).
        #[arg(long)]
        chain: String,
        /// Start over with a new client (after the old one was frozen or
        /// expired); undelivered records are re-sent over it.
        #[arg(long)]
        new_client: bool,
        #[command(flatten)]
        serve: crate::ServeArgs,
    },
    /// Rotate the solo-machine key of every configured chain's client (or
    /// of `--chain`) to the key in `--new-key-file`, then tell you to set
    /// `ibc.key_file` to it. Resumes an interrupted rotation. Run it with
    /// the daemon stopped.
    RotateKey {
        /// Only this chain (all configured chains by default).
        #[arg(long)]
        chain: Option<String>,
        /// The new key (64 hex characters).
        #[arg(long)]
        new_key_file: std::path::PathBuf,
        #[command(flatten)]
        serve: crate::ServeArgs,
    },
    /// Print a consumer chain's IBC status as JSON (the daemon serves the
    /// same at `GET /v1/chains/{id}/ibc`).
    Status {
        /// The consumer chain.
        #[arg(long)]
        chain: String,
        #[command(flatten)]
        serve: crate::ServeArgs,
    },
}

/// `btcts ibc rotate-key`.
fn rotate_key(
    ibc: &IbcSettings,
    only: Option<&str>,
    new_key_file: &std::path::Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let old = ibc_relay::signer::read_key_file(&ibc.key_file)?;
    let new = ibc_relay::signer::read_key_file(new_key_file)?;
    let chains: Vec<&IbcChain> = match only {
        Some(id) => vec![ibc
            .chain(id)
            .with_context(|| format!("no [ibc.chains.{id}] in the configuration"))?],
        None => ibc.chains.iter().collect(),
    };
    for chain in chains {
        let id = &chain.relay.chain_id;
        let (mut relay, view) = open_with(chain, &[old, new])?;
        if view.signer.state()?.public_key
            == new.public_key(&bitcoin::secp256k1::Secp256k1::signing_only())
            && relay.store().setup()?.rotation.is_none()
        {
            writeln!(out, "{id}: already on the new key")?;
            continue;
        }
        relay.rotate_key(new).map_err(|e| {
            anyhow::anyhow!("{id}: {e}\nrun the same command again to finish the rotation")
        })?;
        writeln!(out, "{id}: rotated")?;
    }
    writeln!(
        out,
        "now set ibc.key_file = \"{}\" (btcts refuses to start with the old key)",
        new_key_file.display()
    )?;
    Ok(())
}

/// Runs `btcts ibc …`.
pub fn run(command: &IbcCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let settings = |serve| -> anyhow::Result<IbcSettings> {
        crate::load_settings(serve)?
            .ibc
            .context("IBC is not configured (set ibc.key_file and an [ibc.chains.<id>] table)")
    };
    let relay = |ibc: &IbcSettings, chain: &str| {
        let config = ibc
            .chain(chain)
            .with_context(|| format!("no [ibc.chains.{chain}] in the configuration"))?;
        open(ibc, config)
    };
    match command {
        IbcCommand::RotateKey {
            chain,
            new_key_file,
            serve,
        } => rotate_key(&settings(serve)?, chain.as_deref(), new_key_file, out),
        IbcCommand::Setup {
            chain,
            new_client,
            serve,
        } => {
            let (mut relay, view) = relay(&settings(serve)?, chain)?;
            let setup = relay.setup(*new_client).map_err(|e| {
                anyhow::anyhow!("{e}\nthe setup stopped here; run `btcts ibc setup --chain {chain}` again to finish it")
            })?;
            writeln!(
                out,
                "{chain}: client {} connection {} channel {} (relayer {})",
                setup.client_id.unwrap_or_default(),
                setup.connection_id.unwrap_or_default(),
                setup.channel_id.unwrap_or_default(),
                view.relayer
            )?;
            Ok(())
        }
        IbcCommand::Status { chain, serve } => {
            let (_, view) = relay(&settings(serve)?, chain)?;
            let mut status = view.status(0, MAX_LIMIT)?;
            status["chain_id"] = json!(chain);
            writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
            Ok(())
        }
    }
}
