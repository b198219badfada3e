//! The real consumer chain (`btcts-consumerd`: Cosmos SDK, ibc-go with
//! 06-solomachine, x/btcts) as the tests run it: it makes blocks, the btcts
//! relay's gRPC client reads it, the node honours its minimum gas price, and
//! it carries on from where it was after a stop and a restart.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use btcts_tests::chain::{btcts_genesis, ChainOptions, ConsumerChain, DENOM};
use ibc_relay::grpc::{ChainError, ConsumerNode, GrpcNode};

/// The relayer account a btcts deployment would use on this chain.
fn relayer_address(byte: u8) -> Result<String> {
    let key = SecretKey::from_slice(&[byte; 32])?;
    Ok(ibc_relay::cosmos::address(
        &key.public_key(&Secp256k1::new()),
        "cosmos",
    )?)
}

/// The 80 bytes of Bitcoin regtest's genesis block header.
fn regtest_genesis_header() -> [u8; 80] {
    let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let mut bytes = [0u8; 80];
    bytes.copy_from_slice(&bitcoin::consensus::serialize(&header));
    bytes
}

const FUNDS: u128 = 5_000_000_000;

/// Retries a node call on transient errors, as the relay does. The SDK
/// refuses a query that arrives while a block is being committed (code 26,
/// "context did not contain latest block height"), which with 300 ms blocks
/// happens now and then.
fn retry<T>(mut call: impl FnMut() -> Result<T, ChainError>) -> Result<T> {
    let mut attempts = 0;
    loop {
        match call() {
            Err(e) if e.is_transient() && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return Ok(other?),
        }
    }
}

#[test]
fn consumer_chain_runs_serves_the_relay_and_survives_a_restart() -> Result<()> {
    let relayer = relayer_address(7)?;
    let stranger = relayer_address(8)?;
    let mut chain = ConsumerChain::start(
        ChainOptions {
            chain_id: "btcts-consumer-test".into(),
            btcts_genesis: Some(btcts_genesis(
                "regtest",
                &["chain-a", "chain-b"],
                3,
                0,
                &regtest_genesis_header(),
            )),
            ..ChainOptions::default()
        }
        .fund(&relayer, FUNDS),
    )?;

    // Blocks advance.
    let first = chain.height()?;
    ensure!(first >= 2, "started at height {first}");
    chain.wait_for_height(first + 3, Duration::from_secs(30))?;

    // x/btcts runs with the genesis parameters, trusting the checkpoint.
    let params = chain.query(&["btcts", "params"])?;
    let params = &params["params"];
    ensure!(params["network"] == "regtest", "{params}");
    ensure!(params["k"] == 3, "{params}");
    ensure!(
        params["source_chains"] == serde_json::json!(["chain-a", "chain-b"]),
        "{params}"
    );
    let trusted = chain.query(&["btcts", "trusted-header"])?;
    ensure!(trusted["header"]["height"] == 0, "{trusted}");
    let header = trusted["header"]["header"]
        .as_str()
        .with_context(|| format!("trusted header: {trusted}"))?;
    ensure!(
        base64::engine::general_purpose::STANDARD.decode(header)? == regtest_genesis_header(),
        "{trusted}"
    );

    // The relay's gRPC client reaches it.
    let node = GrpcNode::new(&chain.grpc_url())?;
    let block = retry(|| node.latest_block())?;
    ensure!(
        block.chain_id == chain.chain_id(),
        "chain id {}",
        block.chain_id
    );
    ensure!(block.height >= first + 3, "latest block {}", block.height);
    ensure!(!block.app_hash.is_empty() && block.next_validators_hash.len() == 32);
    let account =
        retry(|| node.account(&relayer))?.context("the funded relayer account is unknown")?;
    ensure!(
        account.sequence == 0,
        "fresh account at sequence {}",
        account.sequence
    );
    ensure!(
        retry(|| node.account(&stranger))?.is_none(),
        "an unfunded account exists"
    );
    ensure!(chain.balance(&relayer, DENOM)? == FUNDS);

    // A transaction signed by the validator is included and moves coins;
    // the validator's sequence advances by one.
    let validator = chain.validator_address().to_owned();
    let before = retry(|| node.account(&validator))?.context("validator account")?;
    let result = chain.tx(&["bank", "send", &validator, &relayer, "1234stake"])?;
    ensure!(
        result["height"].as_str().is_some_and(|h| h != "0"),
        "{result}"
    );
    ensure!(chain.balance(&relayer, DENOM)? == FUNDS + 1234);
    let after = retry(|| node.account(&validator))?.context("validator account")?;
    ensure!(after.number == before.number && after.sequence == before.sequence + 1);

    // The node's minimum gas price is honoured: 1stake for 200000 gas is
    // below 0.0025stake/gas.
    let low = chain.tx(&[
        "bank", "send", &validator, &relayer, "1stake", "--fees", "1stake", "--gas", "200000",
    ]);
    let err = format!(
        "{:#}",
        low.err()
            .context("a fee below the minimum gas price was accepted")?
    );
    ensure!(err.contains("insufficient fee"), "{err}");
    ensure!(chain.balance(&relayer, DENOM)? == FUNDS + 1234);

    // Stopped, the node does not answer (a transient error for the relay).
    let height_before_stop = chain.height()?;
    chain.stop()?;
    ensure!(!chain.is_running());
    std::thread::sleep(Duration::from_secs(3));
    let down = node
        .latest_block()
        .err()
        .context("a stopped chain answered")?;
    ensure!(down.is_transient(), "{down}");

    // Restarted on the same home and ports, it continues from where it was:
    // same chain, higher blocks, the state kept, the same client reconnects.
    chain.restart()?;
    let block = retry(|| node.latest_block())?;
    ensure!(block.chain_id == chain.chain_id());
    ensure!(
        block.height > height_before_stop,
        "height {} after restart, {height_before_stop} before",
        block.height
    );
    ensure!(chain.balance(&relayer, DENOM)? == FUNDS + 1234);
    let again = retry(|| node.account(&relayer))?.context("relayer account after restart")?;
    ensure!(
        again == account,
        "relayer account {again:?}, before the stop {account:?}"
    );
    Ok(())
}
