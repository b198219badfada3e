//! Durable ingest throughput as the store grows: 64 concurrent callers
//! submitting 1000-record requests through the group-commit writer, printing
//! records/s for every window of `window` records (default 1M), then the
//! store's bytes on disk per record and the process's RSS (with the store
//! still open, at the end of the load, and its peak). `cache_mb` is
//! redb's page cache (default: the store's default). See docs/BENCHMARKS.md.
//!
//! `cargo run --release -p aggregator --example ingest_load -- [total] [per_request] [callers] [window] [cache_mb]`

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aggregator::clock::SystemClock;
use aggregator::{
    ChainId, Ingestor, PosBlock, PosBlockHash, Record, StakerSetDigest, Store, StoreOptions,
};

fn record(i: u64) -> Record {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&i.to_le_bytes());
    hash[8..16].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    Record::PosBlock(PosBlock {
        chain_id: ChainId::new(format!("chain-{}", i % 16)).expect("valid"),
        height: i / 16,
        block_hash: PosBlockHash(hash),
        staker_set_digest: StakerSetDigest([0x5a; 32]),
    })
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(2_048_000);
    let per_request = args.get(1).copied().unwrap_or(1000);
    let callers = args.get(2).copied().unwrap_or(64);
    let window = args.get(3).copied().unwrap_or(1_000_000).max(1);
    let options = args
        .get(4)
        .map_or(StoreOptions::default(), |mb| StoreOptions {
            cache_bytes: usize::try_from(mb << 20).expect("cache fits in memory"),
        });
    println!("page cache: {} MiB", options.cache_bytes >> 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("load.redb");
    let store = Store::open_with_options(&file, Arc::new(SystemClock), options).expect("store");
    let (ingestor, writer) = Ingestor::start(store).expect("writer");
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (ingestor, next, done) = (ingestor.clone(), next.clone(), done.clone());
                tokio::spawn(async move {
                    loop {
                        let first = next.fetch_add(per_request, Ordering::Relaxed);
                        if first >= total {
                            break;
                        }
                        let records = (first..first + per_request).map(record).collect();
                        ingestor.submit(records).await.expect("acknowledged");
                        done.fetch_add(per_request, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let reporter = tokio::spawn({
            let done = done.clone();
            async move {
                let (mut last_n, mut last_t) = (0u64, Instant::now());
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let n = done.load(Ordering::Relaxed);
                    if n / window > last_n / window || n >= total {
                        let rate = (n - last_n) as f64 / last_t.elapsed().as_secs_f64();
                        println!("{last_n:>9} – {n:>9} records stored  {rate:>9.0} records/s");
                        (last_n, last_t) = (n, Instant::now());
                    }
                    if n >= total {
                        break;
                    }
                }
            }
        });
        for t in tasks {
            t.await.expect("caller");
        }
        reporter.await.expect("reporter");
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "total: {total} records in {secs:.2} s = {:.0} records/s",
        total as f64 / secs
    );
    // With the store still open: what the process holds at this size.
    let rss = proc_status_bytes("VmRSS:");
    drop(ingestor);
    writer.join();
    let reopen = Instant::now();
    let store = Store::open_with_options(&file, Arc::new(SystemClock), options).expect("reopens");
    println!(
        "reopened in {:.2} s ({} records)",
        reopen.elapsed().as_secs_f64(),
        store.record_count().expect("count")
    );
    drop(store);
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "store file: {:.1} MB, {:.0} bytes per record; RSS at the end of the load {:.1} MB (peak {:.1} MB)",
        bytes as f64 / 1e6,
        bytes as f64 / total.max(1) as f64,
        rss as f64 / 1e6,
        proc_status_bytes("VmHWM:") as f64 / 1e6
    );
}

/// A `/proc/self/status` field in bytes (`VmRSS:` the resident set,
/// `VmHWM:` its peak), 0 where /proc is absent.
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
