//! The anchoring loop's life: [`Anchorer::run`] steps off the async threads
//! whenever the block watcher ([`crate::watch`]) sees a new tip, on the poll
//! timer (the fallback, and the pace of time-driven work), and backs off
//! while steps fail, until shutdown.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, warn};

use super::{Anchorer, StepOutcome, MAX_BACKOFF};
use crate::node::BitcoinNode;
use crate::watch::Tip;

impl<N: BitcoinNode + 'static> Anchorer<N> {
    /// Steps until `shutdown` changes, off the async threads (the node client
    /// blocks): at once when the node's tip changes, and `config.poll` after
    /// the last step otherwise. After a failure the timer doubles up to
    /// [`MAX_BACKOFF`], but the node answering again (the watcher sees it)
    /// wakes the loop at once; the first success brings the timer back to
    /// `poll`. Returns the loop's state, or `None` if a step panicked. The
    /// watcher thread is not waited for: it ends after its current wait.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Option<Self> {
        let poll = self.config.poll;
        let mut delay = poll;
        let mut tips = match crate::watch::spawn(Arc::clone(&self.node)) {
            Ok(rx) => Some(rx),
            Err(e) => {
                warn!(error = %e, "cannot start the block watcher; following the node every poll only");
                None
            }
        };
        loop {
            let joined = tokio::task::spawn_blocking(move || {
                let outcome = self.step_logged();
                (self, outcome)
            })
            .await;
            let outcome;
            (self, outcome) = match joined {
                Ok(done) => done,
                Err(e) => {
                    error!(error = %e, "anchoring step panicked; the anchoring loop stops");
                    return None;
                }
            };
            delay = match outcome {
                StepOutcome::Ok | StepOutcome::Recovered => poll,
                StepOutcome::FirstFailure | StepOutcome::StillFailing => {
                    (delay * 2).min(MAX_BACKOFF)
                }
            };
            let timer = tokio::time::sleep(delay);
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    _ = &mut timer => break,
                    _ = shutdown.changed() => return Some(self),
                    tip = next_tip(&mut tips) => if self.wakes_on(tip) { break },
                }
            }
        }
    }

    /// Whether the watcher's `tip` calls for a step now: a block this loop
    /// has not stepped on, or the node answering while the loop backs off.
    fn wakes_on(&self, tip: Tip) -> bool {
        self.failing || self.last_tip != Some(tip.1)
    }
}

/// The next tip the watcher publishes; never resolves once there is no
/// watcher (the loop then runs on its timer alone).
async fn next_tip(tips: &mut Option<watch::Receiver<Option<Tip>>>) -> Tip {
    loop {
        let Some(rx) = tips.as_mut() else {
            return std::future::pending().await;
        };
        match rx.changed().await {
            Ok(()) => {
                if let Some(tip) = *rx.borrow_and_update() {
                    return tip;
                }
            }
            Err(_) => {
                warn!("the block watcher stopped; following the node every poll only");
                *tips = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aggregator::anchor::AnchorStatus;
    use aggregator::clock::FixedClock;
    use aggregator::{AnchorNetwork, BatchSeq, Store};

    use super::*;
    use crate::anchor::tests::store_with_one_record;
    use crate::fake::FakeNode;
    use crate::AnchorConfig;

    type Running = tokio::task::JoinHandle<Option<Anchorer<Arc<FakeNode>>>>;

    /// A loop over `fake` whose poll timer never fires during a test.
    fn start(store: &Store, fake: &Arc<FakeNode>) -> (watch::Sender<bool>, Running) {
        let mut config = AnchorConfig::new(AnchorNetwork::Regtest);
        config.poll = Duration::from_secs(600);
        config.confirmations = 3;
        let a = Anchorer::new(
            store.clone(),
            fake.clone(),
            config,
            Arc::new(FixedClock::new(0)),
        );
        let (stop, rx) = watch::channel(false);
        (stop, tokio::spawn(a.run(rx)))
    }

    /// Waits (real time: the watcher is a thread) until batch 0's anchor
    /// has `status`; 20 s is far below the 600 s poll and the 30 s backoff.
    async fn until_anchor(store: &Store, status: AnchorStatus) {
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let anchor = store.anchor(BatchSeq(0)).expect("query");
                if anchor.is_some_and(|a| a.status == status) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "batch 0 never {status:?} without a poll");
    }

    #[tokio::test]
    async fn blocks_wake_the_loop_without_waiting_for_the_poll() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = store_with_one_record(&dir);
        let fake = Arc::new(FakeNode::new());
        let (stop, handle) = start(&store, &fake);
        until_anchor(&store, AnchorStatus::Broadcast).await;
        fake.mine(1);
        until_anchor(&store, AnchorStatus::Mined).await;
        fake.mine(2);
        until_anchor(&store, AnchorStatus::Confirmed).await;
        stop.send(true).expect("loop listens");
        let stopped = tokio::time::timeout(Duration::from_secs(20), handle).await;
        assert!(
            matches!(stopped, Ok(Ok(Some(_)))),
            "stops on shutdown without waiting for the watcher"
        );
    }

    #[tokio::test]
    async fn the_node_coming_back_wakes_a_loop_that_backs_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = store_with_one_record(&dir);
        let fake = Arc::new(FakeNode::new());
        fake.set_down(true);
        let (stop, _handle) = start(&store, &fake);
        // The first step seals (store only), then fails on the node: the
        // loop now waits 30 s.
        tokio::time::timeout(Duration::from_secs(20), async {
            while store.batch(BatchSeq(0)).expect("query").is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("sealed while the node is down");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.anchor(BatchSeq(0)).expect("query").is_none());
        fake.set_down(false);
        until_anchor(&store, AnchorStatus::Broadcast).await;
        fake.mine(1);
        until_anchor(&store, AnchorStatus::Mined).await;
        stop.send(true).expect("loop listens");
    }
}
