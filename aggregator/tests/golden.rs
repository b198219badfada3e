//! Golden proof files: real anchored proofs (a litecoind regtest block and a
//! Bitcoin-regtest block) that this version must keep verifying, byte for
//! byte, and that no single-bit change can slip through.

use aggregator::proof::{Proof, ProofError};
use aggregator::verify::{verify, Expect, Step};
use aggregator::{AnchorNetwork, Tag};
use bitcoin::hex::{DisplayHex, FromHex};
use proptest::prelude::*;
use serde_json::Value;

const FILES: [&str; 3] = [
    "bitcoin-regtest-pos-block.json",
    "litecoin-regtest-pos-block.json",
    "litecoin-regtest-digest.json",
];

fn read(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn golden_proofs_verify_and_round_trip_byte_for_byte() {
    for name in FILES {
        let text = read(name);
        let proof = Proof::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            proof.to_json(),
            text,
            "{name}: the format changed; bump the proof version"
        );
        let v = verify(&proof, &Expect::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let a = v.anchor.expect("golden proofs are anchored");
        assert_eq!(a.confirmations, 3, "{name}");
        let network = if name.starts_with("bitcoin") {
            AnchorNetwork::Regtest
        } else {
            AnchorNetwork::LitecoinRegtest
        };
        assert_eq!(a.network, network);
    }
}

#[test]
fn expectations_are_enforced() {
    let proof = Proof::from_json(&read(FILES[1])).expect("parses");
    let wrong_net = Expect {
        network: Some(AnchorNetwork::Bitcoin),
        tag: None,
    };
    assert_eq!(
        verify(&proof, &wrong_net).map_err(|e| e.step),
        Err(Step::Network)
    );
    let wrong_tag = Expect {
        network: None,
        tag: Some(Tag(*b"XXXX")),
    };
    assert_eq!(
        verify(&proof, &wrong_tag).map_err(|e| e.step),
        Err(Step::Payload)
    );
    // Claiming sha256d work for a Litecoin block is refused, not just checked differently.
    let mut lying = proof.clone();
    if let Some(a) = lying.anchor.as_mut() {
        a.network = AnchorNetwork::Regtest;
    }
    assert!(verify(&lying, &Expect::default()).is_err());
}

#[test]
fn an_unanchored_proof_verifies_up_to_the_root() {
    let mut proof = Proof::from_json(&read(FILES[0])).expect("parses");
    proof.anchor = None;
    let v = verify(&proof, &Expect::default()).expect("verifies");
    assert!(v.anchor.is_none());
    assert!(aggregator::verify::summary(&v).contains("not anchored yet"));
}

#[test]
fn truncated_and_foreign_documents_are_typed_errors() {
    let text = read(FILES[1]);
    for cut in [0, 1, 10, text.len() / 2, text.len() - 3] {
        assert!(
            matches!(Proof::from_json(&text[..cut]), Err(ProofError::Json(_))),
            "cut at {cut}"
        );
    }
    let v2 = text.replacen("\"version\": 1", "\"version\": 2", 1);
    assert!(matches!(Proof::from_json(&v2), Err(ProofError::Version(2))));
    let extra = text.replacen("{", "{\n  \"extra\": true,", 1);
    assert!(matches!(Proof::from_json(&extra), Err(ProofError::Json(_))));
    let short_header = text.replacen("\"header\": \"00000020", "\"header\": \"20", 1);
    let proof = Proof::from_json(&short_header).expect("hex still parses");
    assert_eq!(
        verify(&proof, &Expect::default()).map_err(|e| e.step),
        Err(Step::Header)
    );
    let odd_hex = text.replacen("\"tx\": \"02", "\"tx\": \"2", 1);
    assert!(matches!(
        Proof::from_json(&odd_hex),
        Err(ProofError::Json(_))
    ));
}

/// Every place a single bit can change in a proof: hex strings (by bit),
/// numbers that the evidence commits to (by bit) and enumerations (toggled).
/// `batch.size` and `block.height` are informational (see docs/proof-format.md)
/// and are left out.
#[derive(Clone, Debug)]
enum Site {
    Hex(Vec<PathPart>, usize),
    Number(Vec<PathPart>, u32),
    Toggle(Vec<PathPart>, &'static str, &'static str),
}

#[derive(Clone, Debug)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn collect_sites(v: &Value, at: &mut Vec<PathPart>, out: &mut Vec<Site>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                at.push(PathPart::Key(k.clone()));
                collect_sites(child, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(PathPart::Index(i));
                collect_sites(child, at, out);
                at.pop();
            }
        }
        Value::String(s) => {
            let key = match at.last() {
                Some(PathPart::Key(k)) => k.as_str(),
                _ => "",
            };
            match (key, s.as_str()) {
                ("format", _) | ("kind", _) | ("chain_id", _) => {}
                ("side", _) => out.push(Site::Toggle(at.clone(), "left", "right")),
                ("pow", _) => out.push(Site::Toggle(at.clone(), "sha256d", "scrypt")),
                ("network", _) => out.push(Site::Toggle(at.clone(), "regtest", "litecoin-regtest")),
                _ => {
                    for bit in 0..s.len() * 4 {
                        out.push(Site::Hex(at.clone(), bit));
                    }
                }
            }
        }
        Value::Number(_) => {
            let key = match at.last() {
                Some(PathPart::Key(k)) => k.as_str(),
                _ => "",
            };
            let parent = match at.len().checked_sub(2).and_then(|i| at.get(i)) {
                Some(PathPart::Key(k)) => k.as_str(),
                _ => "",
            };
            let informational =
                key == "version" || key == "size" || (key == "height" && parent == "block");
            if !informational {
                for bit in 0..20 {
                    out.push(Site::Number(at.clone(), bit));
                }
            }
        }
        _ => {}
    }
}

fn slot<'a>(v: &'a mut Value, path: &[PathPart]) -> &'a mut Value {
    path.iter().fold(v, |v, p| match p {
        PathPart::Key(k) => &mut v[k.as_str()],
        PathPart::Index(i) => &mut v[*i],
    })
}

fn mutate(doc: &Value, site: &Site) -> Value {
    let mut v = doc.clone();
    match site {
        Site::Hex(path, bit) => {
            let s = slot(&mut v, path);
            let mut bytes = Vec::<u8>::from_hex(s.as_str().expect("hex string")).expect("hex");
            bytes[bit / 8] ^= 1 << (bit % 8);
            *s = Value::String(bytes.to_lower_hex_string());
        }
        Site::Number(path, bit) => {
            let s = slot(&mut v, path);
            *s = Value::from(s.as_u64().expect("number") ^ (1u64 << bit));
        }
        Site::Toggle(path, a, b) => {
            let s = slot(&mut v, path);
            let next = if s.as_str() == Some(a) { b } else { a };
            *s = Value::String((*next).to_string());
        }
    }
    v
}

fn rejected(doc: &Value) -> bool {
    match serde_json::from_value::<Proof>(doc.clone()) {
        Err(_) => true,
        Ok(p) => verify(&p, &Expect::default()).is_err(),
    }
}

fn sites(name: &str) -> (Value, Vec<Site>) {
    let doc: Value = serde_json::from_str(&read(name)).expect("json");
    let mut out = Vec::new();
    collect_sites(&doc, &mut Vec::new(), &mut out);
    (doc, out)
}

/// Exhaustive on the Bitcoin-regtest proof (double SHA-256 work is cheap to check).
#[test]
fn every_single_bit_mutation_of_the_bitcoin_golden_is_rejected() {
    let (doc, sites) = sites(FILES[0]);
    assert!(sites.len() > 6000, "only {} mutation sites", sites.len());
    for site in &sites {
        assert!(
            rejected(&mutate(&doc, site)),
            "accepted after mutating {site:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Sampled on the Litecoin proofs (scrypt work is slower to check).
    #[test]
    fn single_bit_mutations_of_litecoin_goldens_are_rejected(file in 1usize..3, pick in any::<prop::sample::Index>()) {
        let (doc, sites) = sites(FILES[file]);
        let site = &sites[pick.index(sites.len())];
        prop_assert!(rejected(&mutate(&doc, site)), "accepted after mutating {:?}", site);
    }
}

/// The `.ots` export of each golden proof, pinned byte for byte next to it
/// (`BTCTS_WRITE_GOLDEN=1` rewrites them). The integration tests check these
/// same bytes with the stock OpenTimestamps library.
#[test]
fn golden_ots_exports_are_pinned() {
    for name in FILES {
        let proof = Proof::from_json(&read(name)).expect("parses");
        let bytes = aggregator::ots::detached_of(&proof, None)
            .and_then(|f| f.to_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ots_name = name.replace(".json", ".ots");
        let path = format!("{}/tests/data/{ots_name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("BTCTS_WRITE_GOLDEN").is_some() {
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            stored, bytes,
            "{ots_name}: the .ots export changed; it is a format contract"
        );
        let parsed = aggregator::ots::DetachedTimestamp::from_bytes(&stored).expect("parses");
        assert_eq!(&parsed.digest, proof.leaf.hash.as_bytes());
    }
}
