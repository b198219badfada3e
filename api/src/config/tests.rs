//! Loading, overriding and validating the configuration.

use super::*;

/// `BTCTS_*` pairs as the environment `Config::load` reads.
pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_example_is_valid_and_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("btcts.toml");
    std::fs::write(&path, EXAMPLE).expect("write");
    let config = Config::load(Some(&path), env(&[])).expect("example parses");
    let settings = config.validate().expect("example validates");
    assert_eq!(settings.anchor.network, AnchorNetwork::Regtest);
    assert_eq!(settings.limits.max_records_per_request, 1000);
}

#[test]
fn environment_overrides_the_file() {
    let cfg = Config::load(
        None,
        env(&[
            ("BTCTS_LISTEN", "127.0.0.1:9999"),
            ("BTCTS_NODE_USER", "u"),
            ("BTCTS_NODE_PASSWORD", "p"),
            ("BTCTS_LIMITS_MAX_BODY_BYTES", "2048"),
            ("BTCTS_CONFIRMATIONS", "3"),
            ("OTHER", "x"),
        ]),
    )
    .expect("loads");
    let s = cfg.validate().expect("valid");
    assert_eq!(s.listen.port(), 9999);
    assert_eq!(s.limits.max_body_bytes, 2048);
    assert_eq!(s.anchor.confirmations, 3);
    assert_eq!(
        s.ots,
        OtsSettings {
            calendar: true,
            public_url: None
        }
    );
    let s = Config::load(
        None,
        env(&[
            ("BTCTS_NODE_USER", "u"),
            ("BTCTS_NODE_PASSWORD", "p"),
            ("BTCTS_OPENTIMESTAMPS_CALENDAR", "false"),
            (
                "BTCTS_OPENTIMESTAMPS_PUBLIC_URL",
                "https://ots.example.org/btcts",
            ),
        ]),
    )
    .expect("loads")
    .validate()
    .expect("valid");
    assert_eq!(
        s.ots,
        OtsSettings {
            calendar: false,
            public_url: Some("https://ots.example.org/btcts/".into())
        }
    );
}

#[test]
fn flags_override_the_environment() {
    let mut vars = env(&[
        ("BTCTS_LIMITS_MAX_BODY_BYTES", "100"),
        ("BTCTS_NODE_USER", "u"),
        ("BTCTS_NODE_PASSWORD", "p"),
    ]);
    vars.extend(
        flag_overrides(&["limits.max_body_bytes=200".into(), "network=signet".into()])
            .expect("flags"),
    );
    let s = Config::load(None, vars)
        .expect("loads")
        .validate()
        .expect("valid");
    assert_eq!(
        (s.limits.max_body_bytes, s.anchor.network),
        (200, AnchorNetwork::Signet)
    );
    assert!(flag_overrides(&["nokey".into()]).is_err());
}

#[test]
fn errors_name_the_key() {
    let err = Config::load(None, env(&[("BTCTS_LIMITS_MAX_BODDY", "1")])).expect_err("unknown key");
    assert!(err.to_string().contains("max_boddy"), "{err}");
    let err = Config::load(None, env(&[("BTCTS_CONFIRMATIONS", "many")])).expect_err("wrong type");
    assert!(
        err.to_string().contains("confirmations") || err.to_string().contains("integer"),
        "{err}"
    );
    let base = [("BTCTS_NODE_USER", "u"), ("BTCTS_NODE_PASSWORD", "p")];
    for (k, v, key) in [
        ("BTCTS_NETWORK", "mainnet", "network"),
        ("BTCTS_TAG", "123", "tag"),
        ("BTCTS_LISTEN", "nowhere", "listen"),
        ("BTCTS_LIMITS_MAX_BODY_BYTES", "0", "limits.max_body_bytes"),
        ("BTCTS_FEES_FLOOR", "500", "fees"),
        (
            "BTCTS_OPENTIMESTAMPS_PUBLIC_URL",
            "http://user@host:8080",
            "opentimestamps.public_url",
        ),
        (
            "BTCTS_OPENTIMESTAMPS_PUBLIC_URL",
            "ftp://host",
            "opentimestamps.public_url",
        ),
        (
            "BTCTS_AUTH_CALENDAR_TOKEN_SHA256",
            "abc",
            "auth.calendar_token_sha256",
        ),
    ] {
        let mut e = env(&base);
        e.push((k.into(), v.into()));
        let err = Config::load(None, e)
            .expect("loads")
            .validate()
            .expect_err("invalid");
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    }
    let err = Config::load(None, env(&[]))
        .expect("loads")
        .validate()
        .expect_err("no credentials");
    assert!(err.to_string().contains("`node`"), "{err}");
}
