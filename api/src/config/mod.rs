//! Configuration: one TOML file, then `BTCTS_*` environment variables, then
//! flags; checked once into typed [`Settings`]. Unknown keys are errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::{AnchorNetwork, ChainId, Tag};
use btc_submitter::{AnchorConfig, FeePolicy, RpcAuth, RpcConfig};
use serde::{Deserialize, Serialize};

use crate::auth::{Credentials, TokenHash};

mod ibc;
pub use ibc::{fee_amount, IbcChain, IbcChainSection, IbcSection, IbcSettings};

/// The file layout. Every field has a default except the node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Directory holding `btcts.redb`.
    pub data_dir: PathBuf,
    /// Anchor network: bitcoin, testnet, testnet4, signet, regtest, litecoin, litecoin-regtest.
    pub network: String,
    /// Deployment tag in every OP_RETURN, 8 hex characters.
    pub tag: String,
    /// Confirmations after which a timestamp counts as confirmed (k).
    pub confirmations: u32,
    /// The Bitcoin node.
    pub node: NodeSection,
    /// Batching policy.
    pub batching: BatchingSection,
    /// Fee policy (sat/vB).
    pub fees: FeePolicy,
    /// Request limits.
    pub limits: LimitsSection,
    /// Credentials (SHA-256 hashes of bearer tokens only).
    pub auth: AuthSection,
    /// The OpenTimestamps calendar and `.ots` export.
    pub opentimestamps: OtsSection,
    /// IBC: the solo-machine signer.
    pub ibc: IbcSection,
}

/// `[opentimestamps]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtsSection {
    /// Serve the calendar protocol (`POST /digest`, `GET /timestamp/{commitment}`).
    pub calendar: bool,
    /// The base URL clients reach this server at, written into pending
    /// attestations. Default: `http://` and the address the server listens on.
    pub public_url: Option<String>,
}

impl Default for OtsSection {
    fn default() -> Self {
        OtsSection {
            calendar: true,
            public_url: None,
        }
    }
}

/// Validated `[opentimestamps]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtsSettings {
    /// Whether the calendar routes are served.
    pub calendar: bool,
    /// The configured public URL, if any: a bare origin without a final `/`,
    /// a URL with a path (behind a proxy) with one.
    pub public_url: Option<String>,
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// `http://host:port` of the node's RPC.
    pub url: String,
    /// RPC user (with `password`), or use `cookie_file`.
    pub user: Option<String>,
    /// RPC password.
    pub password: Option<String>,
    /// The node's `.cookie` file.
    pub cookie_file: Option<PathBuf>,
    /// The wallet that funds anchors.
    pub wallet: String,
    /// How often the tip is polled, in ms.
    pub poll_ms: u64,
}

/// `[batching]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingSection {
    /// Seal early once this many records are pending.
    pub max_records_per_batch: u64,
    /// Anchors allowed to wait for their first confirmation at once.
    pub max_unconfirmed: usize,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most records in one submission.
    pub max_records_per_request: usize,
    /// Sustained requests per second per credential (or per client address).
    pub rate_per_second: u32,
    /// Burst allowance on top of the rate.
    pub rate_burst: u32,
    /// Longest time a request may take, ms.
    pub request_timeout_ms: u64,
    /// Most requests in flight at once.
    pub max_concurrent_requests: usize,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// SHA-256 (hex) of the admin token.
    pub admin_token_sha256: Option<String>,
    /// SHA-256 (hex) of a token required for reads; reads are public without it.
    pub read_token_sha256: Option<String>,
    /// SHA-256 (hex) of a token the calendar routes require; open without it
    /// (like public OpenTimestamps calendars).
    pub calendar_token_sha256: Option<String>,
    /// Chain id → SHA-256 (hex) of each token allowed to submit for it.
    pub chains: BTreeMap<String, Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("btcts-data"),
            network: "regtest".into(),
            tag: Tag::DEFAULT.to_string(),
            confirmations: 6,
            node: NodeSection::default(),
            batching: BatchingSection::default(),
            fees: FeePolicy::default(),
            limits: LimitsSection::default(),
            auth: AuthSection::default(),
            opentimestamps: OtsSection::default(),
            ibc: IbcSection::default(),
        }
    }
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            url: "http://127.0.0.1:18443".into(),
            user: None,
            password: None,
            cookie_file: None,
            wallet: "btcts".into(),
            poll_ms: 1000,
        }
    }
}

impl Default for BatchingSection {
    fn default() -> Self {
        BatchingSection {
            max_records_per_batch: 100_000,
            max_unconfirmed: 1,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_body_bytes: 1 << 20,
            max_records_per_request: 1000,
            rate_per_second: 100,
            rate_burst: 200,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1024,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or an override is not valid TOML or has an unknown or mistyped key.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A key has a value that cannot work.
    #[error("invalid configuration key `{key}`: {reason}")]
    Invalid {
        /// The key, e.g. `limits.max_body_bytes`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// The sections a `BTCTS_<SECTION>_<KEY>` variable may address.
const SECTIONS: [&str; 7] = [
    "node",
    "batching",
    "fees",
    "limits",
    "auth",
    "opentimestamps",
    "ibc",
];

impl Config {
    /// Reads `path` (if given), then applies `BTCTS_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.into(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("BTCTS_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            match SECTIONS.iter().find(|s| key.starts_with(&format!("{s}_"))) {
                Some(section) => {
                    let field = &key[section.len() + 1..];
                    let like = defaults.get(*section).and_then(|t| t.get(field));
                    let value = env_value(&format!("{section}.{field}"), &value, like)?;
                    let sub = table
                        .entry(*section)
                        .or_insert_with(|| toml::Value::Table(Default::default()));
                    if let toml::Value::Table(t) = sub {
                        t.insert(field.to_owned(), value);
                    }
                }
                None => {
                    let value = env_value(&key, &value, defaults.get(&key))?;
                    table.insert(key, value);
                }
            }
        }
        Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Checks every value once and produces typed settings.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| invalid("listen", e))?;
        let network: AnchorNetwork = self.network.parse().map_err(|e| invalid("network", e))?;
        let tag: Tag = self.tag.parse().map_err(|e| invalid("tag", e))?;
        if self.confirmations == 0 {
            return Err(invalid("confirmations", "must be at least 1"));
        }
        let auth = match (&self.node.user, &self.node.password, &self.node.cookie_file) {
            (Some(u), Some(p), None) => RpcAuth::UserPass(u.clone(), p.clone()),
            (None, None, Some(c)) => RpcAuth::CookieFile(c.clone()),
            _ => {
                return Err(invalid(
                    "node",
                    "set either user and password, or cookie_file",
                ))
            }
        };
        let url = format!(
            "{}/wallet/{}",
            self.node.url.trim_end_matches('/'),
            self.node.wallet
        );
        let fees = self.fees;
        fees.validate().map_err(|e| invalid("fees", e))?;
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_records_per_request", l.max_records_per_request),
            ("limits.max_concurrent_requests", l.max_concurrent_requests),
            ("limits.rate_per_second", l.rate_per_second as usize),
            ("limits.rate_burst", l.rate_burst as usize),
            (
                "batching.max_records_per_batch",
                self.batching.max_records_per_batch as usize,
            ),
            ("batching.max_unconfirmed", self.batching.max_unconfirmed),
            ("node.poll_ms", self.node.poll_ms as usize),
            ("limits.request_timeout_ms", l.request_timeout_ms as usize),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        let mut anchor = AnchorConfig::new(network);
        anchor.tag = tag;
        anchor.confirmations = self.confirmations;
        anchor.max_records_per_batch = self.batching.max_records_per_batch;
        anchor.max_unconfirmed = self.batching.max_unconfirmed;
        anchor.fees = fees;
        anchor.poll = Duration::from_millis(self.node.poll_ms);
        let ots = OtsSettings {
            calendar: self.opentimestamps.calendar,
            public_url: self
                .opentimestamps
                .public_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(check_public_url)
                .transpose()?,
        };
        let ibc = self.ibc.validate(&self.data_dir, self.confirmations)?;
        Ok(Settings {
            ibc,
            ots,
            listen,
            data_dir: self.data_dir.clone(),
            rpc: RpcConfig { url, auth },
            anchor,
            limits: l.clone(),
            credentials: self.credentials()?,
        })
    }

    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let hash = |key: &str, hex: &str| hex.parse::<TokenHash>().map_err(|e| invalid(key, e));
        let mut chains = BTreeMap::new();
        for (chain, hashes) in &self.auth.chains {
            let key = format!("auth.chains.{chain}");
            let id = ChainId::new(chain.as_str()).map_err(|e| invalid(&key, e))?;
            let hashes = hashes
                .iter()
                .map(|h| hash(&key, h))
                .collect::<Result<Vec<_>, _>>()?;
            chains.insert(id, hashes);
        }
        Ok(Credentials {
            admin: self
                .auth
                .admin_token_sha256
                .as_deref()
                .map(|h| hash("auth.admin_token_sha256", h))
                .transpose()?,
            read: self
                .auth
                .read_token_sha256
                .as_deref()
                .map(|h| hash("auth.read_token_sha256", h))
                .transpose()?,
            calendar: self
                .auth
                .calendar_token_sha256
                .as_deref()
                .map(|h| hash("auth.calendar_token_sha256", h))
                .transpose()?,
            chains,
        })
    }
}

/// A calendar URL OpenTimestamps clients accept in a pending attestation.
fn check_public_url(url: &str) -> Result<String, ConfigError> {
    let key = "opentimestamps.public_url";
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(key, "must start with http:// or https://"));
    }
    aggregator::ots::check_uri(url.as_bytes()).map_err(|e| invalid(key, e))?;
    // Clients resolve `digest` and `timestamp/…` against this URL (RFC 3986
    // joining): a bare origin needs no slash, a path prefix needs a final one.
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let has_path = after_scheme.trim_end_matches('/').contains('/');
    if has_path {
        Ok(format!("{}/", url.trim_end_matches('/')))
    } else {
        Ok(url.trim_end_matches('/').to_owned())
    }
}

/// An environment value as TOML, typed like the key's default (text when
/// the key has no default, e.g. optional credentials).
fn env_value(key: &str, v: &str, like: Option<&toml::Value>) -> Result<toml::Value, ConfigError> {
    match like {
        Some(toml::Value::Integer(_)) => v
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| invalid(key, format!("{v:?} is not an integer"))),
        Some(toml::Value::Boolean(_)) => v
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| invalid(key, format!("{v:?} is not true or false"))),
        _ => Ok(toml::Value::String(v.to_owned())),
    }
}

/// `--set section.key=value` flags as the `BTCTS_*` variables they stand
/// for; appended after the environment, so flags win.
pub fn flag_overrides(flags: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    flags
        .iter()
        .map(|f| {
            let (key, value) = f.split_once('=').ok_or_else(|| {
                ConfigError::Parse(format!(
                    "--set {f:?}: expected key=value, e.g. limits.max_body_bytes=2048"
                ))
            })?;
            Ok((
                format!(
                    "BTCTS_{}",
                    key.trim().replace('.', "_").to_ascii_uppercase()
                ),
                value.to_owned(),
            ))
        })
        .collect()
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Node RPC (wallet URL).
    pub rpc: RpcConfig,
    /// Anchoring policy.
    pub anchor: AnchorConfig,
    /// Request limits.
    pub limits: LimitsSection,
    /// Credentials.
    pub credentials: Credentials,
    /// OpenTimestamps.
    pub ots: OtsSettings,
    /// IBC, when a key file is configured.
    pub ibc: Option<IbcSettings>,
}

/// `btcts config example`: a commented configuration with every key.
pub const EXAMPLE: &str = include_str!("../../btcts.example.toml");

#[cfg(test)]
mod tests;
