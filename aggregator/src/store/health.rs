//! The store's open database and what happens when a write fails for lack
//! of space (or any other I/O error).
//!
//! redb latches an I/O failure: after one failed write every later
//! transaction answers `PreviousIo` until the database is closed. So the
//! store remembers the failure, answers [`StoreError::Unavailable`] at once
//! while it lasts, and at most every [`RECOVERY_INTERVAL`] closes the file,
//! reopens it and commits a small probe write. When the probe commits the
//! store is available again. A failed commit acknowledged nothing, so no
//! acknowledged record is at stake.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError};
use tracing::{error, info, warn};

use super::timing::{Op, Writers};
use super::StoreError;
use crate::schema::META;

/// How often an unavailable store tries to reopen itself.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The META key the recovery probe writes (the time of the last probe).
const META_PROBE: &str = "store_probe_unix_ms";

/// Opens the database file (again).
pub(super) type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

/// The open database, replaced when the store recovers from an I/O failure.
pub(super) struct Handle {
    open: Opener,
    db: RwLock<Option<Arc<Database>>>,
    failure: Mutex<Option<Failure>>,
    /// Who waits for the writer (a count for [`Writers::give_way`], kept
    /// across reopens).
    pub(super) writers: Writers,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Failure {
    disk_full: bool,
    cause: String,
    last_attempt: Instant,
}

impl Failure {
    fn error(&self) -> StoreError {
        StoreError::Unavailable {
            disk_full: self.disk_full,
            cause: self.cause.clone(),
        }
    }
}

impl Handle {
    pub(super) fn open(open: Opener) -> Result<Handle, StoreError> {
        let db = open()?;
        Ok(Handle {
            open,
            db: RwLock::new(Some(Arc::new(db))),
            failure: Mutex::new(None),
            writers: Writers::default(),
        })
    }

    /// The database, or [`StoreError::Unavailable`] while a failure lasts
    /// (trying to recover first if the last attempt is old enough).
    pub(super) fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.recover_if_due()?;
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| self.current_error())
    }

    /// Passes `result` through; an I/O error marks the store unavailable
    /// and comes back as [`StoreError::Unavailable`].
    pub(super) fn check<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let Err(StoreError::Storage(e)) = &result else {
            return result;
        };
        let Some(disk_full) = io_failure(e) else {
            return result;
        };
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_none() {
            error!(error = %e, disk_full, "store write failed; refusing writes until it can be reopened");
            *failure = Some(Failure {
                disk_full,
                cause: e.to_string(),
                last_attempt: Instant::now(),
            });
        } else if let Some(f) = failure.as_mut() {
            // Keep the first cause: a later PreviousIo says less.
            f.disk_full |= disk_full;
        }
        Err(failure.as_ref().map_or_else(
            || StoreError::Unavailable {
                disk_full,
                cause: e.to_string(),
            },
            Failure::error,
        ))
    }

    fn current_error(&self) -> StoreError {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(StoreError::Closed, Failure::error)
    }

    fn recover_if_due(&self) -> Result<(), StoreError> {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(f) = failure.as_mut() else {
            return Ok(());
        };
        if f.last_attempt.elapsed() < RECOVERY_INTERVAL {
            return Err(f.error());
        }
        f.last_attempt = Instant::now();
        // Close the failed database first: the file lock is released only
        // when it (and any transaction still using it) is gone.
        let old = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(old);
        match (self.open)()
            .map_err(StoreError::from)
            .and_then(|db| probe(&db, &self.writers).map(|()| db))
        {
            Ok(db) => {
                *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
                info!("store reopened after a write failure; writes resume");
                *failure = None;
                Ok(())
            }
            Err(e) => {
                if let StoreError::Storage(inner) = &e {
                    f.disk_full |= io_failure(inner).unwrap_or(false);
                }
                warn!(error = %e, "store still unavailable");
                Err(f.error())
            }
        }
    }
}

/// One small durable write: proves the file takes writes again.
fn probe(db: &Database, writers: &Writers) -> Result<(), StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (txn, timed) = writers.begin(db, Op::Probe)?;
    txn.open_table(META)?.insert(META_PROBE, now)?;
    timed.commit(txn)?;
    Ok(())
}

/// `Some(disk_full)` if `e` is an I/O failure (which redb latches), else `None`.
fn io_failure(e: &redb::Error) -> Option<bool> {
    match e {
        redb::Error::Io(io) => Some(is_disk_full(io)),
        redb::Error::PreviousIo | redb::Error::DatabaseClosed => Some(false),
        _ => None,
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
