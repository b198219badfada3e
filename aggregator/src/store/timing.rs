//! The store's writer: who waits for it, and how long write transactions
//! take, by what they write.
//!
//! redb has one writer: `begin_write` waits while another write transaction
//! is open, and the wait is not fair (a thread that commits and begins
//! again at once usually wins over one already waiting). So background work
//! done in several transactions ([`super::seal::index_ahead`]) calls
//! [`Writers::give_way`] between them: submissions then wait for one of its
//! transactions, not for all of them.
//!
//! Every write transaction of the service goes through [`Writers::begin`]
//! and [`Timed::commit`], which record (as `metrics` histograms, exported
//! by the server):
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// The write transactions of one open database: how many wait for the
/// writer.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    waiting: AtomicUsize,
}

impl Writers {
    /// `db.begin_write()`, counted among the waiting while it waits, and
    /// the wait timed.
    pub(crate) fn begin(
        &self,
        db: &Database,
        op: Op,
    ) -> Result<(WriteTransaction, Timed), StoreError> {
        let asked = Instant::now();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let txn = db.begin_write();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let txn = txn?;
        let acquired = Instant::now();
        metrics::histogram!("btcts_store_write_wait_seconds", "op" => op.label())
            .record(acquired.duration_since(asked).as_secs_f64());
        Ok((txn, Timed { op, acquired }))
    }

    /// How many write transactions wait for the writer now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Called between two write transactions of background work: returns
    /// once no write transaction waits for the writer (each waiting one
    /// has taken it), or after `patience`.
    pub(crate) fn give_way(&self, patience: Duration) {
        let until = Instant::now() + patience;
        while self.waiting() > 0 && Instant::now() < until {
            std::thread::yield_now();
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};

    use redb::TransactionError;

    use super::*;

    /// Background work that gives way between its transactions lets a
    /// writer already waiting take the writer first (redb alone would
    /// usually hand it back to the thread that just committed).
    #[test]
    fn giving_way_hands_the_writer_to_the_one_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Database::create(dir.path().join("db.redb")).expect("creates"));
        let writers = Arc::new(Writers::default());
        let (txn, timed) = writers.begin(&db, Op::Index).expect("begins");

        let (release, released) = mpsc::channel::<()>();
        let other = {
            let (db, writers) = (Arc::clone(&db), Arc::clone(&writers));
            std::thread::spawn(move || {
                let (txn, timed) = writers.begin(&db, Op::Ingest).expect("begins");
                released.recv().expect("released");
                timed.commit(txn).expect("commits");
            })
        };
        let until = Instant::now() + Duration::from_secs(10);
        while writers.waiting() == 0 {
            assert!(Instant::now() < until, "the other writer never waited");
            std::thread::yield_now();
        }

        timed.commit(txn).expect("commits");
        writers.give_way(Duration::from_secs(10));
        assert_eq!(writers.waiting(), 0);
        assert!(
            matches!(db.try_begin_write(), Err(TransactionError::WouldBlock)),
            "gave way, yet the writer that waited does not hold the writer"
        );

        release.send(()).expect("sends");
        other.join().expect("joins");
        let (txn, timed) = writers.begin(&db, Op::Index).expect("free again");
        timed.commit(txn).expect("commits");
    }

    /// With nobody waiting, giving way returns at once.
    #[test]
    fn giving_way_to_nobody_does_not_wait() {
        let writers = Writers::default();
        let started = Instant::now();
        writers.give_way(Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
