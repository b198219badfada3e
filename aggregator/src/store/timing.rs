//! How long the store's write transactions take, by what they write.
//!
//! redb has one writer: `begin_write` waits while another write transaction
//! is open. Every write transaction of the service goes through
//! [`begin_write`] and [`Timed::commit`], which record (as `metrics`
//! histograms, exported by the server):
//!
//! - `btcts_store_write_wait_seconds{op}`: waiting for the writer;
//! - `btcts_store_write_hold_seconds{op}`: holding it, commit included
//!   (every other writer waits this long);
//! - `btcts_store_commit_seconds{op}`: the commit alone (for a durable
//!   one, mostly the file's fsync).
//!
//! A stall in submissions is then placed: a long hold by another `op` (the
//! seal, an anchor), or a slow commit of the submissions themselves (the
//! disk). Without a recorder installed (tests, library users) the calls
//! cost a clock read each.

use std::time::Instant;

use redb::{Database, WriteTransaction};

use super::StoreError;

/// What a write transaction writes: the `op` label of its timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// A group of submissions (the ingest writer).
    Ingest,
    /// A chain-record index chunk written ahead of a seal.
    Index,
    /// A batch sealed.
    Seal,
    /// An anchor's state transition.
    Anchor,
    /// Event-log pruning.
    Prune,
    /// A webhook receiver's cursor.
    Webhook,
    /// The recovery probe after an I/O failure.
    Probe,
    /// Opening: schema check and upgrade.
    Schema,
}

impl Op {
    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::Ingest => "ingest",
            Op::Index => "index",
            Op::Seal => "seal",
            Op::Anchor => "anchor",
            Op::Prune => "prune",
            Op::Webhook => "webhook",
            Op::Probe => "probe",
            Op::Schema => "schema",
        }
    }
}

/// A write transaction and when it got the writer.
pub(crate) struct Timed {
    op: Op,
    acquired: Instant,
}

/// `db.begin_write()`, timing the wait for the writer.
pub(crate) fn begin_write(db: &Database, op: Op) -> Result<(WriteTransaction, Timed), StoreError> {
    let asked = Instant::now();
    let txn = db.begin_write()?;
    let acquired = Instant::now();
    metrics::histogram!("btcts_store_write_wait_seconds", "op" => op.label())
        .record(acquired.duration_since(asked).as_secs_f64());
    Ok((txn, Timed { op, acquired }))
}

impl Timed {
    /// Commits `txn`, timing the commit and the whole hold. A failed
    /// commit is not timed (it is an error, logged by the caller).
    pub(crate) fn commit(self, txn: WriteTransaction) -> Result<(), StoreError> {
        let started = Instant::now();
        txn.commit()?;
        let done = Instant::now();
        let label = self.op.label();
        metrics::histogram!("btcts_store_commit_seconds", "op" => label)
            .record(done.duration_since(started).as_secs_f64());
        metrics::histogram!("btcts_store_write_hold_seconds", "op" => label)
            .record(done.duration_since(self.acquired).as_secs_f64());
        Ok(())
    }
}
