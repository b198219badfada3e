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
    let got = check_headers(&packet_with(&headers, 1), &t, AnchorNetwork::Regtest);
    assert_eq!(got, Ok(headers));
}

#[test]
fn headers_must_start_right_after_the_trusted_header_and_link() {
    let t = trusted();
    let headers = chain(&t.header, 4);
    let err = check_headers(&packet_with(&headers, 2), &t, AnchorNetwork::Regtest);
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let err = check_headers(&packet_with(&headers[1..], 1), &t, AnchorNetwork::Regtest);
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let mut gap = headers.clone();
    gap.remove(2);
    let err = check_headers(&packet_with(&gap, 1), &t, AnchorNetwork::Regtest);
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let err = check_headers(&packet_with(&[], 1), &t, AnchorNetwork::Regtest);
    assert!(matches!(err, Err(PacketError::Headers(_))), "{err:?}");
    let mut short = packet_with(&headers, 1);
    short.headers[1].pop();
    let err = check_headers(&short, &t, AnchorNetwork::Regtest);
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
    let err = check_headers(&packet_with(&headers, 1), &t, AnchorNetwork::Regtest);
    assert!(
        matches!(err, Err(PacketError::Work { height: 3, .. })),
        "{err:?}"
    );
    // Harder bits with valid work: regtest never retargets.
    let mut headers = chain(&t.header, 2);
    headers.push(mine(&headers[1], 0x1f7f_ffff, 1_700_000_100));
    let err = check_headers(&packet_with(&headers, 1), &t, AnchorNetwork::Regtest);
    assert!(
        matches!(err, Err(PacketError::Work { height: 3, .. })),
        "{err:?}"
    );
}

#[test]
fn retargets_are_clamped_to_a_factor_of_four() {
    // check_difficulty looks at bits only: no need to mine at this difficulty.
    let prev = Header {
        bits: CompactTarget::from_consensus(0x1d00_ffff),
        ..trusted().header
    };
    let at = |bits: u32| Header {
        bits: CompactTarget::from_consensus(bits),
        ..prev
    };
    // Inside a period nothing may change; at a boundary a factor of 4 may.
    assert!(check_difficulty(AnchorNetwork::Bitcoin, 2017, &prev, &at(0x1d00_ffff)).is_ok());
    assert!(check_difficulty(AnchorNetwork::Bitcoin, 2017, &prev, &at(0x1c7f_ff80)).is_err());
    assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1c3f_ffc0)).is_ok());
    assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1c3f_ff00)).is_err());
    assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1d03_fffc)).is_ok());
    assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1d04_0000)).is_err());
    assert!(check_difficulty(AnchorNetwork::Testnet4, 17, &prev, &at(0x1d04_0000)).is_ok());
}

#[test]
fn quarter_divides_by_four() {
    let mut x = [0u8; 32];
    x[0] = 0x10;
    x[1] = 0x01;
    let mut want = [0u8; 32];
    want[0] = 0x44;
    assert_eq!(quarter(x), want);
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
