use bitcoin::secp256k1::ecdsa::Signature;

use super::*;

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).expect("valid key")
}

fn verifies(public: &PublicKey, signed: &Signed) -> bool {
    let digest = sha256::Hash::hash(&signed.sign_bytes).to_byte_array();
    let sig = Signature::from_compact(&signed.signature).expect("64 bytes");
    let mut normalized = sig;
    normalized.normalize_s();
    sig == normalized
        && Secp256k1::verification_only()
            .verify_ecdsa(&Message::from_digest(digest), &sig, public)
            .is_ok()
}

#[test]
fn signatures_are_low_s_over_sha256_of_sign_bytes_and_consume_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::open(&dir.path().join("s.redb"), key(1), "btcts", 1).expect("opens");
    let state = signer.state().expect("state");
    assert_eq!((state.sequence, state.timestamp), (1, 0));
    let a = signer
        .sign(b"connections/connection-0", b"data", 10)
        .expect("signs");
    assert_eq!(a.sequence, 1);
    assert!(verifies(&state.public_key, &a));
    let sb = SignBytes::decode(a.sign_bytes.as_slice()).expect("SignBytes");
    assert_eq!(
        (
            sb.sequence,
            sb.timestamp,
            sb.diversifier.as_str(),
            sb.path.as_slice(),
            sb.data.as_slice()
        ),
        (
            1,
            10,
            "btcts",
            b"connections/connection-0".as_slice(),
            b"data".as_slice()
        )
    );
    let proof = TimestampedSignatureData::decode(a.proof().as_slice()).expect("proof");
    assert_eq!(proof.timestamp, 10);
    let data = Data::decode(proof.signature_data.as_slice()).expect("data");
    match data.sum {
        Some(data::Sum::Single(s)) => assert_eq!(s.signature, a.signature.to_vec()),
        other => panic!("{other:?}"),
    }
    let b = signer.sign(b"p", b"d", 10).expect("same timestamp is fine");
    assert_eq!(b.sequence, 2);
    assert!(matches!(
        signer.sign(b"p", b"d", 9),
        Err(SignerError::TimestampBackwards { asked: 9, last: 10 })
    ));
    assert_eq!(signer.state().expect("state").sequence, 3);
}

#[test]
fn a_used_sequence_only_ever_gives_the_same_signature() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let first = {
        let signer = Signer::open(&path, key(1), "btcts", 5).expect("opens");
        signer.sign(b"p", b"one", 100).expect("signs")
    };
    // The process "restarts" (the store is reopened): asking again for
    // sequence 5 gives the identical proof, other bytes are refused.
    let signer = Signer::open(&path, key(1), "btcts", 5).expect("reopens");
    assert_eq!(signer.sign_at(5, b"p", b"one", 100).expect("same"), first);
    assert!(matches!(
        signer.sign_at(5, b"p", b"two", 100),
        Err(SignerError::WouldEquivocate(5))
    ));
    assert!(matches!(
        signer.sign_at(5, b"p", b"one", 101),
        Err(SignerError::WouldEquivocate(5))
    ));
    assert!(matches!(
        signer.sign_at(7, b"p", b"x", 100),
        Err(SignerError::NotNext { asked: 7, next: 6 })
    ));
    assert_eq!(signer.signed(5).expect("reads"), Some(first));
    assert_eq!(signer.signed(6).expect("reads"), None);
}

#[test]
fn another_key_is_refused_and_rotation_switches_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let signer = Signer::open(&path, key(1), "btcts", 1).expect("opens");
    let old = signer.state().expect("state").public_key;
    signer.sign(b"p", b"d", 1).expect("signs");
    let header = signer.rotate(key(2), "btcts-2", 2).expect("rotates");
    let new = key(2).public_key(&Secp256k1::new());
    assert_eq!(header.new_public_key, Some(public_key_any(&new)));
    assert_eq!(header.new_diversifier, "btcts-2");
    let rotated = signer
        .signed(2)
        .expect("reads")
        .expect("header signed at 2");
    assert!(
        verifies(&old, &rotated),
        "the header is signed by the old key"
    );
    let sb = SignBytes::decode(rotated.sign_bytes.as_slice()).expect("SignBytes");
    assert_eq!(
        (sb.path.as_slice(), sb.diversifier.as_str()),
        (HEADER_PATH, "btcts")
    );
    let after = signer.sign(b"p", b"d", 3).expect("signs");
    assert!(verifies(&new, &after));
    let state = signer.state().expect("state");
    assert_eq!(
        (state.diversifier.as_str(), state.public_key),
        ("btcts-2", new)
    );
    drop(signer);
    assert!(matches!(
        Signer::open(&path, key(1), "btcts", 1),
        Err(SignerError::KeyMismatch)
    ));
    Signer::open(&path, key(2), "ignored", 1).expect("the new key opens it");
}

#[test]
fn key_files_are_hex_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{}\n", "01".repeat(32))).expect("write");
    assert_eq!(read_key_file(&path).expect("reads"), key(1));
    std::fs::write(&path, "zz").expect("write");
    let err = read_key_file(&path).expect_err("not hex").to_string();
    assert!(!err.contains("zz"), "{err}");
    let signer = Signer::open(&dir.path().join("s.redb"), key(1), "d", 1).expect("opens");
    assert!(!format!("{signer:?}").contains("0101"));
}
