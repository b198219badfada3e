//! Free loopback ports for the programs a test starts (nodes, chains, the
//! service itself).
//!
//! A port taken from the kernel with `bind(:0)` comes from its ephemeral
//! range, the same range `connect()` draws source ports from, and is given
//! back before the child binds it. In that window any outgoing connection on
//! the machine (the many RPC calls a test makes while a chain starts) can
//! take it as its source port and the child's bind then fails; or a
//! connection to the not-yet-bound port can connect to itself (TCP
//! simultaneous open on loopback) and answer in its place. Ports here come
//! from below that range, where the kernel never picks one on its own, and
//! one process never hands the same port out twice.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};

/// The lowest port handed out.
const LOW: u16 = 20_000;

/// The first port of the kernel's ephemeral range, or 32768 (Linux's
/// default) where it cannot be read.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The next candidate's offset into `LOW..ephemeral_low()`: starts at a
/// point drawn from the process id and the clock, so processes running side
/// by side start far apart, then walks on.
fn cursor() -> &'static AtomicU32 {
    static CURSOR: OnceLock<AtomicU32> = OnceLock::new();
    CURSOR.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        AtomicU32::new(std::process::id().wrapping_mul(7_919) ^ nanos)
    })
}

/// `n` distinct loopback ports that were free a moment ago (each bound and
/// held until all are known), below the kernel's ephemeral range and not
/// handed out before by this process.
///
/// On a machine whose ephemeral range leaves fewer than 1,000 ports above
/// 20000 below it, the kernel picks (`bind(:0)`), as before.
pub fn loopback_ports(n: usize) -> Result<Vec<u16>> {
    let high = ephemeral_low();
    let mut held = Vec::with_capacity(n);
    if high < LOW + 1_000 {
        for _ in 0..n {
            held.push(TcpListener::bind("127.0.0.1:0")?);
        }
    } else {
        let span = u32::from(high - LOW);
        let mut tried = 0;
        while held.len() < n {
            if tried == span {
                bail!("no {n} free loopback ports in {LOW}..{high}");
            }
            tried += 1;
            let offset = cursor().fetch_add(1, Ordering::Relaxed) % span;
            let port = LOW + u16::try_from(offset).unwrap_or(0);
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(listener);
            }
        }
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// One free loopback port (see [`loopback_ports`]).
pub fn loopback_port() -> Result<u16> {
    Ok(loopback_ports(1)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, not two: a second test in this process moving the shared
    /// cursor or holding a port would race this one's checks.
    #[test]
    fn ports_are_distinct_bindable_below_the_ephemeral_range_and_skip_taken_ones() -> Result<()> {
        let high = ephemeral_low();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            for port in loopback_ports(3)? {
                assert!(seen.insert(port), "port {port} handed out twice");
                if high >= LOW + 1_000 {
                    assert!((LOW..high).contains(&port), "{port} outside {LOW}..{high}");
                }
                // Free again once handed out. Briefly retried: a process
                // another test forks holds a copy of every open socket
                // until it execs (they are close-on-exec), so a port
                // released during that window stays bound for a moment.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                while let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{port} not free again: {e}"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        if high < LOW + 1_000 {
            return Ok(());
        }
        // Take the next candidate, then ask: the answer is the one after.
        let (taken, next) = loop {
            let offset = cursor().load(Ordering::Relaxed) % u32::from(high - LOW);
            let port = LOW + u16::try_from(offset)?;
            let next = LOW + u16::try_from((offset + 1) % u32::from(high - LOW))?;
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) if TcpListener::bind(("127.0.0.1", next)).is_ok() => break (l, next),
                _ => {
                    cursor().fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        assert_ne!(loopback_port()?, taken.local_addr()?.port());
        assert!(seen.insert(next), "the cursor went back");
        Ok(())
    }
}
