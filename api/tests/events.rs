//! Confirmation events over Server-Sent Events, on the real binary and a
//! real litecoind: every record goes batched → anchored → confirmed in
//! order, a reconnect with `Last-Event-ID` loses and repeats nothing, a
//! reorg of the anchor block is reported and followed by a new
//! confirmation, and the stream's limits answer in the documented way.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_api::auth::TokenHash;
use btcts_tests::node::RegtestNode;
use common::{free_port, start, submit, write_config, Daemon, K};
use serde_json::Value;

/// One SSE message: an event, or a comment (`:heartbeat`).
#[derive(Debug)]
enum Message {
    Event { id: u64, kind: String, data: Value },
    Comment(String),
}

/// A minimal SSE reader over a streaming response.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// Opens `path`; the status and, on 200, the stream.
    async fn open(
        d: &Daemon,
        path: &str,
        token: Option<&str>,
        last_id: Option<&str>,
    ) -> Result<(u16, Option<Stream>, Value)> {
        let mut request = reqwest::Client::new().get(format!("{}{path}", d.url));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.json().await.unwrap_or(Value::Null);
            return Ok((status, None, body));
        }
        ensure!(
            response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")),
            "not an event stream: {:?}",
            response.headers()
        );
        Ok((
            status,
            Some(Stream {
                response,
                buffer: String::new(),
            }),
            Value::Null,
        ))
    }

    /// The next message, or `None` if none arrives within `wait`.
    async fn next(&mut self, wait: Duration) -> Result<Option<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return parse(&block).map(Some);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Ok(None),
                Ok(chunk) => match chunk? {
                    Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes)?),
                    None => bail!("the stream ended"),
                },
            }
        }
    }
}

fn parse(block: &str) -> Result<Message> {
    let (mut id, mut kind, mut data) = (None, None, String::new());
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix(':') {
            return Ok(Message::Comment(c.trim().to_owned()));
        }
        let (field, value) = line
            .split_once(':')
            .with_context(|| format!("a field line in {block:?}"))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.parse::<u64>()?),
            "event" => kind = Some(value.to_owned()),
            "data" => data.push_str(value),
            other => bail!("unexpected field {other} in {block:?}"),
        }
    }
    Ok(Message::Event {
        id: id.context("an id")?,
        kind: kind.context("an event name")?,
        data: serde_json::from_str(&data)?,
    })
}

/// Appends `extra` (TOML sections) to the test configuration.
fn config_with(
    dir: &Path,
    node: &RegtestNode,
    port: u16,
    extra: &str,
) -> Result<std::path::PathBuf> {
    let path = write_config(dir, node, port)?;
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str(extra);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn hash(token: &str) -> String {
    TokenHash::of(token)
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An event as the test keeps it: id, type, record id, anchor block.
type Seen = (u64, String, String, Option<String>);

fn seen(id: u64, kind: String, data: &Value) -> Result<Seen> {
    ensure!(
        data["id"] == id,
        "data id {} differs from SSE id {id}",
        data["id"]
    );
    ensure!(data["type"] == kind.as_str() && data["v"] == 1, "{data}");
    Ok((
        id,
        kind,
        data["record"]["id"]
            .as_str()
            .context("record id")?
            .to_owned(),
        data["anchor"]["block_hash"].as_str().map(str::to_owned),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_records_go_batched_anchored_confirmed_across_a_reconnect() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let path = "/v1/chains/chain-0/events";
    let (status, stream, body) = Stream::open(&daemon, path, None, None).await?;
    let mut stream = stream.with_context(|| format!("{status} {body}"))?;

    let ids = submit(&daemon, 0, 0..100, 1).await?;
    // Another chain's records are not in chain-0's stream.
    submit(&daemon, 1, 0..10, 1).await?;
    let mut events: Vec<Seen> = Vec::new();
    let mut reconnected = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while events.len() < 300 {
        ensure!(
            Instant::now() < deadline,
            "{} events after 120 s: {:?}",
            events.len(),
            events.last()
        );
        match stream.next(Duration::from_millis(400)).await? {
            Some(Message::Event { id, kind, data }) => {
                ensure!(data["chain_id"] == "chain-0", "{data}");
                if kind == "record.confirmed" {
                    ensure!(data["anchor"]["depth"].as_u64() >= Some(K), "{data}");
                }
                events.push(seen(id, kind, &data)?);
            }
            Some(Message::Comment(_)) => {}
            None => {
                node.mine(1)?;
            }
        }
        if events.len() >= 150 && !reconnected {
            // Drop the connection mid-way through the anchored events,
            // let a block pass, and resume from the last id seen.
            drop(stream);
            node.mine(1)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let last = events.last().context("an event")?.0.to_string();
            let (status, s, body) = Stream::open(&daemon, path, None, Some(&last)).await?;
            stream = s.with_context(|| format!("resume: {status} {body}"))?;
            reconnected = true;
        }
    }
    // Nothing more arrives for this chain without new records or blocks.
    if let Some(Message::Event { id, kind, .. }) = stream.next(Duration::from_secs(1)).await? {
        bail!("unexpected event {id} {kind}");
    }

    ensure!(
        events.windows(2).all(|w| w[0].0 < w[1].0),
        "ids strictly increase (no duplicate)"
    );
    let mut by_record: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, kind, record, _) in &events {
        by_record.entry(record).or_default().push(kind);
    }
    ensure!(by_record.len() == 100, "{} records", by_record.len());
    for id in &ids {
        ensure!(
            by_record.get(id.as_str())
                == Some(&vec![
                    "record.batched",
                    "record.anchored",
                    "record.confirmed"
                ]),
            "record {id}: {:?}",
            by_record.get(id.as_str())
        );
    }
    // The confirmation names the block and depth k.
    let (_, r) = common::get(&daemon, &format!("/v1/records/{}", ids[0])).await?;
    let confirmed = events
        .iter()
        .find(|e| e.1 == "record.confirmed" && e.2 == ids[0])
        .context("confirmed")?;
    ensure!(confirmed.3.as_deref() == r["block_hash"].as_str(), "{r}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reorg_of_the_anchor_block_is_reported_then_confirmed_again() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let (status, stream, body) =
        Stream::open(&daemon, "/v1/chains/chain-1/events", None, None).await?;
    let mut stream = stream.with_context(|| format!("{status} {body}"))?;
    submit(&daemon, 1, 7..8, 1).await?;

    let mut events: Vec<Seen> = Vec::new();
    let mut reorged = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while events.len() < 6 {
        ensure!(Instant::now() < deadline, "events: {events:?}");
        match stream.next(Duration::from_millis(400)).await? {
            Some(Message::Event { id, kind, data }) => events.push(seen(id, kind, &data)?),
            Some(Message::Comment(_)) => {}
            None => {
                node.mine(1)?;
            }
        }
        if events.len() == 3 && !reorged {
            // Take the anchor block (and the k-1 above it) out of the best chain.
            let block = events[2].3.clone().context("confirmed in a block")?;
            node.call("invalidateblock", &[Value::String(block)])?;
            reorged = true;
        }
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    ensure!(
        kinds
            == [
                "record.batched",
                "record.anchored",
                "record.confirmed",
                "record.reorged",
                "record.anchored",
                "record.confirmed"
            ],
        "{events:?}"
    );
    ensure!(
        events[1].3 == events[3].3,
        "reorged names the block that left"
    );
    ensure!(
        events[4].3 != events[1].3,
        "anchored again in another block"
    );
    ensure!(events[5].3 == events[4].3, "confirmed in that block");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_have_limits_auth_heartbeats_and_end_on_shutdown() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let extra = "[events]\nmax_streams = 2\nheartbeat_secs = 1\n";
    let config = config_with(dir.path(), &node, port, extra)?;
    // Admin and read tokens: the file's [auth] table comes before [auth.chains].
    let text = std::fs::read_to_string(&config)?.replace(
        "[auth.chains]\n",
        &format!(
            "[auth]\nadmin_token_sha256 = \"{}\"\nread_token_sha256 = \"{}\"\n[auth.chains]\n",
            hash("admin"),
            hash("reader")
        ),
    );
    std::fs::write(&config, text)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let open = |path: &'static str, token: Option<&'static str>, last: Option<&'static str>| {
        let daemon = &daemon;
        async move { Stream::open(daemon, path, token, last).await }
    };
    let code = |body: &Value| body["code"].as_str().unwrap_or("").to_owned();

    let (s, _, b) = open("/v1/chains/nope/events", Some("reader"), None).await?;
    ensure!(s == 404 && code(&b) == "unknown_chain", "{s} {b}");
    let (s, _, b) = open("/v1/chains/chain-0/events", None, None).await?;
    ensure!(s == 401, "no token with a read token set: {s} {b}");
    let (s, _, b) = open("/v1/chains/chain-1/events", Some("token-0"), None).await?;
    ensure!(s == 403, "another chain's token: {s} {b}");
    let (s, _, b) = open("/v1/chains/chain-0/events", Some("reader"), Some("abc")).await?;
    ensure!(s == 400 && code(&b) == "invalid_last_event_id", "{s} {b}");
    let (s, _, b) = open("/v1/chains/chain-0/events", Some("reader"), Some("999999")).await?;
    ensure!(
        s == 400 && code(&b) == "invalid_last_event_id",
        "an id from the future: {s} {b}"
    );
    let (s, _, b) = open("/v1/events", None, None).await?;
    ensure!(s == 401, "{s} {b}");
    let (s, _, b) = open("/v1/events", Some("reader"), None).await?;
    ensure!(
        s == 403,
        "the read token does not read every chain: {s} {b}"
    );

    // The chain's own token reads its stream; the admin reads everything.
    let (s, own, b) = open("/v1/chains/chain-0/events", Some("token-0"), None).await?;
    let mut own = own.with_context(|| format!("{s} {b}"))?;
    let (s, all, b) = open("/v1/events", Some("admin"), None).await?;
    let mut all = all.with_context(|| format!("{s} {b}"))?;
    // Two streams are the limit.
    let (s, _, b) = open("/v1/chains/chain-0/events", Some("reader"), None).await?;
    ensure!(s == 503 && code(&b) == "too_many_streams", "{s} {b}");

    // Heartbeats keep an idle stream alive.
    match own.next(Duration::from_millis(2500)).await? {
        Some(Message::Comment(c)) => ensure!(c == "heartbeat", "{c}"),
        other => bail!("expected a heartbeat, got {other:?}"),
    }
    // A fork is an event on its chain's stream and on the admin's. The first
    // record may be sealed into a batch before the second arrives, so its
    // `record.batched` can come first; any other event is an error.
    submit(&daemon, 0, 5..6, 1).await?;
    submit(&daemon, 0, 5..6, 2).await?;
    for stream in [&mut own, &mut all] {
        let fork = loop {
            match stream.next(Duration::from_secs(5)).await? {
                Some(Message::Event { kind, .. }) if kind == "record.batched" => {}
                Some(Message::Event { kind, data, .. }) => break (kind, data),
                Some(Message::Comment(_)) => {}
                None => bail!("no fork event"),
            }
        };
        ensure!(fork.0 == "chain.fork", "{fork:?}");
        ensure!(fork.1["fork"]["height"] == 5, "{}", fork.1);
    }

    // A closed stream frees its slot.
    drop(own);
    let reopened = async {
        for _ in 0..50 {
            let (s, stream, _) = open("/v1/chains/chain-0/events", Some("reader"), None).await?;
            if s == 200 {
                return Ok::<_, anyhow::Error>(stream);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the slot never came back")
    };
    let _again = reopened.await?;

    // Shutdown does not wait for open streams.
    let pid = daemon.child.id().to_string();
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    let mut daemon = daemon;
    loop {
        if daemon.child.try_wait()?.is_some() {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "btcts took over 10 s to stop with streams open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse()
        .map_err(Into::into)
}

/// Latencies of `n` sequential reads of a chain's status, p50 and p99 in ms.
async fn read_latency(d: &Daemon, n: usize) -> Result<(f64, f64)> {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chains/chain-0/status", d.url);
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = client.get(&url).send().await?;
        ensure!(r.status() == 200, "status answered {}", r.status());
        r.bytes().await?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[n / 2], ms[n * 99 / 100]))
}

/// Opens `n` connections on `port`, each sending `request` and reading
/// the response head (a 200); they stay open.
async fn hold(port: u16, request: &[u8], n: usize) -> Result<Vec<tokio::net::TcpStream>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(request).await?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ensure!(s.read(&mut byte).await? == 1, "closed: {head:?}");
            head.push(byte[0]);
        }
        ensure!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        held.push(s);
    }
    Ok(held)
}

/// A server measured idle and with 1,000 connections held: RSS (KiB),
/// status p50 and p99 (ms).
struct Thousand {
    idle: (u64, f64, f64),
    busy: (u64, f64, f64),
    held: Vec<tokio::net::TcpStream>,
    daemon: Daemon,
    _node: RegtestNode,
    _dir: tempfile::TempDir,
}

/// A fresh server's RSS (KiB) and status p50/p99 (ms), then the same with
/// 1,000 connections holding `request` open; the connections.
async fn with_thousand(request: &[u8]) -> Result<Thousand> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = config_with(dir.path(), &node, port, "[events]\nmax_streams = 2000\n")?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let pid = daemon.child.id();
    submit(&daemon, 0, 0..10, 1).await?;
    read_latency(&daemon, 200).await?; // warm up
    let (p50, p99) = read_latency(&daemon, 1000).await?;
    let idle = (rss_kib(pid)?, p50, p99);
    let held = hold(port, request, 1000).await?;
    let (p50, p99) = read_latency(&daemon, 1000).await?;
    let busy = (rss_kib(pid)?, p50, p99);
    Ok(Thousand {
        idle,
        busy,
        held,
        daemon,
        _node: node,
        _dir: dir,
    })
}

/// 1,000 idle streams: a read route's p99 and the server's memory stay
/// within 2× of the idle server's, and a stream costs well under an idle
/// keep-alive connection (hyper's two 8 KiB buffers, which streams opened
/// first on their connection do without); figures in docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::print_stderr)] // the figures are the test's report
async fn a_thousand_idle_streams_stay_within_twice_an_idle_server() -> Result<()> {
    use tokio::io::AsyncReadExt;
    let plain = with_thousand(b"GET /healthz HTTP/1.1\r\nHost: btcts\r\n\r\n").await?;
    let (plain_idle, plain) = (plain.idle, plain.busy);
    let Thousand {
        idle,
        busy,
        held: mut streams,
        daemon,
        ..
    } = with_thousand(b"GET /v1/chains/chain-0/events HTTP/1.1\r\nHost: btcts\r\n\r\n").await?;
    eprintln!(
        "1000 idle keep-alive connections: RSS {} -> {} KiB, status p50/p99 {:.2}/{:.2} -> {:.2}/{:.2} ms",
        plain_idle.0, plain.0, plain_idle.1, plain_idle.2, plain.1, plain.2
    );
    eprintln!(
        "1000 idle event streams: RSS {} -> {} KiB, status p50/p99 {:.2}/{:.2} -> {:.2}/{:.2} ms",
        idle.0, busy.0, idle.1, idle.2, busy.1, busy.2
    );
    let stream_cost = busy.0.saturating_sub(idle.0);
    let plain_cost = plain.0.saturating_sub(plain_idle.0);
    // ~3.8 MiB against ~12 MiB; on hyper's connection a stream cost what
    // an idle connection does (~12.5 MiB the thousand).
    ensure!(
        stream_cost <= plain_cost / 2,
        "1000 streams cost {stream_cost} KiB, 1000 idle connections {plain_cost} KiB"
    );
    ensure!(
        stream_cost <= 6 * 1024,
        "1000 streams cost {stream_cost} KiB"
    );
    ensure!(
        busy.0 <= 2 * idle.0,
        "memory grew from {} KiB to {} KiB",
        idle.0,
        busy.0
    );
    // 1 ms of slack: on a shared 2-core machine sub-millisecond p99s jitter.
    ensure!(
        busy.2 <= 2.0 * idle.2 + 1.0,
        "p99 went from {:.2} ms to {:.2} ms",
        idle.2,
        busy.2
    );
    // An event reaches them all.
    submit(&daemon, 0, 5..6, 2).await?;
    let mut reached = 0;
    for s in &mut streams {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await??;
        if String::from_utf8_lossy(&buf[..n]).contains("chain.fork") {
            reached += 1;
        }
    }
    ensure!(
        reached == 1000,
        "the fork reached {reached} of 1000 streams"
    );
    Ok(())
}
