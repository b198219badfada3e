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
    assert_eq!(s.ots, OtsSettings::default());
    let s = Config::load(
        None,
        env(&[
            ("BTCTS_NODE_USER", "u"),
            ("BTCTS_NODE_PASSWORD", "p"),
            ("BTCTS_OPENTIMESTAMPS_CALENDAR", "false"),
            ("BTCTS_OPENTIMESTAMPS_MAX_PENDING", "5000"),
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
            public_url: Some("https://ots.example.org/btcts/".into()),
            max_pending: 5000,
            ..OtsSettings::default()
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
    let err = flag_overrides(&["limits.max_boddy=1".into()]).expect_err("unknown flag key");
    assert!(err.to_string().contains("`limits.max_boddy`"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("btcts.toml");
    std::fs::write(&path, "[limits]\nmax_boddy = 1\n").expect("write");
    let err = Config::load(Some(&path), env(&[])).expect_err("unknown file key");
    assert!(err.to_string().contains("max_boddy"), "{err}");
    let err = Config::load(None, env(&[("BTCTS_AUTH_CHAINS", "x")])).expect_err("a table");
    assert!(err.to_string().contains("`auth.chains`"), "{err}");
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

/// `BTCTS_NODE_USER`/`PASSWORD` plus `extra`, loaded and validated.
fn validated(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut vars = env(&[("BTCTS_NODE_USER", "u"), ("BTCTS_NODE_PASSWORD", "p")]);
    vars.extend(env(extra));
    Config::load(None, vars)?.validate()
}

#[test]
fn a_rate_above_a_billion_per_second_is_refused_not_unlimited() {
    let s = validated(&[("BTCTS_LIMITS_RATE_PER_SECOND", "1000000000")]).expect("the top");
    assert_eq!(s.limits.rate_per_second, 1_000_000_000);
    let err = validated(&[("BTCTS_LIMITS_RATE_PER_SECOND", "1000000001")])
        .expect_err("the limiter's period would be 0 ns: no limit at all");
    let text = err.to_string();
    assert!(text.contains("`limits.rate_per_second`"), "{text}");
    assert!(text.contains("1..=1000000000"), "{text}");
}

#[test]
fn confirmations_are_bounded() {
    let s = validated(&[("BTCTS_CONFIRMATIONS", "1000")]).expect("the top");
    assert_eq!(s.anchor.confirmations, 1000);
    for v in ["1001", "2147483648", "4294967295"] {
        let err = validated(&[("BTCTS_CONFIRMATIONS", v)]).expect_err(v);
        let text = err.to_string();
        assert!(text.contains("`confirmations`"), "{v}: {text}");
        assert!(text.contains("1..=1000"), "{v}: {text}");
    }
}

#[test]
fn unrelated_btcts_variables_do_not_stop_start_up() {
    let s = validated(&[
        ("BTCTS_WRITE_GOLDEN", "1"),
        ("BTCTS_BIN", "/usr/bin/btcts"),
        ("BTCTS_LIMITS_MAX_BODY_BYTES", "2048"),
    ])
    .expect("starts");
    assert_eq!(s.limits.max_body_bytes, 2048, "known keys still apply");
    let (config, ignored) = Config::load_reporting(
        None,
        env(&[
            ("BTCTS_WRITE_GOLDEN", "1"),
            ("BTCTS_NODE_PASWORD", "typo"),
            ("BTCTS_NODE_USER", "u"),
            ("BTCTS_OPENTIMESTAMPS_PUBLIC_URL", "https://ots.example.org"),
            ("BTCTS_LIMITS_", "1"),
            ("BTCTS_", "1"),
            ("OTHER", "x"),
        ]),
    )
    .expect("loads");
    assert_eq!(
        ignored,
        [
            "BTCTS_",
            "BTCTS_LIMITS_",
            "BTCTS_NODE_PASWORD",
            "BTCTS_WRITE_GOLDEN"
        ],
        "a typo in a known section is ignored too: the environment cannot be checked like a file"
    );
    assert_eq!(config.node.user.as_deref(), Some("u"));
    assert_eq!(config.node.password, None);
    assert_eq!(
        config.opentimestamps.public_url.as_deref(),
        Some("https://ots.example.org"),
        "optional keys, absent from the defaults, are still known"
    );
}

#[test]
fn trusted_proxies_are_cidrs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("btcts.toml");
    std::fs::write(
        &path,
        "[limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]\n",
    )
    .expect("write");
    let node = env(&[("BTCTS_NODE_USER", "u"), ("BTCTS_NODE_PASSWORD", "p")]);
    let settings = Config::load(Some(&path), node)
        .expect("loads")
        .validate()
        .expect("valid");
    assert_eq!(settings.limits.trusted_proxies.len(), 2);
    for bad in ["\"10.0.0.1\"", "\"proxy.example\"", "\"10.0.0.0/33\""] {
        std::fs::write(&path, format!("[limits]\ntrusted_proxies = [{bad}]\n")).expect("write");
        let e = Config::load(Some(&path), env(&[]))
            .map(|_| ())
            .expect_err(bad);
        assert!(e.to_string().contains("trusted_proxies"), "{bad}: {e}");
    }
}

#[test]
fn anchoring_cost_settings_are_read_checked_and_default_by_network() {
    let s = validated(&[]).expect("defaults");
    assert_eq!(s.anchor.cadence.min_blocks_between_anchors, 1, "regtest");
    assert_eq!(s.anchor.cadence.max_anchor_delay_blocks, 144);
    let s = validated(&[("BTCTS_NETWORK", "bitcoin")]).expect("mainnet");
    assert_eq!(s.anchor.cadence.min_blocks_between_anchors, 6, "mainnet");
    let s = validated(&[
        ("BTCTS_NETWORK", "bitcoin"),
        ("BTCTS_BATCHING_MIN_BLOCKS_BETWEEN_ANCHORS", "1"),
        ("BTCTS_FEES_PATIENCE_ABOVE", "20"),
        ("BTCTS_FEES_DAILY_BUDGET_SAT", "100000"),
    ])
    .expect("from the environment");
    assert_eq!(s.anchor.cadence.min_blocks_between_anchors, 1);
    assert_eq!(s.anchor.fees.patience_above, Some(20));
    assert_eq!(s.anchor.fees.daily_budget_sat, Some(100_000));
    for (var, key) in [
        (
            "BTCTS_BATCHING_MIN_BLOCKS_BETWEEN_ANCHORS",
            "batching.min_blocks_between_anchors",
        ),
        (
            "BTCTS_BATCHING_MAX_ANCHOR_DELAY_BLOCKS",
            "batching.max_anchor_delay_blocks",
        ),
        ("BTCTS_FEES_PATIENCE_ABOVE", "fees.patience_above"),
        ("BTCTS_FEES_DAILY_BUDGET_SAT", "fees.daily_budget_sat"),
    ] {
        let err = validated(&[(var, "0")]).expect_err("0 is refused");
        assert!(err.to_string().contains(key), "{var}: {err}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("btcts.toml");
    let file = |text: &str| {
        std::fs::write(&path, text).expect("write");
        Config::load(
            Some(&path),
            env(&[("BTCTS_NODE_USER", "u"), ("BTCTS_NODE_PASSWORD", "p")]),
        )
        .and_then(|c| c.validate())
    };
    let s = file("[batching.max_anchor_delay_blocks_by_chain]\n\"fast-1\" = 2\n").expect("valid");
    let fast = ChainId::new("fast-1").expect("id");
    assert_eq!(s.anchor.cadence.chain_delay_blocks.get(&fast), Some(&2));
    for bad in [
        "[batching.max_anchor_delay_blocks_by_chain]\n\"fast-1\" = 0\n",
        "[batching.max_anchor_delay_blocks_by_chain]\n\"no spaces\" = 2\n",
    ] {
        let err = file(bad).expect_err(bad);
        assert!(
            err.to_string()
                .contains("batching.max_anchor_delay_blocks_by_chain"),
            "{bad}: {err}"
        );
    }
}
