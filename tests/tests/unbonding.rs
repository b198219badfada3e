//! Fast unbonding on the real consumer chain (`btcts-consumerd` with
//! x/btcts): an unbonding is held by x/btcts past the staking
//! `unbonding_time`, the chain keeps its own block hash at the unbonding's
//! height (the CometBFT block id hash, as the feeder submits it), and
//! without a timestamp of the chain the hold ends when `max_hold` has passed
//! and the tokens are back in the delegator's balance.
//!
//! The release on a k-deep timestamp (feeder, btcts, litecoind, relay) is
//! the end-to-end test of the issue; the release rules themselves are tested
//! in x/btcts's keeper tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use btcts_tests::chain::{btcts_genesis, ChainOptions, ConsumerChain, DENOM, VALIDATOR_KEY};
use serde_json::{json, Value};

const CHAIN_ID: &str = "btcts-unbonding-1";
const UNBONDING_TIME: Duration = Duration::from_secs(2);
const MAX_HOLD: Duration = Duration::from_secs(20);
const DELEGATOR_KEY: &str = "delegator";
const STAKE: u128 = 1_000_000;

/// The 80 bytes of Bitcoin regtest's genesis block header.
fn regtest_genesis_header() -> [u8; 80] {
    let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let mut bytes = [0u8; 80];
    bytes.copy_from_slice(&bitcoin::consensus::serialize(&header));
    bytes
}

/// Adds a key to the chain's test keyring and returns its address.
fn add_key(chain: &ConsumerChain, name: &str) -> Result<String> {
    let output = Command::new(ConsumerChain::binary()?)
        .args([
            "keys",
            "add",
            name,
            "--keyring-backend",
            "test",
            "--output",
            "json",
        ])
        .arg("--home")
        .arg(chain.home())
        .stdin(Stdio::null())
        .output()
        .context("running keys add")?;
    ensure!(output.status.success(), "keys add {name} failed");
    // The key's JSON goes to stdout or stderr depending on the SDK version.
    let text = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
    let start = text.find('{').context("keys add printed no JSON")?;
    let info: Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()
        .context("keys add printed no JSON")??;
    Ok(info["address"]
        .as_str()
        .context("keys add: no address")?
        .to_owned())
}

fn holds(chain: &ConsumerChain) -> Result<Vec<Value>> {
    let answer = chain.query(&["btcts", "holds"])?;
    Ok(answer["holds"].as_array().cloned().unwrap_or_default())
}

/// A decimal number that proto JSON may write as a string.
fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

#[test]
#[allow(clippy::print_stderr)] // prints the time to release
fn unbonding_is_held_past_unbonding_time_and_released_after_max_hold() -> Result<()> {
    let mut genesis = btcts_genesis("regtest", &[CHAIN_ID], 3, 0, &regtest_genesis_header());
    genesis["params"]["max_hold"] = json!(format!("{}s", MAX_HOLD.as_secs()));
    let mut chain = ConsumerChain::start(ChainOptions {
        chain_id: CHAIN_ID.into(),
        btcts_genesis: Some(genesis),
        unbonding_time: Some(UNBONDING_TIME),
        ..ChainOptions::default()
    })?;
    let params = chain.query(&["btcts", "params"])?;
    ensure!(
        params["params"]["max_hold"] == json!("20s"),
        "params: {params}"
    );

    let delegator = add_key(&chain, DELEGATOR_KEY)?;
    chain.tx(&[
        "bank",
        "send",
        VALIDATOR_KEY,
        &delegator,
        &format!("{}{DENOM}", 10 * STAKE),
    ])?;
    let validators = chain.query(&["staking", "validators"])?;
    let valoper = validators["validators"][0]["operator_address"]
        .as_str()
        .context("no validator")?
        .to_owned();
    let stake = format!("{STAKE}{DENOM}");
    chain.tx(&[
        "staking",
        "delegate",
        &valoper,
        &stake,
        "--from",
        DELEGATOR_KEY,
    ])?;

    let unbond = chain.tx(&[
        "staking",
        "unbond",
        &valoper,
        &stake,
        "--from",
        DELEGATOR_KEY,
    ])?;
    let unbond_height = number(&unbond["height"]).context("unbond tx without a height")?;
    let unbonded_at = Instant::now();
    let balance = chain.balance(&delegator, DENOM)?;

    // Held from the unbonding's block on, in x/btcts and in the staking
    // module's entry.
    let held = holds(&chain)?;
    ensure!(held.len() == 1, "holds: {held:?}");
    ensure!(
        number(&held[0]["height"]) == Some(unbond_height),
        "hold {:?} is not at the unbonding's height {unbond_height}",
        held[0]
    );
    let entry = chain.query(&["staking", "unbonding-delegation", &delegator, &valoper])?;
    let entries = &entry["unbond"]["entries"];
    ensure!(
        number(&entries[0]["unbonding_on_hold_ref_count"]) == Some(1),
        "unbonding entry not on hold: {entry}"
    );

    // The chain keeps its own block hash at the unbonding's height: the
    // CometBFT block id hash, which the next block's last_commit names.
    chain.wait_for_height(unbond_height + 1, Duration::from_secs(30))?;
    let own = chain.query(&["btcts", "own-hash", &unbond_height.to_string()])?;
    let own_hash = base64::engine::general_purpose::STANDARD
        .decode(own["hash"].as_str().context("own-hash without a hash")?)?;
    let next = chain.query(&["block", "--type=height", &(unbond_height + 1).to_string()])?;
    let block_id = base64::engine::general_purpose::STANDARD.decode(
        next["last_commit"]["block_id"]["hash"]
            .as_str()
            .context("block without last_commit.block_id.hash")?,
    )?;
    ensure!(
        own_hash.len() == 32 && own_hash == block_id,
        "own hash {} is not the block id hash {}",
        hex(&own_hash),
        hex(&block_id)
    );

    // Past the staking unbonding_time the entry is mature, yet held.
    std::thread::sleep(UNBONDING_TIME * 3);
    ensure!(holds(&chain)?.len() == 1, "released before max_hold");
    ensure!(
        chain.balance(&delegator, DENOM)? == balance,
        "tokens back before max_hold"
    );

    // After max_hold, released: the tokens are back.
    let deadline = Instant::now() + MAX_HOLD + Duration::from_secs(30);
    while !holds(&chain)?.is_empty() {
        ensure!(Instant::now() < deadline, "still held long after max_hold");
        std::thread::sleep(Duration::from_millis(500));
    }
    let released_after = unbonded_at.elapsed();
    ensure!(
        released_after + Duration::from_secs(2) >= MAX_HOLD,
        "released after {released_after:?}, before max_hold {MAX_HOLD:?}"
    );
    ensure!(
        chain.balance(&delegator, DENOM)? == balance + STAKE,
        "the unbonded tokens are not back"
    );
    ensure!(
        chain
            .query(&["staking", "unbonding-delegation", &delegator, &valoper])
            .is_err(),
        "the unbonding delegation is still there"
    );
    eprintln!("unbonding released by max_hold {released_after:?} after the unbond");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
