//! The connection side of the HTTP server: at most `max_connections` open
//! connections (further ones wait in the kernel's listen backlog), and a
//! connection that has not sent a complete request head within
//! `header_read_timeout` is closed — a slowloris client holds a socket for
//! that long, not forever. axum's own `serve` has neither.
//!
//! HTTP/1.1 only, through hyper's HTTP/1 connection rather than
//! hyper-util's auto-detecting one: the auto connection reads a 24-byte
//! preface first, which made hyper grow every connection's read buffer to
//! 16 KiB, and carries HTTP/2 state nothing here uses (clients and TLS
//! proxies speak HTTP/1.1 to btcts). An idle connection or event stream
//! costs ~12 KiB instead of ~20 KiB (docs/BENCHMARKS.md). A connection
//! that opens with an event stream is answered beside hyper, without its
//! buffers ([`streams`]).

mod streams;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, warn};

/// How long connections may take to finish their requests once shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most open connections.
    pub max_connections: usize,
    /// Longest wait for a complete request head.
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then lets open connections
/// finish (at most [`DRAIN`]). Each request carries `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let mut stream = stream;
            match streams::first_request(&mut stream, peer, header_read_timeout).await {
                streams::First::Gone => {}
                streams::First::Stream(request) => {
                    if let Err(e) = streams::serve(stream, app, request).await {
                        debug!(%peer, error = %e, "event stream ended");
                    }
                }
                streams::First::Other => {
                    let service =
                        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                            req.extensions_mut().insert(ConnectInfo(peer));
                            app.clone().oneshot(req.map(axum::body::Body::new))
                        });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        debug!(%peer, error = %e, "connection ended");
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            "connections still open after {} s; closing them",
            DRAIN.as_secs()
        );
    }
}
