//! IBC packet bytes → protobuf decode → `verify_packet`, against the trusted
//! headers and parameters of the two cross-language vector bases
//! (`ibc-relay/tests/data/vectors/vectors.json`).
#![no_main]

use std::sync::OnceLock;

use aggregator::{AnchorNetwork, ChainId, Tag};
use bitcoin::block::Header;
use btcts_consumer::{verify_packet, ConsumerParams, TrustedHeader};
use libfuzzer_sys::fuzz_target;

const REGTEST: (&str, u32, &str, AnchorNetwork, &str, u32) = (
    "000000205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5aa5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a560db5465ffff7f2000000000",
    100,
    "cosmoshub-4",
    AnchorNetwork::Regtest,
    "42544354",
    3,
);
const LITECOIN: (&str, u32, &str, AnchorNetwork, &str, u32) = (
    "000000205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5aa5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5f85e6665ffff7f2000000000",
    2013,
    "osmosis-1",
    AnchorNetwork::LitecoinRegtest,
    "6c746374",
    4,
);

type Fixture = (TrustedHeader, ConsumerParams);

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| [fixture(REGTEST), fixture(LITECOIN)])
}

fn fixture(
    (header, height, chain, network, tag, k): (&str, u32, &str, AnchorNetwork, &str, u32),
) -> Fixture {
    let header: Header =
        bitcoin::consensus::encode::deserialize_hex(header).expect("vector header");
    let params = ConsumerParams {
        chain_id: ChainId::new(chain).expect("vector chain id"),
        network,
        tag: tag.parse::<Tag>().expect("vector tag"),
        k,
    };
    (TrustedHeader { height, header }, params)
}

fuzz_target!(|data: &[u8]| {
    for (trusted, params) in fixtures() {
        if let Ok(v) = verify_packet(data, trusted, params) {
            // An accepted packet is for this chain and deep enough.
            assert_eq!(v.record.chain_id, params.chain_id);
            assert!(v.depth >= params.k);
        }
    }
});
