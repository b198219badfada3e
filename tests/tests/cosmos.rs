//! IBC against a real ibc-go chain: `btcts-consumerd` (Cosmos SDK v0.54,
//! ibc-go v11 with 06-solomachine, `x/btcts`; `ibc-relay/go`) run as a
//! localnet by `btcts_tests::chain`, with litecoind regtest underneath.
//! The relay library sets up the client, connection and channel (resuming
//! after an answer lost at each step), delivers the latest record of three
//! source chains, and `x/btcts` verifies them; hand-made packets get error
//! acknowledgements; a delivery 500 blocks later carries only the headers
//! since the consumer's trusted tip; a key rotation is accepted; and two
//! signatures at one sequence freeze ibc-go's client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aggregator::clock::FixedClock;
use aggregator::leaf::leaf_hash;
use aggregator::{AnchorNetwork, ChainId, LeafHash, PosBlock, PosBlockHash, Record};
use aggregator::{StakerSetDigest, Store};
use anyhow::{ensure, Context, Result};
use base64::Engine;
use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message as SecpMessage, Secp256k1, SecretKey};
use btc_submitter::{complete_proof, Anchorer, BitcoinNode};
use btcts_consumer::TimestampPacket;
use btcts_tests::chain::{ChainOptions, ConsumerChain};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::{config, TestChain};
use ibc_proto::ibc::core::commitment::v1::MerklePath;
use ibc_proto::ibc::lightclients::solomachine::v3 as sm;
use ibc_relay::grpc::{
    Account, BlockInfo, Broadcast, ChainError, ConsumerNode, GrpcNode, TxResult,
};
use ibc_relay::msgs::{self, Link};
use ibc_relay::packet::build_packet;
use ibc_relay::signer::signature_data;
use ibc_relay::state::RelayStore;
use ibc_relay::tx::{Fee, TxOutcome, TxSender};
use ibc_relay::{ConsumerConfig, Deliver, Relay, Signer};
use prost::Message;
use serde_json::{json, Value};

const CONSUMER: &str = "consumer-1";
const SOURCES: [&str; 3] = ["chain-a", "chain-b", "chain-c"];
const K: u32 = 3;
const DIVERSIFIER: &str = "btcts/consumer-1";

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).expect("valid key")
}

fn address(k: &SecretKey) -> String {
    ibc_relay::cosmos::address(&k.public_key(&Secp256k1::new()), "cosmos").expect("address")
}

fn now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// litecoind, a btcts store with its anchorer, and a consumer chain whose
/// `x/btcts` trusts litecoind's tip at start.
struct Env {
    node: RegtestNode,
    chain: ConsumerChain,
    store: Store,
    anchorer: Anchorer<btc_submitter::CoreRpcNode>,
    dir: tempfile::TempDir,
    checkpoint: u32,
}

fn env() -> Result<Env> {
    let node = RegtestNode::start()?;
    let rpc = node.node()?;
    let checkpoint = rpc.chain_info()?.tip_height;
    let header = rpc.header(&rpc.block_hash_at(checkpoint)?.context("tip")?)?;
    let genesis = json!({ "params": {
        "network": "litecoin-regtest",
        "tag": "42544354",
        "k": K,
        "source_chains": SOURCES,
        "trusted_header": {
            "height": checkpoint,
            "header": base64::engine::general_purpose::STANDARD
                .encode(bitcoin::consensus::serialize(&header)),
        },
    }});
    let opts = ChainOptions {
        chain_id: CONSUMER.into(),
        btcts_genesis: Some(genesis),
        ..ChainOptions::default()
    }
    .fund(&address(&key(9)), 10_000_000_000)
    .fund(&address(&key(8)), 10_000_000_000);
    let chain = ConsumerChain::start(opts)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("btcts.redb"), Arc::new(FixedClock::new(1)))?;
    let anchorer = Anchorer::new(
        store.clone(),
        node.node()?,
        config(AnchorNetwork::LitecoinRegtest),
        Arc::new(FixedClock::new(1)),
    );
    Ok(Env {
        node,
        chain,
        store,
        anchorer,
        dir,
        checkpoint,
    })
}

impl Env {
    fn consumer_config(&self, deliver: Deliver) -> Result<ConsumerConfig> {
        Ok(ConsumerConfig {
            chain_id: ChainId::new(CONSUMER)?,
            grpc: self.chain.grpc_url(),
            bech32_prefix: "cosmos".into(),
            fee: Fee {
                gas_limit: 8_000_000,
                amount: 20_000,
                denom: "stake".into(),
            },
            k: K,
            checkpoint_height: self.checkpoint,
            packet_timeout: Duration::from_secs(600),
            sources: SOURCES
                .iter()
                .map(|s| ChainId::new(*s))
                .collect::<Result<_, _>>()?,
            deliver,
            legacy_connection_proofs: false,
        })
    }

    /// The solo-machine signer (one per test: its store admits one opener).
    fn signer(&self) -> Result<Arc<Signer>> {
        let path = self.dir.path().join("signer.redb");
        Ok(Arc::new(Signer::open(&path, key(1), DIVERSIFIER, 1)?))
    }

    /// The relay as a fresh btcts process opens it, talking through `node`.
    fn relay_with(&self, node: Box<dyn ConsumerNode>, signer: &Arc<Signer>) -> Result<Relay> {
        Ok(Relay::new(
            self.consumer_config(Deliver::Latest)?,
            node,
            signer.clone(),
            RelayStore::open(&self.dir.path().join("relay.redb"))?,
            key(9),
        )?)
    }

    fn relay(&self, signer: &Arc<Signer>) -> Result<Relay> {
        self.relay_with(Box::new(GrpcNode::new(&self.chain.grpc_url())?), signer)
    }

    /// Runs the relay until every packet it made is finished.
    fn settle(&self, relay: &mut Relay) -> Result<()> {
        relay.step(&self.store, &self.node.node()?)?;
        let store = relay.store().clone();
        self.deliver_until(relay, || Ok(store.next_open()?.is_none()))
    }

    /// Submits `heights` of `chain`; returns their ids.
    fn submit(&self, chain: &str, heights: std::ops::RangeInclusive<u64>) -> Result<Vec<LeafHash>> {
        let mut records = Vec::new();
        for h in heights {
            let r = Record::PosBlock(PosBlock {
                chain_id: ChainId::new(chain)?,
                height: h,
                block_hash: PosBlockHash(
                    sha256::Hash::hash(format!("{chain} {h}").as_bytes()).to_byte_array(),
                ),
                staker_set_digest: StakerSetDigest([7; 32]),
            });
            records.push((leaf_hash(&r), r));
        }
        self.store.submit(&records)?;
        Ok(records.into_iter().map(|(id, _)| id).collect())
    }

    /// Seals and anchors what was submitted, then buries it `depth` deep.
    fn anchor(&mut self, depth: u32) -> Result<()> {
        self.anchorer.step()?;
        TestChain::mine(&self.node, 1)?;
        self.anchorer.step()?;
        TestChain::mine(&self.node, depth - 1)?;
        self.anchorer.step()?;
        Ok(())
    }

    /// Runs the relay until `done`, or fails after a minute.
    fn deliver_until(&self, relay: &mut Relay, done: impl Fn() -> Result<bool>) -> Result<()> {
        let rpc = self.node.node()?;
        let start = Instant::now();
        while !done()? {
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "delivery timed out"
            );
            match relay.step(&self.store, &rpc) {
                Ok(_) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e.into()),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// `x/btcts`'s latest verified timestamp of `chain`, if any.
    fn latest(&self, chain: &str) -> Result<Option<Value>> {
        match self.chain.query(&["btcts", "latest-timestamp", chain]) {
            Ok(v) => Ok(Some(v["timestamp"].clone())),
            Err(e) if format!("{e:#}").contains("not found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `x/btcts`'s trusted tip height.
    fn trusted_height(&self) -> Result<u32> {
        let v = self.chain.query(&["btcts", "trusted-header"])?;
        Ok(u32::try_from(num(&v["header"]["height"])?)?)
    }
}

/// A JSON number the SDK's CLI may print as a string.
fn num(v: &Value) -> Result<u64> {
    match v {
        Value::String(s) => Ok(s.parse()?),
        Value::Number(n) => n.as_u64().context("not a u64"),
        Value::Null => Ok(0),
        other => anyhow::bail!("not a number: {other}"),
    }
}

/// A consumer node whose next broadcast reaches the chain, is executed,
/// and then its answer is lost, as if the process died right after.
#[derive(Debug)]
struct LosesAnswer {
    inner: GrpcNode,
    broadcasts: Arc<AtomicUsize>,
}

impl ConsumerNode for LosesAnswer {
    fn account(&self, address: &str) -> Result<Option<Account>, ChainError> {
        self.inner.account(address)
    }
    fn latest_block(&self) -> Result<BlockInfo, ChainError> {
        self.inner.latest_block()
    }
    fn broadcast(&self, tx_raw: &[u8]) -> Result<Broadcast, ChainError> {
        let b = self.inner.broadcast(tx_raw)?;
        self.broadcasts.fetch_add(1, Ordering::SeqCst);
        if b.code == 0 {
            let start = Instant::now();
            while self.inner.tx(&b.hash)?.is_none() && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(ChainError::Unavailable("answer lost".into()))
    }
    fn tx(&self, hash: &str) -> Result<Option<TxResult>, ChainError> {
        self.inner.tx(hash)
    }
    fn trusted_header(&self) -> Result<Option<btcts_consumer::TrustedHeader>, ChainError> {
        self.inner.trusted_header()
    }
    fn known_header(&self, h: u32) -> Result<Option<btcts_consumer::TrustedHeader>, ChainError> {
        self.inner.known_header(h)
    }
}

/// How many IBC clients, connections and channels the chain has (besides
/// ibc-go's built-in localhost connection).
fn ibc_counts(chain: &ConsumerChain) -> Result<(usize, usize, usize)> {
    let len = |v: Value, field: &str| {
        v[field].as_array().map_or(0, |a| {
            a.iter()
                .filter(|e| !e.to_string().contains("localhost"))
                .count()
        })
    };
    Ok((
        len(chain.query(&["ibc", "client", "states"])?, "client_states"),
        len(
            chain.query(&["ibc", "connection", "connections"])?,
            "connections",
        ),
        len(chain.query(&["ibc", "channel", "channels"])?, "channels"),
    ))
}

/// The solo-machine client's sequence on the chain.
fn client_sequence(chain: &ConsumerChain, client: &str) -> Result<u64> {
    let v = chain.query(&["ibc", "client", "state", client])?;
    num(&v["client_state"]["sequence"])
}

#[test]
fn setup_on_ibc_go_resumes_after_each_step_and_reruns_send_nothing() -> Result<()> {
    let env = env()?;
    let broadcasts = Arc::new(AtomicUsize::new(0));
    let lossy = || -> Result<Box<dyn ConsumerNode>> {
        Ok(Box::new(LosesAnswer {
            inner: GrpcNode::new(&env.chain.grpc_url())?,
            broadcasts: broadcasts.clone(),
        }))
    };
    // Five steps, each executed by the chain with its answer lost; each
    // run is a new process that finishes the step before and loses the next.
    let signer = env.signer()?;
    for step in 1..=5 {
        let mut relay = env.relay_with(lossy()?, &signer)?;
        let err = relay.setup(false).expect_err("the answer is lost");
        ensure!(err.is_transient(), "step {step}: {err}");
        ensure!(broadcasts.load(Ordering::SeqCst) == step, "step {step}");
    }
    let mut relay = env.relay(&signer)?;
    let state = relay.setup(false)?;
    ensure!(state.complete(), "{state:?}");
    let counts = ibc_counts(&env.chain)?;
    ensure!(counts == (1, 1, 1), "one of each: {counts:?}");
    let client = state.client_id.clone().context("client")?;
    // ibc-go verified exactly the proofs the signer gave out.
    ensure!(client_sequence(&env.chain, &client)? == signer.state()?.sequence);
    drop(relay);
    // A finished setup sends nothing.
    let mut relay = env.relay_with(lossy()?, &signer)?;
    let before = broadcasts.load(Ordering::SeqCst);
    ensure!(relay.setup(false)? == state);
    ensure!(broadcasts.load(Ordering::SeqCst) == before, "nothing sent");
    Ok(())
}

/// Hand-made packets over the relay's channel, at the signer's next
/// sequence, paid by a second account.
struct Manual {
    signer: Arc<Signer>,
    sender: TxSender,
    store: RelayStore,
    node: GrpcNode,
    link: Link,
    next: u64,
}

impl Manual {
    fn new(env: &Env, signer: Arc<Signer>, link: Link) -> Result<Manual> {
        let fee = env.consumer_config(Deliver::All)?.fee;
        Ok(Manual {
            signer,
            sender: TxSender::new(key(8), address(&key(8)), CONSUMER.into(), fee),
            store: RelayStore::open(&env.dir.path().join("manual.redb"))?,
            node: GrpcNode::new(&env.chain.grpc_url())?,
            link,
            next: 1_000_000,
        })
    }

    /// Sends `data` as a packet; the acknowledgement JSON the app wrote.
    fn send(&mut self, data: Vec<u8>) -> Result<Value> {
        self.next += 1;
        let sequence = self.signer.state()?.sequence;
        let packet = msgs::packet(&self.link, self.next, data, now_ns() + 600_000_000_000);
        let relayer = address(&key(8));
        let (msg, _) = msgs::recv_packet(&self.signer, sequence, packet, now_ns(), &relayer)?;
        let purpose = format!("manual {}", self.next);
        let r = match self
            .sender
            .submit(&self.node, &self.store, &purpose, || Ok(msg))?
        {
            TxOutcome::Included(r) => r,
            TxOutcome::Rejected(b) => anyhow::bail!("refused: {}", b.log),
        };
        ensure!(r.code == 0, "packet {} failed: {}", self.next, r.log);
        let ack = r
            .events
            .iter()
            .filter(|e| e.kind == "write_acknowledgement")
            .find_map(|e| e.get("packet_ack_hex"))
            .context("no acknowledgement")?;
        let bytes = (0..ack.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&ack[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// The packet for `id` with the headers since the consumer's trusted tip.
fn packet_for(env: &Env, id: &LeafHash) -> Result<TimestampPacket> {
    let rpc = env.node.node()?;
    let tip = GrpcNode::new(&env.chain.grpc_url())?
        .trusted_header()?
        .context("x/btcts answers")?;
    let proof = complete_proof(&rpc, env.store.proof(id)?.context("sealed")?, 0)?;
    let anchor = proof.anchor.as_ref().context("anchored")?.block.height;
    let first = anchor.min(tip.height + 1);
    let mut headers: Vec<Header> = Vec::new();
    for h in first..=rpc.chain_info()?.tip_height {
        headers.push(rpc.header(&rpc.block_hash_at(h)?.context("height")?)?);
    }
    Ok(build_packet(&proof, first, &headers)?)
}

/// The relay's newest packet, which must be acknowledged, as it was sent.
fn last_packet(relay: &Relay) -> Result<TimestampPacket> {
    let last = relay
        .store()
        .packets(0, 1000)?
        .into_iter()
        .last()
        .context("packet")?;
    ensure!(last.state.name() == "acknowledged", "{last:?}");
    let (_, data) = relay.store().packet(last.sequence)?.context("stored")?;
    Ok(TimestampPacket::decode(data.as_slice())?)
}

fn error_of(ack: &Value) -> Result<&str> {
    ack["error"]
        .as_str()
        .with_context(|| format!("not an error: {ack}"))
}

#[test]
fn ibc_go_verifies_refuses_follows_rotates_and_freezes() -> Result<()> {
    let mut env = env()?;
    let signer = env.signer()?;
    let mut relay = env.relay(&signer)?;
    let state = relay.setup(false)?;
    let client = state.client_id.clone().context("client")?;

    // The latest record of each source chain, verified by x/btcts.
    env.submit("chain-a", 1..=4)?;
    env.submit("chain-b", 1..=3)?;
    env.submit("chain-c", 1..=2)?;
    env.anchor(K)?;
    let all_verified = || -> Result<bool> {
        Ok(SOURCES
            .iter()
            .map(|c| env.latest(c))
            .collect::<Result<Vec<_>>>()?
            .iter()
            .all(Option::is_some))
    };
    env.deliver_until(&mut relay, all_verified)?;
    for (chain, height) in [("chain-a", 4), ("chain-b", 3), ("chain-c", 2)] {
        let t = env.latest(chain)?.context("verified")?;
        ensure!(num(&t["height"])? == height, "{chain}: {t}");
        ensure!(num(&t["depth"])? >= u64::from(K), "{chain}: {t}");
    }
    let packets = relay.store().packets(0, 100)?;
    ensure!(
        packets.len() == 3,
        "one packet per source chain: {packets:?}"
    );
    ensure!(
        packets.iter().all(|p| p.state.name() == "acknowledged"),
        "{packets:?}"
    );

    // Error acknowledgements from x/btcts for packets signed correctly.
    let mut link = Link::new(&client);
    link.connection_on_consumer = state.connection_id.clone().context("connection")?;
    link.channel_on_consumer = state.channel_id.clone().context("channel")?;
    let mut manual = Manual::new(&env, signer.clone(), link.clone())?;
    let shallow = env.submit("chain-a", 10..=10)?;
    env.anchor(1)?;
    let p = packet_for(&env, &shallow[0])?;
    let ack = manual.send(p.encode_to_vec())?;
    ensure!(error_of(&ack)?.contains("below the required"), "{ack}");
    let foreign = env.submit("chain-z", 1..=1)?;
    let good = env.submit("chain-b", 10..=10)?;
    env.anchor(K)?;
    let p = packet_for(&env, &foreign[0])?;
    let ack = manual.send(p.encode_to_vec())?;
    ensure!(error_of(&ack)?.starts_with("record:"), "{ack}");
    let mut p = packet_for(&env, &good[0])?;
    let at = p.proof.len() / 2;
    p.proof[at] ^= 0x01;
    let ack = manual.send(p.encode_to_vec())?;
    ensure!(error_of(&ack)?.starts_with("proof"), "{ack}");
    let mut p = packet_for(&env, &good[0])?;
    p.headers.remove(0);
    let ack = manual.send(p.encode_to_vec())?;
    ensure!(error_of(&ack)?.starts_with("headers"), "{ack}");
    ensure!(env.latest("chain-z")?.is_none());
    // The untouched packet is accepted over the same channel.
    let p = packet_for(&env, &good[0])?;
    let ack = manual.send(p.encode_to_vec())?;
    ensure!(ack["result"].is_string(), "{ack}");

    // The relay delivers what is left (chain-a 10, and chain-b 10 again:
    // the same record deeper is still a success).
    env.settle(&mut relay)?;
    ensure!(
        env.latest("chain-a")?
            .is_some_and(|t| num(&t["height"]).ok() == Some(10)),
        "the shallow record, now deep"
    );

    // 500 blocks later, a packet carries only the headers since the tip.
    TestChain::mine(&env.node, 500)?;
    let tip_before = env.trusted_height()?;
    env.submit("chain-c", 20..=20)?;
    env.anchor(K)?;
    env.settle(&mut relay)?;
    ensure!(env
        .latest("chain-c")?
        .is_some_and(|t| num(&t["height"]).ok() == Some(20)));
    let sent = last_packet(&relay)?;
    let rpc = env.node.node()?;
    ensure!(sent.first_height == tip_before + 1, "starts after the tip");
    ensure!(
        sent.headers.len() as u32 == rpc.chain_info()?.tip_height - tip_before,
        "{} headers",
        sent.headers.len()
    );

    // A Bitcoin reorg leaves the consumer's newest headers on a stale
    // branch: the relay walks back to the header both still share, and the
    // longer branch replaces them.
    let stale_tip = env.trusted_height()?;
    env.node.reorg(2)?;
    env.submit("chain-b", 50..=50)?;
    env.anchor(K)?;
    env.settle(&mut relay)?;
    ensure!(env
        .latest("chain-b")?
        .is_some_and(|t| num(&t["height"]).ok() == Some(50)));
    let sent = last_packet(&relay)?;
    ensure!(
        sent.first_height == stale_tip - 1,
        "starts after the last shared header: {} vs tip {stale_tip}",
        sent.first_height
    );
    ensure!(env.trusted_height()? == rpc.chain_info()?.tip_height);

    // Key rotation: accepted by ibc-go's client; later packets verify.
    relay.rotate_key(key(2))?;
    env.submit("chain-a", 30..=30)?;
    env.anchor(K)?;
    env.deliver_until(&mut relay, || {
        Ok(env
            .latest("chain-a")?
            .is_some_and(|t| num(&t["height"]).ok() == Some(30)))
    })?;
    let cs = env.chain.query(&["ibc", "client", "state", &client])?;
    let on_chain = cs["client_state"]["consensus_state"]["public_key"]["key"]
        .as_str()
        .context("public key")?
        .to_owned();
    let new_key = base64::engine::general_purpose::STANDARD
        .encode(key(2).public_key(&Secp256k1::new()).serialize());
    ensure!(on_chain == new_key, "{cs}");

    // Two signatures at one sequence, as ibc-go's misbehaviour handler
    // reads them, freeze the client.
    let sequence = client_sequence(&env.chain, &client)?;
    let ts = now_ns();
    let sign = |data: &[u8]| {
        let path = MerklePath {
            key_path: vec![
                "ibc".into(),
                "commitments/ports/btcts/channels/channel-0/sequences/9".into(),
            ],
        }
        .encode_to_vec();
        let sign_bytes = sm::SignBytes {
            sequence,
            timestamp: ts,
            diversifier: DIVERSIFIER.into(),
            path: path.clone(),
            data: data.to_vec(),
        }
        .encode_to_vec();
        let digest = sha256::Hash::hash(&sign_bytes).to_byte_array();
        let sig = Secp256k1::new().sign_ecdsa(&SecpMessage::from_digest(digest), &key(2));
        sm::SignatureAndData {
            signature: signature_data(&sig.serialize_compact()),
            path,
            data: data.to_vec(),
            timestamp: ts,
        }
    };
    let misbehaviour = sm::Misbehaviour {
        sequence,
        signature_one: Some(sign(b"one commitment")),
        signature_two: Some(sign(b"another commitment")),
    };
    let msg = msgs::update_client(&link, &misbehaviour, &address(&key(8)));
    match manual
        .sender
        .submit(&manual.node, &manual.store, "misbehaviour", || Ok(msg))?
    {
        TxOutcome::Included(r) => ensure!(r.code == 0, "misbehaviour refused: {}", r.log),
        TxOutcome::Rejected(b) => anyhow::bail!("misbehaviour refused: {}", b.log),
    }
    let status = env.chain.query(&["ibc", "client", "status", &client])?;
    ensure!(status["status"] == "Frozen", "{status}");
    // A frozen client accepts no packet.
    env.submit("chain-b", 40..=40)?;
    env.anchor(K)?;
    for _ in 0..3 {
        // Refused by the chain: the relay keeps the packet and says why.
        let _ = relay.step(&env.store, &env.node.node()?);
    }
    ensure!(env
        .latest("chain-b")?
        .is_some_and(|t| num(&t["height"]).ok() == Some(50)));
    Ok(())
}
