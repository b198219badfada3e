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
    assert_eq!(settings.store, aggregator::StoreOptions::default());
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
    // Or in the chain's own table, not in both.
    let own = "[auth.chains.fast-1]\ntokens_sha256 = []\nmax_anchor_delay_blocks = 3\n";
    let s = file(own).expect("valid");
    assert_eq!(s.anchor.cadence.chain_delay_blocks.get(&fast), Some(&3));
    let both = format!("{own}[batching.max_anchor_delay_blocks_by_chain]\n\"fast-1\" = 2\n");
    let err = file(&both).expect_err("both");
    assert!(
        err.to_string()
            .contains("auth.chains.fast-1.max_anchor_delay_blocks"),
        "{err}"
    );
    let err = file("[auth.chains.fast-1]\nmax_anchor_delay_blocks = 0\n").expect_err("0");
    assert!(err.to_string().contains("max_anchor_delay_blocks"), "{err}");
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

/// Loads and validates `text` as the file, with node credentials from the
/// environment.
fn from_file(dir: &Path, text: &str) -> Result<Settings, ConfigError> {
    let path = dir.join("btcts.toml");
    std::fs::write(&path, text).expect("write");
    Config::load(
        Some(&path),
        env(&[("BTCTS_NODE_USER", "u"), ("BTCTS_NODE_PASSWORD", "p")]),
    )?
    .validate()
}

const HASH_A: &str = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3";
const HASH_B: &str = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";

#[test]
fn auth_chains_take_the_list_form_and_the_table_form_with_a_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("alpha.secret");
    std::fs::write(&secret, "s3cret-value \n\n").expect("write");
    let s = from_file(
        dir.path(),
        &format!(
            "[auth.chains]\nbeta = [\"{HASH_B}\"]\n\
             [auth.chains.alpha]\ntokens_sha256 = [\"{HASH_A}\"]\n\
             webhook_url = \"http://127.0.0.1:9/hook\"\nwebhook_secret_file = \"{}\"\n\
             [auth.chains.gamma]\ntokens_sha256 = [\"{HASH_A}\"]\n",
            secret.display()
        ),
    )
    .expect("both forms load");
    let alpha = ChainId::new("alpha").expect("id");
    let beta = ChainId::new("beta").expect("id");
    let gamma = ChainId::new("gamma").expect("id");
    let hash = |h: &str| h.parse::<TokenHash>().expect("hash").0;
    assert_eq!(s.credentials.chains[&alpha][0].0, hash(HASH_A));
    assert_eq!(s.credentials.chains[&beta][0].0, hash(HASH_B));
    assert_eq!(s.credentials.chains[&gamma].len(), 1);
    assert_eq!(s.webhooks.targets.len(), 1, "only alpha names a webhook");
    let hook = &s.webhooks.targets[0];
    assert_eq!(hook.chain, alpha);
    assert_eq!(hook.url, "http://127.0.0.1:9/hook");
    assert_eq!(
        hook.secret.as_bytes(),
        b"s3cret-value",
        "trailing whitespace trimmed"
    );
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "the secret never shows in Debug (and so in logs)"
    );
    assert_eq!(s.webhooks.max_age, Duration::from_secs(86_400));
    assert_eq!(s.webhooks.max_backoff, Duration::from_secs(300));
    assert_eq!(s.webhooks.timeout, Duration::from_millis(10_000));
}

#[test]
fn a_webhook_secret_file_that_is_missing_or_empty_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.secret");
    std::fs::write(&empty, " \n\t\n").expect("write");
    let missing = dir.path().join("missing.secret");
    for (file, why) in [(&empty, "is empty"), (&missing, "cannot read")] {
        let err = from_file(
            dir.path(),
            &format!(
                "[auth.chains.alpha]\ntokens_sha256 = [\"{HASH_A}\"]\n\
                 webhook_url = \"https://hooks.example.org/btcts\"\n\
                 webhook_secret_file = \"{}\"\n",
                file.display()
            ),
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("`auth.chains.alpha.webhook_secret_file`") && text.contains(why),
            "{text}"
        );
    }
    let err = from_file(
        dir.path(),
        "[auth.chains.alpha]\nwebhook_url = \"https://hooks.example.org/btcts\"\n",
    )
    .expect_err("a webhook without a secret");
    assert!(
        err.to_string()
            .contains("`auth.chains.alpha.webhook_secret_file`"),
        "{err}"
    );
}

#[test]
fn webhook_urls_are_https_or_http_to_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("s");
    std::fs::write(&secret, "k").expect("write");
    let with_url = |url: &str| {
        from_file(
            dir.path(),
            &format!(
                "[auth.chains.alpha]\nwebhook_url = \"{url}\"\nwebhook_secret_file = \"{}\"\n",
                secret.display()
            ),
        )
    };
    for ok in [
        "https://hooks.example.org/btcts",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://localhost/hook",
    ] {
        with_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "http://hooks.example.org/btcts",
        "http://10.0.0.1/hook",
        "ftp://127.0.0.1/hook",
        "not a url",
    ] {
        let err = with_url(bad).expect_err(bad);
        assert!(
            err.to_string().contains("`auth.chains.alpha.webhook_url`"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_mistyped_chain_table_key_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = from_file(
        dir.path(),
        &format!("[auth.chains.alpha]\ntokens_sha256 = [\"{HASH_A}\"]\nwebhook_ulr = \"x\"\n"),
    )
    .expect_err("unknown key");
    let text = err.to_string();
    assert!(
        text.contains("webhook_ulr") && text.contains("alpha"),
        "{text}"
    );
}

#[test]
fn the_webhooks_section_is_read_from_file_and_environment_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = from_file(
        dir.path(),
        "[webhooks]\nmax_age_secs = 60\nmax_backoff_secs = 2\ntimeout_ms = 500\n",
    )
    .expect("valid");
    assert_eq!(
        (
            s.webhooks.max_age,
            s.webhooks.max_backoff,
            s.webhooks.timeout
        ),
        (
            Duration::from_secs(60),
            Duration::from_secs(2),
            Duration::from_millis(500)
        )
    );
    let s = validated(&[("BTCTS_WEBHOOKS_MAX_BACKOFF_SECS", "7")]).expect("from env");
    assert_eq!(s.webhooks.max_backoff, Duration::from_secs(7));
    for (var, key) in [
        ("BTCTS_WEBHOOKS_MAX_AGE_SECS", "webhooks.max_age_secs"),
        (
            "BTCTS_WEBHOOKS_MAX_BACKOFF_SECS",
            "webhooks.max_backoff_secs",
        ),
        ("BTCTS_WEBHOOKS_TIMEOUT_MS", "webhooks.timeout_ms"),
    ] {
        let err = validated(&[(var, "0")]).expect_err("0 is refused");
        assert!(
            err.to_string().contains(&format!("`{key}`")),
            "{var}: {err}"
        );
    }
}

/// Webhooks retry only within what the event log keeps.
#[test]
fn webhook_max_age_must_fit_the_event_retention() {
    let with = |age: &str| {
        Config::load(
            None,
            env(&[
                ("BTCTS_NODE_USER", "u"),
                ("BTCTS_NODE_PASSWORD", "p"),
                ("BTCTS_EVENTS_RETENTION_DAYS", "1"),
                ("BTCTS_WEBHOOKS_MAX_AGE_SECS", age),
            ]),
        )
        .expect("loads")
        .validate()
    };
    let err = with("86401").expect_err("refused");
    assert!(err.to_string().contains("webhooks.max_age_secs"), "{err}");
    with("86400").expect("fits");
}

#[test]
fn the_store_cache_is_set_by_file_environment_and_flag_and_bounded() {
    let s = validated(&[]).expect("defaults");
    assert_eq!(s.store, aggregator::StoreOptions::default());
    assert_eq!(s.store.cache_bytes, 256 << 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = from_file(dir.path(), "[store]\ncache_mb = 64\n").expect("file");
    assert_eq!(s.store.cache_bytes, 64 << 20);
    let s = validated(&[("BTCTS_STORE_CACHE_MB", "8")]).expect("the bottom");
    assert_eq!(s.store.cache_bytes, 8 << 20);
    let mut vars = env(&[
        ("BTCTS_NODE_USER", "u"),
        ("BTCTS_NODE_PASSWORD", "p"),
        ("BTCTS_STORE_CACHE_MB", "8"),
    ]);
    vars.extend(flag_overrides(&["store.cache_mb=65536".into()]).expect("flag"));
    let s = Config::load(None, vars)
        .expect("loads")
        .validate()
        .expect("the top");
    assert_eq!(s.store.cache_bytes, 65_536 << 20);
    for v in ["0", "7", "65537"] {
        let err = validated(&[("BTCTS_STORE_CACHE_MB", v)]).expect_err(v);
        let text = err.to_string();
        assert!(text.contains("`store.cache_mb`"), "{v}: {text}");
        assert!(text.contains("8..=65536"), "{v}: {text}");
    }
    let err = from_file(dir.path(), "[store]\ncache_gb = 1\n").expect_err("unknown key");
    assert!(err.to_string().contains("cache_gb"), "{err}");
}
