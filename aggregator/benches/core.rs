//! Core benchmarks (`cargo bench -p aggregator`); results and targets in
//! `docs/BENCHMARKS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::clock::SystemClock;
use aggregator::leaf::leaf_hash;
use aggregator::{
    ChainId, Ingestor, MerkleTree, PosBlock, PosBlockHash, Record, StakerSetDigest, Store,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

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

fn leaf_hashing(c: &mut Criterion) {
    let r = record(42);
    c.bench_function("leaf_hash", |b| {
        b.iter(|| leaf_hash(std::hint::black_box(&r)))
    });
}

fn tree_building(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_build");
    g.sample_size(10);
    for n in [1_000u64, 100_000, 1_000_000] {
        let records: Vec<Record> = (0..n).map(record).collect();
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &records, |b, records| {
            b.iter(|| {
                let leaves: Vec<_> = records.iter().map(leaf_hash).collect();
                MerkleTree::from_leaves(&leaves)
            })
        });
    }
    g.finish();
}

/// A store holding one sealed batch of 1M records (built once, on first use,
/// so that filtering this benchmark out also skips building it).
struct StoredBatch {
    _dir: tempfile::TempDir,
    store: Store,
    batch: aggregator::BatchInfo,
    ids: Vec<aggregator::LeafHash>,
}

fn stored_batch(n: u64) -> StoredBatch {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("bench.redb"), Arc::new(SystemClock)).expect("store");
    for start in (0..n).step_by(100_000) {
        let records: Vec<_> = (start..(start + 100_000).min(n))
            .map(record)
            .map(|r| (leaf_hash(&r), r))
            .collect();
        store.submit(&records).expect("stored");
    }
    let batch = store.seal_batch(n).expect("sealed").expect("pending");
    let ids = [0u64, 1, 4_097, 500_000, n - 1]
        .iter()
        .map(|&i| leaf_hash(&record(i)))
        .collect();
    StoredBatch {
        _dir: dir,
        store,
        batch,
        ids,
    }
}

fn proof_extraction(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let data = std::cell::OnceCell::new();
    let mut g = c.benchmark_group("proof_from_stored_1m_batch");
    let mut i = 0u64;
    g.bench_function("merkle_path", |b| {
        let d = data.get_or_init(|| stored_batch(N));
        b.iter(|| {
            i = (i + 7_919) % N;
            d.store
                .merkle_path(d.batch.seq, d.batch.size, i)
                .expect("path")
        })
    });
    let mut k = 0usize;
    g.bench_function("proof_document_by_id", |b| {
        let d = data.get_or_init(|| stored_batch(N));
        b.iter(|| {
            k = (k + 1) % d.ids.len();
            d.store.proof(&d.ids[k]).expect("proof")
        })
    });
    g.finish();
}

/// 64 callers each with one request in flight at a time; one iteration is
/// one request from every caller (64 requests). Every sample starts from an
/// empty store, so the figure is the throughput of filling a fresh store to
/// a few hundred thousand records; `examples/ingest_load.rs` shows how it
/// declines as the store grows (docs/BENCHMARKS.md).
fn durable_ingest(c: &mut Criterion) {
    const CALLERS: u64 = 64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("durable_ingest_64_callers");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for per_request in [1u64, 100, 1000] {
        g.throughput(Throughput::Elements(CALLERS * per_request));
        g.bench_function(BenchmarkId::new("records_per_request", per_request), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open(dir.path().join("bench.redb"), Arc::new(SystemClock))
                    .expect("store");
                let (ingestor, writer) = Ingestor::start(store).expect("writer");
                let requests: Vec<Vec<Record>> = (0..iters * CALLERS)
                    .map(|r| {
                        (r * per_request..(r + 1) * per_request)
                            .map(record)
                            .collect()
                    })
                    .collect();
                let elapsed = rt.block_on(run_callers(&ingestor, requests, CALLERS as usize));
                drop(ingestor);
                writer.join();
                elapsed
            })
        });
    }
    g.finish();
}

/// Submits `requests` through `callers` concurrent tasks; returns the wall time.
async fn run_callers(ingestor: &Ingestor, requests: Vec<Vec<Record>>, callers: usize) -> Duration {
    let per_caller = requests.len().div_ceil(callers).max(1);
    let mut shares: Vec<Vec<Vec<Record>>> = Vec::new();
    let mut rest = requests;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().saturating_sub(per_caller));
        shares.push(tail);
    }
    let start = Instant::now();
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let ingestor = ingestor.clone();
            tokio::spawn(async move {
                for records in share {
                    ingestor.submit(records).await.expect("acknowledged");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("caller");
    }
    start.elapsed()
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group!(name = benches; config = config(); targets = leaf_hashing, tree_building, proof_extraction, durable_ingest);
criterion_main!(benches);
