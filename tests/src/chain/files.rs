//! Editing the chain's files: genesis JSON and CometBFT/SDK TOML configs.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// The last `n` lines of a file, for error messages.
pub(super) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Merges `patch` into `base`: objects key by key, anything else replaces.
pub(super) fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Sets `table.key = value` at a dotted path of tables in a TOML file.
pub(super) fn set_toml(path: &Path, edits: &[(&str, toml::Value)]) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    for (dotted, value) in edits {
        let mut parts: Vec<&str> = dotted.split('.').collect();
        let key = parts.pop().context("empty TOML key")?;
        let mut table = &mut doc;
        for part in parts {
            table = table
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("{dotted}: {part} is not a table"))?;
        }
        table.insert(key.to_owned(), value.clone());
    }
    fs::write(path, toml::to_string(&doc)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_replaces_leaves_and_keeps_other_keys() {
        let mut base = json!({"params": {"k": 6, "network": "bitcoin"}, "list": [1]});
        merge(
            &mut base,
            &json!({"params": {"k": 3, "chains": ["a"]}, "list": [2, 3]}),
        );
        assert_eq!(
            base,
            json!({"params": {"k": 3, "network": "bitcoin", "chains": ["a"]}, "list": [2, 3]})
        );
    }

    #[test]
    fn set_toml_edits_nested_keys() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.toml");
        fs::write(
            &path,
            "a = 1\n[rpc]\nladdr = \"tcp://0.0.0.0:1\"\nother = true\n",
        )?;
        set_toml(
            &path,
            &[
                ("rpc.laddr", toml::Value::String("tcp://127.0.0.1:2".into())),
                ("btcts.authority", toml::Value::String("x".into())),
            ],
        )?;
        let doc: toml::Table = fs::read_to_string(&path)?.parse()?;
        assert_eq!(doc["a"].as_integer(), Some(1));
        assert_eq!(doc["rpc"]["laddr"].as_str(), Some("tcp://127.0.0.1:2"));
        assert_eq!(doc["rpc"]["other"].as_bool(), Some(true));
        assert_eq!(doc["btcts"]["authority"].as_str(), Some("x"));
        Ok(())
    }
}
