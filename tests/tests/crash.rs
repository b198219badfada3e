//! Scenario 4 with real processes: the submitter is killed with SIGKILL
//! right after broadcasting (before it records anything more) and at random
//! moments; after every restart no conflicting transaction appears, every
//! batch is anchored exactly once and every record's proof verifies.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::clock::FixedClock;
use aggregator::leaf::leaf_hash;
use aggregator::types::RawDigest;
use aggregator::{BatchSeq, Payload, Record, Store, Tag};
use anyhow::{ensure, Context, Result};
use bitcoin::Txid;
use std::sync::atomic::{AtomicU32, Ordering};

use btc_submitter::fake::{Event, Hooked};
use btc_submitter::{Anchorer, CoreRpcNode, RpcAuth, RpcConfig};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::{check_proofs, config, store_with_records, TestChain};

/// `inner`, killing its own process with SIGKILL right after the
/// `n`th successful broadcast: before anything more is recorded.
fn kill_after_broadcast(inner: CoreRpcNode, n: u32) -> Hooked<CoreRpcNode> {
    let left = AtomicU32::new(n);
    Hooked::new(inner, move |e| {
        if matches!(e, Event::Broadcast(_)) && left.fetch_sub(1, Ordering::SeqCst) == 1 {
            let pid = std::process::id().to_string();
            let _ = Command::new("kill").args(["-9", &pid]).status();
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(())
    })
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent test"))
}

/// The submitter process the parent test kills.
#[test]
#[ignore = "run only as the child of litecoind_kill_9_never_anchors_a_batch_twice"]
fn child_submitter() {
    let store = Store::open(env("BTCTS_CHILD_STORE"), Arc::new(FixedClock::new(1))).expect("store");
    let rpc = RpcConfig {
        url: env("BTCTS_CHILD_RPC"),
        auth: RpcAuth::UserPass(env("BTCTS_CHILD_USER"), env("BTCTS_CHILD_PASS")),
    };
    let inner = CoreRpcNode::new(&rpc).expect("client");
    let kill_after: u32 = env("BTCTS_CHILD_KILL_AFTER").parse().expect("number");
    let node = kill_after_broadcast(inner, kill_after);
    let mut a = Anchorer::new(
        store,
        node,
        config(aggregator::AnchorNetwork::LitecoinRegtest),
        Arc::new(FixedClock::new(1)),
    );
    loop {
        let _ = a.step_logged();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A submitter process, killed (SIGKILL) on drop if still running, so that a
/// failing test never leaves one behind.
struct Submitter(Child);

impl Drop for Submitter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(node: &RegtestNode, store: &std::path::Path, kill_after: u32) -> Result<Submitter> {
    let (user, pass) = node.credentials();
    Ok(Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            "child_submitter",
            "--test-threads=1",
        ])
        .env("BTCTS_CHILD_STORE", store)
        .env(
            "BTCTS_CHILD_RPC",
            format!("{}/wallet/btcts", node.rpc_url()),
        )
        .env("BTCTS_CHILD_USER", user)
        .env("BTCTS_CHILD_PASS", pass)
        .env("BTCTS_CHILD_KILL_AFTER", kill_after.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Submitter)?)
}

fn killed_by_sigkill(Submitter(child): &mut Submitter, within: Duration) -> Result<bool> {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status.signal() == Some(9));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    Ok(false)
}

/// Every OP_RETURN anchor with the default tag in the best chain, by batch.
fn anchors_in_chain(node: &RegtestNode) -> Result<std::collections::BTreeMap<u64, Vec<Txid>>> {
    let mut out: std::collections::BTreeMap<u64, Vec<Txid>> = Default::default();
    let tip: u64 = serde_json::from_value(node.call("getblockcount", &[])?)?;
    for height in 1..=tip {
        let hash =
            serde_json::from_value(node.call("getblockhash", &[serde_json::json!(height)])?)?;
        for tx in node.block(&hash)?.txdata {
            for out_ in &tx.output {
                if let Ok(p) = Payload::from_script(&out_.script_pubkey) {
                    if p.tag == Tag::DEFAULT {
                        out.entry(p.batch.0).or_default().push(tx.compute_txid());
                    }
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn litecoind_kill_9_never_anchors_a_batch_twice() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("btcts.redb");
    let (store, mut ids) = store_with_records(dir.path(), 40)?;
    drop(store);

    // 1. Killed right after broadcasting the first anchor, before recording it.
    let mut child = spawn_child(&node, &path, 1)?;
    ensure!(
        killed_by_sigkill(&mut child, Duration::from_secs(30))?,
        "child was not killed after broadcast"
    );
    ensure!(node.mempool()?.len() == 1, "the anchor reached the mempool");

    // 2. A block passes it by; the restarted submitter replaces it and is
    //    killed right after broadcasting the replacement.
    node.mine_without_mempool(1)?;
    let mut child = spawn_child(&node, &path, 1)?;
    ensure!(
        killed_by_sigkill(&mut child, Duration::from_secs(30))?,
        "child was not killed after the replacement"
    );
    ensure!(
        node.mempool()?.len() == 1,
        "the replacement replaced, nothing else appeared"
    );

    // 3. Killed at arbitrary moments while records arrive and blocks are mined.
    for round in 0..4u8 {
        {
            let store = Store::open(&path, Arc::new(FixedClock::new(2)))?;
            let records: Vec<_> = (0..25u8)
                .map(|i| Record::Digest {
                    digest: RawDigest([
                        round, i, 0xcc, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
                    ]),
                })
                .map(|r| (leaf_hash(&r), r))
                .collect();
            ids.extend(store.submit(&records)?.into_iter().map(|a| a.id));
        }
        let mut child = spawn_child(&node, &path, u32::MAX)?;
        let jitter = u64::from(Instant::now().elapsed().subsec_nanos() % 300);
        std::thread::sleep(Duration::from_millis(150 + jitter));
        node.mine(1)?;
        std::thread::sleep(Duration::from_millis(50 + jitter));
        child.0.kill()?; // SIGKILL
        child.0.wait()?;
    }

    // 4. A last restart runs until everything is anchored and mined.
    let store = Store::open(&path, Arc::new(FixedClock::new(3)))?;
    let mut a = Anchorer::new(
        store.clone(),
        node.node()?,
        config(node.network()),
        Arc::new(FixedClock::new(3)),
    );
    for _ in 0..20 {
        a.step()?;
        if store.pending_count()? == 0
            && store.next_unanchored_batch()?.is_none()
            && node.mempool()?.is_empty()
        {
            break;
        }
        node.mine(1)?;
    }
    a.step()?;
    let in_chain = anchors_in_chain(&node)?;
    let mut seq = 0;
    while let Some(record) = store.anchor(BatchSeq(seq))? {
        let mined = record
            .mined
            .as_ref()
            .with_context(|| format!("batch {seq} mined"))?;
        ensure!(
            in_chain.get(&seq) == Some(&vec![mined.txid]),
            "batch {seq}: {:?} in the chain",
            in_chain.get(&seq)
        );
        seq += 1;
    }
    ensure!(
        seq as usize == in_chain.len() && seq >= 2,
        "{seq} batches anchored, {} in the chain",
        in_chain.len()
    );
    for id in &ids {
        let stored = store.record(id)?.context("acknowledged record kept")?;
        let (batch, _) = stored.batch.context("sealed")?;
        let mined = store
            .anchor(batch)?
            .and_then(|r| r.mined)
            .context("mined")?;
        check_proofs(
            &node,
            &store,
            std::slice::from_ref(id),
            mined.txid,
            mined.block_hash,
        )?;
    }
    Ok(())
}
