//! How the store opens its redb file: the size of redb's page cache.
//!
//! redb keeps the pages it reads and writes in a cache of its own, 1 GiB
//! unless told otherwise; it fills with the data written, so a process
//! that writes steadily grows towards that size. The store opens the file
//! with a bounded cache instead ([`StoreOptions::cache_bytes`]).

use std::path::PathBuf;

use redb::Database;

use super::health::Opener;

/// How [`Store::open_with_options`](super::Store::open_with_options) opens the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of redb's page cache (read cache and write buffer together).
    /// Smaller costs reads from the OS page cache once the working set no
    /// longer fits; it bounds the process's memory, not correctness.
    pub cache_bytes: usize,
}

impl StoreOptions {
    /// The default cache: 256 MiB, the smallest size measured that kept
    /// ingest at ≥ 100 k records/s up to 10 M records (64 and 128 MiB fell
    /// below it past 8 M; docs/BENCHMARKS.md, issue 18 targets 1 and 5).
    pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: StoreOptions::DEFAULT_CACHE_BYTES,
        }
    }
}

/// Opens (creating if absent) the file at `path` with `options`, on every call.
pub(super) fn opener(path: PathBuf, options: StoreOptions) -> Opener {
    Box::new(move || {
        Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
    })
}
