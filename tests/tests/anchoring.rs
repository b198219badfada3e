//! The anchoring scenarios against the fake node and against litecoind.

use btcts_tests::cost;
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::{self, FakeChain};

#[test]
fn fake_happy_path() -> anyhow::Result<()> {
    scenarios::happy_path(&FakeChain::default()).map(drop)
}

#[test]
fn fake_rbf() -> anyhow::Result<()> {
    scenarios::rbf(&FakeChain::default())
}

#[test]
fn fake_reorg() -> anyhow::Result<()> {
    scenarios::reorg(&FakeChain::default())
}

#[test]
fn fake_crash_after_broadcast() -> anyhow::Result<()> {
    scenarios::crash_after_broadcast(&FakeChain::default())
}

#[test]
fn litecoind_happy_path() -> anyhow::Result<()> {
    scenarios::happy_path(&RegtestNode::start()?).map(drop)
}

#[test]
fn litecoind_rbf() -> anyhow::Result<()> {
    scenarios::rbf(&RegtestNode::start()?)
}

#[test]
fn litecoind_reorg() -> anyhow::Result<()> {
    scenarios::reorg(&RegtestNode::start()?)
}

#[test]
fn litecoind_crash_after_broadcast() -> anyhow::Result<()> {
    scenarios::crash_after_broadcast(&RegtestNode::start()?)
}

#[test]
fn fake_outage() -> anyhow::Result<()> {
    let mut chain = FakeChain::default();
    scenarios::outage(
        &mut chain,
        |c, down| {
            c.0.set_down(down);
            Ok(())
        },
        30,
        std::time::Duration::ZERO,
    )
}

/// The node stopped for 30 s (30 polls a second apart), then started again.
#[test]
fn litecoind_outage_of_30_seconds() -> anyhow::Result<()> {
    let mut node = RegtestNode::start()?;
    let set_down = |n: &mut RegtestNode, down: bool| if down { n.stop() } else { n.start_again() };
    scenarios::outage(&mut node, set_down, 30, std::time::Duration::from_secs(1))
}

#[test]
fn fake_blocks_wake_the_loop() -> anyhow::Result<()> {
    btcts_tests::follow::blocks_wake_the_loop(&mut FakeChain::default(), |c| {
        c.0.set_down(true);
        std::thread::sleep(std::time::Duration::from_millis(500));
        c.0.set_down(false);
        Ok(())
    })
}

/// The loop follows litecoind by `waitforblockheight`. No outage here:
/// litecoind 0.21 holds its shutdown until idle keep-alive RPC connections
/// (the loop's) time out (`-rpcservertimeout`, 30 s), and a node killed
/// instead loses its recent blocks; the fake covers the outage.
#[test]
fn litecoind_blocks_wake_the_loop() -> anyhow::Result<()> {
    btcts_tests::follow::blocks_wake_the_loop(&mut RegtestNode::start()?, |_| Ok(()))
}

#[test]
fn litecoind_wrong_chain_is_refused_at_start_up() -> anyhow::Result<()> {
    use aggregator::clock::FixedClock;
    use aggregator::AnchorNetwork;
    use btc_submitter::{AnchorConfig, Anchorer};
    use btcts_tests::scenarios::TestChain;
    use std::sync::Arc;
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let (store, _) = scenarios::store_with_records(dir.path(), 1)?;
    let start = |network| {
        Anchorer::connect(
            store.clone(),
            node.node()?,
            AnchorConfig::new(network),
            Arc::new(FixedClock::new(0)),
        )
        .map_err(anyhow::Error::from)
    };
    start(AnchorNetwork::LitecoinRegtest)?;
    let genesis = AnchorNetwork::LitecoinRegtest.genesis_hash().to_string();
    let msg = start(AnchorNetwork::Regtest)
        .expect_err("bitcoin regtest genesis differs")
        .to_string();
    assert!(
        msg.contains("configured for regtest") && msg.contains(&genesis),
        "{msg}"
    );
    let msg = start(AnchorNetwork::Bitcoin)
        .expect_err("not mainnet")
        .to_string();
    assert!(
        msg.contains("\"regtest\"") && msg.contains("configured for bitcoin"),
        "{msg}"
    );
    Ok(())
}

/// Scenario 7 on the real node; the figures go to docs/BENCHMARKS.md.
#[test]
#[allow(clippy::print_stderr)] // prints the measurement
fn litecoind_cost_of_a_steady_stream() -> anyhow::Result<()> {
    let (anchors, vsize) = scenarios::steady_stream(&RegtestNode::start()?)?;
    eprintln!(
        "steady stream over 10 blocks: {anchors} anchor transactions mined, largest vsize {vsize} vB"
    );
    assert!(anchors <= 10, "{anchors} anchors in 10 blocks");
    assert!(
        anchors >= 9,
        "only {anchors} anchors: records were left waiting"
    );
    assert!(vsize <= 170, "anchor vsize {vsize}");
    Ok(())
}

#[test]
fn fake_steady_stream() -> anyhow::Result<()> {
    let (anchors, _) = scenarios::steady_stream(&FakeChain::default())?;
    assert!((9..=10).contains(&anchors), "{anchors}");
    Ok(())
}

#[test]
fn harness_reorg_replaces_the_tip_blocks() -> anyhow::Result<()> {
    let node = RegtestNode::start()?;
    let old = node.mine(2)?;
    let new = node.reorg(2)?;
    assert_eq!(new.len(), 3);
    let best: bitcoin::BlockHash = serde_json::from_value(node.call("getbestblockhash", &[])?)?;
    assert_eq!(Some(&best), new.last());
    let stale = node.call(
        "getblockheader",
        &[serde_json::json!(old[1]), serde_json::json!(true)],
    )?;
    assert_eq!(stale["confirmations"], -1);
    Ok(())
}

#[test]
fn fake_cadence_six_gives_ten_anchors_in_sixty_blocks() -> anyhow::Result<()> {
    let anchors = cost::cadence_six(&FakeChain::default())?;
    assert!(
        (9..=11).contains(&anchors),
        "{anchors} anchors in 60 blocks"
    );
    Ok(())
}

#[test]
#[allow(clippy::print_stderr)] // prints the measurement
fn litecoind_cadence_six_gives_ten_anchors_in_sixty_blocks() -> anyhow::Result<()> {
    let anchors = cost::cadence_six(&RegtestNode::start()?)?;
    eprintln!("cadence 6 over 60 blocks: {anchors} anchors");
    assert!(
        (9..=11).contains(&anchors),
        "{anchors} anchors in 60 blocks"
    );
    Ok(())
}

#[test]
fn fake_a_chain_latency_budget_brings_the_anchor_forward() -> anyhow::Result<()> {
    cost::latency_budget(&FakeChain::default())
}

#[test]
fn fake_fee_patience_waits_within_the_budget() -> anyhow::Result<()> {
    cost::fee_patience(&FakeChain::default())
}

#[test]
fn fake_daily_budget_pauses_anchoring_until_the_next_day() -> anyhow::Result<()> {
    cost::daily_budget(&FakeChain::default())
}

#[test]
fn fake_a_restart_anchors_what_was_pending_at_once() -> anyhow::Result<()> {
    cost::restart_anchors_what_waited(&FakeChain::default())
}
