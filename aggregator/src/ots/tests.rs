use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use proptest::prelude::*;

use super::*;

fn golden(name: &str) -> Proof {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Proof::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const GOLDEN: [&str; 3] = [
    "bitcoin-regtest-pos-block.json",
    "litecoin-regtest-pos-block.json",
    "litecoin-regtest-digest.json",
];

#[test]
fn varuint_is_leb128() {
    for (v, bytes) in [
        (0u64, vec![0x00]),
        (1, vec![0x01]),
        (127, vec![0x7f]),
        (128, vec![0x80, 0x01]),
        (300, vec![0xac, 0x02]),
        (
            u64::MAX,
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
    ] {
        let mut out = Vec::new();
        write_varuint(&mut out, v);
        assert_eq!(out, bytes, "{v}");
        let mut r = Reader { bytes: &out, at: 0 };
        assert_eq!(r.varuint(), Ok(v));
    }
    let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    assert!(Reader {
        bytes: &too_big,
        at: 0
    }
    .varuint()
    .is_err());
}

/// Replaying a golden proof's timestamp from its leaf hash ends at the
/// anchor block's Merkle root, attested at the block's height.
#[test]
fn golden_proofs_become_timestamps_ending_in_the_block_merkle_root() {
    for name in GOLDEN {
        let proof = golden(name);
        let file = detached_of(&proof, None).expect("anchored proofs convert");
        assert_eq!(&file.digest, proof.leaf.hash.as_bytes());
        // The file digest is SHA-256 of the downloadable leaf preimage.
        assert_eq!(
            sha256::Hash::hash(&proof.leaf.preimage.0).to_byte_array(),
            file.digest
        );
        let anchor = proof.anchor.as_ref().expect("anchored");
        let header: Header = deserialize(&anchor.block.header.0).expect("header");
        let atts = file.timestamp.replay(&file.digest).expect("replays");
        assert_eq!(atts.len(), 1, "{name}");
        let (msg, att) = &atts[0];
        assert_eq!(msg.as_slice(), header.merkle_root.as_byte_array(), "{name}");
        assert_eq!(
            *att,
            Attestation::Bitcoin {
                height: u64::from(anchor.block.height)
            }
        );
        // Only append, prepend and sha256 are used.
        let mut node = &file.timestamp;
        while let Some((op, child)) = node.ops.first() {
            assert!(matches!(op, Op::Append(_) | Op::Prepend(_) | Op::Sha256));
            node = child;
        }
        // Byte round trip.
        let bytes = file.to_bytes().expect("serializes");
        assert_eq!(DetachedTimestamp::from_bytes(&bytes), Ok(file));
    }
}

#[test]
fn the_txid_is_an_intermediate_message() {
    let proof = golden(GOLDEN[1]);
    let anchor = proof.anchor.clone().expect("anchored");
    let t = timestamp_of(&proof, None).expect("converts");
    // Walk to the message after the two SHA-256 that follow the tx append.
    let mut msg = proof.leaf.hash.as_bytes().to_vec();
    let mut node = &t;
    let mut seen_txid = false;
    while let Some((op, child)) = node.ops.first() {
        msg = op.apply(&msg).expect("applies");
        node = child;
        if msg.as_slice() == anchor.txid.as_byte_array() {
            seen_txid = true;
        }
    }
    assert!(seen_txid, "the txid (internal byte order) is on the way");
}

#[test]
fn an_unanchored_proof_gets_a_pending_attestation_at_the_leaf() {
    let mut proof = golden(GOLDEN[0]);
    proof.anchor = None;
    assert!(matches!(detached_of(&proof, None), Err(OtsError::Proof(_))));
    let file = detached_of(&proof, Some("http://127.0.0.1:8080")).expect("converts");
    assert_eq!(
        file.timestamp.replay(&file.digest),
        Ok(vec![(
            file.digest.to_vec(),
            Attestation::Pending {
                uri: "http://127.0.0.1:8080".into()
            }
        )])
    );
    assert!(detached_of(&proof, Some("http://user@host/")).is_err());
    assert!(detached_of(&proof, Some("http://h/?q=1")).is_err());
}

#[test]
fn litecoin_mainnet_blocks_get_litecoin_attestations() {
    assert_eq!(
        Attestation::block(AnchorNetwork::Litecoin, 5),
        Attestation::Litecoin { height: 5 }
    );
    for n in [
        AnchorNetwork::Bitcoin,
        AnchorNetwork::Testnet4,
        AnchorNetwork::Regtest,
        AnchorNetwork::LitecoinRegtest,
    ] {
        assert_eq!(Attestation::block(n, 5), Attestation::Bitcoin { height: 5 });
    }
}

#[test]
fn a_proof_whose_payload_does_not_carry_the_root_is_refused() {
    let mut proof = golden(GOLDEN[0]);
    proof.batch.root = crate::MerkleRoot([7; 32]);
    assert!(matches!(
        timestamp_of(&proof, None),
        Err(OtsError::Proof(_))
    ));
    let mut proof = golden(GOLDEN[0]);
    if let Some(a) = proof.anchor.as_mut() {
        a.output_index += 1;
    }
    assert!(matches!(
        timestamp_of(&proof, None),
        Err(OtsError::Proof(_))
    ));
}

/// A hand-assembled file, byte by byte from the format description.
#[test]
fn encoding_matches_the_format_byte_for_byte() {
    let t = Timestamp::chain(
        vec![Op::Append(vec![0xaa, 0xbb]), Op::Sha256],
        Attestation::Bitcoin { height: 300 },
    );
    let file = DetachedTimestamp {
        digest: [0x11; 32],
        timestamp: t,
    };
    let mut expect = MAGIC.to_vec();
    expect.extend([0x01, 0x08]);
    expect.extend([0x11; 32]);
    expect.extend([0xf0, 0x02, 0xaa, 0xbb, 0x08, 0x00]);
    expect.extend(ATT_BITCOIN);
    expect.extend([0x02, 0xac, 0x02]);
    assert_eq!(file.to_bytes().expect("serializes"), expect);
}

#[test]
fn branches_are_sorted_and_marked_like_the_reference() {
    let leaf = |h| Timestamp::chain(vec![], Attestation::Bitcoin { height: h });
    let t = Timestamp {
        attestations: vec![
            Attestation::Pending {
                uri: "https://b".into(),
            },
            Attestation::Bitcoin { height: 1 },
        ],
        ops: vec![
            (Op::Prepend(vec![1]), leaf(2)),
            (Op::Sha256, leaf(3)),
            (Op::Append(vec![1]), leaf(4)),
        ],
    };
    let bytes = t.to_bytes().expect("serializes");
    // Bitcoin (tag 05..) before pending (83..), then sha256 (08) < append (f0) < prepend (f1).
    let mut expect = vec![0xff, 0x00];
    expect.extend(ATT_BITCOIN);
    expect.extend([0x01, 0x01, 0xff, 0x00]);
    expect.extend(ATT_PENDING);
    expect.extend([0x0a, 0x09]);
    expect.extend(b"https://b");
    for (op, arg, h) in [(0x08, None, 3u8), (0xf0, Some(1u8), 4), (0xf1, Some(1), 2)] {
        if op != 0xf1 {
            expect.push(0xff);
        }
        expect.push(op);
        if let Some(a) = arg {
            expect.extend([0x01, a]);
        }
        expect.push(0x00);
        expect.extend(ATT_BITCOIN);
        expect.extend([0x01, h]);
    }
    assert_eq!(bytes, expect);
    let back = Timestamp::from_bytes(&bytes).expect("parses");
    assert_eq!(back.to_bytes(), Ok(bytes));
}

#[test]
fn malformed_files_are_rejected_with_a_reason() {
    let good = detached_of(&golden(GOLDEN[0]), None)
        .and_then(|f| f.to_bytes())
        .expect("converts");
    assert_eq!(DetachedTimestamp::from_bytes(&[]), Err(OtsError::Magic));
    assert_eq!(
        DetachedTimestamp::from_bytes(&good[1..]),
        Err(OtsError::Magic)
    );
    for cut in [MAGIC.len() + 1, MAGIC.len() + 10, good.len() - 1] {
        assert_eq!(
            DetachedTimestamp::from_bytes(&good[..cut]),
            Err(OtsError::Truncated),
            "cut at {cut}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        DetachedTimestamp::from_bytes(&trailing),
        Err(OtsError::Trailing(1))
    );
    let mut v2 = good.clone();
    v2[MAGIC.len()] = 2;
    assert_eq!(
        DetachedTimestamp::from_bytes(&v2),
        Err(OtsError::Version(2))
    );
    let mut sha1 = good.clone();
    sha1[MAGIC.len() + 1] = 0x02;
    assert_eq!(
        DetachedTimestamp::from_bytes(&sha1),
        Err(OtsError::FileHash(0x02))
    );
    let mut op = good.clone();
    op[MAGIC.len() + 2 + 32] = 0x42;
    assert_eq!(
        DetachedTimestamp::from_bytes(&op),
        Err(OtsError::UnknownOp(0x42))
    );
    // 300 nested sha256 exceed the depth limit.
    let deep = Timestamp::chain(vec![Op::Sha256; 300], Attestation::Bitcoin { height: 1 });
    assert!(deep.to_bytes().is_err());
    let mut bytes = vec![TAG_SHA256; 300];
    bytes.push(0x00);
    bytes.extend(ATT_BITCOIN);
    bytes.extend([0x01, 0x01]);
    assert!(matches!(
        Timestamp::from_bytes(&bytes),
        Err(OtsError::Invalid(_))
    ));
    // An empty append argument and a bad pending URI.
    assert!(Timestamp::from_bytes(&[0xf0, 0x00, 0x00]).is_err());
    let mut bad_uri = vec![0x00];
    bad_uri.extend(ATT_PENDING);
    bad_uri.extend([0x04, 0x03]);
    bad_uri.extend(b"a?b");
    assert!(matches!(
        Timestamp::from_bytes(&bad_uri),
        Err(OtsError::Invalid(_))
    ));
}

#[test]
fn ops_compute_what_the_reference_computes() {
    assert_eq!(Op::Append(vec![3]).apply(&[1, 2]), Ok(vec![1, 2, 3]));
    assert_eq!(Op::Prepend(vec![3]).apply(&[1, 2]), Ok(vec![3, 1, 2]));
    assert_eq!(Op::Reverse.apply(&[1, 2]), Ok(vec![2, 1]));
    assert_eq!(Op::Hexlify.apply(&[0xab, 0x01]), Ok(b"ab01".to_vec()));
    assert_eq!(
        Op::Sha256.apply(b"abc").map(|h| h[..4].to_vec()),
        Ok(vec![0xba, 0x78, 0x16, 0xbf])
    );
    assert_eq!(
        Op::Sha1.apply(b"abc").map(|h| h[..4].to_vec()),
        Ok(vec![0xa9, 0x99, 0x3e, 0x36])
    );
    assert_eq!(
        Op::Ripemd160.apply(b"abc").map(|h| h[..4].to_vec()),
        Ok(vec![0x8e, 0xb2, 0x08, 0xf7])
    );
    assert_eq!(
        Op::Keccak256.apply(b"abc"),
        Err(OtsError::Unsupported("keccak256"))
    );
    assert!(Op::Append(vec![0; 4000]).apply(&[0; 200]).is_err());
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Sha256),
        Just(Op::Sha1),
        Just(Op::Ripemd160),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::Append),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::Prepend),
    ]
}

fn arb_attestation() -> impl Strategy<Value = Attestation> {
    prop_oneof![
        any::<u64>().prop_map(|height| Attestation::Bitcoin { height }),
        any::<u64>().prop_map(|height| Attestation::Litecoin { height }),
        "[a-z0-9.:/-]{1,30}".prop_map(|uri| Attestation::Pending { uri }),
        (
            any::<[u8; 8]>(),
            proptest::collection::vec(any::<u8>(), 0..20)
        )
            .prop_filter("not a known tag", |(t, _)| ![
                ATT_PENDING,
                ATT_BITCOIN,
                ATT_LITECOIN
            ]
            .contains(t))
            .prop_map(|(tag, payload)| Attestation::Unknown { tag, payload }),
    ]
}

fn arb_timestamp() -> impl Strategy<Value = Timestamp> {
    let leaf = arb_attestation().prop_map(|a| Timestamp {
        attestations: vec![a],
        ops: vec![],
    });
    leaf.prop_recursive(6, 40, 3, |inner| {
        (
            proptest::collection::vec(arb_attestation(), 0..2),
            proptest::collection::btree_map(arb_op(), inner, 1..3),
        )
            .prop_map(|(mut attestations, ops)| {
                attestations.sort();
                attestations.dedup();
                Timestamp {
                    attestations,
                    ops: ops.into_iter().collect(),
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Canonical bytes parse back to the same tree and re-encode identically.
    #[test]
    fn timestamps_round_trip(t in arb_timestamp()) {
        let bytes = t.to_bytes().expect("serializes");
        let back = Timestamp::from_bytes(&bytes).expect("parses");
        prop_assert_eq!(back.to_bytes().expect("serializes"), bytes);
    }

    /// No input makes the parser panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Timestamp::from_bytes(&bytes);
        let mut file = MAGIC.to_vec();
        file.extend(&bytes);
        let _ = DetachedTimestamp::from_bytes(&file);
    }
}

/// The message bytes a replay hands back (one copy per attestation).
fn held(atts: &[(Vec<u8>, Attestation)]) -> usize {
    atts.iter().map(|(m, _)| m.len()).sum()
}

/// A small `.ots` file must not make its replay hold hundreds of times its
/// size: each 11-byte attestation under a 4 KiB message used to cost a 4 KiB
/// copy (~370× the input). Past [`MAX_REPLAY_BYTES`] the replay is refused.
#[test]
fn a_crafted_timestamp_cannot_amplify_replay_memory() {
    let unknown = Attestation::Unknown {
        tag: [0x42; 8],
        payload: Vec::new(),
    };
    // Many attestations on one 4 KiB message.
    let wide = Timestamp {
        attestations: Vec::new(),
        ops: vec![(
            Op::Append(vec![7; MAX_MSG_LEN - 32]),
            Timestamp {
                attestations: vec![unknown.clone(); 2000],
                ops: Vec::new(),
            },
        )],
    };
    // Many sibling operations, each producing a fresh 4 KiB message.
    let leaf = Timestamp::chain(Vec::new(), unknown);
    let siblings = Timestamp {
        attestations: Vec::new(),
        ops: vec![(
            Op::Append(vec![7; MAX_MSG_LEN - 32]),
            Timestamp {
                attestations: Vec::new(),
                ops: vec![(Op::Reverse, leaf); 2000],
            },
        )],
    };
    for (name, t) in [("wide", wide), ("siblings", siblings)] {
        let file = DetachedTimestamp {
            digest: [1; 32],
            timestamp: t,
        };
        let bytes = file.to_bytes().expect("serializes");
        assert!(bytes.len() < 30_000, "{name}: {} bytes", bytes.len());
        let parsed = DetachedTimestamp::from_bytes(&bytes).expect("a well-formed file");
        match parsed.timestamp.replay(&parsed.digest) {
            Ok(atts) => panic!(
                "{name}: a {}-byte file replayed into {} bytes of messages",
                bytes.len(),
                held(&atts)
            ),
            Err(e) => assert!(
                matches!(&e, OtsError::Invalid(m) if m.contains("replay")),
                "{name}: {e}"
            ),
        }
    }
}

/// Replays that stay under the budget are unchanged, and a golden proof's
/// replay is far below it.
#[test]
fn replays_under_the_budget_still_return_every_attestation() {
    let t = Timestamp {
        attestations: vec![Attestation::Bitcoin { height: 1 }; 100],
        ops: vec![(
            Op::Sha256,
            Timestamp::chain(Vec::new(), Attestation::Litecoin { height: 2 }),
        )],
    };
    let atts = t.replay(&[9; 32]).expect("replays");
    assert_eq!(atts.len(), 101);
    assert_eq!(held(&atts), 101 * 32);
    for name in GOLDEN {
        let file = detached_of(&golden(name), None).expect("converts");
        let atts = file.timestamp.replay(&file.digest).expect("replays");
        assert!(held(&atts) < 1024, "{name}");
    }
}
