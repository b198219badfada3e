//! Following the node's tip: a thread that long-polls the node
//! ([`BitcoinNode::wait_for_block_above`], `waitforblockheight` over RPC)
//! and publishes each new tip the moment the node has it, so that the
//! anchoring loop wakes on a block instead of at its next poll.
//!
//! The thread only reads; it decides nothing and writes nothing. While the
//! node is unreachable it backs off (1 s doubling to [`MAX_BACKOFF`]),
//! logging the outage once and the recovery once, and publishes the tip
//! again when the node answers, tip changed or not, so a loop that is
//! backing off resumes at once. It ends when every receiver is gone: after
//! the wait in progress (at most [`BLOCK_WAIT`]) or within a second of a
//! backoff sleep. Nothing joins it, so it never holds up shutdown.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::BlockHash;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::anchor::MAX_BACKOFF;
use crate::node::BitcoinNode;

/// The best block as the watcher last saw it: height and hash.
pub type Tip = (u32, BlockHash);

/// How long one long poll asks the node to wait for a block. A same-height
/// reorg (rare: a new branch is usually longer) is published when it ends.
pub const BLOCK_WAIT: Duration = Duration::from_secs(10);

/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the watcher thread over `node`. The receiver holds `None` until
/// the node first answers, then the latest tip; it is marked changed on
/// every new tip and whenever the node answers again after failing.
pub fn spawn<N: BitcoinNode + ?Sized + 'static>(
    node: Arc<N>,
) -> std::io::Result<watch::Receiver<Option<Tip>>> {
    let (tx, rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("btcts-tip-watch".into())
        .spawn(move || follow(&*node, &tx, BLOCK_WAIT))?;
    Ok(rx)
}

/// The watcher's loop; returns once `tips` has no receivers.
fn follow<N: BitcoinNode + ?Sized>(node: &N, tips: &watch::Sender<Option<Tip>>, wait: Duration) {
    let mut last: Option<Tip> = None;
    // `Some(delay)` while the node fails: the last backoff slept.
    let mut failing: Option<Duration> = None;
    while !tips.is_closed() {
        // The first call, and the first after a failure, only asks for the
        // tip: a node that answers again is news even without a block.
        let wait = match (last, failing) {
            (Some(_), None) => wait,
            _ => Duration::ZERO,
        };
        match node.wait_for_block_above(last.map_or(0, |(h, _)| h), wait) {
            Ok(tip) => {
                if failing.take().is_some() {
                    info!(height = tip.0, "the node answers again; following its tip");
                    tips.send_replace(Some(tip));
                } else if last != Some(tip) {
                    tips.send_replace(Some(tip));
                }
                last = Some(tip);
            }
            Err(e) => {
                let delay = match failing {
                    None => {
                        warn!(error = %e, "cannot follow the node's tip; retrying with backoff, logged again only once it answers");
                        FIRST_BACKOFF
                    }
                    Some(d) => (d * 2).min(MAX_BACKOFF),
                };
                failing = Some(delay);
                sleep_unless_closed(tips, delay);
            }
        }
    }
}

/// Sleeps `delay` in steps of at most a second, ending early once `tips`
/// has no receivers.
fn sleep_unless_closed(tips: &watch::Sender<Option<Tip>>, delay: Duration) {
    let mut left = delay;
    while !left.is_zero() && !tips.is_closed() {
        let step = left.min(Duration::from_secs(1));
        std::thread::sleep(step);
        left -= step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Event, FakeNode, Hooked};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Waits (real time, the watcher is a thread) until `rx` changes.
    async fn next(rx: &mut watch::Receiver<Option<Tip>>) -> Option<Tip> {
        tokio::time::timeout(Duration::from_secs(20), rx.changed())
            .await
            .expect("the watcher publishes")
            .expect("the watcher runs");
        *rx.borrow_and_update()
    }

    #[tokio::test]
    async fn publishes_every_new_tip_and_the_tip_again_after_an_outage() {
        let fake = Arc::new(FakeNode::new());
        let waits = Arc::new(AtomicU32::new(0));
        let node = Arc::new(Hooked::new(fake.clone(), {
            let waits = waits.clone();
            move |e| {
                if e == Event::Call("wait_for_block_above") {
                    waits.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
        }));
        let genesis = fake.blocks()[0].block_hash();
        let mut rx = spawn(node).expect("thread");
        assert_eq!(next(&mut rx).await, Some((0, genesis)), "the tip at start");
        let first = fake.mine(1)[0];
        assert_eq!(next(&mut rx).await, Some((1, first)));
        let second = fake.mine(1)[0];
        assert_eq!(next(&mut rx).await, Some((2, second)));
        // A reorg to a longer branch.
        let branch = fake.reorg(1, 2);
        assert_eq!(next(&mut rx).await, Some((3, branch[1])));

        let before = waits.load(Ordering::SeqCst);
        fake.set_down(true);
        // Failures at once and after 1 s, then a 2 s backoff: not a call
        // per millisecond.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let while_down = waits.load(Ordering::SeqCst) - before;
        assert!(while_down <= 3, "{while_down} calls in 2.5 s while down");
        fake.set_down(false);
        assert_eq!(
            next(&mut rx).await,
            Some((3, branch[1])),
            "the unchanged tip is published again once the node answers"
        );
        let third = fake.mine(1)[0];
        assert_eq!(next(&mut rx).await, Some((4, third)));
    }

    #[test]
    fn the_thread_ends_once_nobody_listens() {
        let fake = Arc::new(FakeNode::new());
        let (tx, rx) = watch::channel(None);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            follow(&*fake, &tx, Duration::from_millis(200));
            let _ = done_tx.send(());
        });
        drop(rx);
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the watcher ends after its wait in progress");
    }
}
