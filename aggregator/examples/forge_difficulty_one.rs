//! Grinds the difficulty-1 "mainnet" forgery of `btcts_tests::forge`
//! (the same file, included here so that a release build needs only this crate) and
//! prints the `(time, nonce)` pairs to pin in `DIFFICULTY_ONE_SOLUTIONS`.
//! About 2^32 SHA-256d per header: run it in release, on every core.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::atomic::{AtomicBool, Ordering};

use aggregator::AnchorNetwork;
use bitcoin::block::Header;
use bitcoin::consensus::serialize;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::pow::Target;
#[path = "../../tests/src/forge.rs"]
#[allow(dead_code)]
mod forge;

use forge::{forge, Forgery, DIFFICULTY_ONE};

/// Finds `(time, nonce)` for `header`, thread `t` of `n` trying times
/// `time + t`, `time + t + n`, … with every nonce.
fn solve(header: &Header, threads: u32) -> (u32, u32) {
    let found = AtomicBool::new(false);
    let target = header.target();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let found = &found;
                s.spawn(move || {
                    let mut h = *header;
                    h.time += t;
                    let bytes = serialize(&h);
                    let mut mid = sha256::Hash::engine();
                    mid.input(&bytes[..64]);
                    let mut tail = [0u8; 16];
                    tail.copy_from_slice(&bytes[64..]);
                    loop {
                        tail[4..8].copy_from_slice(&h.time.to_le_bytes());
                        for nonce in 0..=u32::MAX {
                            if nonce & 0xfffff == 0 && found.load(Ordering::Relaxed) {
                                return None;
                            }
                            tail[12..].copy_from_slice(&nonce.to_le_bytes());
                            let mut e = mid.clone();
                            e.input(&tail);
                            let once = sha256::Hash::from_engine(e);
                            let twice = sha256::Hash::hash(once.as_byte_array());
                            if Target::from_le_bytes(twice.to_byte_array()) <= target {
                                found.store(true, Ordering::Relaxed);
                                return Some((h.time, nonce));
                            }
                        }
                        h.time += threads;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("grinder thread"))
            .min()
            .expect("one thread finds a solution")
    })
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let f = Forgery {
        network: AnchorNetwork::Bitcoin,
        bits: DIFFICULTY_ONE,
        headers: 2,
        second_payload: false,
    };
    let mut solutions = Vec::new();
    let proof = forge(&f, |i, h| {
        let (time, nonce) = solve(h, threads);
        (h.time, h.nonce) = (time, nonce);
        eprintln!(
            "header {i}: time {time}, nonce {nonce}, hash {}",
            h.block_hash()
        );
        solutions.push((time, nonce));
    });
    println!("pub const DIFFICULTY_ONE_SOLUTIONS: [(u32, u32); 2] = {solutions:?};");
    println!("{}", proof.to_json());
}
