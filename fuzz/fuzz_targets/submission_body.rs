//! `POST /v1/chains/{chain_id}/blocks` body bytes → `parse_submission`
//! (the JSON shape, the 1..=max records rule, the hex hashes).
#![no_main]

use aggregator::{ChainId, Record};
use btcts_api::parse_submission;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let chain = ChainId::new("cosmoshub-4").expect("a valid chain id");
    if let Ok(records) = parse_submission(&chain, data, MAX) {
        assert!(!records.is_empty() && records.len() <= MAX);
        for r in &records {
            let Record::PosBlock(b) = r else {
                panic!("a submission yields PoS block records only");
            };
            assert_eq!(b.chain_id, chain);
        }
    }
});
