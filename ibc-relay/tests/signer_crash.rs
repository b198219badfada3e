//! The signer killed with SIGKILL at random moments while it signs: across
//! restarts no sequence is ever released with two different sign bytes, and
//! the store holds exactly what was released.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::secp256k1::SecretKey;
use ibc_relay::Signer;

fn key() -> SecretKey {
    SecretKey::from_slice(&[7; 32]).expect("valid key")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signing process the parent kills: signs run-specific data at every
/// next sequence and prints each proof as soon as the signer releases it.
#[test]
#[ignore = "run only as the child of kill_9_never_makes_the_signer_equivocate"]
fn child_signer() {
    let path = std::env::var("BTCTS_SIGNER_STORE").expect("set by the parent");
    let run = std::env::var("BTCTS_SIGNER_RUN").expect("set by the parent");
    let signer = Signer::open(path.as_ref(), key(), "btcts", 1).expect("opens");
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let data = format!("run {run} packet {i}");
        let ts = signer.state().expect("state").timestamp + 1;
        let s = signer
            .sign(
                b"commitments/ports/btcts/channels/channel-0/sequences/1",
                data.as_bytes(),
                ts,
            )
            .expect("signs");
        writeln!(
            out,
            "{} {} {}",
            s.sequence,
            hex(&s.sign_bytes),
            hex(&s.signature)
        )
        .expect("stdout");
        out.flush().expect("stdout");
    }
}

/// `sequence sign_bytes signature` as the child prints it, whole.
fn signature_line(line: &str) -> Option<(u64, &str, &str)> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [seq, bytes, sig] = parts.as_slice() else {
        return None;
    };
    let seq = seq.parse::<u64>().ok()?;
    (!bytes.is_empty() && sig.len() == 128).then_some((seq, *bytes, *sig))
}

#[test]
fn kill_9_never_makes_the_signer_equivocate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("signer.redb");
    let mut released: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut seed = u64::from(std::process::id());
    for run in 0..6 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let life = Duration::from_millis(5 + (seed >> 33) % 200);
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "child_signer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BTCTS_SIGNER_STORE", &store)
            .env("BTCTS_SIGNER_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Start the clock once the child signs (process start-up varies),
        // then kill it at a random moment of its signing.
        let mut lines = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the child signs");
            // libtest's own "running 1 test" has three words too.
            let first = signature_line(&line).is_some();
            lines.push(line);
            if first {
                break;
            }
        }
        let started = Instant::now();
        while started.elapsed() < life {
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        reader.join().expect("reader");
        lines.extend(rx.try_iter());
        let mut this_run = 0;
        for line in lines {
            // Skipped: a line cut by the kill, or test-harness output.
            let Some((seq, bytes, sig)) = signature_line(&line) else {
                continue;
            };
            this_run += 1;
            let entry = (bytes.to_string(), sig.to_string());
            if let Some(before) = released.insert(seq, entry.clone()) {
                assert_eq!(
                    before, entry,
                    "sequence {seq} released with different bytes"
                );
            }
        }
        assert!(this_run > 0, "run {run} released nothing");
    }
    assert!(
        released.len() >= 6,
        "only {} signatures in six runs",
        released.len()
    );
    // The store agrees with everything that left the process.
    let signer = Signer::open(&store, key(), "btcts", 1).expect("reopens");
    for (seq, (bytes, sig)) in &released {
        let stored = signer.signed(*seq).expect("reads").expect("stored");
        assert_eq!(
            (&hex(&stored.sign_bytes), &hex(&stored.signature)),
            (bytes, sig)
        );
        // And it will not sign anything else there.
        assert!(signer.sign_at(*seq, b"p", b"other", u64::MAX).is_err());
    }
}
