//! The feed loop against the fake chain and btcts: batching, every-N, the
//! start height, resuming from the cursor, a crash between the POST and the
//! cursor write, conflicts, backoff (with paused Tokio time) and which
//! errors stop the feeder.

use std::path::Path;
use std::time::Duration;

use aggregator::PosBlockHash;

use super::*;
use crate::config::Options;
use crate::fake::{fake_block, FakeBtcts, FakeChain};

const CHAIN: &str = "chain-a";

fn config(dir: &Path, edit: impl FnOnce(&mut Options)) -> Config {
    let mut o = Options {
        chain_id: CHAIN.into(),
        state_dir: Some(dir.to_owned()),
        ..Options::default()
    };
    edit(&mut o);
    o.validate().expect("valid options")
}

fn posted(step: Step) -> Posted {
    match step {
        Step::Posted(p) => p,
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// Steps until caught up; returns the batches.
async fn drain<S: BlockSource, K: Sink>(f: &mut Feeder<S, K>) -> Vec<Posted> {
    let mut out = Vec::new();
    loop {
        match f.step().await.expect("step") {
            Step::Posted(p) => out.push(p),
            Step::CaughtUp { .. } => return out,
        }
    }
}

fn ranges(batches: &[Posted]) -> Vec<(Height, Height)> {
    batches.iter().map(|p| (p.from, p.to)).collect()
}

#[tokio::test]
async fn posts_every_block_in_height_order_in_batches_up_to_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, btcts) = (FakeChain::new(CHAIN, 2500), FakeBtcts::new(1000));
    let mut f = Feeder::new(chain.clone(), btcts.clone(), config(dir.path(), |_| {}));
    let batches = drain(&mut f).await;
    assert_eq!(ranges(&batches), [(1, 1000), (1001, 2000), (2001, 2500)]);
    assert!(batches
        .iter()
        .all(|p| p.duplicates == 0 && p.conflicts.is_empty()));
    assert_eq!(batches.iter().map(|p| p.new).sum::<usize>(), 2500);
    assert_eq!(
        batches[0].tip - batches[0].to,
        1500,
        "lag after the first batch"
    );
    for (_, heights) in btcts.requests() {
        assert!(heights.windows(2).all(|w| w[1] == w[0] + 1), "in order");
    }
    let stored = btcts.stored(CHAIN);
    assert_eq!(stored.len(), 2500);
    assert!(stored
        .iter()
        .all(|(h, v)| v == &[fake_block(*h).block_hash]));
    // New blocks: only those are posted.
    chain.set_tip(2503);
    assert_eq!(ranges(&drain(&mut f).await), [(2501, 2503)]);
    assert_eq!(
        f.step().await.expect("step"),
        Step::CaughtUp {
            cursor: Some(2503),
            tip: 2503
        }
    );
}

#[tokio::test]
async fn every_n_and_the_start_height_select_the_heights() {
    // (every, from, tip, heights posted)
    let cases: [(u64, Start, Height, Vec<Height>); 5] = [
        (10, Start::Height(1), 95, (1..=9).map(|i| i * 10).collect()),
        (10, Start::Height(25), 61, vec![30, 40, 50, 60]),
        (1, Start::Height(7), 9, vec![7, 8, 9]),
        (1, Start::Latest, 50, vec![50, 51, 52]),
        (4, Start::Latest, 50, vec![52]),
    ];
    for (every, from, tip, want) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let (chain, btcts) = (FakeChain::new(CHAIN, tip), FakeBtcts::new(3));
        let cfg = config(dir.path(), |o| {
            o.every = every;
            o.from = Some(from);
            o.batch = 3;
        });
        let mut f = Feeder::new(chain.clone(), btcts.clone(), cfg);
        drain(&mut f).await;
        if from == Start::Latest {
            chain.set_tip(tip + 2);
            drain(&mut f).await;
        }
        let got: Vec<Height> = btcts.stored(CHAIN).into_keys().collect();
        assert_eq!(got, want, "every {every} from {from:?} tip {tip}");
        assert!(btcts.requests().iter().all(|(_, h)| h.len() <= 3));
    }
}

#[tokio::test]
async fn a_restart_resumes_after_the_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, btcts) = (FakeChain::new(CHAIN, 30), FakeBtcts::new(1000));
    let cfg = config(dir.path(), |o| o.batch = 7);
    drain(&mut Feeder::new(chain.clone(), btcts.clone(), cfg.clone())).await;
    chain.set_tip(40);
    // A new process (and a --from it must now ignore).
    let cfg = Config {
        start: Start::Height(1),
        ..cfg
    };
    let batches = drain(&mut Feeder::new(chain, btcts.clone(), cfg)).await;
    assert_eq!(ranges(&batches), [(31, 37), (38, 40)]);
    assert_eq!(batches.iter().map(|p| p.duplicates).sum::<usize>(), 0);
    assert_eq!(btcts.requests().len(), 5 + 2, "nothing before 31 re-posted");
}

#[tokio::test]
async fn a_crash_between_post_and_cursor_write_reposts_as_duplicates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, btcts) = (FakeChain::new(CHAIN, 20), FakeBtcts::new(1000));
    let cfg = config(dir.path(), |o| o.batch = 10);
    let mut f = Feeder::new(chain.clone(), btcts.clone(), cfg.clone());
    assert_eq!(posted(f.step().await.expect("step")).to, 10);
    let before = std::fs::read(&cfg.cursor_file).expect("cursor");
    assert_eq!(posted(f.step().await.expect("step")).to, 20);
    // The process dies after btcts stored 11..=20 but before the cursor
    // file was replaced: on disk it still says 10.
    drop(f);
    std::fs::write(&cfg.cursor_file, before).expect("rewind");
    chain.set_tip(25);
    let batches = drain(&mut Feeder::new(chain, btcts.clone(), cfg)).await;
    assert_eq!(ranges(&batches), [(11, 20), (21, 25)]);
    assert_eq!((batches[0].new, batches[0].duplicates), (0, 10));
    assert_eq!((batches[1].new, batches[1].duplicates), (5, 0));
    let stored = btcts.stored(CHAIN);
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=25).collect::<Vec<_>>()
    );
    assert!(
        stored.values().all(|v| v.len() == 1),
        "each height stored once"
    );
}

#[tokio::test]
async fn conflicts_are_reported_and_feeding_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, btcts) = (FakeChain::new(CHAIN, 8), FakeBtcts::new(1000));
    btcts.insert(CHAIN, 5, PosBlockHash([0xee; 32]));
    let batches = drain(&mut Feeder::new(
        chain,
        btcts.clone(),
        config(dir.path(), |_| {}),
    ))
    .await;
    assert_eq!(ranges(&batches), [(1, 8)]);
    assert_eq!(batches[0].conflicts, [5]);
    assert_eq!(
        batches[0].new, 8,
        "our hash at 5 is stored beside the other"
    );
    assert_eq!(btcts.stored(CHAIN)[&5].len(), 2);
}

fn gaps(times: &[tokio::time::Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn waits_as_retry_after_says_then_backs_off_exponentially() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, btcts) = (FakeChain::new(CHAIN, 5), FakeBtcts::new(1000));
    btcts.fail_next([
        SinkError::Busy {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        },
        SinkError::Busy {
            status: 503,
            retry_after: Some(Duration::from_secs(2)),
        },
        SinkError::Unreachable("connection refused".into()),
        SinkError::Unreachable("connection refused".into()),
        SinkError::Busy {
            status: 503,
            retry_after: None,
        },
    ]);
    let cfg = config(dir.path(), |o| o.poll = Duration::from_secs(3600));
    let f = Feeder::new(chain, btcts.clone(), cfg);
    let done = tokio::time::sleep(Duration::from_secs(60));
    f.run(done).await.expect("runs until shutdown");
    let requests = btcts.requests();
    assert_eq!(requests.len(), 6, "five failures, then accepted");
    let ms = Duration::from_millis;
    assert_eq!(
        gaps(&requests.iter().map(|r| r.0).collect::<Vec<_>>()),
        [ms(7000), ms(2000), ms(500), ms(1000), ms(2000)]
    );
    assert_eq!(btcts.stored(CHAIN).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn chain_down_backs_off_up_to_the_cap_and_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, btcts) = (FakeChain::new(CHAIN, 3), FakeBtcts::new(1000));
    chain.fail_next((0..6).map(|_| SourceError::Unavailable("connection refused".into())));
    let cfg = config(dir.path(), |o| {
        o.max_backoff = Duration::from_secs(4);
        o.poll = Duration::from_secs(3600);
    });
    let f = Feeder::new(chain.clone(), btcts.clone(), cfg);
    f.run(tokio::time::sleep(Duration::from_secs(120)))
        .await
        .expect("runs");
    let calls = chain.tip_calls();
    let s = Duration::from_millis;
    assert_eq!(
        gaps(&calls[..7]),
        [s(500), s(1000), s(2000), s(4000), s(4000), s(4000)]
    );
    assert_eq!(btcts.stored(CHAIN).len(), 3, "fed once the chain is back");
}

/// Name, chain id the node reports, chain failure, btcts failure, expected text.
type StopCase = (
    &'static str,
    &'static str,
    Option<SourceError>,
    Option<SinkError>,
    &'static str,
);

#[tokio::test(start_paused = true)]
async fn permanent_errors_stop_the_feeder_with_the_reason() {
    let rejected = |status: u16, code: &str| SinkError::Rejected {
        status,
        code: code.into(),
        message: "refused".into(),
    };
    // (name, chain id the node reports, chain failure, btcts failure, text)
    let cases: [StopCase; 5] = [
        (
            "wrong token",
            CHAIN,
            None,
            Some(rejected(401, "unauthorized")),
            "token",
        ),
        (
            "unknown chain",
            CHAIN,
            None,
            Some(rejected(404, "unknown_chain")),
            "[auth.chains]",
        ),
        (
            "batch too big",
            CHAIN,
            None,
            Some(rejected(413, "too_many_records")),
            "--batch",
        ),
        (
            "pruned",
            CHAIN,
            Some(SourceError::Protocol("height 1 is not available".into())),
            None,
            "not available",
        ),
        (
            "other chain",
            "chain-b",
            None,
            None,
            "serves chain \"chain-b\"",
        ),
    ];
    for (name, node_chain, source_err, sink_err, text) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let (chain, btcts) = (FakeChain::new(node_chain, 5), FakeBtcts::new(1000));
        chain.fail_next(source_err);
        btcts.fail_next(sink_err);
        let f = Feeder::new(chain, btcts.clone(), config(dir.path(), |_| {}));
        let err = f.run(std::future::pending()).await.expect_err("stops");
        assert!(!err.is_transient(), "{name}");
        assert!(err.to_string().contains(text), "{name}: {err}");
        assert!(btcts.requests().len() <= 1, "{name}: not retried");
        assert!(
            !dir.path().join("chain-a.cursor").exists(),
            "{name}: cursor not moved"
        );
    }
}

#[test]
fn selects_heights_and_backs_off() {
    assert_eq!(selected(1, 5, 1, 10), [1, 2, 3, 4, 5]);
    assert_eq!(selected(6, 5, 1, 10), Vec::<Height>::new());
    assert_eq!(
        selected(0, 3, 1, 10),
        [1, 2, 3],
        "height 0 is never a block"
    );
    assert_eq!(selected(11, 40, 10, 2), [20, 30]);
    assert_eq!(
        selected(u64::MAX - 1, u64::MAX, 1, 5),
        [u64::MAX - 1, u64::MAX]
    );
    let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
    let d: Vec<u64> = (0..4).map(|_| b.delay(None).as_millis() as u64).collect();
    assert_eq!(d, [500, 1000, 2000, 2000]);
    assert_eq!(
        b.delay(Some(Duration::from_secs(9))),
        Duration::from_secs(9)
    );
    b.reset();
    assert_eq!(b.delay(None), Duration::from_millis(500));
}
