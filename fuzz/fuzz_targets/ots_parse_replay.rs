//! `.ots` bytes → parser → replay of every attestation's message, and the
//! canonical re-encoding of whatever parses.
#![no_main]

use aggregator::ots::{DetachedTimestamp, Timestamp, MAX_MSG_LEN, MAX_REPLAY_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A detached file (magic, version, digest, timestamp) ...
    if let Ok(file) = DetachedTimestamp::from_bytes(data) {
        check(&file.timestamp, &file.digest);
        // What parses re-encodes canonically (entries sorted, so a file
        // with entries out of order parses to another entry order), and the
        // canonical encoding is a fixed point.
        if let Ok(bytes) = file.to_bytes() {
            let again = DetachedTimestamp::from_bytes(&bytes).expect("the encoding parses");
            assert_eq!(again.to_bytes().ok(), Some(bytes));
        }
    }
    // ... and a bare timestamp as calendars return it, from a 32-byte message.
    if let Ok(t) = Timestamp::from_bytes(data) {
        check(&t, &[0x5a; 32]);
    }
});

fn check(t: &Timestamp, msg: &[u8]) {
    if let Ok(atts) = t.replay(msg) {
        let held: usize = atts.iter().map(|(m, _)| m.len()).sum();
        assert!(held <= MAX_REPLAY_BYTES);
        assert!(atts.iter().all(|(m, _)| m.len() <= MAX_MSG_LEN));
    }
}
