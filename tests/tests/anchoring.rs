//! The anchoring scenarios against the fake node and against litecoind.

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
fn litecoind_wrong_chain_is_refused_at_start_up() -> anyhow::Result<()> {
    use aggregator::AnchorNetwork;
    use btc_submitter::node::BitcoinNode;
    use btcts_tests::scenarios::TestChain;
    let node = RegtestNode::start()?;
    let info = node.node()?.chain_info()?;
    btc_submitter::check_chain(AnchorNetwork::LitecoinRegtest, &info)?;
    let err = btc_submitter::check_chain(AnchorNetwork::Regtest, &info)
        .expect_err("bitcoin regtest genesis differs");
    let msg = err.to_string();
    assert!(
        msg.contains("configured for regtest") && msg.contains(&info.genesis.to_string()),
        "{msg}"
    );
    let err = btc_submitter::check_chain(AnchorNetwork::Bitcoin, &info).expect_err("not mainnet");
    assert!(err.to_string().contains("\"main\""), "{err}");
    Ok(())
}

/// Scenario 7 on the real node; the figures go to docs/BENCHMARKS.md.
#[test]
#[allow(clippy::print_stderr)] // prints the measurement
fn litecoind_cost_of_a_steady_stream() -> anyhow::Result<()> {
    let (anchors, vsize) = scenarios::steady_stream(&RegtestNode::start()?)?;
    eprintln!(
        "steady stream over 10 blocks: {anchors} anchor transactions, largest vsize {vsize} vB"
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
