//! [`Sink`] over btcts's REST API: `POST /v1/chains/{chain_id}/blocks` with
//! the chain's bearer token, body `{"blocks":[{height, block_hash,
//! staker_set_digest}]}`, answered `202 {"records":[{id, status, duplicate,
//! conflict}]}` in request order. Errors carry `{"code","message"}`; 429 and
//! 503 carry `Retry-After` (seconds).
//!
//! [`client_builder`] is the HTTP(S) client of every btcts command that
//! talks to a btcts server: rustls with the `ring` provider, the system's
//! roots (through the platform verifier) plus an optional [`CaFile`].

use std::sync::Arc;
use std::time::Duration;

use aggregator::{ChainId, Height, PosBlockHash, StakerSetDigest};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use crate::config::{CaFile, Token};
use crate::sink::{RecordAck, Sink, SinkError};
use crate::source::ChainBlock;

/// How long one submission may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// btcts at a base URL, submitting with one chain's token.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    base: String,
    token: Token,
}

/// Why no HTTPS client could be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS set-up: {0}")]
pub struct TlsSetupError(String);

/// A reqwest client builder that speaks HTTPS through rustls (`ring`),
/// trusting the system's roots and the certificates of `ca`.
pub fn client_builder(ca: Option<&CaFile>) -> Result<reqwest::ClientBuilder, TlsSetupError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = match ca {
        Some(ca) => CertificateDer::pem_slice_iter(ca.pem())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsSetupError(format!("{}: {e}", ca.path().display())))?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| TlsSetupError(format!("certificate verifier: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config))
}

impl HttpSink {
    /// btcts at `base` (`http://127.0.0.1:8080` or `https://…`, trusting
    /// `ca` besides the system's roots), submitting with `token`.
    pub fn new(base: &str, token: Token, ca: Option<&CaFile>) -> Result<HttpSink, SinkError> {
        let client = client_builder(ca)
            .map_err(|e| SinkError::Protocol(e.to_string()))?
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| SinkError::Protocol(format!("HTTP client: {e}")))?;
        Ok(HttpSink {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }
}

#[derive(Serialize)]
struct Body<'a> {
    blocks: Vec<Block<'a>>,
}

#[derive(Serialize)]
struct Block<'a> {
    height: Height,
    block_hash: &'a PosBlockHash,
    staker_set_digest: &'a StakerSetDigest,
}

#[derive(Deserialize)]
struct Answer {
    records: Vec<Ack>,
}

#[derive(Deserialize)]
struct Ack {
    duplicate: bool,
    conflict: bool,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    code: String,
    message: String,
}

/// `e` and its causes (reqwest's own message omits them: "connection
/// refused", "invalid peer certificate: UnknownIssuer").
pub fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` in seconds (btcts sends whole seconds; an HTTP date is
/// treated as absent and the caller's own backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The error for a non-2xx answer.
pub(crate) fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> SinkError {
    match status {
        429 | 503 => SinkError::Busy {
            status,
            retry_after: retry_after(headers),
        },
        400..=499 => {
            let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
            SinkError::Rejected {
                status,
                code: e.code,
                message: e.message,
            }
        }
        _ => SinkError::Unreachable(format!("HTTP {status}")),
    }
}

/// The acks of a 2xx answer to `count` blocks.
pub(crate) fn acks(body: &[u8], count: usize) -> Result<Vec<RecordAck>, SinkError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| SinkError::Protocol(format!("submit answer: {e}")))?;
    if answer.records.len() != count {
        return Err(SinkError::Protocol(format!(
            "{} acks for {count} records",
            answer.records.len()
        )));
    }
    Ok(answer
        .records
        .into_iter()
        .map(|a| RecordAck {
            duplicate: a.duplicate,
            conflict: a.conflict,
        })
        .collect())
}

impl Sink for HttpSink {
    async fn submit(
        &self,
        chain: &ChainId,
        blocks: &[ChainBlock],
    ) -> Result<Vec<RecordAck>, SinkError> {
        let body = Body {
            blocks: blocks
                .iter()
                .map(|b| Block {
                    height: b.height,
                    block_hash: &b.block_hash,
                    staker_set_digest: &b.staker_set_digest,
                })
                .collect(),
        };
        let url = format!("{}/v1/chains/{chain}/blocks", self.base);
        let response = self
            .client
            .post(&url)
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| SinkError::Unreachable(format!("POST {url}: {}", causes(&e))))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| {
            SinkError::Unreachable(format!("POST {url}: reading the answer: {}", causes(&e)))
        })?;
        if status.is_success() {
            acks(&bytes, blocks.len())
        } else {
            Err(classify(status.as_u16(), &headers, &bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(r) = retry {
            h.insert(RETRY_AFTER, HeaderValue::from_str(r).expect("ascii"));
        }
        h
    }

    /// Status, Retry-After, body, transient, retry after (s), text in the message.
    type Case = (
        u16,
        Option<&'static str>,
        &'static [u8],
        bool,
        Option<u64>,
        &'static str,
    );

    #[test]
    fn classifies_answers() {
        let body = br#"{"code":"unauthorized","message":"unknown token"}"#;
        let cases: [Case; 8] = [
            (
                429,
                Some("7"),
                b"{}",
                true,
                Some(7),
                "busy (HTTP 429); retry after 7 s",
            ),
            (503, Some("1"), b"{}", true, Some(1), "busy (HTTP 503)"),
            (
                503,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                b"",
                true,
                None,
                "busy (HTTP 503)",
            ),
            (500, None, b"{}", true, None, "unreachable: HTTP 500"),
            (502, None, b"", true, None, "unreachable: HTTP 502"),
            (
                401,
                None,
                body,
                false,
                None,
                "HTTP 401 unauthorized): unknown token (is the token file",
            ),
            (
                404,
                None,
                br#"{"code":"unknown_chain","message":"x"}"#,
                false,
                None,
                "[auth.chains]",
            ),
            (
                413,
                None,
                br#"{"code":"too_many_records","message":"x"}"#,
                false,
                None,
                "lower --batch",
            ),
        ];
        for (status, retry, body, transient, after, text) in cases {
            let e = classify(status, &headers(retry), body);
            assert_eq!(e.is_transient(), transient, "{status}: {e}");
            assert_eq!(e.retry_after(), after.map(Duration::from_secs), "{status}");
            assert!(e.to_string().contains(text), "{status}: {e}");
        }
    }

    #[test]
    fn reads_acks_in_order_and_checks_their_count() {
        let body = br#"{"records":[
            {"id":"aa","status":"pending","duplicate":false,"conflict":false},
            {"id":"bb","status":"anchored","duplicate":true,"conflict":true}]}"#;
        let got = acks(body, 2).expect("two acks");
        assert_eq!(
            got,
            vec![
                RecordAck {
                    duplicate: false,
                    conflict: false
                },
                RecordAck {
                    duplicate: true,
                    conflict: true
                },
            ]
        );
        assert!(matches!(acks(body, 3), Err(SinkError::Protocol(_))));
        assert!(matches!(acks(b"not json", 1), Err(SinkError::Protocol(_))));
    }
}
