//! Webhooks over real sockets: the real `btcts serve` on litecoind regtest
//! POSTs a chain's events to a Python receiver whose signature check is the
//! snippet of docs/events.md (extracted from the doc, not copied), which
//! appends every verified event to a file. Every batched, anchored and
//! confirmed event arrives signed; a receiver down for a minute gets them
//! all afterwards; so does one that was down across a `kill -9` of btcts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_api::auth::TokenHash;
use btcts_tests::node::RegtestNode;
use serde_json::Value;

mod common;
use common::*;

/// The chain with a webhook (table form); chain-0 keeps the list form.
const HOOKED: &str = "hooked-1";
const HOOKED_TOKEN: &str = "token-hooked";
const SECRET: &str = "whsec_e2e-secret";
/// Webhook URLs often carry a credential: never logged.
const URL_SECRET: &str = "url-credential-9f2c";
const KINDS: [&str; 3] = ["record.batched", "record.anchored", "record.confirmed"];

/// The `verify_webhook` function from docs/events.md.
fn snippet() -> Result<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md"))?;
    let start = doc
        .find("<!-- snippet:verify-webhook -->")
        .context("no snippet marker in docs/events.md")?;
    let rest = &doc[start..];
    let end = rest.find("<!-- /snippet -->").context("no snippet end")?;
    let code = rest[..end]
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    ensure!(code.contains("def verify_webhook"), "{code}");
    Ok(code)
}

/// The receiver: the documented check, 200 and one JSON line per verified
/// event, 401 otherwise. `selftest` checks the documented test vector.
const RECEIVER: &str = r#"
import http.server, json, sys

def selftest():
    header = "t=1700000000,v1=2f441ba4b3b2d50d28a9ab9d9fd8880376ecd1eb5d0435401553f5d8d0a5dcf8"
    assert verify_webhook(b"whsec_test", b'{"id":1}', header, now=1700000000)
    assert not verify_webhook(b"whsec_test", b'{"id":2}', header, now=1700000000), "tampered body"
    assert not verify_webhook(b"whsec_tesT", b'{"id":1}', header, now=1700000000), "other secret"
    assert not verify_webhook(b"whsec_test", b'{"id":1}', header, now=1700000301), "stale"
    assert not verify_webhook(b"whsec_test", b'{"id":1}', "v1=abc", now=1700000000), "no t"
    print("selftest ok")

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verify_webhook(SECRET, body, self.headers.get("X-Btcts-Signature", "")):
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        e = json.loads(body)
        line = {
            "id": e["id"], "type": e["type"], "chain": e["chain_id"],
            "record": (e.get("record") or {}).get("id"),
            "header_id": self.headers.get("X-Btcts-Event-Id"),
            "header_type": self.headers.get("X-Btcts-Event-Type"),
            "content_type": self.headers.get("Content-Type"),
        }
        with open(OUT, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

if sys.argv[1] == "selftest":
    selftest()
else:
    SECRET = open(sys.argv[2], "rb").read().rstrip()
    OUT = sys.argv[3]
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// Writes the receiver script (snippet + harness) into `dir`.
fn receiver_script(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("receiver.py");
    std::fs::write(&path, format!("{}\n{RECEIVER}", snippet()?))?;
    Ok(path)
}

/// A running receiver; killed on drop.
struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the receiver on `port`, appending to `out`; waits until it listens.
fn start_receiver(script: &Path, port: u16, secret: &Path, out: &Path) -> Result<Receiver> {
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(secret)
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .context("python3")?;
    let receiver = Receiver(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "the receiver never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(receiver)
}

/// One test's world: node, config with a webhook to `hook_port`, files.
struct Setup {
    node: RegtestNode,
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    hook_port: u16,
    script: PathBuf,
    secret: PathBuf,
    out: PathBuf,
}

impl Setup {
    fn new() -> Result<Setup> {
        let node = RegtestNode::start()?;
        let dir = tempfile::tempdir()?;
        let (port, hook_port) = (free_port()?, free_port()?);
        let config = write_config_for(dir.path(), &node, port, &[("chain-0", "token-0")])?;
        let secret = dir.path().join("hooked.secret");
        std::fs::write(&secret, format!("{SECRET}\n"))?;
        let mut text = std::fs::read_to_string(&config)?;
        ensure!(
            text.trim_end().ends_with(']'),
            "[auth.chains] is the last table"
        );
        text.push_str(&format!(
            "[auth.chains.\"{HOOKED}\"]\ntokens_sha256 = [\"{}\"]\n\
             webhook_url = \"http://127.0.0.1:{hook_port}/btcts?key={URL_SECRET}\"\n\
             webhook_secret_file = \"{}\"\n\
             [webhooks]\nmax_backoff_secs = 2\ntimeout_ms = 2000\n",
            TokenHash::of(HOOKED_TOKEN)
                .0
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            secret.display()
        ));
        std::fs::write(&config, text)?;
        let script = receiver_script(dir.path())?;
        let out = dir.path().join("received.jsonl");
        Ok(Setup {
            node,
            config,
            port,
            hook_port,
            script,
            secret,
            out,
            dir,
        })
    }

    async fn start(&self) -> Result<Daemon> {
        self.start_with(&[]).await
    }

    async fn start_with(&self, env: &[(&str, &std::ffi::OsStr)]) -> Result<Daemon> {
        start_with_env(&self.config, self.port, &self.log(), env).await
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("btcts.log")
    }

    fn receiver(&self) -> Result<Receiver> {
        start_receiver(&self.script, self.hook_port, &self.secret, &self.out)
    }

    /// The verified events the receiver wrote, in arrival order.
    fn received(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(Into::into))
            .collect()
    }

    /// Mines a block every 300 ms until the receiver has batched, anchored
    /// and confirmed of every record in `ids`.
    async fn wait_all(&self, ids: &[String]) -> Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let got = self.received()?;
            let have: BTreeSet<(String, String)> = got
                .iter()
                .filter_map(|e| {
                    Some((
                        e["record"].as_str()?.to_owned(),
                        e["type"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            let missing: Vec<(&String, &str)> = ids
                .iter()
                .flat_map(|id| KINDS.iter().map(move |k| (id, *k)))
                .filter(|(id, k)| !have.contains(&((*id).clone(), (*k).to_owned())))
                .collect();
            if missing.is_empty() {
                return Ok(got);
            }
            if Instant::now() > deadline {
                bail!("never delivered: {missing:?}\nreceived: {got:#?}");
            }
            self.node.mine(1)?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Every event is the hooked chain's, its headers match its body, and each
/// (record, type) has one event id however often it arrived.
fn check_events(events: &[Value]) -> Result<BTreeMap<(String, String), u64>> {
    let mut ids = BTreeMap::new();
    for e in events {
        ensure!(e["chain"] == HOOKED, "another chain's event: {e}");
        ensure!(
            e["header_id"].as_str() == Some(&e["id"].to_string())
                && e["header_type"] == e["type"]
                && e["content_type"] == "application/json",
            "headers disagree with the body: {e}"
        );
        let key = (
            e["record"].as_str().context("record")?.to_owned(),
            e["type"].as_str().context("type")?.to_owned(),
        );
        let id = e["id"].as_u64().context("id")?;
        let old = *ids.entry(key).or_insert(id);
        ensure!(old == id, "one transition, two ids: {e}");
    }
    Ok(ids)
}

/// The value of the `btcts_webhook_deliveries_total` series for `result`.
async fn deliveries(d: &Daemon, result: &str) -> Result<f64> {
    metric(
        d,
        "btcts_webhook_deliveries_total",
        &format!("result=\"{result}\""),
    )
    .await
}

/// The value of the hooked chain's series of `name` whose labels hold `with`.
async fn metric(d: &Daemon, name: &str, with: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", d.url))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains(&format!("chain=\"{HOOKED}\""))
                && l.contains(with)
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0))
}

#[test]
fn the_documented_snippet_accepts_the_vector_and_refuses_tampering() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let script = receiver_script(dir.path())?;
    let out = Command::new("python3")
        .arg(&script)
        .arg("selftest")
        .output()?;
    ensure!(
        out.status.success() && text(&out.stdout).contains("selftest ok"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_chain_arrives_signed_in_order() -> Result<()> {
    let s = Setup::new()?;
    let _receiver = s.receiver()?;
    let d = s.start().await?;
    let ids = submit_as(&d, HOOKED, HOOKED_TOKEN, 1..4, 1).await?;
    ensure!(ids.len() == 3, "{ids:?}");
    submit(&d, 0, 1..3, 1).await?;
    mine_until(&d, &s.node, &ids[0], K).await?;
    let events = s.wait_all(&ids).await?;
    let by_transition = check_events(&events)?;
    ensure!(
        by_transition.len() == 9,
        "3 records × batched, anchored, confirmed: {by_transition:?}"
    );
    let arrival: Vec<u64> = events.iter().filter_map(|e| e["id"].as_u64()).collect();
    ensure!(
        arrival.windows(2).all(|w| w[0] < w[1]),
        "delivered once each, in id order: {arrival:?}"
    );

    // The receiver refuses a body that does not match its signature.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/btcts", s.hook_port))
        .header("X-Btcts-Signature", "t=1700000000,v1=00")
        .body(r#"{"id":1}"#)
        .send()
        .await?;
    ensure!(
        r.status().as_u16() == 401,
        "a forged event got {}",
        r.status()
    );
    ensure!(deliveries(&d, "ok").await? >= 9.0, "ok deliveries counted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_minute_gets_every_event_afterwards() -> Result<()> {
    let s = Setup::new()?;
    let d = s.start().await?;
    let down_since = Instant::now();
    let mut ids = submit_as(&d, HOOKED, HOOKED_TOKEN, 1..4, 2).await?;
    mine_until(&d, &s.node, &ids[0], K).await?;
    ids.extend(submit_as(&d, HOOKED, HOOKED_TOKEN, 10..12, 2).await?);
    mine_until(&d, &s.node, &ids[3], K + 1).await?;
    ensure!(
        deliveries(&d, "network_error").await? > 0.0,
        "failed attempts are counted"
    );
    while down_since.elapsed() < Duration::from_secs(60) {
        s.node.mine(1)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _receiver = s.receiver()?;
    let events = s.wait_all(&ids).await?;
    let by_transition = check_events(&events)?;
    ensure!(by_transition.len() == ids.len() * 3, "{by_transition:?}");
    let log = std::fs::read_to_string(s.log())?;
    ensure!(
        log.contains("webhook receiver unreachable") && !log.contains(URL_SECRET),
        "the outage is logged, the webhook URL's credential never:\n{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pending_across_a_kill_9_are_delivered_after_the_restart() -> Result<()> {
    let s = Setup::new()?;
    // First some events delivered (the cursor moves), then the receiver goes.
    let receiver = s.receiver()?;
    let d = s.start().await?;
    let mut ids = submit_as(&d, HOOKED, HOOKED_TOKEN, 1..3, 3).await?;
    mine_until(&d, &s.node, &ids[0], K).await?;
    s.wait_all(&ids).await?;
    drop(receiver);
    ids.extend(submit_as(&d, HOOKED, HOOKED_TOKEN, 20..23, 3).await?);
    mine_until(&d, &s.node, &ids[2], K + 1).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries(&d, "network_error").await? == 0.0 {
        ensure!(
            Instant::now() < deadline,
            "no failed attempt while the receiver is down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(d); // SIGKILL
    let d = s.start().await?;
    let _receiver = s.receiver()?;
    let events = s.wait_all(&ids).await?;
    let by_transition = check_events(&events)?;
    ensure!(by_transition.len() == ids.len() * 3, "{by_transition:?}");
    drop(d);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_max_age_are_dropped_counted_and_logged_per_run() -> Result<()> {
    let s = Setup::new()?;
    let max_age = std::ffi::OsStr::new("3");
    let d = s
        .start_with(&[("BTCTS_WEBHOOKS_MAX_AGE_SECS", max_age)])
        .await?;
    let old = submit_as(&d, HOOKED, HOOKED_TOKEN, 1..4, 4).await?;
    mine_until(&d, &s.node, &old[0], K).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&d, "btcts_webhook_dropped_total", "").await? < 9.0 {
        ensure!(
            Instant::now() < deadline,
            "3 records × 3 events never all dropped"
        );
        s.node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(s.log())?;
    let warnings = log
        .lines()
        .filter(|l| l.contains("older than webhooks.max_age_secs dropped"))
        .count();
    ensure!(
        (1..9).contains(&warnings),
        "one warning per run of drops, not per event ({warnings}):\n{log}"
    );

    // The receiver comes back: new events arrive, the dropped ones never.
    let _receiver = s.receiver()?;
    let new = submit_as(&d, HOOKED, HOOKED_TOKEN, 10..12, 4).await?;
    mine_until(&d, &s.node, &new[0], K).await?;
    let events = s.wait_all(&new).await?;
    check_events(&events)?;
    ensure!(
        events
            .iter()
            .all(|e| !old.iter().any(|id| e["record"].as_str() == Some(id))),
        "a dropped event was delivered: {events:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_receiver_is_retried_until_it_accepts() -> Result<()> {
    let s = Setup::new()?;
    // A receiver with another secret answers 401 to every delivery.
    let wrong = s.dir.path().join("wrong.secret");
    std::fs::write(&wrong, "not-the-secret")?;
    let refusing = start_receiver(&s.script, s.hook_port, &wrong, &s.out)?;
    let d = s.start().await?;
    let ids = submit_as(&d, HOOKED, HOOKED_TOKEN, 1..3, 5).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries(&d, "http_error").await? < 2.0 {
        ensure!(Instant::now() < deadline, "no refused attempt counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        deliveries(&d, "ok").await? == 0.0,
        "a 401 is not a delivery"
    );
    drop(refusing);
    let _receiver = s.receiver()?;
    mine_until(&d, &s.node, &ids[0], K).await?;
    let events = s.wait_all(&ids).await?;
    check_events(&events)?;
    let log = std::fs::read_to_string(s.log())?;
    ensure!(
        log.contains("webhook receiver refused a delivery") && log.contains("status=401"),
        "{log}"
    );
    Ok(())
}
