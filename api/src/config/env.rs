//! `BTCTS_*` environment variables and `--set` flags: which key each one
//! names, and its value typed like that key.
//!
//! The environment is shared with everything else on the machine (our own
//! tests set `BTCTS_WRITE_GOLDEN`), so a variable that names no key is
//! ignored — with one warning listing them all, since it may be a typo
//! (`BTCTS_NODE_PASWORD`). A `--set` flag is typed at this very command,
//! so an unknown key there is an error, as it is in the file.

use std::path::PathBuf;

use btc_submitter::FeePolicy;

use super::{
    invalid, AuthSection, BatchingSection, Config, ConfigError, IbcSection, NodeSection, OtsSection,
};

/// Every key the environment and flags may set, each with a value of its
/// type: the defaults, with each optional key filled in (TOML leaves `None`
/// out). The sections are destructured in full, so a new field of theirs
/// cannot be forgotten here.
pub(super) fn keys() -> Result<toml::Table, ConfigError> {
    let d = Config::default();
    let NodeSection {
        url,
        user: _,
        password: _,
        cookie_file: _,
        wallet,
        poll_ms,
    } = d.node;
    let AuthSection {
        admin_token_sha256: _,
        read_token_sha256: _,
        calendar_token_sha256: _,
        chains,
        monitoring_requires_read_token,
    } = d.auth;
    let OtsSection {
        calendar,
        public_url: _,
        digests_per_second,
        digest_burst,
        max_pending,
    } = d.opentimestamps;
    let IbcSection {
        key_file: _,
        diversifier,
        packet_timeout_secs,
        poll_ms: ibc_poll_ms,
        chains: ibc_chains,
    } = d.ibc;
    let text = String::new;
    let fees = FeePolicy {
        patience_above: Some(1),
        daily_budget_sat: Some(1),
        ..d.fees
    };
    let batching = BatchingSection {
        min_blocks_between_anchors: Some(1),
        ..d.batching.clone()
    };
    let full = Config {
        fees,
        batching,
        node: NodeSection {
            url,
            user: Some(text()),
            password: Some(text()),
            cookie_file: Some(PathBuf::new()),
            wallet,
            poll_ms,
        },
        auth: AuthSection {
            admin_token_sha256: Some(text()),
            read_token_sha256: Some(text()),
            calendar_token_sha256: Some(text()),
            chains,
            monitoring_requires_read_token,
        },
        opentimestamps: OtsSection {
            calendar,
            public_url: Some(text()),
            digests_per_second,
            digest_burst,
            max_pending,
        },
        ibc: IbcSection {
            key_file: Some(PathBuf::new()),
            diversifier,
            packet_timeout_secs,
            poll_ms: ibc_poll_ms,
            chains: ibc_chains,
        },
        ..d
    };
    toml::Table::try_from(full).map_err(|e| ConfigError::Parse(e.to_string()))
}

/// The key `rest` (a variable's name after `BTCTS_`) names, as
/// `(section, field)` (`section` empty at the top level), with a value of
/// its type; `None` if it names no key.
pub(super) fn resolve<'k>(
    keys: &'k toml::Table,
    rest: &str,
) -> Option<(String, String, &'k toml::Value)> {
    let name = rest.to_ascii_lowercase();
    if let Some(like) = keys.get(&name).filter(|v| !v.is_table()) {
        return Some((String::new(), name, like));
    }
    keys.iter().find_map(|(section, table)| {
        let field = name.strip_prefix(section.as_str())?.strip_prefix('_')?;
        let like = table.as_table()?.get(field)?;
        Some((section.clone(), field.to_owned(), like))
    })
}

/// An environment value as TOML, typed like the key's value in [`keys`].
pub(super) fn value(key: &str, v: &str, like: &toml::Value) -> Result<toml::Value, ConfigError> {
    match like {
        toml::Value::Integer(_) => v
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| invalid(key, format!("{v:?} is not an integer"))),
        toml::Value::Boolean(_) => v
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| invalid(key, format!("{v:?} is not true or false"))),
        toml::Value::Table(_) | toml::Value::Array(_) => Err(invalid(
            key,
            "cannot be set from the environment or --set: use the configuration file",
        )),
        _ => Ok(toml::Value::String(v.to_owned())),
    }
}

/// `--set section.key=value` flags as the `BTCTS_*` variables they stand
/// for; appended after the environment, so flags win. Unlike a variable,
/// a flag that names no key is an error.
pub fn flag_overrides(flags: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    let keys = keys()?;
    flags
        .iter()
        .map(|f| {
            let (key, value) = f.split_once('=').ok_or_else(|| {
                ConfigError::Parse(format!(
                    "--set {f:?}: expected key=value, e.g. limits.max_body_bytes=2048"
                ))
            })?;
            let key = key.trim();
            let rest = key.replace('.', "_").to_ascii_uppercase();
            if resolve(&keys, &rest).is_none() {
                return Err(ConfigError::Parse(format!(
                    "--set {f:?}: no configuration key `{key}`"
                )));
            }
            Ok((format!("BTCTS_{rest}"), value.to_owned()))
        })
        .collect()
}
