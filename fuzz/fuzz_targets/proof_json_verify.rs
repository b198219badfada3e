//! Proof JSON → `Proof::from_json` → the offline verifier, with the
//! compiled-in trust anchors and each network expected in turn.
#![no_main]

use aggregator::verify::{verify, Expect};
use aggregator::{AnchorNetwork, Proof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(proof) = Proof::from_json(text) else {
        return;
    };
    // The canonical layout parses back to the same document.
    let json = proof.to_json();
    assert_eq!(Proof::from_json(&json).ok().as_ref(), Some(&proof));
    let any = verify(&proof, &Expect::default());
    for network in [AnchorNetwork::Regtest, AnchorNetwork::LitecoinRegtest] {
        let expect = Expect {
            network: Some(network),
            tag: None,
        };
        let pinned = verify(&proof, &expect);
        // Naming a network never turns a refusal into an acceptance.
        assert!(any.is_ok() || pinned.is_err());
    }
    // An .ots conversion of whatever verifies replays within bounds.
    if any.is_ok() {
        if let Ok(file) = aggregator::ots::detached_of(&proof, None) {
            let _ = file.timestamp.replay(&file.digest);
        }
    }
});
