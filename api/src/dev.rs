//! `btcts dev`: the local demo. A regtest node (`bitcoind` if installed,
//! else `litecoind`) with a funded wallet, the service on localhost with a
//! fresh token, a block mined every few seconds, and copy-paste examples.
//! Everything is removed on Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use btc_submitter::regtest::{NodeKind, RegtestNode};
use btc_submitter::{AnchorConfig, RpcAuth, RpcConfig};
use tracing::warn;

use crate::auth::{self, Credentials};
use crate::config::{Config, Settings};

/// The chain the demo token submits for.
pub const DEV_CHAIN: &str = "dev-chain";

/// Arguments of `btcts dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Port of the HTTP API on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Seconds between mined blocks.
    #[arg(long, default_value_t = 5)]
    block_interval: u64,
    /// Confirmations after which a timestamp counts as confirmed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    confirmations: u32,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    exit_after: Option<u64>,
}

pub fn run(args: &DevArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // BTCTS_LOG_* and BTCTS_LIMITS_* variables apply, as for `btcts serve`.
    let (env_config, ignored) = Config::load_reporting(None, crate::env_vars())?;
    crate::logging::init(env_config.log.format);
    crate::config::warn_ignored(&ignored);
    let kind = NodeKind::detect();
    let node = Arc::new(start_node(kind, out)?);
    let data = tempfile::Builder::new().prefix("btcts-dev-").tempdir()?;
    let (token, hash) = auth::new_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let mut credentials = Credentials::default();
    credentials.chains.insert(DEV_CHAIN.parse()?, vec![hash]);
    let (user, password) = node.credentials();
    let mut anchor = AnchorConfig::new(kind.network());
    anchor.confirmations = args.confirmations;
    anchor.poll = Duration::from_millis(500);
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], args.port)),
        data_dir: data.path().to_path_buf(),
        store: env_config.store.validate()?,
        rpc: RpcConfig {
            url: format!("{}/wallet/btcts", node.rpc_url()),
            auth: RpcAuth::UserPass(user, password),
        },
        anchor,
        limits: {
            let limits = env_config.limits;
            limits.validate()?;
            limits
        },
        credentials,
        // The calendar's limits from the environment, like `limits` (a
        // benchmark raises them); the calendar itself is always on here.
        ots: crate::config::OtsSettings {
            digests_per_second: env_config.opentimestamps.digests_per_second,
            digest_burst: env_config.opentimestamps.digest_burst,
            max_pending: env_config.opentimestamps.max_pending,
            ..crate::config::OtsSettings::default()
        },
        ibc: None,
        events: {
            env_config.events.validate()?;
            env_config.events
        },
        access_log: env_config.log.access,
        webhooks: crate::config::WebhookSettings::default(),
    };
    writeln!(
        out,
        "btcts dev: starting the service on 127.0.0.1:{} (store in {})…",
        args.port,
        data.path().display()
    )?;
    banner(out, args, kind, &token)?;
    out.flush()?;
    let (runtime, metrics) = crate::daemon_runtime()?;
    let interval = Duration::from_secs(args.block_interval.max(1));
    let exit_after = args.exit_after.map(Duration::from_secs);
    runtime.block_on(async move {
        let miner = tokio::spawn(mine_every(node.clone(), interval));
        let shutdown = async move {
            match exit_after {
                Some(d) => tokio::select! { _ = crate::shutdown_signal() => {}, _ = tokio::time::sleep(d) => {} },
                None => crate::shutdown_signal().await,
            }
        };
        let served = crate::server::serve(settings, metrics, shutdown).await;
        miner.abort();
        served
    })?;
    drop(data);
    writeln!(
        out,
        "btcts dev: stopped; the regtest node and its data are gone."
    )?;
    Ok(())
}

/// Starts the regtest node, saying what happens and how long it took: a
/// new user otherwise stares at a silent terminal.
fn start_node(kind: NodeKind, out: &mut impl Write) -> anyhow::Result<RegtestNode> {
    writeln!(
        out,
        "btcts dev: starting a regtest {} in a temporary directory and funding the wallet \
         `btcts` (101 blocks mined, 50 coins spendable; a few seconds)…",
        kind.binary()
    )?;
    out.flush()?;
    let started = std::time::Instant::now();
    let node = RegtestNode::start_kind(kind)?;
    writeln!(
        out,
        "btcts dev: node ready and wallet funded in {:.1} s ({}).",
        started.elapsed().as_secs_f64(),
        node.rpc_url()
    )?;
    Ok(node)
}

async fn mine_every(node: Arc<RegtestNode>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let node = node.clone();
        match tokio::task::spawn_blocking(move || node.mine(1)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "could not mine a block"),
            Err(_) => return,
        }
    }
}

fn banner(
    out: &mut impl Write,
    args: &DevArgs,
    kind: NodeKind,
    token: &str,
) -> std::io::Result<()> {
    let url = format!("http://127.0.0.1:{}", args.port);
    writeln!(
        out,
        r#"
btcts dev is running ({network}, a block every {interval} s, confirmed at {k} confirmations).

  API         {url}/v1/…        spec: {url}/openapi.json
  health      {url}/healthz     ready: {url}/readyz     metrics: {url}/metrics
  chain       {DEV_CHAIN}
  token       {token}

Submit a block hash and staker-set digest:

  curl -s -X POST {url}/v1/chains/{DEV_CHAIN}/blocks \
    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \
    -d '{{"blocks":[{{"height":1,"block_hash":"{h}","staker_set_digest":"{d}"}}]}}'

Watch it go pending → batched → anchored → confirmed (use the id printed above):

  curl -s {url}/v1/records/<id>
  curl -s {url}/v1/chains/{DEV_CHAIN}/status

Fetch the proof and verify it offline ({network} is a test network: its
proof of work proves nothing, so the verifier wants it named):

  cargo run -q -p btcts -- proof <id> --url {url} -o proof.json
  cargo run -q -p btcts -- verify --network {network} proof.json

The same proof as an OpenTimestamps file, and btcts as the calendar of the
stock client (pip install opentimestamps-client):

  curl -s '{url}/v1/records/<id>/proof?format=ots' -o record.ots
  ots stamp -c {url} -m 1 FILE
  ots -l {url} upgrade FILE.ots          # once the batch is {k} blocks deep

Ctrl-C stops everything and removes the node and its data.
"#,
        network = kind.network(),
        interval = args.block_interval,
        k = args.confirmations,
        h = "11".repeat(32),
        d = "22".repeat(32),
    )
}
