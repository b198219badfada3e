//! Configuration: one TOML file, then `BTCTS_*` environment variables, then
//! flags; checked once into typed [`Settings`]. Unknown keys in the file and
//! in flags are errors; `BTCTS_*` variables that name no key are ignored with
//! a warning ([`env`]). Numeric keys have ranges ([`RANGES`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::{AnchorNetwork, ChainId, StoreOptions, Tag};
use btc_submitter::{AnchorConfig, FeePolicy, RpcAuth, RpcConfig};
use serde::{Deserialize, Serialize};

use crate::auth::{Credentials, TokenHash};

mod env;
mod ibc;
mod sections;
mod webhooks;
pub use env::flag_overrides;
pub use ibc::{fee_amount, GasPriceError, IbcChain, IbcChainSection, IbcSection, IbcSettings};
pub use sections::{
    AuthSection, BatchingSection, EventsSection, LimitsSection, LogFormat, LogSection, NodeSection,
    OtsSection, OtsSettings, StoreSection,
};
pub use webhooks::{
    ChainAuth, ChainAuthTable, WebhookSecret, WebhookSettings, WebhookTarget, WebhooksSection,
};

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
    /// The store file (`data_dir/btcts.redb`).
    pub store: StoreSection,
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
    /// Event streams and the event log.
    pub events: EventsSection,
    /// Webhook delivery (the webhooks themselves are in `[auth.chains]`).
    pub webhooks: WebhooksSection,
    /// Logging.
    pub log: LogSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("btcts-data"),
            network: "regtest".into(),
            tag: Tag::DEFAULT.to_string(),
            confirmations: 6,
            store: StoreSection::default(),
            node: NodeSection::default(),
            batching: BatchingSection::default(),
            fees: FeePolicy::default(),
            limits: LimitsSection::default(),
            auth: AuthSection::default(),
            opentimestamps: OtsSection::default(),
            ibc: IbcSection::default(),
            events: EventsSection::default(),
            webhooks: WebhooksSection::default(),
            log: LogSection::default(),
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

/// Most confirmations `confirmations` (and a consumer chain's) may ask
/// for: a proof carries up to twice as many headers, read from the node.
pub const MAX_CONFIRMATIONS: u64 = 1000;

/// The allowed range of each numeric key (both ends included); start-up
/// refuses a value outside it. `docs/operations.md` lists them.
pub const RANGES: [(&str, u64, u64); 29] = [
    ("confirmations", 1, MAX_CONFIRMATIONS),
    // MiB: 8 MiB to 64 GiB of redb page cache.
    ("store.cache_mb", 8, 65_536),
    ("node.poll_ms", 1, u64::MAX),
    ("batching.early_anchor_at", 1, u64::MAX),
    ("batching.max_unconfirmed", 1, u64::MAX),
    ("batching.min_blocks_between_anchors", 1, 1000),
    ("batching.max_anchor_delay_blocks", 1, 100_000),
    ("batching.max_anchor_delay_blocks_by_chain", 1, 100_000),
    ("fees.patience_above", 1, u64::MAX),
    ("fees.daily_budget_sat", 1, u64::MAX),
    ("limits.max_body_bytes", 1, u64::MAX),
    ("limits.max_records_per_request", 1, u64::MAX),
    // The limiter refills one request every 10^9 / rate ns: above 10^9
    // that period is 0, which the limiter takes as no limit at all.
    ("limits.rate_per_second", 1, 1_000_000_000),
    ("limits.rate_burst", 1, u32::MAX as u64),
    ("limits.request_timeout_ms", 1, u64::MAX),
    ("limits.max_concurrent_requests", 1, u64::MAX),
    ("limits.max_connections", 1, 1_000_000),
    ("limits.header_read_timeout_ms", 100, 600_000),
    ("opentimestamps.digests_per_second", 1, 1_000_000_000),
    ("opentimestamps.digest_burst", 1, u32::MAX as u64),
    ("opentimestamps.max_pending", 1, u64::MAX),
    ("events.max_streams", 1, 1_000_000),
    ("events.heartbeat_secs", 1, 300),
    ("events.retention_days", 1, 36_500),
    ("webhooks.max_age_secs", 1, u64::MAX),
    ("webhooks.max_backoff_secs", 1, 86_400),
    ("webhooks.timeout_ms", 1, 600_000),
    ("ibc.packet_timeout_secs", 10, u64::MAX),
    ("ibc.poll_ms", 1, u64::MAX),
];

/// Checks `v` against `key`'s entry in [`RANGES`] (`key` may be a
/// consumer chain's copy of one, e.g. `ibc.chains.x.confirmations`, checked
/// against `like`).
pub(crate) fn in_range(key: &str, like: &str, v: u64) -> Result<(), ConfigError> {
    match RANGES.iter().find(|(k, _, _)| *k == like) {
        Some(&(_, min, max)) if v < min || v > max => Err(invalid(
            key,
            format!("{v} is outside the allowed range {min}..={max}"),
        )),
        _ => Ok(()),
    }
}

/// Logs one warning naming the `BTCTS_*` variables that name no key (if any).
pub fn warn_ignored(ignored: &[String]) {
    if !ignored.is_empty() {
        tracing::warn!(
            ignored = %ignored.join(", "),
            "ignoring BTCTS_* environment variables that name no configuration key \
             (a typo? see docs/operations.md, Configuration limits)"
        );
    }
}

impl Config {
    /// Reads `path` (if given), then applies `BTCTS_*` variables from `env`;
    /// logs one warning naming the variables that name no key.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (config, ignored) = Config::load_reporting(path, env)?;
        warn_ignored(&ignored);
        Ok(config)
    }

    /// [`Config::load`], returning the ignored variables' names instead of
    /// logging them.
    pub(crate) fn load_reporting(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
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
        let keys = env::keys()?;
        let mut ignored = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("BTCTS_") else {
                continue;
            };
            let Some((section, field, like)) = env::resolve(&keys, rest) else {
                ignored.push(name);
                continue;
            };
            if section.is_empty() {
                let value = env::value(&field, &value, like)?;
                table.insert(field, value);
                continue;
            }
            let value = env::value(&format!("{section}.{field}"), &value, like)?;
            match table
                .entry(section.as_str())
                .or_insert_with(|| toml::Value::Table(Default::default()))
            {
                toml::Value::Table(t) => {
                    t.insert(field, value);
                }
                _ => return Err(invalid(&section, "must be a table")),
            }
        }
        ignored.sort();
        let config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        Ok((config, ignored))
    }

    /// Checks every value once and produces typed settings.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| invalid("listen", e))?;
        let network: AnchorNetwork = self.network.parse().map_err(|e| invalid("network", e))?;
        let tag: Tag = self.tag.parse().map_err(|e| invalid("tag", e))?;
        in_range(
            "confirmations",
            "confirmations",
            u64::from(self.confirmations),
        )?;
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
        let store = self.store.validate()?;
        let fees = self.fees;
        fees.validate().map_err(|e| invalid("fees", e))?;
        let l = &self.limits;
        l.validate()?;
        self.events.validate()?;
        // Webhooks deliver from the event log: an event it no longer holds
        // could not be delivered, nor counted as dropped.
        if self.webhooks.max_age_secs > self.events.retention_days.saturating_mul(86_400) {
            return Err(invalid(
                "webhooks.max_age_secs",
                format!(
                    "{} s is longer than events.retention_days ({} days): events would be pruned before their last retry",
                    self.webhooks.max_age_secs, self.events.retention_days
                ),
            ));
        }
        for (key, v) in [
            ("batching.early_anchor_at", self.batching.early_anchor_at),
            (
                "batching.max_unconfirmed",
                self.batching.max_unconfirmed as u64,
            ),
            ("node.poll_ms", self.node.poll_ms),
            (
                "batching.max_anchor_delay_blocks",
                u64::from(self.batching.max_anchor_delay_blocks),
            ),
            (
                "opentimestamps.digests_per_second",
                u64::from(self.opentimestamps.digests_per_second),
            ),
            (
                "opentimestamps.digest_burst",
                u64::from(self.opentimestamps.digest_burst),
            ),
            (
                "opentimestamps.max_pending",
                self.opentimestamps.max_pending,
            ),
        ] {
            in_range(key, key, v)?;
        }
        for (key, v) in [
            (
                "batching.min_blocks_between_anchors",
                self.batching.min_blocks_between_anchors.map(u64::from),
            ),
            ("fees.patience_above", fees.patience_above),
            ("fees.daily_budget_sat", fees.daily_budget_sat),
        ] {
            if let Some(v) = v {
                in_range(key, key, v)?;
            }
        }
        // A chain's latency budget may sit in `[batching.max_anchor_delay_blocks_by_chain]`
        // or in the chain's own `[auth.chains.<id>]` table, not in both.
        let by_chain =
            self.batching
                .max_anchor_delay_blocks_by_chain
                .iter()
                .map(|(chain, &blocks)| {
                    let key = format!("batching.max_anchor_delay_blocks_by_chain.{chain}");
                    (key, chain, blocks)
                });
        let in_tables = self.auth.chains.iter().filter_map(|(chain, entry)| {
            let ChainAuth::Table(table) = entry else {
                return None;
            };
            let key = format!("auth.chains.{chain}.max_anchor_delay_blocks");
            table
                .max_anchor_delay_blocks
                .map(|blocks| (key, chain, blocks))
        });
        let mut chain_delay_blocks = BTreeMap::new();
        for (key, chain, blocks) in by_chain.chain(in_tables) {
            let id = ChainId::new(chain.clone()).map_err(|e| invalid(&key, e))?;
            in_range(
                &key,
                "batching.max_anchor_delay_blocks_by_chain",
                u64::from(blocks),
            )?;
            if chain_delay_blocks.insert(id, blocks).is_some() {
                return Err(invalid(
                    &key,
                    "also set in [batching.max_anchor_delay_blocks_by_chain]; keep one",
                ));
            }
        }
        let mut anchor = AnchorConfig::new(network);
        anchor.cadence = btc_submitter::Cadence {
            min_blocks_between_anchors: self.batching.min_blocks_between_anchors.unwrap_or(
                match network {
                    AnchorNetwork::Bitcoin | AnchorNetwork::Litecoin => 6,
                    _ => 1,
                },
            ),
            max_anchor_delay_blocks: self.batching.max_anchor_delay_blocks,
            chain_delay_blocks,
        };
        anchor.tag = tag;
        anchor.confirmations = self.confirmations;
        anchor.early_anchor_at = self.batching.early_anchor_at;
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
            digests_per_second: self.opentimestamps.digests_per_second,
            digest_burst: self.opentimestamps.digest_burst,
            max_pending: self.opentimestamps.max_pending,
        };
        let ibc = self.ibc.validate(&self.data_dir, self.confirmations)?;
        Ok(Settings {
            ibc,
            ots,
            listen,
            data_dir: self.data_dir.clone(),
            store,
            rpc: RpcConfig { url, auth },
            anchor,
            limits: l.clone(),
            events: self.events.clone(),
            access_log: self.log.access,
            credentials: self.credentials()?,
            webhooks: self.webhooks.validate(&self.auth)?,
        })
    }

    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let hash = |key: &str, hex: &str| hex.parse::<TokenHash>().map_err(|e| invalid(key, e));
        let mut chains = BTreeMap::new();
        for (chain, entry) in &self.auth.chains {
            let key = format!("auth.chains.{chain}");
            let id = ChainId::new(chain.as_str()).map_err(|e| invalid(&key, e))?;
            let hashes = entry
                .tokens()
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
            monitoring_requires_read: self.auth.monitoring_requires_read_token,
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

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// How the store file is opened (`[store]`).
    pub store: StoreOptions,
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
    /// Event streams and the event log.
    pub events: EventsSection,
    /// Webhooks, one per chain that names one.
    pub webhooks: WebhookSettings,
    /// `[log] access`: every request logged at `info`.
    pub access_log: bool,
}

/// `btcts config example`: a commented configuration with every key.
pub const EXAMPLE: &str = include_str!("../../btcts.example.toml");

#[cfg(test)]
mod tests;
