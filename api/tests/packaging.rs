//! Packaging as an operator meets it: the systemd unit passes
//! `systemd-analyze verify` (and its offline security review), the
//! Dockerfile and the release profile say what the README promises, and
//! the real binary prints shell completions and a man page that work.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

mod common;
use common::{btcts, text};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `tool` on PATH or in /usr/bin; `None` (with the reason printed) when
/// it is missing, which fails the test under `CI=true`.
#[allow(clippy::print_stderr)] // the reason for skipping is the test's report
fn tool(name: &str) -> Result<Option<PathBuf>> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        ensure!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed (scripts/setup-tests.sh installs it)"
        );
        eprintln!("skipped: {name} is not installed (scripts/setup-tests.sh installs it)");
    }
    Ok(found)
}

/// The unit with ExecStart pointing at the freshly built binary (verify
/// checks that the program exists and is executable), written to `dir`.
fn unit_for_test(dir: &Path, unit: &str) -> Result<PathBuf> {
    ensure!(
        unit.contains("ExecStart=/usr/local/bin/btcts serve"),
        "ExecStart does not run /usr/local/bin/btcts serve"
    );
    let unit = unit.replace("/usr/local/bin/btcts", env!("CARGO_BIN_EXE_btcts"));
    let path = dir.join("btcts.service");
    std::fs::write(&path, unit)?;
    Ok(path)
}

/// `systemd-analyze verify`, failing on any warning it prints too (it
/// exits 0 for unknown keys and values it cannot parse).
fn verify_unit(analyze: &Path, unit: &Path) -> Result<()> {
    let out = Command::new(analyze)
        .args(["verify", "--man=no", "--generators=no"])
        .arg(unit)
        .output()?;
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    Ok(())
}

/// The value of every `key=` line of the unit.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() -> Result<()> {
    let unit = std::fs::read_to_string(repo_file("contrib/systemd/btcts.service"))?;
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "btcts"),
        (
            "ExecStart",
            "/usr/local/bin/btcts serve --config /etc/btcts/btcts.toml",
        ),
    ] {
        ensure!(
            unit_values(&unit, key) == [want],
            "{key}={want} expected, found {:?}",
            unit_values(&unit, key)
        );
    }
    let after = unit_values(&unit, "After").join(" ");
    ensure!(
        after.contains("bitcoind.service") && after.contains("network-online.target"),
        "After= must name bitcoind.service and network-online.target: {after}"
    );
    // Secrets come from credentials or files, never from the command line.
    for exec in unit_values(&unit, "ExecStart") {
        for secret in ["password", "token", "--set", "cookie"] {
            ensure!(!exec.contains(secret), "{secret} on ExecStart: {exec}");
        }
    }

    let Some(analyze) = tool("systemd-analyze")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let path = unit_for_test(dir.path(), &unit)?;
    verify_unit(&analyze, &path)?;
    // The check has teeth: a value systemd cannot parse is caught.
    let broken_dir = dir.path().join("broken");
    std::fs::create_dir(&broken_dir)?;
    let broken = unit_for_test(
        &broken_dir,
        &unit.replace("ProtectHome=yes", "ProtectHome=perhaps"),
    )?;
    ensure!(
        verify_unit(&analyze, &broken).is_err(),
        "a broken unit passed the check"
    );
    // systemd's own exposure score, offline: 0 (locked down) to 10.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager", "--threshold=25"])
        .arg(&path)
        .output()?;
    let said = text(&out.stdout);
    let score = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for btcts.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("no exposure level in: {said}{}", text(&out.stderr)))?;
    ensure!(
        out.status.success() && score <= 2.5,
        "exposure {score} > 2.5:\n{said}"
    );
    Ok(())
}

#[test]
fn the_dockerfile_builds_release_and_runs_unprivileged() -> Result<()> {
    let file = std::fs::read_to_string(repo_file("contrib/docker/Dockerfile"))?;
    let instructions: Vec<String> = file
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let starting = |word: &str| -> Vec<&String> {
        instructions
            .iter()
            .filter(|l| l.split_whitespace().next() == Some(word))
            .collect()
    };
    let stages = starting("FROM");
    ensure!(
        stages.len() == 2
            && stages[0].contains("rust:")
            && stages[1].contains("debian:")
            && stages[1].contains("-slim"),
        "a rust builder stage, then a debian slim runtime: {stages:?}"
    );
    ensure!(
        starting("RUN").iter().any(|l| l.contains("cargo build")
            && l.contains("--release")
            && l.contains("-p btcts")),
        "the builder runs cargo build --release -p btcts"
    );
    let users = starting("USER");
    ensure!(
        users.len() == 1
            && !["root", "0"].contains(&users[0].split_whitespace().nth(1).unwrap_or("root")),
        "one non-root USER: {users:?}"
    );
    ensure!(
        starting("VOLUME").iter().any(|l| l.contains("/data")),
        "VOLUME /data"
    );
    ensure!(
        starting("EXPOSE").iter().any(|l| l.contains("8080")),
        "EXPOSE 8080"
    );
    ensure!(
        starting("HEALTHCHECK")
            .iter()
            .any(|l| l.contains("/healthz")),
        "HEALTHCHECK on /healthz"
    );
    // What the runtime stage sets must be keys btcts knows.
    let env = starting("ENV")
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    ensure!(
        env.contains("BTCTS_LISTEN=0.0.0.0:8080") && env.contains("BTCTS_DATA_DIR=/data"),
        "ENV BTCTS_LISTEN=0.0.0.0:8080 BTCTS_DATA_DIR=/data: {env}"
    );
    Ok(())
}

#[test]
fn the_release_profile_is_optimised_for_installs() -> Result<()> {
    let manifest: toml::Table = std::fs::read_to_string(repo_file("Cargo.toml"))?.parse()?;
    let release = manifest
        .get("profile")
        .and_then(|p| p.get("release"))
        .context("no [profile.release]")?;
    let lto = release.get("lto").context("no lto")?;
    ensure!(
        lto.as_str() == Some("thin") || lto.as_str() == Some("fat") || lto.as_bool() == Some(true),
        "lto = {lto}"
    );
    ensure!(
        release.get("codegen-units").and_then(|v| v.as_integer()) == Some(1),
        "codegen-units = 1"
    );
    Ok(())
}

#[test]
fn completions_are_printed_for_every_shell_and_complete_in_bash() -> Result<()> {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = btcts(&["completions", shell]);
        ensure!(
            out.status.success(),
            "completions {shell}: {}",
            text(&out.stderr)
        );
        let script = text(&out.stdout);
        for word in ["serve", "verify", "completions"] {
            ensure!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = btcts(&["completions", "tcsh"]);
    ensure!(!out.status.success(), "an unknown shell is refused");

    // The bash script, loaded into a real bash, completes subcommands.
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("btcts.bash");
    std::fs::write(&script, btcts(&["completions", "bash"]).stdout)?;
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"; COMP_WORDS=(btcts se); COMP_CWORD=1; COMP_LINE="btcts se"; COMP_POINT=8
               _btcts btcts se btcts; printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&script)
        .output()?;
    let offered = text(&out.stdout);
    ensure!(
        out.status.success() && offered.lines().any(|l| l.trim() == "serve"),
        "bash offered {offered:?} for `btcts se`: {}",
        text(&out.stderr)
    );
    Ok(())
}

/// The page's first macro after clap_mangen's two-line preamble (defining
/// the apostrophe string) is `.TH <title> 1`, before any section.
fn is_man_page(page: &str, title: &str) -> bool {
    let macros: Vec<&str> = page
        .lines()
        .filter(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .collect();
    macros
        .first()
        .is_some_and(|l| l.starts_with(&format!(".TH {title} 1 ")))
}

#[test]
fn the_man_page_names_every_subcommand_and_renders() -> Result<()> {
    let out = btcts(&["man"]);
    ensure!(out.status.success(), "btcts man: {}", text(&out.stderr));
    let page = text(&out.stdout);
    ensure!(is_man_page(&page, "btcts"), "not a man page: {:.120}", page);
    for sub in [
        "verify",
        "serve",
        "dev",
        "proof",
        "token",
        "config",
        "ibc",
        "feed",
        "completions",
        "man",
    ] {
        ensure!(
            page.contains(&format!("btcts\\-{sub}(1)")),
            "the page does not name btcts-{sub}(1)"
        );
    }

    // --dir writes one page per command, each a valid man page.
    let dir = tempfile::tempdir()?;
    let out = btcts(&["man", "--dir", &dir.path().display().to_string()]);
    ensure!(
        out.status.success(),
        "btcts man --dir: {}",
        text(&out.stderr)
    );
    for name in [
        "btcts.1",
        "btcts-serve.1",
        "btcts-verify.1",
        "btcts-ibc-setup.1",
    ] {
        let page = std::fs::read_to_string(dir.path().join(name))
            .with_context(|| format!("{name} not written"))?;
        let title = name.trim_end_matches(".1");
        ensure!(is_man_page(&page, title), "{name} is not a man page");
    }

    // groff (man's renderer) reads it without a warning.
    let Some(groff) = tool("groff")? else {
        return Ok(());
    };
    let out = Command::new(groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(dir.path().join("btcts-serve.1"))
        .output()?;
    if !out.status.success() || !out.stderr.is_empty() {
        bail!("groff: {}", text(&out.stderr));
    }
    Ok(())
}
