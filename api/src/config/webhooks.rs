//! Webhooks in the configuration: the two forms of `[auth.chains.<id>]`
//! (a list of token hashes, or a table that can also name a webhook), the
//! global `[webhooks]` section, and their check into [`WebhookSettings`].
//!
//! A webhook's secret is read from `webhook_secret_file` at start-up (never
//! from the file itself, the environment or argv) and is never logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::ChainId;
use serde::{Deserialize, Serialize};

use super::{in_range, invalid, AuthSection, ConfigError};

/// One entry of `[auth.chains]`: today's list of token hashes, or a table.
///
/// Untagged on the wire; read through [`toml::Value`] so that an error
/// says what is wrong inside the entry (a plain untagged enum only says
/// that no variant matched).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, try_from = "toml::Value")]
pub enum ChainAuth {
    /// `alpha = ["<sha256 hex>", …]`.
    Tokens(Vec<String>),
    /// `[auth.chains.alpha]` with `tokens_sha256`, and optionally a webhook.
    Table(ChainAuthTable),
}

/// `[auth.chains.<id>]` as a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainAuthTable {
    /// SHA-256 (hex) of each token allowed to submit for the chain.
    #[serde(default)]
    pub tokens_sha256: Vec<String>,
    /// Where the chain's events are POSTed (`https://`, or `http://` to a
    /// loopback host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// A file holding the HMAC secret that signs each delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The chain's latency budget in blocks: the same as
    /// `[batching.max_anchor_delay_blocks_by_chain] <id> = n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_anchor_delay_blocks: Option<u32>,
}

impl TryFrom<toml::Value> for ChainAuth {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Array(_) => value
                .try_into()
                .map(ChainAuth::Tokens)
                .map_err(|e| format!("a list of token hashes: {e}")),
            toml::Value::Table(_) => value
                .try_into()
                .map(ChainAuth::Table)
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "expected a list of token hashes or a table, found {}",
                other.type_str()
            )),
        }
    }
}

impl ChainAuth {
    /// The token hashes (hex), in either form.
    pub fn tokens(&self) -> &[String] {
        match self {
            ChainAuth::Tokens(t) => t,
            ChainAuth::Table(t) => &t.tokens_sha256,
        }
    }
}

/// `[webhooks]`: delivery policy for every chain's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// An event not delivered this many seconds after it was written is
    /// dropped (counted and logged).
    pub max_age_secs: u64,
    /// The longest wait between two attempts at one event.
    pub max_backoff_secs: u64,
    /// How long one delivery attempt may take, ms.
    pub timeout_ms: u64,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        WebhooksSection {
            max_age_secs: 86_400,
            max_backoff_secs: 300,
            timeout_ms: 10_000,
        }
    }
}

/// A webhook's HMAC secret; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads `path`, trailing whitespace trimmed; refuses a missing, empty
    /// or unreadable file naming `key`.
    pub fn read(key: &str, path: &Path) -> Result<WebhookSecret, ConfigError> {
        let bytes = std::fs::read(path)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(invalid(key, format!("{} is empty", path.display())));
        }
        Ok(WebhookSecret(bytes[..end].to_vec()))
    }
}

impl From<&[u8]> for WebhookSecret {
    fn from(bytes: &[u8]) -> Self {
        WebhookSecret(bytes.to_vec())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// One chain's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The chain whose events it receives.
    pub chain: ChainId,
    /// The receiver.
    pub url: String,
    /// The signing secret.
    pub secret: WebhookSecret,
}

/// Validated webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// One per chain with a `webhook_url`.
    pub targets: Vec<WebhookTarget>,
    /// Events older than this are dropped.
    pub max_age: Duration,
    /// Cap of the retry backoff.
    pub max_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    /// No webhooks, the default policy.
    fn default() -> Self {
        WebhooksSection::default().settings(Vec::new())
    }
}

impl WebhooksSection {
    fn settings(&self, targets: Vec<WebhookTarget>) -> WebhookSettings {
        WebhookSettings {
            targets,
            max_age: Duration::from_secs(self.max_age_secs),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }

    /// Checks the section and every chain's webhook (reading the secrets).
    pub fn validate(&self, auth: &AuthSection) -> Result<WebhookSettings, ConfigError> {
        for (key, v) in [
            ("webhooks.max_age_secs", self.max_age_secs),
            ("webhooks.max_backoff_secs", self.max_backoff_secs),
            ("webhooks.timeout_ms", self.timeout_ms),
        ] {
            in_range(key, key, v)?;
        }
        let mut targets = Vec::new();
        for (chain, entry) in &auth.chains {
            let ChainAuth::Table(table) = entry else {
                continue;
            };
            let key = format!("auth.chains.{chain}");
            let (url, file) = match (&table.webhook_url, &table.webhook_secret_file) {
                (None, None) => continue,
                (Some(url), Some(file)) => (url, file),
                (Some(_), None) => {
                    return Err(invalid(
                        &format!("{key}.webhook_secret_file"),
                        "a webhook needs a secret file",
                    ))
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        &format!("{key}.webhook_url"),
                        "a secret file without a webhook_url",
                    ))
                }
            };
            let id = ChainId::new(chain.as_str()).map_err(|e| invalid(&key, e))?;
            check_url(&format!("{key}.webhook_url"), url)?;
            let secret = WebhookSecret::read(&format!("{key}.webhook_secret_file"), file)?;
            targets.push(WebhookTarget {
                chain: id,
                url: url.clone(),
                secret,
            });
        }
        Ok(self.settings(targets))
    }
}

/// `https://` anywhere; `http://` only to a loopback host (a receiver on
/// the same machine), since the events would otherwise cross the network
/// in clear.
fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(key, e))?;
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(
            key,
            "http:// is only allowed to a loopback host (127.0.0.0/8, ::1, localhost); use https://",
        )),
        _ => Err(invalid(key, "must be an https:// URL")),
    }
}
