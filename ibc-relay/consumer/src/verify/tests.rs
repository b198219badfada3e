use bitcoin::block::Version;
use bitcoin::hashes::Hash;
use bitcoin::{CompactTarget, TxMerkleNode};

use super::*;
use crate::packet::PosBlockRecord;

const REGTEST_BITS: u32 = 0x207f_ffff;

/// A header on `prev` with `bits`, its nonce searched until the work is valid.
fn mine(prev: &Header, bits: u32, time: u32) -> Header {
    let mut h = Header {
        version: Version::TWO,
        prev_blockhash: prev.block_hash(),
        merkle_root: TxMerkleNode::all_zeros(),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while h.validate_pow(h.target()).is_err() {
        h.nonce += 1;
    }
    h
}

fn regtest() -> NetworkAnchors {
    TrustAnchors::builtin().get(AnchorNetwork::Regtest).clone()
}

fn trusted() -> TrustedHeader {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    TrustedHeader {
        height: 0,
        header: genesis,
    }
}

fn chain(from: &Header, n: usize) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::new();
    for i in 0..n {
        let prev = out.last().copied().unwrap_or(*from);
        out.push(mine(&prev, REGTEST_BITS, 1_700_000_000 + i as u32));
    }
    out
}

fn packet_with(headers: &[Header], first_height: u32) -> TimestampPacket {
    TimestampPacket {
        version: PACKET_VERSION,
        record: Some(PosBlockRecord::default()),
        proof: Vec::new(),
        first_height,
        headers: headers.iter().map(serialize).collect(),
        depth: 0,
    }
}

#[test]
fn linked_headers_with_work_pass() {
    let t = trusted();
    let headers = chain(&t.header, 5);
    let got = check_headers(
        &packet_with(&headers, 1),
        &t,
        AnchorNetwork::Regtest,
        &regtest(),
    );
    assert_eq!(got, Ok(headers));
}

#[test]
fn headers_must_start_right_after_the_trusted_header_and_link() {
    let t = trusted();
    let headers = chain(&t.header, 4);
    let err = check_headers(
        &packet_with(&headers, 2),
        &t,
        AnchorNetwork::Regtest,
        &regtest(),
    );
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let err = check_headers(
        &packet_with(&headers[1..], 1),
        &t,
        AnchorNetwork::Regtest,
        &regtest(),
    );
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let mut gap = headers.clone();
    gap.remove(2);
    let err = check_headers(
        &packet_with(&gap, 1),
        &t,
        AnchorNetwork::Regtest,
        &regtest(),
    );
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let err = check_headers(&packet_with(&[], 1), &t, AnchorNetwork::Regtest, &regtest());
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let mut short = packet_with(&headers, 1);
    short.headers[1].pop();
    let err = check_headers(&short, &t, AnchorNetwork::Regtest, &regtest());
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
}

#[test]
fn a_header_without_work_or_with_a_new_difficulty_is_refused() {
    let t = trusted();
    let mut headers = chain(&t.header, 3);
    // The same header with a nonce whose hash misses the target.
    let mut lazy = headers[2];
    while lazy.validate_pow(lazy.target()).is_ok() {
        lazy.nonce += 1;
    }
    headers[2] = lazy;
    let err = check_headers(
        &packet_with(&headers, 1),
        &t,
        AnchorNetwork::Regtest,
        &regtest(),
    );
    assert!(
        matches!(err, Err(PacketError::Work { height: 3, .. })),
        "{err:?}"
    );
    // Harder bits with valid work: regtest never retargets.
    let mut headers = chain(&t.header, 2);
    headers.push(mine(&headers[1], 0x1f7f_ffff, 1_700_000_100));
    let err = check_headers(
        &packet_with(&headers, 1),
        &t,
        AnchorNetwork::Regtest,
        &regtest(),
    );
    assert!(
        matches!(err, Err(PacketError::Work { height: 3, .. })),
        "{err:?}"
    );
}

#[test]
fn a_mainnet_packet_below_the_difficulty_floor_is_refused() {
    // Real Bitcoin blocks 0 and 1: linked, valid proof of work, and at
    // difficulty 1, which a GPU makes in seconds.
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header;
    let block1: Header = bitcoin::consensus::encode::deserialize_hex(
        "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000\
         982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e\
         61bc6649ffff001d01e36299",
    )
    .expect("valid header");
    assert_eq!(
        block1.block_hash().to_string(),
        "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
    );
    assert_eq!(AnchorNetwork::Bitcoin.check_pow(&block1), Ok(()));
    let t = TrustedHeader {
        height: 0,
        header: genesis,
    };
    let anchors = TrustAnchors::builtin();
    let packet = packet_with(&[block1], 1);
    let err = check_headers(
        &packet,
        &t,
        AnchorNetwork::Bitcoin,
        anchors.get(AnchorNetwork::Bitcoin),
    );
    match err {
        Err(PacketError::Work { height: 1, reason }) => {
            assert!(reason.contains("below the bitcoin floor"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The floor is what refuses it: without one the same headers pass.
    let no_floor = NetworkAnchors {
        floor_bits: None,
        ..anchors.get(AnchorNetwork::Bitcoin).clone()
    };
    assert_eq!(
        check_headers(&packet, &t, AnchorNetwork::Bitcoin, &no_floor),
        Ok(vec![block1])
    );
}

#[test]
fn undecodable_and_non_canonical_packets_are_refused() {
    let t = trusted();
    let params = ConsumerParams {
        chain_id: ChainId::new("c").expect("id"),
        network: AnchorNetwork::Regtest,
        tag: Tag::DEFAULT,
        k: 1,
    };
    assert!(matches!(
        verify_packet(&[0xff, 0xff], &t, &params),
        Err(PacketError::Decode(_))
    ));
    let mut p = packet_with(&[], 1);
    p.version = 2;
    assert_eq!(
        verify_packet(&p.encode_to_vec(), &t, &params),
        Err(PacketError::Version(2))
    );
    // An unknown field appended: decodes, but is not canonical.
    let mut bytes = packet_with(&[], 1).encode_to_vec();
    bytes.extend([0x38, 0x01]);
    assert!(matches!(
        verify_packet(&bytes, &t, &params),
        Err(PacketError::Decode(_))
    ));
    let p = packet_with(&[], 1);
    assert!(matches!(
        verify_packet(&p.encode_to_vec(), &t, &params),
        Err(PacketError::Record(_))
    ));
}
