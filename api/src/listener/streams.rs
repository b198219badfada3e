//! Event streams served beside hyper, without its connection buffers.
//!
//! hyper's HTTP/1 connection keeps an 8 KiB read buffer and an 8 KiB
//! response-head buffer for as long as the connection is open, so an idle
//! Server-Sent Events stream cost ~12.5 KiB and 1,000 of them doubled a
//! fresh server's memory (docs/BENCHMARKS.md). A connection whose *first*
//! request is a `GET` of an event stream, whole in what the client has
//! sent when it is looked at, is answered here instead: the head is parsed
//! with httparse (hyper's own parser), the request goes through the same
//! router (authentication, limits, metrics, the handler), and the response
//! is written as HTTP/1.1 with `Connection: close` — chunked when its
//! length is unknown (a stream), with `Content-Length` otherwise (a 4xx).
//! A stream then costs its task and its state (~4 KiB).
//!
//! Everything else goes to hyper untouched (the head is only peeked at):
//! other routes, a head split across segments or with more than
//! [`MAX_HEADERS`] headers, a request with a body, HTTP/1.0, and an event
//! stream asked for later on a keep-alive connection.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode, Version};
use axum::Router;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Bytes looked at for the first request head.
const PEEK: usize = 2048;

/// Most headers a request answered here may carry.
const MAX_HEADERS: usize = 32;

/// Longest wait for a client to take a write (a full TCP window): a reader
/// that stops reading frees its stream slot after this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the first request on a connection is.
pub(super) enum First {
    /// An event stream, read off the socket: answer it here.
    Stream(Box<Request<Body>>),
    /// Anything else, still unread: hand the connection to hyper.
    Other,
    /// The client sent nothing within the header timeout, or left.
    Gone,
}

/// Looks at the first request on `stream` (waiting at most `timeout` for
/// its first bytes) and takes it off the socket if it is answered here.
pub(super) async fn first_request(
    stream: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> First {
    let mut buf = vec![0u8; PEEK];
    let n = match tokio::time::timeout(timeout, stream.peek(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return First::Gone,
    };
    let Some((request, head_len)) = event_stream_request(&buf[..n], peer) else {
        return First::Other;
    };
    // The head is in the socket's buffer already: this does not wait.
    match stream.read_exact(&mut buf[..head_len]).await {
        Ok(_) => First::Stream(Box::new(request)),
        Err(_) => First::Gone,
    }
}

/// `bytes` as a complete `GET` of an event stream with no body, and the
/// length of its head; `None` for anything hyper should answer.
fn event_stream_request(bytes: &[u8], peer: SocketAddr) -> Option<(Request<Body>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(bytes).ok()? else {
        return None;
    };
    let (method, target, version) = (parsed.method?, parsed.path?, parsed.version?);
    if method != "GET" || version != 1 || !is_event_stream(target) {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(target)
        .version(Version::HTTP_11);
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            // A body, or a switch of protocol: hyper's to handle.
            "transfer-encoding" | "upgrade" | "expect" => return None,
            "content-length" if h.value != b"0" => return None,
            _ => {}
        }
        request = request.header(name, h.value);
    }
    let mut request = request.body(Body::empty()).ok()?;
    request.extensions_mut().insert(ConnectInfo(peer));
    Some((request, head_len))
}

/// `/v1/events` or `/v1/chains/{chain_id}/events`, with any query.
fn is_event_stream(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    if path == "/v1/events" {
        return true;
    }
    path.strip_prefix("/v1/chains/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .is_some_and(|chain| !chain.is_empty() && !chain.contains('/'))
}

/// Answers `request` with `app` on `stream`, then closes it. The body is
/// written until it ends, the client hangs up or sends anything more, or a
/// write waits longer than [`WRITE_TIMEOUT`].
pub(super) async fn serve(
    mut stream: TcpStream,
    app: Router,
    request: Box<Request<Body>>,
) -> std::io::Result<()> {
    let response = match app.oneshot(*request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let no_body = matches!(
        parts.status,
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    );
    let length = if no_body {
        None
    } else {
        body.size_hint().exact()
    };
    let chunked = !no_body && length.is_none();
    let head = response_head(&parts, length, chunked);
    let (mut reader, mut writer) = stream.split();
    write(&mut writer, &head).await?;
    drop(head);
    if no_body {
        return writer.shutdown().await;
    }
    let mut body = body.into_data_stream();
    // A client of an event stream sends nothing after its request but,
    // at most, a stray line break (RFC 9112 §2.2): any other read that
    // returns is a hang-up or a second request, either way the end.
    let mut probe = [0u8; 16];
    loop {
        let data = tokio::select! {
            biased;
            data = body.next() => data,
            read = reader.read(&mut probe) => match read {
                Ok(n) if n > 0 && probe[..n].iter().all(|b| matches!(b, b'\r' | b'\n')) => continue,
                _ => return Ok(()),
            },
        };
        let data = match data {
            None => break,
            // Cut the response short: the client sees an incomplete body.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "event stream body failed");
                return Ok(());
            }
            Some(Ok(data)) if data.is_empty() => continue,
            Some(Ok(data)) if !chunked => data.to_vec(),
            Some(Ok(data)) => {
                let mut chunk = Vec::with_capacity(data.len() + 12);
                chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                chunk
            }
        };
        write(&mut writer, &data).await?;
    }
    if chunked {
        write(&mut writer, b"0\r\n\r\n").await?;
    }
    writer.shutdown().await
}

async fn write(writer: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The status line and headers: the handler's, less hop-by-hop ones, plus
/// `date`, the framing and `connection: close`.
fn response_head(
    parts: &axum::http::response::Parts,
    length: Option<u64>,
    chunked: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_str()).as_bytes());
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == header::CONTENT_LENGTH
            || name.as_str() == "keep-alive"
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length {
        head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    } else if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Response;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    #[test]
    fn only_whole_bodiless_http11_gets_of_event_streams_are_taken() {
        let taken = |raw: &str| event_stream_request(raw.as_bytes(), peer());
        let head = "GET /v1/chains/c-1/events?after=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nLast-Event-ID: 7\r\n\r\n";
        let (request, n) = taken(head).expect("an event stream");
        assert_eq!(n, head.len());
        assert_eq!(request.uri().path(), "/v1/chains/c-1/events");
        assert_eq!(request.uri().query(), Some("after=3"));
        assert_eq!(request.headers()["authorization"], "Bearer t");
        assert_eq!(request.headers()["last-event-id"], "7");
        assert!(request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some());
        // Bytes after the head (a pipelined request) are not part of it.
        let (_, n) = taken(&format!("{head}GET /healthz HTTP/1.1\r\n\r\n")).expect("taken");
        assert_eq!(n, head.len());
        assert!(taken("GET /v1/events HTTP/1.1\r\nContent-Length: 0\r\n\r\n").is_some());

        for other in [
            "GET /v1/chains/c-1/events HTTP/1.1\r\nHost: x\r\n", // head not whole
            "GET /v1/chains/c-1/events HTTP/1.0\r\n\r\n",        // HTTP/1.0
            "HEAD /v1/chains/c-1/events HTTP/1.1\r\n\r\n",       // not a GET
            "POST /v1/chains/c-1/events HTTP/1.1\r\n\r\n",
            "GET /v1/chains/c-1/status HTTP/1.1\r\n\r\n", // another route
            "GET /v1/chains//events HTTP/1.1\r\n\r\n",
            "GET /v1/chains/a/b/events HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\n\r\n",
            "GET /v1/events HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", // a body
            "GET /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /v1/events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /v1/events HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /v1/events HTTP/1.1\r\nBad Header: x\r\n\r\n", // malformed
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(taken(other).is_none(), "{other:?} taken");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(taken(&format!("GET /v1/events HTTP/1.1\r\n{many}\r\n")).is_none());
    }

    #[test]
    fn the_head_frames_the_body_and_closes() {
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/event-stream")
            .header("connection", "keep-alive")
            .header("content-length", "99")
            .body(())
            .expect("response");
        let (parts, ()) = response.into_parts();
        let head = String::from_utf8(response_head(&parts, None, true)).expect("text");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ndate: "), "{head}");
        assert!(
            head.contains("\r\ncontent-type: text/event-stream\r\n"),
            "{head}"
        );
        assert!(
            head.ends_with("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"),
            "{head}"
        );
        assert!(
            !head.contains("keep-alive") && !head.contains("99"),
            "{head}"
        );

        let (parts, ()) = Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(())
            .expect("response")
            .into_parts();
        let head = String::from_utf8(response_head(&parts, Some(42), false)).expect("text");
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
        assert!(
            head.ends_with("content-length: 42\r\nconnection: close\r\n\r\n"),
            "{head}"
        );
    }
}
