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
