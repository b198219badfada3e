//! Cross-language test vectors for `verify_packet`, written by Rust and
//! checked by the Go verifier (`ibc-relay/go/verify/vectors_test.go`).
//!
//! Two complete packets are built without any node — records, a batch tree,
//! an anchor transaction in a block, and a short header chain mined from a
//! fixed trusted header — one on `regtest` (sha256d) and one on
//! `litecoin-regtest` (scrypt). Each is then mutated (every bit of its proof
//! bytes and of every header, every truncation, another chain, too shallow,
//! a dropped header, a false depth claim, a trusted header one height off,
//! another network or tag) and the verdict of `verify_packet` on each
//! mutation is written down. A third packet, on `regtest`, is refused as it
//! stands (its anchor transaction carries a second btcts payload output);
//! only its unmutated verdict is written. The format is described in
//! docs/ibc.md and `ibc-relay/tests/data/vectors/README.md`.
//!
//! `trust_anchors.json` beside them is every network's difficulty floor and
//! checkpoints from `TrustAnchors::builtin()`, which the Go verifier must
//! agree with. No packet vector is refused at the checkpoint step: a
//! packet's blocks sit above its trusted header (height 1 and up), and the
//! test networks' only checkpoint is their genesis block at height 0, which
//! carries no btcts payload and links to nothing.
//!
//! The files under `ibc-relay/tests/data/vectors/` are pinned like every
//! other golden: `BTCTS_WRITE_GOLDEN=1` rewrites them.

use aggregator::leaf;
use aggregator::proof::{
    AnchorEvidence, BatchEvidence, LeafEvidence, Proof, PROOF_FORMAT, PROOF_VERSION,
};
use aggregator::trust::TrustAnchors;
use aggregator::types::HexBytes;
use aggregator::{
    AnchorNetwork, BatchSeq, ChainId, MerkleRoot, MerkleTree, Payload, PosBlock, PosBlockHash,
    Record, StakerSetDigest, Tag,
};
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::hex::DisplayHex;
use bitcoin::pow::CompactTarget;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Txid, Witness,
};
use btcts_consumer::{
    verify_packet, ConsumerParams, PosBlockRecord, TimestampPacket, TrustedHeader, PACKET_VERSION,
};
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Regtest bits: the easiest target both regtest networks allow.
const REGTEST_BITS: u32 = 0x207f_ffff;

/// One base packet and what it is checked against.
struct Base {
    /// Name, also the stem of its `.bin` file.
    name: &'static str,
    packet: TimestampPacket,
    trusted: TrustedHeader,
    params: ConsumerParams,
}

/// How a base packet is changed before it is verified.
#[derive(Clone)]
enum Mutation {
    None,
    FlipProofBit(usize),
    FlipHeaderBit { header: usize, bit: usize },
    Truncate(usize),
    ChainId(String),
    SetK(u32),
    DropFirstHeader,
    AdvanceTrusted(usize),
    ClaimDepth(u32),
    TrustedHeight(i64),
    Network(AnchorNetwork),
    Tag(Tag),
}

fn chain_id(s: &str) -> ChainId {
    ChainId::new(s).expect("valid chain id")
}

fn header_hex(h: &Header) -> String {
    serialize(h).to_lower_hex_string()
}

/// A header on `prev` whose nonce is searched until its work is valid on `network`.
fn mine(network: AnchorNetwork, prev: BlockHash, merkle_root: TxMerkleNode, time: u32) -> Header {
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root,
        time,
        bits: CompactTarget::from_consensus(REGTEST_BITS),
        nonce: 0,
    };
    while network.check_pow(&h).is_err() {
        h.nonce += 1;
    }
    h
}

fn pos(chain: &str, height: u64, seed: u8) -> PosBlock {
    PosBlock {
        chain_id: chain_id(chain),
        height,
        block_hash: PosBlockHash([seed; 32]),
        staker_set_digest: StakerSetDigest([seed.wrapping_add(0x40); 32]),
    }
}

fn simple_tx(seed: u8, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([seed; 32]), u32::from(seed)),
            script_sig: ScriptBuf::from_bytes(vec![0x51]),
            sequence: Sequence(0xffff_fffd),
            witness: Witness::new(),
        }],
        output: outputs,
    }
}

/// What [`build`] makes a packet of.
struct Spec {
    name: &'static str,
    network: AnchorNetwork,
    tag: Tag,
    /// The batch; the record at `index` is the packet's.
    records: Vec<PosBlock>,
    index: usize,
    trusted_height: u32,
    anchor_height: u32,
    /// Headers after the trusted one.
    count: u32,
    /// How many of the headers after the anchor block the proof carries.
    proof_headers_after: usize,
    /// A second btcts payload output (this root, same tag) in the anchor
    /// transaction, after the real one: a v1 verifier refuses it.
    second_payload: Option<MerkleRoot>,
}

/// Builds a complete packet: the records batched, anchored in a block at
/// `anchor_height` mined on a chain of `count` headers after a fixed
/// trusted header at `trusted_height`.
fn build(spec: Spec) -> Base {
    let Spec {
        name,
        network,
        tag,
        ref records,
        index,
        trusted_height,
        anchor_height,
        count,
        proof_headers_after,
        second_payload,
    } = spec;
    let leaves: Vec<_> = records
        .iter()
        .map(|r| leaf::leaf_hash(&Record::PosBlock(r.clone())))
        .collect();
    let tree = MerkleTree::from_leaves(&leaves).expect("non-empty batch");
    let seq = BatchSeq(7);
    let payload = Payload {
        tag,
        batch: seq,
        root: tree.root(),
    };
    let coinbase = simple_tx(
        0,
        vec![TxOut {
            value: Amount::from_sat(5_000_000_000),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }],
    );
    let filler = simple_tx(
        1,
        vec![TxOut {
            value: Amount::from_sat(12_345),
            script_pubkey: ScriptBuf::from_bytes(vec![0x00, 0x14, 0x33, 0x44]),
        }],
    );
    let mut outputs = vec![
        TxOut {
            value: Amount::ZERO,
            script_pubkey: payload.script_pubkey(),
        },
        TxOut {
            value: Amount::from_sat(99_000),
            script_pubkey: ScriptBuf::from_bytes([vec![0x00, 0x14], vec![0x11; 20]].concat()),
        },
    ];
    if let Some(root) = second_payload {
        outputs.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: Payload { root, ..payload }.script_pubkey(),
        });
    }
    let anchor_tx = simple_tx(2, outputs);
    let txdata = vec![coinbase, filler, anchor_tx.clone()];
    let tx_root =
        bitcoin::merkle_tree::calculate_root(txdata.iter().map(Transaction::compute_txid))
            .map(TxMerkleNode::from)
            .expect("non-empty block");

    let base_time = 1_700_000_000 + trusted_height * 600;
    let trusted = mine(
        network,
        BlockHash::from_byte_array([0x5a; 32]),
        TxMerkleNode::from_byte_array([0xa5; 32]),
        base_time,
    );
    let mut headers: Vec<Header> = Vec::new();
    let mut block = None;
    for i in 1..=count {
        let height = trusted_height + i;
        let prev = headers.last().unwrap_or(&trusted).block_hash();
        let root = if height == anchor_height {
            tx_root
        } else {
            TxMerkleNode::from_byte_array([height as u8; 32])
        };
        let h = mine(network, prev, root, base_time + i * 600);
        if height == anchor_height {
            block = Some(Block {
                header: h,
                txdata: txdata.clone(),
            });
        }
        headers.push(h);
    }
    let block = block.expect("anchor height within the headers");
    let at = (anchor_height - trusted_height) as usize;
    let after = &headers[at..at + proof_headers_after];
    let anchor = AnchorEvidence::from_block(
        network,
        tag,
        anchor_tx.compute_txid(),
        &block,
        anchor_height,
        after,
    )
    .expect("the block holds the anchor");
    let record = Record::PosBlock(records[index].clone());
    let proof = Proof {
        format: PROOF_FORMAT.to_owned(),
        version: PROOF_VERSION,
        leaf: LeafEvidence {
            preimage: HexBytes(leaf::encode(&record)),
            hash: leaves[index],
        },
        record,
        batch: BatchEvidence {
            seq,
            size: records.len() as u64,
            index: index as u64,
            root: tree.root(),
        },
        path: tree.path(index).expect("index in range"),
        anchor: None,
    }
    .with_anchor(anchor);
    let depth = count + trusted_height + 1 - anchor_height;
    let packet = TimestampPacket {
        version: PACKET_VERSION,
        record: Some(PosBlockRecord::from_record(&records[index])),
        proof: proof.to_json().into_bytes(),
        first_height: trusted_height + 1,
        headers: headers.iter().map(serialize).collect(),
        depth,
    };
    Base {
        name,
        packet,
        trusted: TrustedHeader {
            height: trusted_height,
            header: trusted,
        },
        params: ConsumerParams {
            chain_id: records[index].chain_id.clone(),
            network,
            tag,
            k: depth,
        },
    }
}

/// The bases that verify, mutated in every way.
fn bases() -> Vec<Base> {
    vec![
        build(Spec {
            name: "regtest",
            network: AnchorNetwork::Regtest,
            tag: Tag::DEFAULT,
            records: vec![
                pos("cosmoshub-4", 99, 1),
                pos("cosmoshub-4", 100, 2),
                pos("osmosis-1", 7, 3),
                pos("cosmoshub-4", 101, 4),
                pos("juno-1", 12, 5),
            ],
            index: 1,
            trusted_height: 100,
            anchor_height: 103,
            count: 5,
            proof_headers_after: 2,
            second_payload: None,
        }),
        build(Spec {
            name: "litecoin-regtest",
            network: AnchorNetwork::LitecoinRegtest,
            tag: Tag(*b"ltct"),
            records: vec![
                pos("osmosis-1", 5000, 9),
                pos("cosmoshub-4", 3, 8),
                pos("osmosis-1", 5001, 7),
            ],
            index: 2,
            trusted_height: 2013,
            anchor_height: 2015,
            count: 5,
            proof_headers_after: 1,
            second_payload: None,
        }),
    ]
}

/// The bases refused as they stand: only their unmutated verdict is written.
fn refused_bases() -> Vec<Base> {
    vec![build(Spec {
        name: "regtest-two-payloads",
        network: AnchorNetwork::Regtest,
        tag: Tag::DEFAULT,
        records: vec![pos("cosmoshub-4", 200, 11), pos("osmosis-1", 8, 12)],
        index: 0,
        trusted_height: 300,
        anchor_height: 301,
        count: 3,
        proof_headers_after: 2,
        second_payload: Some(MerkleRoot([0x77; 32])),
    })]
}

/// The mutated packet bytes, trusted header and params.
fn apply(base: &Base, m: &Mutation) -> (Vec<u8>, TrustedHeader, ConsumerParams) {
    let mut packet = base.packet.clone();
    let mut trusted = base.trusted;
    let mut params = base.params.clone();
    let flip = |bytes: &mut [u8], bit: usize| bytes[bit / 8] ^= 1 << (bit % 8);
    match m {
        Mutation::None | Mutation::Truncate(_) => {}
        Mutation::FlipProofBit(bit) => flip(&mut packet.proof, *bit),
        Mutation::FlipHeaderBit { header, bit } => flip(&mut packet.headers[*header], *bit),
        Mutation::ChainId(id) => {
            if let Some(r) = packet.record.as_mut() {
                r.chain_id.clone_from(id);
            }
        }
        Mutation::SetK(k) => params.k = *k,
        Mutation::DropFirstHeader => {
            packet.headers.remove(0);
        }
        Mutation::AdvanceTrusted(n) => {
            let raw: Vec<Vec<u8>> = packet.headers.drain(..*n).collect();
            let last = raw.last().expect("advanced by at least one header");
            trusted = TrustedHeader {
                height: trusted.height + *n as u32,
                header: bitcoin::consensus::deserialize(last).expect("80-byte header"),
            };
            packet.first_height += *n as u32;
        }
        Mutation::ClaimDepth(d) => packet.depth = *d,
        Mutation::TrustedHeight(delta) => {
            trusted.height = u32::try_from(i64::from(trusted.height) + delta).expect("height");
        }
        Mutation::Network(n) => params.network = *n,
        Mutation::Tag(t) => params.tag = *t,
    }
    let mut data = packet.encode_to_vec();
    if let Mutation::Truncate(n) = m {
        data.truncate(*n);
    }
    (data, trusted, params)
}

/// `Some(depth)` if the mutated packet verifies.
fn verdict(base: &Base, m: &Mutation) -> Option<u32> {
    let (data, trusted, params) = apply(base, m);
    verify_packet(&data, &trusted, &params)
        .ok()
        .map(|v| v.depth)
}

fn mutation_json(m: &Mutation) -> Value {
    match m {
        Mutation::None => json!({"kind": "none"}),
        Mutation::ChainId(id) => json!({"kind": "chain_id", "chain_id": id}),
        Mutation::SetK(k) => json!({"kind": "set_k", "k": k}),
        Mutation::DropFirstHeader => json!({"kind": "drop_first_header"}),
        Mutation::AdvanceTrusted(n) => json!({"kind": "advance_trusted", "n": n}),
        Mutation::ClaimDepth(d) => json!({"kind": "claim_depth", "depth": d}),
        Mutation::TrustedHeight(d) => json!({"kind": "trusted_height", "delta": d}),
        Mutation::Network(n) => json!({"kind": "network", "network": n.name()}),
        Mutation::Tag(t) => json!({"kind": "tag", "tag": t.to_string()}),
        // Single bits and lengths are written as ranges by `ranges`.
        Mutation::FlipProofBit(_) | Mutation::FlipHeaderBit { .. } | Mutation::Truncate(_) => {
            unreachable!("written as a range")
        }
    }
}

fn entry(base: &Base, name: String, mutation: Value, verdict: Option<u32>) -> Value {
    let mut e = json!({
        "name": name,
        "base": format!("{}.bin", base.name),
        "trusted": {
            "height": base.trusted.height,
            "header": header_hex(&base.trusted.header),
        },
        "params": {
            "chain_id": base.params.chain_id.as_str(),
            "network": base.params.network.name(),
            "tag": base.params.tag.to_string(),
            "k": base.params.k,
        },
        "mutation": mutation,
        "accept": verdict.is_some(),
    });
    if let Some(d) = verdict {
        e["depth"] = json!(d);
    }
    e
}

/// Entries for `count` single-index mutations, consecutive indices with the
/// same verdict merged into one `[from, to]` (inclusive) range.
fn ranges(
    base: &Base,
    label: &str,
    count: usize,
    mutation: impl Fn(usize) -> Mutation,
    range: impl Fn(usize, usize) -> Value,
) -> Vec<Value> {
    let verdicts: Vec<Option<u32>> = (0..count).map(|i| verdict(base, &mutation(i))).collect();
    let mut out = Vec::new();
    let mut from = 0;
    for i in 1..=count {
        if i == count || verdicts[i] != verdicts[from] {
            let name = format!("{}/{label} {from}-{}", base.name, i - 1);
            out.push(entry(base, name, range(from, i - 1), verdicts[from]));
            from = i;
        }
    }
    out
}

fn vectors(base: &Base) -> Vec<Value> {
    let depth = base.packet.depth;
    let anchor_index = base.packet.headers.len() - depth as usize;
    let singles = [
        ("unchanged", Mutation::None),
        ("foreign chain", Mutation::ChainId("other-chain-9".into())),
        ("too shallow", Mutation::SetK(depth + 1)),
        ("k equal to the depth", Mutation::SetK(depth)),
        ("k of one", Mutation::SetK(1)),
        ("first header dropped", Mutation::DropFirstHeader),
        (
            "trusted header advanced by one",
            Mutation::AdvanceTrusted(1),
        ),
        (
            "trusted header advanced to the block before the anchor",
            Mutation::AdvanceTrusted(anchor_index),
        ),
        (
            "trusted header advanced past the anchor block",
            Mutation::AdvanceTrusted(anchor_index + 1),
        ),
        ("claims one more", Mutation::ClaimDepth(depth + 1)),
        ("claims one less", Mutation::ClaimDepth(depth - 1)),
        ("claims zero", Mutation::ClaimDepth(0)),
        ("trusted height one below", Mutation::TrustedHeight(-1)),
        ("trusted height one above", Mutation::TrustedHeight(1)),
        ("other network", Mutation::Network(other_network(base))),
        ("other tag", Mutation::Tag(Tag(*b"XXXX"))),
    ];
    let mut out: Vec<Value> = singles
        .iter()
        .map(|(label, m)| {
            let name = format!("{}/{label}", base.name);
            entry(base, name, mutation_json(m), verdict(base, m))
        })
        .collect();
    // The record's chain id replaced and the consumer configured for it:
    // refused because the proof is for another record.
    let mut foreign = Base {
        name: base.name,
        packet: base.packet.clone(),
        trusted: base.trusted,
        params: base.params.clone(),
    };
    foreign.params.chain_id = chain_id("other-chain-9");
    let m = Mutation::ChainId("other-chain-9".into());
    let name = format!(
        "{}/record of a configured chain, proof of another",
        base.name
    );
    out.push(entry(
        &foreign,
        name,
        mutation_json(&m),
        verdict(&foreign, &m),
    ));

    out.extend(ranges(
        base,
        "flip proof bits",
        base.packet.proof.len() * 8,
        Mutation::FlipProofBit,
        |from, to| json!({"kind": "flip_proof_bits", "from": from, "to": to}),
    ));
    for j in 0..base.packet.headers.len() {
        out.extend(ranges(
            base,
            &format!("flip header {j} bits"),
            80 * 8,
            |bit| Mutation::FlipHeaderBit { header: j, bit },
            |from, to| json!({"kind": "flip_header_bits", "header": j, "from": from, "to": to}),
        ));
    }
    out.extend(ranges(
        base,
        "truncate to",
        base.packet.encode_to_vec().len(),
        Mutation::Truncate,
        |from, to| json!({"kind": "truncate", "from": from, "to": to}),
    ));
    out
}

fn other_network(base: &Base) -> AnchorNetwork {
    match base.params.network {
        AnchorNetwork::LitecoinRegtest => AnchorNetwork::Regtest,
        _ => AnchorNetwork::LitecoinRegtest,
    }
}

fn pinned(name: &str, bytes: &[u8]) {
    let dir = format!("{}/../tests/data/vectors", env!("CARGO_MANIFEST_DIR"));
    let path = format!("{dir}/{name}");
    if std::env::var_os("BTCTS_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        stored == bytes,
        "{name}: the cross-language vectors changed (BTCTS_WRITE_GOLDEN=1 rewrites them)"
    );
}

#[test]
fn base_packets_verify() {
    for base in bases() {
        let got = verify_packet(&base.packet.encode_to_vec(), &base.trusted, &base.params)
            .unwrap_or_else(|e| panic!("{}: {e}", base.name));
        assert_eq!(got.depth, base.packet.depth, "{}", base.name);
        assert_eq!(got.depth, base.params.k, "{}", base.name);
        let last = base.packet.headers.last().expect("headers");
        assert_eq!(serialize(&got.tip.header), *last, "{}", base.name);
    }
}

#[test]
fn a_second_payload_output_is_refused() {
    for base in refused_bases() {
        let err = verify_packet(&base.packet.encode_to_vec(), &base.trusted, &base.params)
            .expect_err(base.name);
        assert!(
            err.to_string()
                .contains("the transaction has 2 btcts payload outputs"),
            "{}: {err}",
            base.name
        );
    }
}

#[test]
fn vectors_are_pinned() {
    let mut all = Vec::new();
    for base in bases() {
        pinned(&format!("{}.bin", base.name), &base.packet.encode_to_vec());
        all.extend(vectors(&base));
    }
    for base in refused_bases() {
        pinned(&format!("{}.bin", base.name), &base.packet.encode_to_vec());
        let v = verdict(&base, &Mutation::None);
        assert_eq!(v, None, "{} verifies", base.name);
        let name = format!("{}/unchanged", base.name);
        all.push(entry(&base, name, mutation_json(&Mutation::None), v));
    }
    // Every mutation kind appears, and both verdicts do.
    let text: Vec<String> = all.iter().map(Value::to_string).collect();
    for kind in [
        "none",
        "flip_proof_bits",
        "flip_header_bits",
        "truncate",
        "chain_id",
        "set_k",
        "drop_first_header",
        "advance_trusted",
        "claim_depth",
        "trusted_height",
        "network",
        "tag",
    ] {
        let tag = format!("\"kind\":\"{kind}\"");
        assert!(text.iter().any(|t| t.contains(&tag)), "no {kind} vector");
    }
    assert!(all.iter().any(|e| e["accept"] == json!(true)));
    assert!(all.iter().any(|e| e["accept"] == json!(false)));
    let file = format!("[\n{}\n]\n", text.join(",\n"));
    pinned("vectors.json", file.as_bytes());
}

/// Every network's trust anchors, by name: `floor_bits` (`"0x170d0864"` or
/// `null`) and `checkpoints` (`[{"height", "hash"}]`, hashes in display hex,
/// in the order `TrustAnchors::builtin()` lists them).
#[test]
fn trust_anchors_are_pinned() {
    let anchors = TrustAnchors::builtin();
    let by_name: BTreeMap<&str, Value> = AnchorNetwork::ALL
        .into_iter()
        .map(|n| {
            let a = anchors.get(n);
            let checkpoints: Vec<Value> = a
                .checkpoints
                .iter()
                .map(|c| json!({"height": c.height, "hash": c.hash.to_string()}))
                .collect();
            let floor = a.floor_bits.map(|b| format!("{:#010x}", b.to_consensus()));
            (
                n.name(),
                json!({"floor_bits": floor, "checkpoints": checkpoints}),
            )
        })
        .collect();
    let file = serde_json::to_string_pretty(&by_name).expect("a map of JSON values") + "\n";
    pinned("trust_anchors.json", file.as_bytes());
}
