//! The shared-service load of docs/BENCHMARKS.md (issue 18, target 5): N
//! chains, each with its own token and keep-alive connection, each POSTing
//! one single-record `/v1/chains/{chain}/blocks` per second for a fixed time.
//! Loopback only.
//!
//! Open loop: chain i's k-th request is due at t = k s + i/N s and is sent
//! then, whether or not earlier requests have been answered; latency is
//! counted from the due time, so a server that falls behind shows it as
//! latency instead of slowing the load. A send more than `--late-ms` after
//! its due time (the generator itself behind) is counted as late.
//!
//! Every `--report-secs` it prints a row: requests due, ok, errors by status,
//! latency p50/p99/max of that interval's requests, and the server's RSS
//! (`VmRSS` of `--server-pid`, read when the row is printed).
//!
//! ```sh
//! # N chains' tokens (file mode 600, never on argv) and a config for `btcts serve`:
//! many_chains write-config --dir /tmp/mc --chains 1000 --listen 127.0.0.1:18080 \
//!     --node-url http://127.0.0.1:18443 --node-cookie-file <datadir>/regtest/.cookie
//! btcts serve --config /tmp/mc/btcts.toml &
//! many_chains run --url http://127.0.0.1:18080 --tokens /tmp/mc/tokens --seconds 600 --server-pid $!
//! ```
//!
//! `scripts/many-chains.sh` does all of it against a litecoind regtest node.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use bitcoin::hex::DisplayHex;
use btcts_api::auth;
use btcts_api::config::Config;
use clap::{Parser, Subcommand};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write `<dir>/btcts.toml` (N chains, one token each) and `<dir>/tokens`.
    WriteConfig(WriteArgs),
    /// Play the load against a running server.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct WriteArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 1000)]
    chains: usize,
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: String,
    #[arg(long, default_value = "litecoin-regtest")]
    network: String,
    /// The node's RPC, `http://127.0.0.1:PORT`.
    #[arg(long)]
    node_url: String,
    /// The node's `.cookie` (no password on argv or in the file).
    #[arg(long)]
    node_cookie_file: PathBuf,
    /// `[store] cache_mb`: 64, what docs/operations.md (Memory) sets for a
    /// deployment of many chains at a record a second each.
    #[arg(long, default_value_t = 64)]
    cache_mb: u32,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The server (loopback).
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    url: String,
    /// `chain token` per line, as `write-config` writes it.
    #[arg(long)]
    tokens: PathBuf,
    /// Use only the first N chains of the file.
    #[arg(long)]
    chains: Option<usize>,
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seconds per report row.
    #[arg(long, default_value_t = 60)]
    report_secs: u64,
    /// The server's process id, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A send this many ms after its due time counts as late.
    #[arg(long, default_value_t = 10)]
    late_ms: u64,
    /// Every chain resubmits its first record each second (answered as a
    /// duplicate): the same HTTP load without the store growing.
    #[arg(long)]
    duplicates: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::WriteConfig(args) => write_config(&args),
        Command::Run(args) => run(args).await,
    }
}

fn write_config(args: &WriteArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let mut tokens = String::new();
    let mut chains = String::new();
    for i in 0..args.chains {
        let chain = format!("chain-{i:04}");
        let (token, hash) = auth::new_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        tokens.push_str(&format!("{chain} {token}\n"));
        chains.push_str(&format!(
            "\n[auth.chains.\"{chain}\"]\ntokens_sha256 = [\"{}\"]\n",
            hash.0.to_lower_hex_string()
        ));
    }
    let data_dir = std::path::absolute(args.dir.join("data"))?;
    let config = format!(
        r#"# Written by `many_chains write-config`: {n} chains, one token each
# (the tokens are in `tokens`, mode 600).
listen = "{listen}"
data_dir = "{data}"
network = "{network}"

[node]
url = "{url}"
cookie_file = "{cookie}"
wallet = "btcts"
poll_ms = 500

# The defaults, written out: each chain's token is its own rate-limit
# bucket, so 1 request/s per chain is far inside them; {n} keep-alive
# connections and the requests in flight stay under the two caps.
[limits]
rate_per_second = 100
rate_burst = 200
max_concurrent_requests = 1024
max_connections = 4096

# The page cache docs/operations.md (Memory) gives a many-chains
# deployment; the default (256 MiB) is sized for bulk ingest.
[store]
cache_mb = {cache_mb}
{chains}"#,
        n = args.chains,
        listen = args.listen,
        data = data_dir.display(),
        network = args.network,
        url = args.node_url,
        cookie = std::path::absolute(&args.node_cookie_file)?.display(),
        cache_mb = args.cache_mb,
    );
    let config_path = args.dir.join("btcts.toml");
    std::fs::write(&config_path, config)?;
    write_private(&args.dir.join("tokens"), tokens.as_bytes())?;
    // The server would refuse a file it cannot take: check it the same way.
    Config::load(Some(&config_path), std::iter::empty())?.validate()?;
    println!(
        "wrote {} ({} chains) and {}",
        config_path.display(),
        args.chains,
        args.dir.join("tokens").display()
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

/// What happened to one request.
#[derive(Clone, Copy)]
enum Event {
    /// Sent `lag` after its due time.
    Sent { interval: usize, lag: Duration },
    /// Answered (or failed) `latency` after its due time.
    Done {
        interval: usize,
        outcome: Outcome,
        latency: Duration,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Outcome {
    Ok,
    Status(u16),
    Timeout,
    Connect,
    OtherTransport,
}

#[derive(Default)]
struct Interval {
    sent: u64,
    late: u64,
    max_lag: Duration,
    ok_latencies: Vec<Duration>,
    errors: BTreeMap<Outcome, u64>,
}

impl Interval {
    fn add(&mut self, event: Event) {
        match event {
            Event::Sent { lag, .. } => {
                self.sent += 1;
                self.max_lag = self.max_lag.max(lag);
            }
            Event::Done {
                outcome, latency, ..
            } => match outcome {
                Outcome::Ok => self.ok_latencies.push(latency),
                other => *self.errors.entry(other).or_default() += 1,
            },
        }
    }

    fn row(&mut self, label: &str, rss: &str) -> String {
        self.ok_latencies.sort_unstable();
        let l = &self.ok_latencies;
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(o, n)| match o {
                Outcome::Status(s) => format!("{s}×{n}"),
                other => format!("{other:?}×{n}"),
            })
            .collect();
        let answered = l.len() as u64 + self.errors.values().sum::<u64>();
        format!(
            "| {label} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {rss} |",
            self.sent,
            l.len(),
            if errors.is_empty() {
                "0".to_owned()
            } else {
                errors.join(", ")
            },
            self.sent.saturating_sub(answered),
            self.late,
            pct(0.50),
            pct(0.99),
            l.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        )
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in MB.
fn rss(pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return "-".into();
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return "gone".into();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or("?".to_owned(), |kb| format!("{:.1}", kb / 1000.0))
    };
    format!("{} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

fn read_tokens(path: &Path, limit: Option<usize>) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let chains: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(c, t)| (c.to_owned(), t.trim().to_owned()))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    ensure!(
        !chains.is_empty(),
        "no `chain token` lines in {}",
        path.display()
    );
    Ok(chains)
}

async fn run(args: RunArgs) -> Result<()> {
    ensure!(
        args.url.starts_with("http://127.") || args.url.starts_with("http://localhost"),
        "load tests only target loopback"
    );
    ensure!(args.report_secs > 0, "--report-secs must be positive");
    let chains = read_tokens(&args.tokens, args.chains)?;
    let n = chains.len() as u64;
    // One client (so one keep-alive connection) per chain, as N separate
    // feeders would have.
    let clients = chains
        .iter()
        .map(|(chain, token)| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?;
            Ok((
                client,
                format!("{}/v1/chains/{chain}/blocks", args.url),
                format!("Bearer {token}"),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let intervals = args.seconds.div_ceil(args.report_secs) as usize;
    // Heights continue from the wall clock, so a second run against the same
    // store submits new heights, not conflicting ones.
    let first_height = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    println!(
        "{n} chains × 1 record/s for {} s, open loop, latency from each request's due time; server RSS before: {} MB",
        args.seconds,
        rss(args.server_pid)
    );
    println!("| interval | due | ok | errors | unanswered | late sends | p50 ms | p99 ms | max ms | server RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now() + Duration::from_millis(500);
    let late = Duration::from_millis(args.late_ms);
    let report = Duration::from_secs(args.report_secs);
    let schedule = Schedule {
        clients,
        start,
        seconds: args.seconds,
        report_secs: args.report_secs,
        first_height,
        duplicates: args.duplicates,
    };
    let scheduler = tokio::spawn(schedule.play(tx));
    // Each row is printed a few seconds after its interval ends, so the
    // answers to its last requests are in; later answers still count in
    // the total row.
    let grace = Duration::from_secs(5);
    let mut rows: Vec<Interval> = (0..intervals).map(|_| Interval::default()).collect();
    let mut total = Interval::default();
    let mut printed = 0;
    let record = |rows: &mut [Interval], total: &mut Interval, e: Event| {
        let (Event::Sent { interval, .. } | Event::Done { interval, .. }) = e;
        let is_late = u64::from(matches!(e, Event::Sent { lag, .. } if lag > late));
        if let Some(row) = rows.get_mut(interval) {
            row.late += is_late;
            row.add(e);
        }
        total.late += is_late;
        total.add(e);
    };
    let mut open = true;
    while printed < intervals {
        let print_at = start + report * (printed as u32 + 1) + grace;
        tokio::select! {
            e = rx.recv(), if open => match e {
                Some(e) => record(&mut rows, &mut total, e),
                None => open = false,
            },
            _ = tokio::time::sleep_until(print_at) => {
                let label = format!("{}–{} s", printed as u64 * args.report_secs,
                    ((printed as u64 + 1) * args.report_secs).min(args.seconds));
                println!("{}", rows[printed].row(&label, &rss(args.server_pid)));
                printed += 1;
            }
        }
    }
    scheduler.await?;
    // Everything sent has an answer or times out (60 s) by now plus a margin.
    let deadline = Instant::now() + Duration::from_secs(65);
    while total.ok_latencies.len() as u64 + total.errors.values().sum::<u64>() < total.sent {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => record(&mut rows, &mut total, e),
            _ => break,
        }
    }
    println!("{}", total.row("**whole run**", &rss(args.server_pid)));
    println!(
        "late sends (> {} ms after due): {}; the generator's largest lag: {:.1} ms",
        args.late_ms,
        total.late,
        total.max_lag.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The open-loop schedule: each chain's client, URL and `Authorization`.
struct Schedule {
    clients: Vec<(reqwest::Client, String, String)>,
    start: Instant,
    seconds: u64,
    report_secs: u64,
    first_height: u64,
    duplicates: bool,
}

impl Schedule {
    /// Sends every request at its due time, each on its own task.
    async fn play(self, tx: mpsc::UnboundedSender<Event>) {
        let n = self.clients.len() as u64;
        let salt = std::process::id();
        for k in 0..self.seconds {
            let interval = (k / self.report_secs) as usize;
            let height = if self.duplicates { 0 } else { k };
            for (i, (client, url, bearer)) in self.clients.iter().enumerate() {
                let due = self.start
                    + Duration::from_secs(k)
                    + Duration::from_nanos(i as u64 * 1_000_000_000 / n);
                tokio::time::sleep_until(due).await;
                let lag = Instant::now().saturating_duration_since(due);
                let _ = tx.send(Event::Sent { interval, lag });
                let body = json!({ "blocks": [{
                    "height": self.first_height + height,
                    "block_hash": format!("{salt:08x}{i:08x}{height:048x}"),
                    "staker_set_digest": "ab".repeat(32),
                }]});
                let request = client.post(url).header("authorization", bearer).json(&body);
                tokio::spawn(submit(request, due, interval, tx.clone()));
            }
        }
    }
}

/// Sends one request and reports its outcome, timed from `due`.
async fn submit(
    request: reqwest::RequestBuilder,
    due: Instant,
    interval: usize,
    tx: mpsc::UnboundedSender<Event>,
) {
    let outcome = match request.send().await {
        Ok(r) => {
            let status = r.status();
            let _ = r.bytes().await;
            if status.is_success() {
                Outcome::Ok
            } else {
                Outcome::Status(status.as_u16())
            }
        }
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(e) if e.is_connect() => Outcome::Connect,
        Err(_) => Outcome::OtherTransport,
    };
    let _ = tx.send(Event::Done {
        interval,
        outcome,
        latency: due.elapsed(),
    });
}
