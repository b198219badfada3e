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
    // A fork is an event on its chain's stream and on the admin's.
    submit(&daemon, 0, 5..6, 1).await?;
    submit(&daemon, 0, 5..6, 2).await?;
    for stream in [&mut own, &mut all] {
        let fork = loop {
            match stream.next(Duration::from_secs(5)).await? {
                Some(Message::Event { kind, data, .. }) => break (kind, data),
                Some(Message::Comment(_)) => {}
                None => bail!("no fork event"),
            }
        };
        ensure!(fork.0 == "chain.fork", "{fork:?}");
        ensure!(fork.1["fork"]["height"] == 5, "{}", fork.1);
    }

    // A closed stream frees its slot (noticed at the next heartbeat).
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
