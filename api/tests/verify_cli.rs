//! `btcts verify` as a user runs it: the real binary on real proof files.

mod common;
use common::{btcts, text};

fn golden(name: &str) -> String {
    format!(
        "{}/../aggregator/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_golden_proof_verifies_with_a_human_summary() {
    let proof = std::fs::read_to_string(golden("litecoin-regtest-pos-block.json")).expect("golden");
    let txid = serde_json::from_str::<serde_json::Value>(&proof).expect("json")["anchor"]["txid"]
        .as_str()
        .expect("txid")
        .to_owned();
    let out = btcts(&[
        "verify",
        "--network",
        "litecoin-regtest",
        &golden("litecoin-regtest-pos-block.json"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for needle in [
        "height 100 of chain cosmoshub-4",
        &txid,
        "litecoin-regtest",
        "3 confirmations",
        "proof verified",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn json_output_is_machine_readable() {
    let out = btcts(&[
        "verify",
        "--json",
        "--network",
        "regtest",
        &golden("bitcoin-regtest-pos-block.json"),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["result"]["anchor"]["confirmations"], 3);
    assert_eq!(v["result"]["record"]["chain_id"], "cosmoshub-4");
}

#[test]
fn a_tampered_proof_fails_naming_the_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proof = std::fs::read_to_string(golden("litecoin-regtest-digest.json")).expect("golden");
    let mut doc: serde_json::Value = serde_json::from_str(&proof).expect("json");
    let root = doc["batch"]["root"]
        .as_str()
        .expect("root")
        .replacen('f', "0", 1);
    doc["batch"]["root"] = root.into();
    let path = dir.path().join("tampered.json");
    std::fs::write(&path, doc.to_string()).expect("write");
    let path = path.to_str().expect("utf-8 path");

    let out = btcts(&["verify", path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("NOT VERIFIED: merkle path"), "{stderr}");

    let out = btcts(&["verify", "--json", path]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["valid"].clone(), v["error"]["step"].clone()),
        (false.into(), "path".into())
    );
}

#[test]
fn expectations_and_bad_input_are_reported() {
    let wrong_net = btcts(&[
        "verify",
        "--network",
        "bitcoin",
        &golden("litecoin-regtest-digest.json"),
    ]);
    assert_eq!(wrong_net.status.code(), Some(1));
    assert!(text(&wrong_net.stderr).contains("network"));

    let missing = btcts(&["verify", "/nonexistent/proof.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read"));

    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"format\":\"btcts-proof\",\"version\":7}").expect("write");
    let out = btcts(&["verify", garbage.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unsupported proof version 7"));

    let bad_flag = btcts(&["verify", "--network", "dogecoin", "x.json"]);
    assert_eq!(bad_flag.status.code(), Some(2));
    let bad_tag = btcts(&["verify", "--tag", "xyz", "x.json"]);
    assert_eq!(bad_tag.status.code(), Some(2));
}

#[test]
fn help_describes_the_command() {
    let out = btcts(&["verify", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("--network") && help.contains("--json") && help.contains("Exit status"),
        "{help}"
    );
}

/// `.ots` exports of the golden proofs, checked against each source of headers.
#[test]
fn ots_files_verify_against_a_proof_a_headers_file_or_fail_with_the_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = golden("litecoin-regtest-pos-block.json");
    let ots_path = golden("litecoin-regtest-pos-block.ots");
    let proof: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("golden")).expect("json");
    let height = proof["anchor"]["block"]["height"].as_u64().expect("height");
    let header = proof["anchor"]["block"]["header"].as_str().expect("header");
    let leaf = dir.path().join("leaf.bin");
    let preimage: Vec<u8> =
        bitcoin::hex::FromHex::from_hex(proof["leaf"]["preimage"].as_str().expect("preimage"))
            .expect("hex");
    std::fs::write(&leaf, preimage).expect("write");
    let leaf = leaf.to_str().expect("utf-8 path");

    let out = btcts(&[
        "verify",
        &ots_path,
        "--with-proof",
        &json_path,
        "--file",
        leaf,
        "--network",
        "litecoin-regtest",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for needle in [
        &format!("at height {height}"),
        "OpenTimestamps",
        "3 confirmations",
        "proof verified",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }

    let headers = dir.path().join("headers.txt");
    std::fs::write(&headers, format!("# height header\n{height} {header}\n")).expect("write");
    let headers = headers.to_str().expect("utf-8 path");
    let out = btcts(&[
        "verify",
        &ots_path,
        "--headers",
        headers,
        "--network",
        "litecoin-regtest",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["result"]["block_height"], height);
    assert_eq!(v["result"]["digest"], proof["leaf"]["hash"]);

    // Each failure names its step.
    let wrong_file = json_path.as_str();
    let tampered = {
        let mut bytes = std::fs::read(&ots_path).expect("golden");
        let n = bytes.len();
        bytes[n - 20] ^= 1; // inside the last block-branch argument
        let p = dir.path().join("tampered.ots");
        std::fs::write(&p, bytes).expect("write");
        p.to_str().expect("utf-8 path").to_owned()
    };
    for (args, step, code) in [
        (
            vec!["--with-proof", json_path.as_str(), "--file", wrong_file],
            "digest",
            1,
        ),
        (
            vec!["--headers", headers, "--network", "bitcoin"],
            "block",
            1,
        ),
        (
            vec!["--with-proof", json_path.as_str(), "--file", leaf],
            "network",
            1,
        ),
        (vec![], "header_source", 2),
        (vec!["--headers", headers], "header_source", 2),
    ] {
        let mut all = vec!["verify", ots_path.as_str(), "--json"];
        all.extend(&args);
        let out = btcts(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stdout)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["error"]["step"], step, "{args:?}");
    }
    let out = btcts(&[
        "verify",
        &tampered,
        "--with-proof",
        &json_path,
        "--network",
        "litecoin-regtest",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["step"], "block");
}
