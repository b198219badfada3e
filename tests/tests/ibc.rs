//! IBC (1/2): real anchored proofs from litecoind, delivered as the service's
//! signed messages to a consumer chain built on the ibc-rs core handlers with
//! a 06-solomachine client (`btcts_tests::consumer`): client, both
//! handshakes, 50 packets verified by the consumer app, key rotation,
//! rejections, misbehaviour, and single-bit changes.

use std::sync::Arc;
use std::time::Duration;

use aggregator::clock::FixedClock;
use aggregator::leaf::leaf_hash;
use aggregator::{
    AnchorNetwork, ChainId, LeafHash, PosBlock, PosBlockHash, Record, StakerSetDigest, Store, Tag,
};
use anyhow::{ensure, Context, Result};
use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message as SecpMessage, Secp256k1, SecretKey};
use btc_submitter::{complete_proof, Anchorer, BitcoinNode};
use btcts_consumer::{ConsumerParams, PacketError, TrustedHeader};
use btcts_tests::consumer::{acknowledgement, BtctsModule, BtctsRouter, Host};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::{config, TestChain};
use ibc::channel::types::commitment::compute_ack_commitment;
use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::core::channel::v1::MsgRecvPacket;
use ibc_proto::ibc::lightclients::solomachine::v3 as sm;
use ibc_relay::msgs::{self, Link};
use ibc_relay::packet::build_packet;
use ibc_relay::signer::{signature_data, Signer};
use prost::Message;

const CHAIN: &str = "consumer-1";
const K: u32 = 3;
const RELAYER: &str = "cosmos1relayer";
const START_NS: u64 = 1_764_000_000_000_000_000;

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).expect("valid key")
}

/// 60 records of the consumer chain (heights 1..=60) and 5 of another chain.
fn store(dir: &std::path::Path) -> Result<(Store, Vec<LeafHash>)> {
    let store = Store::open(dir.join("btcts.redb"), Arc::new(FixedClock::new(1)))?;
    let mut records = Vec::new();
    for (chain, heights) in [(CHAIN, 1..=60u64), ("other-chain", 1..=5)] {
        for h in heights {
            let r = Record::PosBlock(PosBlock {
                chain_id: ChainId::new(chain)?,
                height: h,
                block_hash: PosBlockHash(
                    sha256::Hash::hash(format!("{chain} {h}").as_bytes()).to_byte_array(),
                ),
                staker_set_digest: StakerSetDigest([9; 32]),
            });
            records.push((leaf_hash(&r), r));
        }
    }
    store.submit(&records)?;
    Ok((store, records.into_iter().map(|(id, _)| id).collect()))
}

/// Everything the tests share: anchored proofs as packet bytes, and the
/// headers around them.
struct Anchored {
    /// Kept running for the test's length.
    _node: RegtestNode,
    trusted: TrustedHeader,
    /// Packet data of each consumer-chain record, in height order.
    packets: Vec<Vec<u8>>,
    /// One packet of the other chain.
    foreign: Vec<u8>,
    /// The anchor block's depth as the node reports it.
    node_depth: u32,
    _dir: tempfile::TempDir,
}

fn anchored() -> Result<Anchored> {
    let node = RegtestNode::start()?;
    let rpc = node.node()?;
    let dir = tempfile::tempdir()?;
    let (store, ids) = store(dir.path())?;
    let tip = rpc.chain_info()?.tip_height;
    let trusted = TrustedHeader {
        height: tip,
        header: rpc.header(&rpc.block_hash_at(tip)?.context("tip")?)?,
    };
    let mut anchorer = Anchorer::new(
        store.clone(),
        node.node()?,
        config(AnchorNetwork::LitecoinRegtest),
        Arc::new(FixedClock::new(1)),
    );
    anchorer.step()?;
    TestChain::mine(&node, 1)?;
    anchorer.step()?;
    TestChain::mine(&node, K + 1)?;
    anchorer.step()?;
    let new_tip = rpc.chain_info()?.tip_height;
    let mut headers: Vec<Header> = Vec::new();
    for h in tip + 1..=new_tip {
        headers.push(rpc.header(&rpc.block_hash_at(h)?.context("height")?)?);
    }
    let mut packets = Vec::new();
    let mut anchor_block = None;
    for id in &ids {
        let proof = complete_proof(&rpc, store.proof(id)?.context("sealed")?, 10)?;
        anchor_block = proof.anchor.as_ref().map(|a| a.block.hash);
        packets.push(build_packet(&proof, tip + 1, &headers)?.encode_to_vec());
    }
    let foreign = packets.split_off(60).remove(0);
    let status = rpc
        .block_status(&anchor_block.context("anchored")?)?
        .context("in the best chain")?;
    Ok(Anchored {
        _node: node,
        trusted,
        packets,
        foreign,
        node_depth: u32::try_from(status.confirmations)?,
        _dir: dir,
    })
}

/// A consumer with a client, an open connection and an open channel to `signer`.
struct Consumer {
    host: Host,
    router: BtctsRouter,
    link: Link,
    /// Solo-machine timestamps the service uses (ns), increasing.
    clock: u64,
}

impl Consumer {
    fn tick(&mut self) -> u64 {
        self.clock += 1_000_000_000;
        self.host.advance(Duration::from_secs(1));
        self.clock
    }

    fn deliver(&mut self, any: Any) -> Result<()> {
        self.host.deliver_any(&mut self.router, any)
    }

    fn sequence(&self) -> u64 {
        self.host
            .solo_client(&self.link.client_on_consumer)
            .map_or(0, |c| c.sequence)
    }
}

fn connect(a: &Anchored, signer: &Signer) -> Result<Consumer> {
    let params = ConsumerParams {
        chain_id: ChainId::new(CHAIN)?,
        network: AnchorNetwork::LitecoinRegtest,
        tag: Tag::DEFAULT,
        k: K,
    };
    let mut c = Consumer {
        host: Host::new(START_NS),
        router: BtctsRouter {
            module: BtctsModule::new(a.trusted, params),
        },
        link: Link::new("06-solomachine-0"),
        clock: START_NS,
    };
    let ts = c.tick();
    c.deliver(msgs::create_client(&signer.state()?, ts, RELAYER))
        .context("create client")?;
    ensure!(
        c.sequence() == signer.state()?.sequence,
        "client at the signer's sequence"
    );

    c.tick();
    c.deliver(msgs::conn_open_init(&c.link, RELAYER))
        .context("conn open init")?;
    c.link.connection_on_consumer = "connection-0".into();
    c.tick();
    let consensus_height = ibc_proto::ibc::core::client::v1::Height {
        revision_number: 0,
        revision_height: c.host.host_height_v.revision_height(),
    };
    let consumer_consensus = c
        .host
        .self_consensus_any(c.host.host_height_v)
        .context("host consensus state")?;
    // The consumer's client state as the service's nominal client holds it.
    let consumer_client = Any {
        type_url: "/ibc.lightclients.tendermint.v1.ClientState".into(),
        value: b"consumer-1 as seen by btcts".to_vec(),
    };
    let ts = c.tick();
    let (ack, signed) = msgs::conn_open_ack(
        signer,
        signer.state()?.sequence,
        &c.link,
        Some(msgs::StateProofs {
            consumer_client: &consumer_client,
            consumer_consensus: &consumer_consensus,
            consensus_height,
        }),
        ts,
        RELAYER,
    )?;
    ensure!(signed.len() == 3);
    c.deliver(ack).context("conn open ack")?;

    c.tick();
    c.deliver(msgs::chan_open_init(&c.link, RELAYER))
        .context("chan open init")?;
    c.link.channel_on_consumer = "channel-0".into();
    let ts = c.tick();
    let (ack, _) = msgs::chan_open_ack(signer, signer.state()?.sequence, &c.link, ts, RELAYER)?;
    c.deliver(ack).context("chan open ack")?;
    ensure!(
        c.sequence() == signer.state()?.sequence,
        "every proof consumed one sequence"
    );
    Ok(c)
}

/// A packet `data` at `sequence`, signed by `signer`.
fn recv(c: &mut Consumer, signer: &Signer, sequence: u64, data: Vec<u8>) -> Result<Any> {
    let ts = c.tick();
    let timeout = c.clock + 3_600_000_000_000;
    let packet = msgs::packet(&c.link, sequence, data, timeout);
    Ok(msgs::recv_packet(signer, signer.state()?.sequence, packet, ts, RELAYER)?.0)
}

#[test]
fn fifty_anchored_packets_are_accepted_verified_and_acknowledged_through_ibc_rs() -> Result<()> {
    let a = anchored()?;
    let dir = tempfile::tempdir()?;
    let signer = Signer::open(&dir.path().join("signer.redb"), key(1), "btcts", 1)?;
    let mut c = connect(&a, &signer)?;

    for (i, data) in a.packets.iter().take(50).enumerate() {
        if i == 25 {
            // Key rotation mid-stream: a header signed by the old key.
            let ts = c.tick();
            let header = signer.rotate(key(2), "btcts-2", ts)?;
            c.deliver(msgs::update_client(&c.link, &header, RELAYER))
                .context("key rotation")?;
            let cs = c
                .host
                .solo_client(&c.link.client_on_consumer)
                .context("client")?;
            ensure!(cs.consensus_state.map(|s| s.diversifier) == Some("btcts-2".into()));
        }
        let msg = recv(&mut c, &signer, i as u64 + 1, data.clone())?;
        c.deliver(msg).with_context(|| format!("packet {i}"))?;
        let (packet, verdict) = c.router.module.received.last().context("received")?;
        let v = verdict
            .as_ref()
            .map_err(|e| anyhow::anyhow!("packet {i}: {e}"))?;
        ensure!(v.record.height == i as u64 + 1 && v.record.chain_id.as_str() == CHAIN);
        ensure!(
            v.depth == a.node_depth,
            "the consumer computed depth {} but the node reports {}",
            v.depth,
            a.node_depth
        );
        // The stored acknowledgement is ibc-rs's commitment of the app's answer.
        let key = ("btcts".parse()?, "channel-0".parse()?, packet.seq_on_a);
        let stored = c.host.core.acks.get(&key).context("ack stored")?;
        ensure!(stored == &compute_ack_commitment(&acknowledgement(verdict)));
    }
    ensure!(c.router.module.received.len() == 50);

    // Rejections, none of which may move the client.
    let before = c.sequence();
    let next = 51u64;
    // 1. Signed with another key (the one rotated away from).
    let other_dir = tempfile::tempdir()?;
    let old_key = Signer::open(&other_dir.path().join("s.redb"), key(1), "btcts-2", before)?;
    let msg = recv(&mut c, &old_key, next, a.packets[50].clone())?;
    ensure!(
        c.deliver(msg).is_err(),
        "a packet signed with another key was accepted"
    );
    // 2. A replayed packet (the very same message again).
    let msg = recv(&mut c, &signer, next, a.packets[50].clone())?;
    c.deliver(msg.clone()).context("packet 51")?;
    let after = c.sequence();
    ensure!(c.deliver(msg).is_err(), "a replayed packet was accepted");
    ensure!(c.sequence() == after);
    // 3. A stale sequence: a correct signature at a sequence already used.
    let stale_dir = tempfile::tempdir()?;
    let stale = Signer::open(
        &stale_dir.path().join("s.redb"),
        key(2),
        "btcts-2",
        after - 5,
    )?;
    let msg = recv(&mut c, &stale, next + 1, a.packets[51].clone())?;
    ensure!(c.deliver(msg).is_err(), "a stale sequence was accepted");
    // 4. A timestamp before the client's.
    let back_dir = tempfile::tempdir()?;
    let back = Signer::open(&back_dir.path().join("s.redb"), key(2), "btcts-2", after)?;
    let packet = msgs::packet(
        &c.link,
        next + 1,
        a.packets[51].clone(),
        c.clock + 3_600_000_000_000,
    );
    let (msg, _) = msgs::recv_packet(&back, back.state()?.sequence, packet, START_NS, RELAYER)?;
    ensure!(
        c.deliver(msg).is_err(),
        "a backwards timestamp was accepted"
    );
    ensure!(
        c.sequence() == after,
        "rejections leave the client's sequence alone"
    );

    // 5. Correctly signed packets whose contents are wrong: error acks.
    let mut seq = next + 1;
    let mut expect_error = |c: &mut Consumer,
                            data: Vec<u8>,
                            what: &str,
                            check: fn(&PacketError) -> bool|
     -> Result<()> {
        let msg = recv(c, &signer, seq, data)?;
        seq += 1;
        c.deliver(msg)
            .with_context(|| format!("{what}: delivery"))?;
        match &c.router.module.received.last().context("received")?.1 {
            Err(e) if check(e) => Ok(()),
            other => anyhow::bail!("{what}: {other:?}"),
        }
    };
    let packet = btcts_consumer::TimestampPacket::decode(a.packets[52].as_slice())?;
    let mut tampered = packet.clone();
    let mut proof = aggregator::Proof::from_json(std::str::from_utf8(&tampered.proof)?)?;
    proof.path[0].hash.0[0] ^= 1;
    tampered.proof = proof.to_json().into_bytes();
    expect_error(&mut c, tampered.encode_to_vec(), "tampered proof", |e| {
        matches!(e, PacketError::Proof(_))
    })?;
    let mut gap = packet.clone();
    gap.headers.remove(gap.headers.len() - 2);
    gap.depth -= 1;
    expect_error(
        &mut c,
        gap.encode_to_vec(),
        "headers that do not link",
        |e| matches!(e, PacketError::Headers(_)),
    )?;
    let mut lazy = packet.clone();
    let last = lazy.headers.len() - 1;
    let mut header: Header = bitcoin::consensus::deserialize(&lazy.headers[last])?;
    while AnchorNetwork::LitecoinRegtest.check_pow(&header).is_ok() {
        header.nonce = header.nonce.wrapping_add(1);
    }
    lazy.headers[last] = bitcoin::consensus::serialize(&header);
    expect_error(&mut c, lazy.encode_to_vec(), "a header without work", |e| {
        matches!(e, PacketError::Work { .. })
    })?;
    expect_error(&mut c, a.foreign.clone(), "another chain's record", |e| {
        matches!(e, PacketError::Record(_))
    })?;
    let mut deeper = ConsumerParams {
        k: a.node_depth + 1,
        ..c.router.module.params.clone()
    };
    std::mem::swap(&mut c.router.module.params, &mut deeper);
    expect_error(&mut c, a.packets[53].clone(), "not deep enough", |e| {
        matches!(e, PacketError::TooShallow { .. })
    })?;
    std::mem::swap(&mut c.router.module.params, &mut deeper);
    Ok(())
}

/// Two signatures at one sequence over different data freeze the client.
#[test]
fn equivocation_freezes_the_client() -> Result<()> {
    let a = anchored()?;
    let dir = tempfile::tempdir()?;
    let signer = Signer::open(&dir.path().join("signer.redb"), key(1), "btcts", 1)?;
    let mut c = connect(&a, &signer)?;
    let msg = recv(&mut c, &signer, 1, a.packets[0].clone())?;
    c.deliver(msg)?;
    // What a faulty signer without the store's guard would produce: two
    // signatures at the client's current sequence.
    let sequence = c.sequence();
    let sign = |path: &[u8], data: &[u8], timestamp: u64| {
        let sign_bytes = sm::SignBytes {
            sequence,
            timestamp,
            diversifier: "btcts".into(),
            path: path.to_vec(),
            data: data.to_vec(),
        }
        .encode_to_vec();
        let digest = sha256::Hash::hash(&sign_bytes).to_byte_array();
        let sig = Secp256k1::new().sign_ecdsa(&SecpMessage::from_digest(digest), &key(1));
        sm::SignatureAndData {
            signature: signature_data(&sig.serialize_compact()),
            path: path.to_vec(),
            data: data.to_vec(),
            timestamp,
        }
    };
    let ts = c.tick();
    let path = b"commitments/ports/btcts/channels/channel-0/sequences/2";
    let misbehaviour = sm::Misbehaviour {
        sequence,
        signature_one: Some(sign(path, b"one commitment", ts)),
        signature_two: Some(sign(path, b"another commitment", ts)),
    };
    // The same data twice is not misbehaviour.
    let same = sm::Misbehaviour {
        signature_two: misbehaviour.signature_one.clone(),
        ..misbehaviour.clone()
    };
    let update = |m: &sm::Misbehaviour| msgs::update_client(&c.link, m, RELAYER);
    let (same_msg, real_msg) = (update(&same), update(&misbehaviour));
    ensure!(
        c.deliver(same_msg).is_err(),
        "identical signatures are not misbehaviour"
    );
    c.deliver(real_msg).context("misbehaviour")?;
    let cs = c
        .host
        .solo_client(&c.link.client_on_consumer)
        .context("client")?;
    ensure!(cs.is_frozen, "the client is frozen");
    let msg = recv(&mut c, &signer, 2, a.packets[1].clone())?;
    ensure!(c.deliver(msg).is_err(), "a frozen client accepts nothing");
    Ok(())
}

/// Any single-bit change to a signed packet's data or its proof is refused,
/// and the client does not move.
#[test]
fn single_bit_changes_to_a_signed_packet_are_rejected() -> Result<()> {
    use proptest::test_runner::{Config, TestRunner};
    let a = anchored()?;
    let dir = tempfile::tempdir()?;
    let signer = Signer::open(&dir.path().join("signer.redb"), key(1), "btcts", 1)?;
    let mut c = connect(&a, &signer)?;
    let msg = recv(&mut c, &signer, 1, a.packets[0].clone())?;
    let original = MsgRecvPacket::decode(msg.value.as_slice())?;
    let data_bits = original.packet.as_ref().map_or(0, |p| p.data.len() * 8);
    let proof_bits = original.proof_commitment.len() * 8;
    let sequence = c.sequence();
    let c = std::cell::RefCell::new(c);
    let check = |bit: usize| -> std::result::Result<(), String> {
        let mut m = original.clone();
        if bit < data_bits {
            let p = m.packet.as_mut().expect("packet");
            p.data[bit / 8] ^= 1 << (bit % 8);
        } else {
            let b = bit - data_bits;
            m.proof_commitment[b / 8] ^= 1 << (b % 8);
        }
        let any = Any {
            type_url: msg.type_url.clone(),
            value: m.encode_to_vec(),
        };
        let mut c = c.borrow_mut();
        let before = c.router.module.received.len();
        if c.deliver(any).is_ok() {
            return Err(format!("bit {bit} was accepted"));
        }
        if c.router.module.received.len() != before || c.sequence() != sequence {
            return Err(format!("bit {bit} moved the consumer"));
        }
        Ok(())
    };
    // Every bit of the proof, and a random sample of the data's.
    for bit in data_bits..data_bits + proof_bits {
        check(bit).map_err(|e| anyhow::anyhow!(e))?;
    }
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&(0..data_bits), |bit| {
            check(bit).map_err(proptest::test_runner::TestCaseError::fail)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The untouched message still goes through.
    c.borrow_mut().deliver(msg)?;
    ensure!(c
        .borrow()
        .router
        .module
        .received
        .last()
        .is_some_and(|(_, v)| v.is_ok()));
    Ok(())
}

/// The bytes the service signs are the bytes ibc-rs expects: its own
/// conversions of the same connection end, channel end and commitments.
#[test]
fn signed_encodings_match_ibc_rs() -> Result<()> {
    use ibc::channel::types::acknowledgement::Acknowledgement;
    use ibc::channel::types::channel::{
        ChannelEnd, Counterparty as ChanCp, Order, State as ChanState,
    };
    use ibc::channel::types::commitment::compute_packet_commitment;
    use ibc::channel::types::timeout::{TimeoutHeight, TimeoutTimestamp};
    use ibc::channel::types::Version as ChanVersion;
    use ibc::commitment_types::commitment::CommitmentPrefix;
    use ibc::connection::types::version::Version;
    use ibc::connection::types::{ConnectionEnd, Counterparty, State};
    use ibc::primitives::proto::Protobuf;
    use ibc::primitives::Timestamp;

    let mut link = Link::new("06-solomachine-3");
    link.connection_on_consumer = "connection-7".into();
    link.channel_on_consumer = "channel-9".into();
    let theirs = ConnectionEnd::new(
        State::TryOpen,
        link.client_on_service.parse()?,
        Counterparty::new(
            link.client_on_consumer.parse()?,
            Some(link.connection_on_consumer.parse()?),
            CommitmentPrefix::from(b"ibc".to_vec()),
        ),
        vec![Version::compatibles().remove(0)],
        Duration::ZERO,
    )?;
    ensure!(msgs::service_connection_end(&link).encode_to_vec() == theirs.encode_vec());

    let theirs = ChannelEnd::new(
        ChanState::TryOpen,
        Order::Unordered,
        ChanCp::new("btcts".parse()?, Some(link.channel_on_consumer.parse()?)),
        vec![link.connection_on_service.parse()?],
        ChanVersion::new("btcts-1".into()),
    )?;
    ensure!(msgs::service_channel_end(&link).encode_to_vec() == theirs.encode_vec());

    let data = b"packet data".to_vec();
    let timeout = 1_764_000_000_123_456_789u64;
    let theirs = compute_packet_commitment(
        &data,
        &TimeoutHeight::Never,
        &TimeoutTimestamp::At(Timestamp::from_nanoseconds(timeout)),
    );
    ensure!(
        ibc_relay::packet::packet_commitment(timeout, 0, 0, &data).to_vec() == theirs.into_vec()
    );
    let theirs = compute_packet_commitment(
        &data,
        &TimeoutHeight::At(ibc::client::types::Height::new(2, 77)?),
        &TimeoutTimestamp::Never,
    );
    ensure!(ibc_relay::packet::packet_commitment(0, 2, 77, &data).to_vec() == theirs.into_vec());

    let ack = Acknowledgement::try_from(br#"{"result":"AQ=="}"#.to_vec())?;
    ensure!(
        ibc_relay::packet::ack_commitment(ack.as_ref()).to_vec()
            == compute_ack_commitment(&ack).into_vec()
    );

    // The path the commitment proof signs is ibc-rs's CommitmentPath.
    let packet = msgs::packet(&link, 5, data, timeout);
    let theirs = ibc::host::types::path::CommitmentPath::new(
        &"btcts".parse()?,
        &link.channel_on_service.parse()?,
        5u64.into(),
    );
    ensure!(msgs::commitment_path(&packet) == theirs.to_string());
    Ok(())
}
