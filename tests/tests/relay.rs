//! IBC (2/2), the relay's setup over the network: `ibc_relay::Relay` talks
//! gRPC to the test consumer (`btcts_tests::network`), which checks every
//! transaction like a Cosmos SDK chain and runs its messages on the ibc-rs
//! host. Interrupting the setup after each step — the transaction executed,
//! its answer lost, the process gone — and running it again ends with one
//! client, one connection and one channel, and no sequence ever proven twice
//! with different bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aggregator::{AnchorNetwork, ChainId, Tag};
use anyhow::{ensure, Context, Result};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use btcts_consumer::{ConsumerParams, TrustedHeader};
use btcts_tests::network::{TestConsumer, PREFIX};
use ibc_relay::grpc::GrpcNode;
use ibc_relay::state::RelayStore;
use ibc_relay::tx::Fee;
use ibc_relay::{ConsumerConfig, Deliver, Relay, Signer};

const CHAIN: &str = "consumer-7";

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).expect("valid key")
}

fn relayer_address() -> String {
    ibc_relay::cosmos::address(&key(9).public_key(&Secp256k1::new()), PREFIX).expect("address")
}

fn consumer() -> Result<TestConsumer> {
    consumer_funding(&[relayer_address()])
}

/// The test consumer with `funded` accounts.
fn consumer_funding(funded: &[String]) -> Result<TestConsumer> {
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    TestConsumer::start(
        CHAIN,
        TrustedHeader {
            height: 0,
            header: genesis.header,
        },
        ConsumerParams {
            chain_id: ChainId::new(CHAIN)?,
            network: AnchorNetwork::Regtest,
            tag: Tag::DEFAULT,
            k: 3,
        },
        funded,
    )
}

/// A relay as a fresh `btcts ibc setup` process opens it.
fn relay(dir: &Path, url: &str) -> Result<Relay> {
    relay_with(dir, url, key(1))
}

/// The same, with the solo-machine key `solo`.
fn relay_with(dir: &Path, url: &str, solo: SecretKey) -> Result<Relay> {
    let signer = Signer::open(&dir.join("signer.redb"), solo, "btcts/consumer-7", 1)?;
    let config = ConsumerConfig {
        chain_id: ChainId::new(CHAIN)?,
        grpc: url.to_owned(),
        bech32_prefix: PREFIX.into(),
        fee: Fee {
            gas_limit: 200_000,
            amount: 5_000,
            denom: "stake".into(),
        },
        k: 3,
        checkpoint_height: 0,
        packet_timeout: Duration::from_secs(600),
        sources: vec![ChainId::new(CHAIN)?],
        deliver: Deliver::All,
        // The ibc-rs test consumer checks all three ConnOpenAck proofs.
        legacy_connection_proofs: true,
    };
    Ok(Relay::new(
        config,
        Box::new(GrpcNode::new(url)?),
        Arc::new(signer),
        RelayStore::open(&dir.join("relay.redb"))?,
        key(9),
    )?)
}

#[test]
fn setup_interrupted_after_each_step_finishes_with_one_client_connection_and_channel() -> Result<()>
{
    // Five steps: create client, conn open init, conn open ack, chan open
    // init, chan open ack.
    for step in 1..=5u64 {
        let mut c = consumer()?;
        let dir = tempfile::tempdir()?;
        c.go_down_after(step);
        let first = relay(dir.path(), &c.url())?.setup(false);
        ensure!(
            first.is_err(),
            "step {step}: the setup cannot have finished"
        );
        ensure!(!c.is_up(), "step {step}: the consumer went down");
        ensure!(
            c.chain().broadcasts == step,
            "step {step}: {} transactions were sent before the interruption",
            c.chain().broadcasts
        );
        c.restart()?;
        let setup = relay(dir.path(), &c.url())?
            .setup(false)
            .with_context(|| format!("re-run after step {step}"))?;
        ensure!(setup.complete(), "step {step}: {setup:?}");
        ensure!(
            c.counts() == (1, 1, 1),
            "step {step}: clients, connections, channels = {:?}",
            c.counts()
        );
        let client = setup.client_id.clone().context("client id")?;
        let signer = Signer::open(&dir.path().join("signer.redb"), key(1), "x", 1)?;
        let (sequence, frozen) = c.client(&client).context("the client exists")?;
        ensure!(!frozen, "step {step}: frozen");
        ensure!(
            sequence == signer.state()?.sequence,
            "step {step}: the client waits for sequence {sequence}, the signer is at {}",
            signer.state()?.sequence
        );
        drop(signer);
        ensure!(
            c.chain().equivocations.is_empty(),
            "step {step}: two proofs at one sequence: {:?}",
            c.chain().equivocations
        );
        // Running it once more does nothing.
        let sent = c.chain().broadcasts;
        relay(dir.path(), &c.url())?.setup(false)?;
        ensure!(
            c.chain().broadcasts == sent,
            "step {step}: a finished setup sent more"
        );
    }
    Ok(())
}

#[test]
fn a_new_client_is_only_created_when_asked_for() -> Result<()> {
    let c = consumer()?;
    let dir = tempfile::tempdir()?;
    let first = relay(dir.path(), &c.url())?.setup(false)?;
    let again = relay(dir.path(), &c.url())?.setup(false)?;
    ensure!(first == again && c.counts() == (1, 1, 1));
    let fresh = relay(dir.path(), &c.url())?.setup(true)?;
    ensure!(c.counts() == (2, 2, 2), "{:?}", c.counts());
    ensure!(fresh.client_id != first.client_id && fresh.channel_id != first.channel_id);
    ensure!(c.chain().equivocations.is_empty());
    Ok(())
}

#[test]
fn an_account_sequence_mismatch_is_resynced() -> Result<()> {
    let c = consumer()?;
    let dir = tempfile::tempdir()?;
    let mut r = relay(dir.path(), &c.url())?;
    // The relay caches the account after its first transaction; another
    // transaction from the same account then makes that stale.
    c.go_down_after(2);
    ensure!(r.setup(false).is_err());
    let mut c = c;
    c.restart()?;
    c.bump_sequence(&relayer_address());
    let setup = r.setup(false)?;
    ensure!(setup.complete());
    ensure!(
        c.chain().sequence_mismatches >= 1,
        "the stale sequence was never used"
    );
    ensure!(c.counts() == (1, 1, 1), "{:?}", c.counts());
    Ok(())
}

#[test]
fn an_unfunded_relayer_is_told_to_fund_its_account() -> Result<()> {
    let c = consumer_funding(&[])?;
    let dir = tempfile::tempdir()?;
    let err = relay(dir.path(), &c.url())?
        .setup(false)
        .expect_err("no account");
    ensure!(err.to_string().contains("fund it"), "{err}");
    ensure!(c.counts() == (0, 0, 0));
    Ok(())
}

#[test]
fn a_key_rotation_interrupted_after_it_landed_is_finished_once() -> Result<()> {
    let mut c = consumer()?;
    let dir = tempfile::tempdir()?;
    let setup = relay(dir.path(), &c.url())?.setup(false)?;
    let client = setup.client_id.context("client id")?;
    let secp = Secp256k1::new();
    let key_of = |c: &TestConsumer| {
        c.chain()
            .host
            .solo_client(&client)
            .and_then(|s| s.consensus_state)
            .and_then(|cs| cs.public_key)
    };
    let any = |k: SecretKey| Some(ibc_relay::signer::public_key_any(&k.public_key(&secp)));
    ensure!(key_of(&c) == any(key(1)));
    // The update lands, its answer is lost, the process is gone.
    c.go_down_after(1);
    ensure!(relay(dir.path(), &c.url())?.rotate_key(key(2)).is_err());
    c.restart()?;
    ensure!(key_of(&c) == any(key(2)), "the update landed");
    // The store now signs with the new key: the old one is refused.
    ensure!(relay(dir.path(), &c.url()).is_err());
    relay_with(dir.path(), &c.url(), key(2))?.rotate_key(key(2))?;
    let sent = c.chain().broadcasts;
    ensure!(
        sent == 5 + 1,
        "five setup steps and one rotation, got {sent}"
    );
    // And again from the new key to a third; the client follows.
    relay_with(dir.path(), &c.url(), key(2))?.rotate_key(key(3))?;
    ensure!(key_of(&c) == any(key(3)));
    let signer = Signer::open(&dir.path().join("signer.redb"), key(3), "x", 1)?;
    let (sequence, frozen) = c.client(&client).context("client")?;
    ensure!(!frozen && sequence == signer.state()?.sequence);
    ensure!(c.chain().equivocations.is_empty());
    Ok(())
}
