//! Event streams at the connection level, over raw sockets: a stream asked
//! for first on a connection is answered beside hyper (`api/src/listener/
//! streams.rs`), one asked for later, or in a head split across segments,
//! by hyper; both carry events, and a client that hangs up frees its slot
//! at once.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_tests::node::RegtestNode;
use common::{free_port, start, submit, write_config, Daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STREAM: &[u8] = b"GET /v1/chains/chain-0/events HTTP/1.1\r\nHost: btcts\r\n\r\n";

async fn daemon(extra: &str) -> Result<(Daemon, u16, RegtestNode, tempfile::TempDir)> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(extra);
    std::fs::write(&config, text)?;
    let d = start(&config, port, &dir.path().join("btcts.log")).await?;
    Ok((d, port, node, dir))
}

/// Reads a response head (lower-cased) off `s`, byte by byte so nothing
/// after it is consumed.
async fn head(s: &mut TcpStream) -> Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await??;
        ensure!(n == 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    Ok(String::from_utf8(head)?.to_ascii_lowercase())
}

fn content_length(head: &str) -> Result<usize> {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .context("no content-length")?
        .trim()
        .parse()
        .map_err(Into::into)
}

/// Reads `s` until `needle` appears (or 10 s pass); everything read.
async fn read_until(s: &mut TcpStream, needle: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut buf))
            .await
            .with_context(|| format!("no {needle} in {:?}", String::from_utf8_lossy(&seen)))??;
        ensure!(
            n > 0,
            "closed before {needle}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8(seen)?)
}

/// The data of a chunked body, or an error if the framing is wrong.
fn dechunk(mut raw: &str) -> Result<String> {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let size =
            usize::from_str_radix(size, 16).with_context(|| format!("chunk size {size:?}"))?;
        ensure!(rest.len() >= size + 2, "a cut chunk");
        ensure!(&rest[size..size + 2] == "\r\n", "no CRLF after a chunk");
        out.push_str(&rest[..size]);
        raw = &rest[size + 2..];
        if size == 0 {
            break;
        }
    }
    ensure!(raw.is_empty(), "bytes after the last whole chunk: {raw:?}");
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_served_first_or_later_on_a_connection() -> Result<()> {
    let (d, port, _node, _dir) = daemon("").await?;

    // First on its connection: chunked, closing, beside hyper.
    // A stray line break after the head (RFC 9112 §2.2) does not end it.
    let mut first = TcpStream::connect(("127.0.0.1", port)).await?;
    first.write_all(&[STREAM, b"\r\n"].concat()).await?;
    let h = head(&mut first).await?;
    ensure!(h.starts_with("http/1.1 200 ok\r\n"), "{h}");
    for line in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "connection: close",
        "date: ",
    ] {
        ensure!(h.contains(line), "no {line:?} in {h}");
    }

    // After a request on a keep-alive connection: hyper's.
    let mut later = TcpStream::connect(("127.0.0.1", port)).await?;
    later
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: btcts\r\n\r\n")
        .await?;
    let h = head(&mut later).await?;
    ensure!(h.starts_with("http/1.1 200"), "{h}");
    let mut body = vec![0u8; content_length(&h)?];
    later.read_exact(&mut body).await?;
    later.write_all(STREAM).await?;
    let h = head(&mut later).await?;
    ensure!(
        h.starts_with("http/1.1 200") && h.contains("text/event-stream"),
        "{h}"
    );
    ensure!(!h.contains("connection: close"), "{h}");

    // A head in two segments: hyper's too.
    let mut split = TcpStream::connect(("127.0.0.1", port)).await?;
    split.write_all(&STREAM[..20]).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    split.write_all(&STREAM[20..]).await?;
    let h = head(&mut split).await?;
    ensure!(
        h.starts_with("http/1.1 200") && h.contains("text/event-stream"),
        "{h}"
    );

    // A fork reaches all three.
    submit(&d, 0, 5..6, 1).await?;
    submit(&d, 0, 5..6, 2).await?;
    // Read until the fork event is whole, its chunks well framed.
    let mut raw = read_until(&mut first, "chain.fork").await?;
    while !dechunk(&raw).is_ok_and(|data| data.contains("chain.fork") && data.ends_with("\n\n")) {
        raw.push_str(&read_until(&mut first, "\r\n").await?);
        ensure!(raw.len() < 64 * 1024, "no whole fork event in {raw:?}");
    }
    let data = dechunk(&raw)?;
    ensure!(data.contains("event: chain.fork\n"), "{data}");
    for s in [&mut later, &mut split] {
        read_until(s, "chain.fork").await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_stream_is_a_whole_response_and_a_hang_up_frees_the_slot() -> Result<()> {
    // One slot, and a heartbeat far away: nothing is written to notice a
    // hang-up with.
    let (_d, port, _node, _dir) =
        daemon("[events]\nmax_streams = 1\nheartbeat_secs = 300\n").await?;
    let open = || async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(STREAM).await?;
        let h = head(&mut s).await?;
        Ok::<_, anyhow::Error>((s, h))
    };

    // An unknown chain: a 404 with its length, then the connection closes.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET /v1/chains/nope/events HTTP/1.1\r\nHost: btcts\r\n\r\n")
        .await?;
    let h = head(&mut s).await?;
    ensure!(h.starts_with("http/1.1 404"), "{h}");
    ensure!(h.contains("connection: close"), "{h}");
    let mut body = vec![0u8; content_length(&h)?];
    s.read_exact(&mut body).await?;
    let body: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(body["code"] == "unknown_chain", "{body}");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await??;
    ensure!(rest.is_empty(), "bytes after the body: {rest:?}");

    // A second request pipelined after a stream ends the stream: it is
    // not read, the connection closes.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(&[STREAM, b"GET /healthz HTTP/1.1\r\nHost: btcts\r\n\r\n"].concat())
        .await?;
    let h = head(&mut s).await?;
    ensure!(h.starts_with("http/1.1 200"), "{h}");
    // Closed with the request unread: an end of file or a reset.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .context("the stream stayed open after a pipelined request")?;
    if let Err(e) = closed {
        ensure!(e.kind() == std::io::ErrorKind::ConnectionReset, "{e}");
    }

    let (held, h) = open().await?;
    ensure!(h.starts_with("http/1.1 200"), "{h}");
    let (_, h) = open().await?;
    ensure!(h.starts_with("http/1.1 503"), "the one slot is taken: {h}");

    drop(held);
    let started = Instant::now();
    loop {
        let (_s, h) = open().await?;
        if h.starts_with("http/1.1 200") {
            break;
        }
        if started.elapsed() > Duration::from_secs(3) {
            bail!("the slot was not freed 3 s after the client left: {h}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
