//! The feeder's settings, checked once: [`Options`] as they come from flags
//! become a [`Config`] of typed values, or a [`ConfigError`] naming the
//! option. The chain's token is a [`Token`], never logged. Nothing here
//! reads the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use aggregator::{ChainId, Height};

/// What the API allows by default (`limits.max_records_per_request`).
pub const DEFAULT_BATCH: usize = 1000;

/// Where to start when there is no cursor yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this height (the first block fed is the first selected one at or after it).
    Height(Height),
    /// At the chain's latest block when the feeder first runs.
    Latest,
}

impl FromStr for Start {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(Start::Latest);
        }
        match s.parse::<Height>() {
            Ok(h) if h >= 1 => Ok(Start::Height(h)),
            _ => Err(format!("expected a height ≥ 1 or `latest`, got {s:?}")),
        }
    }
}

/// A chain's submit token. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// A token from its text; surrounding whitespace (a final newline) is
    /// dropped. Refuses an empty token or one that cannot be an HTTP header.
    pub fn new(text: &str) -> Result<Token, ConfigError> {
        let t = text.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                "token",
                "must be non-empty printable ASCII without spaces",
            ));
        }
        Ok(Token(t.to_owned()))
    }

    /// The token in the file at `path`.
    pub fn from_file(path: &Path) -> Result<Token, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "--token-file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Token::new(&text)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// Extra CA certificates (PEM) trusted for one endpoint, besides the
/// system's roots. Its `Debug` shows the path only.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    path: PathBuf,
    pem: Vec<u8>,
}

impl fmt::Debug for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CaFile").field(&self.path).finish()
    }
}

impl CaFile {
    /// The certificates in the PEM file at `path` (the flag `option` is
    /// named in errors). Refuses a file without a certificate.
    pub fn read(option: &'static str, path: &Path) -> Result<CaFile, ConfigError> {
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::new(option, format!("cannot read {}: {e}", path.display()))
        })?;
        CaFile::from_pem(option, path, pem)
    }

    /// Certificates already read from `path`.
    pub fn from_pem(
        option: &'static str,
        path: &Path,
        pem: Vec<u8>,
    ) -> Result<CaFile, ConfigError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(option, format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ConfigError::new(
                option,
                format!("{}: no PEM certificate in it", path.display()),
            ));
        }
        Ok(CaFile {
            path: path.to_owned(),
            pem,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PEM text.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

/// The options as given (flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// The chain's id at btcts (`--chain-id`).
    pub chain_id: String,
    /// The chain id the node reports, if it differs from `chain_id`.
    pub node_chain_id: Option<String>,
    /// The node's gRPC endpoint (`http://127.0.0.1:9090`).
    pub grpc: String,
    /// btcts's base URL (`http://127.0.0.1:8080`, or `https://…`).
    pub btcts: String,
    /// A PEM file of CAs trusted for `grpc` besides the system's roots.
    pub grpc_ca: Option<PathBuf>,
    /// A PEM file of CAs trusted for `btcts` besides the system's roots.
    pub btcts_ca: Option<PathBuf>,
    /// The cursor file; or `state_dir`/`<chain id>.cursor`.
    pub cursor_file: Option<PathBuf>,
    /// The directory of the cursor file.
    pub state_dir: Option<PathBuf>,
    /// Where to start without a cursor (default height 1).
    pub from: Option<Start>,
    /// Feed only heights divisible by this (default 1: every block).
    pub every: u64,
    /// Records per request (default [`DEFAULT_BATCH`]).
    pub batch: usize,
    /// How often to look for new blocks when caught up.
    pub poll: Duration,
    /// The longest wait between retries while the chain or btcts is down.
    pub max_backoff: Duration,
    /// Blocks fetched from the node at once.
    pub fetch_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chain_id: String::new(),
            node_chain_id: None,
            grpc: "http://127.0.0.1:9090".into(),
            btcts: "http://127.0.0.1:8080".into(),
            grpc_ca: None,
            btcts_ca: None,
            cursor_file: None,
            state_dir: None,
            from: None,
            every: 1,
            batch: DEFAULT_BATCH,
            poll: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            fetch_concurrency: 8,
        }
    }
}

/// Checked settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The chain's id at btcts.
    pub chain_id: ChainId,
    /// The chain id the node must report.
    pub node_chain_id: String,
    /// The node's gRPC endpoint.
    pub grpc: String,
    /// btcts's base URL, without a trailing `/`.
    pub btcts: String,
    /// Extra CAs for `grpc`.
    pub grpc_ca: Option<CaFile>,
    /// Extra CAs for `btcts`.
    pub btcts_ca: Option<CaFile>,
    /// The cursor file.
    pub cursor_file: PathBuf,
    /// Where to start without a cursor.
    pub start: Start,
    /// Feed only heights divisible by this (≥ 1).
    pub every: u64,
    /// Records per request (≥ 1).
    pub batch: usize,
    /// Poll interval when caught up.
    pub poll: Duration,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Longest retry delay without a `Retry-After`.
    pub max_backoff: Duration,
    /// Blocks fetched at once (≥ 1).
    pub fetch_concurrency: usize,
}

/// An option that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {reason}")]
pub struct ConfigError {
    /// The option.
    pub option: &'static str,
    /// Why.
    pub reason: String,
}

impl ConfigError {
    fn new(option: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            option,
            reason: reason.into(),
        }
    }
}

fn http_url(option: &'static str, url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            ConfigError::new(
                option,
                format!("expected http://host:port or https://host:port, got {url:?}"),
            )
        })?;
    if rest.trim_end_matches('/').is_empty() || rest.contains(char::is_whitespace) {
        return Err(ConfigError::new(option, format!("no host in {url:?}")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn ca_file(option: &'static str, path: Option<&Path>) -> Result<Option<CaFile>, ConfigError> {
    path.map(|p| CaFile::read(option, p)).transpose()
}

impl Options {
    /// Checks every option.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let chain_id = ChainId::new(&self.chain_id)
            .map_err(|e| ConfigError::new("--chain-id", e.to_string()))?;
        let cursor_file = match (self.cursor_file, self.state_dir) {
            (Some(f), None) => f,
            (None, Some(d)) => d.join(format!("{chain_id}.cursor")),
            (None, None) => {
                return Err(ConfigError::new(
                    "--state-dir",
                    "give --state-dir or --cursor-file",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "--cursor-file",
                    "give --state-dir or --cursor-file, not both",
                ))
            }
        };
        if self.every == 0 {
            return Err(ConfigError::new("--every", "must be at least 1"));
        }
        if self.batch == 0 {
            return Err(ConfigError::new("--batch", "must be at least 1"));
        }
        if self.fetch_concurrency == 0 || self.fetch_concurrency > 256 {
            return Err(ConfigError::new("--fetch-concurrency", "must be 1 to 256"));
        }
        if self.poll.is_zero() {
            return Err(ConfigError::new("--poll-ms", "must be positive"));
        }
        let min_backoff = Duration::from_millis(500).min(self.max_backoff);
        if min_backoff.is_zero() {
            return Err(ConfigError::new("--max-backoff-secs", "must be positive"));
        }
        Ok(Config {
            node_chain_id: self.node_chain_id.unwrap_or_else(|| chain_id.to_string()),
            chain_id,
            grpc: http_url("--grpc", &self.grpc)?,
            btcts: http_url("--btcts", &self.btcts)?,
            grpc_ca: ca_file("--grpc-ca", self.grpc_ca.as_deref())?,
            btcts_ca: ca_file("--btcts-ca", self.btcts_ca.as_deref())?,
            cursor_file,
            start: self.from.unwrap_or(Start::Height(1)),
            every: self.every,
            batch: self.batch,
            poll: self.poll,
            min_backoff,
            max_backoff: self.max_backoff,
            fetch_concurrency: self.fetch_concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            chain_id: "chain-a".into(),
            state_dir: Some("/var/lib/feed".into()),
            ..Options::default()
        }
    }

    #[test]
    fn validates_each_option() {
        let cases: Vec<(&str, Options, &str)> = vec![
            (
                "bad chain id",
                Options {
                    chain_id: "a b".into(),
                    ..options()
                },
                "--chain-id",
            ),
            (
                "no cursor",
                Options {
                    state_dir: None,
                    ..options()
                },
                "--state-dir",
            ),
            (
                "both cursors",
                Options {
                    cursor_file: Some("c".into()),
                    ..options()
                },
                "--cursor-file",
            ),
            (
                "every 0",
                Options {
                    every: 0,
                    ..options()
                },
                "--every",
            ),
            (
                "batch 0",
                Options {
                    batch: 0,
                    ..options()
                },
                "--batch",
            ),
            (
                "not http",
                Options {
                    btcts: "ftp://x".into(),
                    ..options()
                },
                "--btcts",
            ),
            (
                "missing CA file",
                Options {
                    btcts_ca: Some("/nonexistent/ca.pem".into()),
                    ..options()
                },
                "--btcts-ca",
            ),
            (
                "no host",
                Options {
                    grpc: "http://".into(),
                    ..options()
                },
                "--grpc",
            ),
            (
                "zero poll",
                Options {
                    poll: Duration::ZERO,
                    ..options()
                },
                "--poll-ms",
            ),
            (
                "no concurrency",
                Options {
                    fetch_concurrency: 0,
                    ..options()
                },
                "--fetch-concurrency",
            ),
        ];
        for (name, o, option) in cases {
            assert_eq!(o.validate().map_err(|e| e.option), Err(option), "{name}");
        }
        let c = options().validate().expect("valid");
        assert_eq!(c.cursor_file, PathBuf::from("/var/lib/feed/chain-a.cursor"));
        assert_eq!(c.node_chain_id, "chain-a");
        assert_eq!((c.start, c.every, c.batch), (Start::Height(1), 1, 1000));
        let c = Options {
            btcts: "https://btcts.example/".into(),
            grpc: "https://rpc.example:9090".into(),
            ..options()
        }
        .validate()
        .expect("https is allowed");
        assert_eq!(c.btcts, "https://btcts.example");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let path = Path::new("ca.pem");
        let e = CaFile::from_pem("--grpc-ca", path, b"not a certificate".to_vec())
            .expect_err("no certificate");
        assert_eq!(e.option, "--grpc-ca");
        assert!(e.reason.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn parses_start_and_hides_the_token() {
        assert_eq!("latest".parse(), Ok(Start::Latest));
        assert_eq!("42".parse(), Ok(Start::Height(42)));
        assert!("0".parse::<Start>().is_err());
        assert!("-1".parse::<Start>().is_err());
        let token = Token::new("s3cret\n").expect("token");
        assert_eq!(token.expose(), "s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(Token::new(" \n").is_err());
        assert!(Token::new("a b").is_err());
    }
}
