//! Group commit: one writer thread turns every submission waiting at the
//! moment into a single durable transaction, so throughput is bounded by
//! how much fits in one commit, not by fsync latency. Each caller awaits its
//! own acknowledgements, which arrive only after the commit is durable.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error};

use crate::leaf::leaf_hash;
use crate::store::{Ack, Store, StoreError};
use crate::types::{LeafHash, Record};

/// How many records one group transaction takes at most.
pub const MAX_GROUP_RECORDS: usize = 65_536;
/// How many submissions may wait for the writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 1024;

struct Job {
    records: Vec<(LeafHash, Record)>,
    reply: oneshot::Sender<Result<Vec<Ack>, StoreError>>,
}

/// Handle to the group-commit writer. Cheap to clone; the writer stops when
/// every handle is dropped (or [`Ingestor::shutdown`] is called on the last).
#[derive(Clone, Debug)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

/// The writer thread; join it to wait until every queued job is committed.
#[derive(Debug)]
pub struct IngestWriter(JoinHandle<()>);

impl IngestWriter {
    /// Waits for the writer to finish the queued jobs and exit.
    pub fn join(self) {
        if self.0.join().is_err() {
            error!("ingest writer thread panicked");
        }
    }
}

impl Ingestor {
    /// Starts the writer thread over `store`.
    pub fn start(store: Store) -> std::io::Result<(Ingestor, IngestWriter)> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = std::thread::Builder::new()
            .name("btcts-ingest".into())
            .spawn(move || writer_loop(store, rx))?;
        Ok((Ingestor { tx }, IngestWriter(handle)))
    }

    /// Durably stores `records`; resolves after the commit that holds them.
    /// Leaf hashes are computed here, on the caller's task, not on the writer.
    pub async fn submit(&self, records: Vec<Record>) -> Result<Vec<Ack>, StoreError> {
        let (job, rx) = job(records);
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// [`Ingestor::submit`] for callers outside an async runtime.
    pub fn submit_blocking(&self, records: Vec<Record>) -> Result<Vec<Ack>, StoreError> {
        let (job, rx) = job(records);
        self.tx.blocking_send(job).map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

fn job(records: Vec<Record>) -> (Job, oneshot::Receiver<Result<Vec<Ack>, StoreError>>) {
    let records = records.into_iter().map(|r| (leaf_hash(&r), r)).collect();
    let (reply, rx) = oneshot::channel();
    (Job { records, reply }, rx)
}

fn writer_loop(store: Store, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut total = first.records.len();
        let mut jobs = vec![first];
        while total < MAX_GROUP_RECORDS {
            match rx.try_recv() {
                Ok(job) => {
                    total += job.records.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let groups: Vec<&[(LeafHash, Record)]> =
            jobs.iter().map(|j| j.records.as_slice()).collect();
        match store.submit_groups(&groups) {
            Ok(acks) => {
                debug!(requests = jobs.len(), records = total, "group committed");
                for (job, acks) in jobs.into_iter().zip(acks) {
                    // A caller that went away simply does not hear back; its
                    // records are stored all the same.
                    let _ = job.reply.send(Ok(acks));
                }
            }
            Err(e) => {
                error!(error = %e, requests = jobs.len(), records = total, "group commit failed; nothing acknowledged");
                for job in jobs {
                    let _ = job.reply.send(Err(replay(&e)));
                }
            }
        }
    }
}

/// A copy of a failed group's error for each caller in the group.
fn replay(e: &StoreError) -> StoreError {
    match e {
        StoreError::SchemaVersion { found, expected } => StoreError::SchemaVersion {
            found: *found,
            expected: *expected,
        },
        StoreError::Closed => StoreError::Closed,
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
        StoreError::Unavailable { disk_full, cause } => StoreError::Unavailable {
            disk_full: *disk_full,
            cause: cause.clone(),
        },
        other => StoreError::CommitFailed(other.to_string()),
    }
}
