//! `[ibc]` and `[ibc.chains.<chain id>]`: the solo-machine key and the
//! consumer chains proofs are delivered to (`docs/ibc.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::ChainId;
use ibc_relay::tx::Fee;
use ibc_relay::{ConsumerConfig, Deliver};
use serde::{Deserialize, Serialize};

use super::{in_range, invalid, ConfigError};

/// Highest `checkpoint_height`: block heights are signed 32-bit in Bitcoin
/// Core, and the relay asks for the height after it.
pub const MAX_CHECKPOINT_HEIGHT: u32 = i32::MAX as u32;

/// `[ibc]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IbcSection {
    /// File holding the solo machine's secp256k1 secret key (64 hex
    /// characters). IBC is off without it. The key itself is never logged.
    pub key_file: Option<PathBuf>,
    /// The diversifier of the solo-machine clients; each chain's client
    /// gets `<diversifier>/<chain id>`.
    pub diversifier: String,
    /// How long a packet waits for delivery before it times out (s).
    pub packet_timeout_secs: u64,
    /// How often the delivery loop looks for work (ms).
    pub poll_ms: u64,
    /// The consumer chains, by chain id.
    pub chains: BTreeMap<String, IbcChainSection>,
}

impl Default for IbcSection {
    fn default() -> Self {
        IbcSection {
            key_file: None,
            diversifier: "btcts".into(),
            packet_timeout_secs: 3600,
            poll_ms: 2000,
            chains: BTreeMap::new(),
        }
    }
}

/// `[ibc.chains.<chain id>]`: one consumer chain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IbcChainSection {
    /// The chain's gRPC endpoint, `http://host:port` or `https://host:port`.
    pub grpc: String,
    /// A PEM file of CA certificates trusted for an `https://` `grpc`
    /// besides the webpki and system roots.
    #[serde(default)]
    pub grpc_ca_file: Option<PathBuf>,
    /// File holding the relayer account's secp256k1 key (64 hex characters).
    pub account_key_file: PathBuf,
    /// The height of the Bitcoin header the chain's btcts app trusts.
    pub checkpoint_height: u32,
    /// Account address prefix.
    #[serde(default = "default_prefix")]
    pub bech32_prefix: String,
    /// Fee denomination.
    #[serde(default = "default_denom")]
    pub fee_denom: String,
    /// Gas price in `fee_denom` per gas, a decimal (`"0.025"`).
    #[serde(default = "default_gas_price")]
    pub gas_price: String,
    /// Gas limit of each transaction.
    #[serde(default = "default_gas_limit")]
    pub gas_limit: u64,
    /// Depth at which a record's proof is sent (default: `confirmations`).
    #[serde(default)]
    pub confirmations: Option<u32>,
    /// The chains whose records this consumer receives (default: its own id).
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// `"latest"` (per anchored batch and source chain, the highest record)
    /// or `"all"`.
    #[serde(default)]
    pub deliver: DeliverMode,
    /// Also sign `ConnOpenAck`'s client- and consensus-state proofs (ibc-go
    /// 7.3–8.4 and ibc-rs consumers; ibc-go ≥ 8.5 verifies only the
    /// connection proof).
    #[serde(default)]
    pub legacy_connection_proofs: bool,
}

/// `deliver` of a consumer chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliverMode {
    /// Per anchored batch and source chain, only the record with the
    /// highest height.
    #[default]
    Latest,
    /// Every record.
    All,
}

fn default_prefix() -> String {
    "cosmos".into()
}
fn default_denom() -> String {
    "stake".into()
}
fn default_gas_price() -> String {
    "0".into()
}
fn default_gas_limit() -> u64 {
    400_000
}

/// Validated `[ibc]`: the key files were read and hold valid keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbcSettings {
    /// The solo machine's key file (read where the signers open).
    pub key_file: PathBuf,
    /// The base diversifier.
    pub diversifier: String,
    /// Delivery loop period.
    pub poll: Duration,
    /// The consumer chains.
    pub chains: Vec<IbcChain>,
}

/// One validated consumer chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbcChain {
    /// What the relay needs.
    pub relay: ConsumerConfig,
    /// The relayer account's key file.
    pub account_key_file: PathBuf,
    /// Its solo-machine client's diversifier.
    pub diversifier: String,
    /// Its signer store.
    pub signer_store: PathBuf,
    /// Its relay store.
    pub relay_store: PathBuf,
    /// The PEM text of `grpc_ca_file`, read at start-up.
    pub grpc_ca: Option<Vec<u8>>,
}

impl IbcSettings {
    /// The chain `id`, if configured.
    pub fn chain(&self, id: &str) -> Option<&IbcChain> {
        self.chains.iter().find(|c| c.relay.chain_id.as_str() == id)
    }
}

/// Why a gas price gives no fee.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GasPriceError {
    /// Not digits with at most one `.`.
    #[error("{0:?} is not a decimal number")]
    NotDecimal(String),
    /// More fraction digits than a Cosmos decimal holds.
    #[error("{0:?} has more than 18 digits after the point")]
    TooPrecise(String),
    /// `gas_limit × gas_price` does not fit in 128 bits.
    #[error("{price:?} × gas_limit {gas_limit} overflows the fee amount (at most 2^128 - 1)")]
    Overflow {
        /// The price.
        price: String,
        /// The gas limit.
        gas_limit: u64,
    },
}

/// `ceil(gas_limit × price)` for a decimal `price`: a positive price never
/// rounds to a fee of 0, and one whose fee overflows is an error.
pub fn fee_amount(gas_limit: u64, price: &str) -> Result<u128, GasPriceError> {
    let trimmed = price.trim();
    let (whole, frac) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(GasPriceError::NotDecimal(price.to_owned()));
    }
    if frac.len() > 18 {
        return Err(GasPriceError::TooPrecise(price.to_owned()));
    }
    let overflow = || GasPriceError::Overflow {
        price: price.to_owned(),
        gas_limit,
    };
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    let units: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| overflow())?
    };
    let total = u128::from(gas_limit)
        .checked_mul(units)
        .ok_or_else(overflow)?;
    Ok(total.div_ceil(10u128.pow(frac.len() as u32)))
}

/// The consumer chains' ids as directory names under `data_dir/ibc`:
/// neither `.` nor `..` (which [`ChainId`] allows), and no two equal but
/// for case (one directory on a case-insensitive disk).
fn check_chain_dirs<'a>(ids: impl Iterator<Item = &'a String>) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for id in ids {
        let key = format!("ibc.chains.{id}");
        if id == "." || id == ".." {
            return Err(invalid(
                &key,
                "a chain id names a directory under data_dir/ibc: `.` and `..` cannot",
            ));
        }
        if let Some(other) = seen.insert(id.to_ascii_lowercase(), id) {
            return Err(invalid(
                &key,
                format!(
                    "`{other}` and `{id}` differ only in case and would share a directory on a case-insensitive disk"
                ),
            ));
        }
    }
    Ok(())
}

impl IbcSection {
    /// Checks `[ibc]`; `data_dir` holds the stores, `confirmations` is the
    /// default depth.
    pub fn validate(
        &self,
        data_dir: &Path,
        confirmations: u32,
    ) -> Result<Option<IbcSettings>, ConfigError> {
        let Some(key_file) = &self.key_file else {
            if self.chains.is_empty() {
                return Ok(None);
            }
            return Err(invalid(
                "ibc.key_file",
                "consumer chains need the solo-machine key",
            ));
        };
        ibc_relay::signer::read_key_file(key_file).map_err(|e| invalid("ibc.key_file", e))?;
        if self.diversifier.trim().is_empty() {
            return Err(invalid("ibc.diversifier", "must not be empty"));
        }
        in_range(
            "ibc.packet_timeout_secs",
            "ibc.packet_timeout_secs",
            self.packet_timeout_secs,
        )?;
        in_range("ibc.poll_ms", "ibc.poll_ms", self.poll_ms)?;
        check_chain_dirs(self.chains.keys())?;
        let mut chains = Vec::new();
        for (id, c) in &self.chains {
            let key = |field: &str| format!("ibc.chains.{id}.{field}");
            let chain_id: ChainId = id.parse().map_err(|e| invalid(&key("<id>"), e))?;
            if c.checkpoint_height > MAX_CHECKPOINT_HEIGHT {
                return Err(invalid(
                    &key("checkpoint_height"),
                    format!(
                        "{} is outside the allowed range 0..={MAX_CHECKPOINT_HEIGHT}",
                        c.checkpoint_height
                    ),
                ));
            }
            let host = c
                .grpc
                .strip_prefix("http://")
                .or_else(|| c.grpc.strip_prefix("https://"));
            if host.is_none_or(str::is_empty) {
                return Err(invalid(
                    &key("grpc"),
                    "must be http://host:port or https://host:port",
                ));
            }
            let grpc_ca = match &c.grpc_ca_file {
                None => None,
                Some(path) => {
                    Some(read_ca_file(path).map_err(|e| invalid(&key("grpc_ca_file"), e))?)
                }
            };
            let account = ibc_relay::signer::read_key_file(&c.account_key_file)
                .map_err(|e| invalid(&key("account_key_file"), e))?;
            let public = account.public_key(&bitcoin::secp256k1::Secp256k1::signing_only());
            ibc_relay::cosmos::address(&public, &c.bech32_prefix)
                .map_err(|e| invalid(&key("bech32_prefix"), e))?;
            if c.fee_denom.trim().is_empty() {
                return Err(invalid(&key("fee_denom"), "must not be empty"));
            }
            if c.gas_limit == 0 {
                return Err(invalid(&key("gas_limit"), "must be at least 1"));
            }
            let amount =
                fee_amount(c.gas_limit, &c.gas_price).map_err(|e| invalid(&key("gas_price"), e))?;
            let k = c.confirmations.unwrap_or(confirmations);
            in_range(&key("confirmations"), "confirmations", u64::from(k))?;
            let sources = match &c.sources {
                None => vec![chain_id.clone()],
                Some(list) if list.is_empty() => {
                    return Err(invalid(&key("sources"), "must name at least one chain"))
                }
                Some(list) => {
                    let mut out: Vec<ChainId> = Vec::with_capacity(list.len());
                    for s in list {
                        let id: ChainId = s.parse().map_err(|e| invalid(&key("sources"), e))?;
                        if out.contains(&id) {
                            return Err(invalid(&key("sources"), format!("{id} is listed twice")));
                        }
                        out.push(id);
                    }
                    out
                }
            };
            let dir = data_dir.join("ibc").join(chain_id.as_str());
            chains.push(IbcChain {
                relay: ConsumerConfig {
                    chain_id,
                    grpc: c.grpc.clone(),
                    bech32_prefix: c.bech32_prefix.clone(),
                    fee: Fee {
                        gas_limit: c.gas_limit,
                        amount,
                        denom: c.fee_denom.clone(),
                    },
                    k,
                    checkpoint_height: c.checkpoint_height,
                    packet_timeout: Duration::from_secs(self.packet_timeout_secs),
                    sources,
                    deliver: match c.deliver {
                        DeliverMode::Latest => Deliver::Latest,
                        DeliverMode::All => Deliver::All,
                    },
                    legacy_connection_proofs: c.legacy_connection_proofs,
                },
                account_key_file: c.account_key_file.clone(),
                diversifier: format!("{}/{id}", self.diversifier),
                signer_store: dir.join("signer.redb"),
                relay_store: dir.join("relay.redb"),
                grpc_ca,
            });
        }
        Ok(Some(IbcSettings {
            key_file: key_file.clone(),
            diversifier: self.diversifier.clone(),
            poll: Duration::from_millis(self.poll_ms),
            chains,
        }))
    }
}

/// The PEM text of a CA file, if it holds a certificate.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::super::tests::env;
    use super::super::Config;
    use super::*;

    #[test]
    fn fees_are_rounded_up() {
        assert_eq!(fee_amount(200_000, "0.025"), Ok(5000));
        assert_eq!(fee_amount(3, "0.5"), Ok(2));
        assert_eq!(fee_amount(400_000, "0"), Ok(0));
        assert_eq!(fee_amount(400_000, "000.000"), Ok(0));
        assert_eq!(fee_amount(10, "2"), Ok(20));
        assert_eq!(fee_amount(10, ".1"), Ok(1));
        assert_eq!(fee_amount(1, "0.000000000000000001"), Ok(1));
        for bad in ["", ".", "-1", "1e3", "0.1.2", "abc"] {
            assert!(
                matches!(fee_amount(10, bad), Err(GasPriceError::NotDecimal(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            fee_amount(10, "0.0000000000000000001"),
            Err(GasPriceError::TooPrecise(_))
        ));
        let max = u128::MAX.to_string();
        assert_eq!(fee_amount(1, &max), Ok(u128::MAX));
        for (gas, price) in [
            (2, max.as_str()),
            (1, "340282366920938463463374607431768211456"),
        ] {
            assert!(
                matches!(fee_amount(gas, price), Err(GasPriceError::Overflow { .. })),
                "{gas} × {price}"
            );
        }
    }

    #[test]
    fn the_ibc_key_file_is_checked_and_its_contents_never_echoed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("ibc.key");
        let base = || {
            env(&[
                ("BTCTS_NODE_USER", "u"),
                ("BTCTS_NODE_PASSWORD", "p"),
                ("BTCTS_DATA_DIR", "/var/lib/btcts"),
            ])
        };
        let s = Config::load(None, base())
            .expect("loads")
            .validate()
            .expect("valid");
        assert_eq!(s.ibc, None, "IBC is off without a key file");
        let mut vars = base();
        vars.push(("BTCTS_IBC_KEY_FILE".into(), key.display().to_string()));
        let err = Config::load(None, vars.clone())
            .expect("loads")
            .validate()
            .expect_err("missing file");
        assert!(err.to_string().contains("`ibc.key_file`"), "{err}");
        std::fs::write(&key, "not-a-secret-key-but-still-private").expect("write");
        let err = Config::load(None, vars.clone())
            .expect("loads")
            .validate()
            .expect_err("bad key");
        assert!(!err.to_string().contains("still-private"), "{err}");
        std::fs::write(&key, format!("{}\n", "42".repeat(32))).expect("write");
        let s = Config::load(None, vars)
            .expect("loads")
            .validate()
            .expect("valid");
        let ibc = s.ibc.expect("configured");
        assert_eq!(ibc.diversifier, "btcts");
        assert!(ibc.chains.is_empty());
        assert!(!format!("{ibc:?}").contains("4242"));
    }

    #[test]
    fn consumer_chains_are_checked_and_get_their_own_stores_and_diversifiers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("ibc.key");
        let account = dir.path().join("account.key");
        std::fs::write(&key, "42".repeat(32)).expect("write");
        std::fs::write(&account, "43".repeat(32)).expect("write");
        let text = |chain: &str| {
            format!(
                "data_dir = \"/var/lib/btcts\"\nconfirmations = 6\n[node]\nuser = \"u\"\npassword = \"p\"\n\
                 [ibc]\nkey_file = \"{}\"\n[ibc.chains.alpha]\ngrpc = \"http://127.0.0.1:9090\"\n\
                 account_key_file = \"{}\"\ncheckpoint_height = 100\ngas_price = \"0.025\"\ngas_limit = 200000\n{chain}",
                key.display(),
                account.display()
            )
        };
        let load = |extra: &str| {
            let path = dir.path().join("btcts.toml");
            std::fs::write(&path, text(extra)).expect("write");
            Config::load(Some(&path), env(&[])).and_then(|c| c.validate())
        };
        let s = load("").expect("valid");
        let ibc = s.ibc.expect("configured");
        let alpha = ibc.chain("alpha").expect("alpha");
        assert_eq!(alpha.relay.k, 6, "the default depth is `confirmations`");
        assert_eq!(alpha.relay.sources, vec!["alpha".parse().expect("id")]);
        assert_eq!(alpha.relay.deliver, Deliver::Latest);
        assert!(!alpha.relay.legacy_connection_proofs);
        let s = load(
            "sources = [\"alpha\", \"hub-1\"]\ndeliver = \"all\"\nlegacy_connection_proofs = true",
        )
        .expect("valid");
        let relay = &s.ibc.expect("configured").chains[0].relay;
        assert_eq!(relay.sources.len(), 2);
        assert_eq!(relay.deliver, Deliver::All);
        assert!(relay.legacy_connection_proofs);
        assert_eq!(alpha.relay.fee.amount, 5000);
        assert_eq!(alpha.diversifier, "btcts/alpha");
        assert_eq!(
            alpha.signer_store,
            PathBuf::from("/var/lib/btcts/ibc/alpha/signer.redb")
        );
        assert!(!format!("{alpha:?}").contains("4343"));
        for (extra, key) in [
            ("confirmations = 0", "ibc.chains.alpha.confirmations"),
            (
                "bech32_prefix = \"no prefix\"",
                "ibc.chains.alpha.bech32_prefix",
            ),
            ("fee_denom = \"\"", "ibc.chains.alpha.fee_denom"),
            ("sources = []", "ibc.chains.alpha.sources"),
            ("sources = [\"a\", \"a\"]", "ibc.chains.alpha.sources"),
            ("sources = [\"not a chain\"]", "ibc.chains.alpha.sources"),
            ("deliver = \"some\"", "deliver"),
            (
                "grpc_ca_file = \"/nonexistent/ca.pem\"",
                "ibc.chains.alpha.grpc_ca_file",
            ),
        ] {
            let err = load(extra).expect_err(extra);
            assert!(err.to_string().contains(key), "{extra}: {err}");
        }
        let err = load("[ibc.chains.beta]\ngrpc = \"ftp://x:1\"\naccount_key_file = \"/nope\"\ncheckpoint_height = 1")
            .expect_err("not http");
        assert!(err.to_string().contains("ibc.chains.beta.grpc"), "{err}");
        let err = load("[ibc.chains.beta]\ngrpc = \"http://x:1\"\ncheckpoint_height = 1")
            .expect_err("missing key file");
        assert!(err.to_string().contains("account_key_file"), "{err}");
    }

    /// A config with the keys in a temp dir and `chains` appended.
    fn load_chains(chains: &str) -> Result<super::super::Settings, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("ibc.key");
        let account = dir.path().join("account.key");
        std::fs::write(&key, "42".repeat(32)).expect("write");
        std::fs::write(&account, "43".repeat(32)).expect("write");
        let text = format!(
            "data_dir = \"/var/lib/btcts\"\n[node]\nuser = \"u\"\npassword = \"p\"\n\
             [ibc]\nkey_file = \"{}\"\n{}",
            key.display(),
            chains.replace("ACCOUNT", &account.display().to_string())
        );
        let path = dir.path().join("btcts.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(Some(&path), env(&[])).and_then(|c| c.validate())
    }

    fn chain(id: &str, extra: &str) -> String {
        let checkpoint = if extra.contains("checkpoint_height") {
            ""
        } else {
            "checkpoint_height = 100\n"
        };
        format!(
            "[ibc.chains.\"{id}\"]\ngrpc = \"http://127.0.0.1:9090\"\naccount_key_file = \"ACCOUNT\"\n\
             {checkpoint}{extra}\n"
        )
    }

    #[test]
    fn chain_ids_that_are_paths_or_collide_on_disk_are_refused() {
        let s = load_chains(&chain("a.b-c_1", "")).expect("dots inside an id are fine");
        assert_eq!(
            s.ibc.expect("configured").chains[0].signer_store,
            PathBuf::from("/var/lib/btcts/ibc/a.b-c_1/signer.redb")
        );
        for id in [".", ".."] {
            let err = load_chains(&chain(id, "")).expect_err(id);
            assert!(
                err.to_string().contains(&format!("`ibc.chains.{id}`")),
                "{err}"
            );
        }
        let both = format!("{}{}", chain("alpha", ""), chain("Alpha", ""));
        let err = load_chains(&both).expect_err("one directory on a case-insensitive disk");
        assert!(err.to_string().contains("`ibc.chains.alpha`"), "{err}");
    }

    #[test]
    fn gas_prices_whose_fee_overflows_are_refused_not_free() {
        let s = load_chains(&chain("alpha", "gas_price = \"0.000001\"\ngas_limit = 1"))
            .expect("tiny prices round up to 1");
        assert_eq!(s.ibc.expect("configured").chains[0].relay.fee.amount, 1);
        for price in [
            "340282366920938463463374607431768211456",
            "1000000000000000000000000000000000000000000",
            "1000000000000000000000000000000000",
        ] {
            let err =
                load_chains(&chain("alpha", &format!("gas_price = \"{price}\""))).expect_err(price);
            assert!(
                err.to_string().contains("`ibc.chains.alpha.gas_price`"),
                "{price}: {err}"
            );
        }
        let err = load_chains(&chain("alpha", "confirmations = 1001")).expect_err("k");
        assert!(
            err.to_string().contains("`ibc.chains.alpha.confirmations`"),
            "{err}"
        );
        let err = load_chains(&chain("alpha", "checkpoint_height = 4294967295"))
            .expect_err("the first height after it overflows");
        assert!(
            err.to_string()
                .contains("`ibc.chains.alpha.checkpoint_height`"),
            "{err}"
        );
    }
}
