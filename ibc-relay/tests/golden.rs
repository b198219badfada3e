//! Packet format v1 pinned byte for byte: the packet built from the golden
//! litecoind proof (`aggregator/tests/data`) and an acknowledgement.
//! `BTCTS_WRITE_GOLDEN=1` rewrites the files.

use aggregator::proof::Proof;
use bitcoin::block::Header;
use btcts_consumer::{TimestampAck, TimestampPacket};
use ibc_relay::packet::build_packet;
use prost::Message;

fn pinned(name: &str, bytes: &[u8]) {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("BTCTS_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        stored, bytes,
        "{name}: packet format v1 changed; it is a contract"
    );
}

#[test]
fn packet_v1_encoding_is_pinned() {
    let path = format!(
        "{}/../aggregator/tests/data/litecoin-regtest-pos-block.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let proof = Proof::from_json(&text).expect("golden proof");
    let anchor = proof.anchor.as_ref().expect("anchored");
    let mut headers: Vec<Header> =
        vec![bitcoin::consensus::deserialize(&anchor.block.header.0).expect("header")];
    for h in &anchor.headers_after {
        headers.push(bitcoin::consensus::deserialize(&h.header.0).expect("header"));
    }
    let packet = build_packet(&proof, anchor.block.height, &headers).expect("builds");
    assert_eq!(packet.depth, 3);
    assert_eq!(packet.headers.len(), 3);
    let bytes = packet.encode_to_vec();
    pinned("packet-v1.bin", &bytes);
    assert_eq!(
        TimestampPacket::decode(bytes.as_slice()).expect("decodes"),
        packet
    );

    let ack = TimestampAck {
        chain_id: "cosmoshub-4".into(),
        height: 100,
        bitcoin_height: anchor.block.height,
        depth: 3,
    };
    pinned("ack-result-v1.bin", &ack.encode_to_vec());
}
