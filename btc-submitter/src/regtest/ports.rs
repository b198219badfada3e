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
    if high < LOW + 1_000 {
        let held = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        return held.iter().map(|l| Ok(l.local_addr()?.port())).collect();
    }
    pick(n, cursor(), LOW..high)
}

/// `n` ports from `range` that bind, walking on from `cursor`.
fn pick(n: usize, cursor: &AtomicU32, range: std::ops::Range<u16>) -> Result<Vec<u16>> {
    let span = u32::from(range.end - range.start);
    let mut held = Vec::with_capacity(n);
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        let offset = cursor.fetch_add(1, Ordering::Relaxed) % span;
        // `offset` < `span`, which came from a u16.
        let port = range.start + offset as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push((port, listener));
        }
    }
    if held.len() < n {
        bail!("no {n} free loopback ports in {range:?}");
    }
    Ok(held.into_iter().map(|(port, _)| port).collect())
}

/// One free loopback port (see [`loopback_ports`]).
pub fn loopback_port() -> Result<u16> {
    Ok(loopback_ports(1)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() -> Result<()> {
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
                let deadline = Instant::now() + Duration::from_secs(2);
                while let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
                    assert!(Instant::now() < deadline, "{port} not free again: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn taken_ports_are_skipped_and_an_exhausted_range_is_an_error() -> Result<()> {
        // Three neighbouring ports, the middle one taken and held.
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        let (taken, port) = (0..100)
            .find_map(|_| {
                let taken = TcpListener::bind("127.0.0.1:0").ok()?;
                let port = taken.local_addr().ok()?.port();
                (free(port - 1) && free(port + 1)).then_some((taken, port))
            })
            .ok_or_else(|| anyhow::anyhow!("no free port with free neighbours"))?;
        let (start, end) = (port - 1, port + 2);
        let cursor = AtomicU32::new(0);
        assert_eq!(pick(2, &cursor, start..end)?, [start, port + 1]);
        let cursor = AtomicU32::new(1);
        let err = pick(3, &cursor, start..end).expect_err("one of three is taken");
        assert!(
            err.to_string().contains("no 3 free loopback ports"),
            "{err}"
        );
        drop(taken);
        Ok(())
    }
}
