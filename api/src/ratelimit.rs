//! Who a request counts against in the rate limiter: a **verified**
//! credential (a token the configuration knows), else the client's address
//! — taken from `Forwarded`/`X-Forwarded-For` only when the connection
//! comes from a trusted proxy, and an IPv6 client by its /64. An unknown
//! bearer token is just an anonymous request: a random token per request
//! gets no fresh bucket. The keyed map is pruned and capped: past
//! [`MAX_KEYS`] addresses, new ones share one bucket.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Request};
use ipnet::IpNet;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::GovernorError;

use crate::auth::{Credentials, TokenHash};

/// Most addresses the limiter tracks at once; beyond it, after pruning,
/// new addresses share [`ClientKey::Overflow`].
pub const MAX_KEYS: usize = 100_000;

/// A rate-limit bucket.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ClientKey {
    /// A token the configuration knows (admin, read, calendar or a chain's).
    Credential([u8; 32]),
    /// An anonymous client: its IPv4 address or its IPv6 /64.
    Address(IpAddr),
    /// Every new address while the map is full.
    Overflow,
}

/// The limiter's size and pruning, once the limiter exists.
pub struct LimiterHandle {
    /// Keys held.
    pub len: Box<dyn Fn() -> usize + Send + Sync>,
    /// Drops keys whose buckets are full again (idle clients).
    pub prune: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for LimiterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterHandle")
            .field("len", &(self.len)())
            .finish()
    }
}

/// The key extractor.
#[derive(Clone)]
pub struct ClientKeys {
    known: Arc<HashSet<[u8; 32]>>,
    trusted_proxies: Arc<Vec<IpNet>>,
    limiter: Arc<OnceLock<LimiterHandle>>,
    last_prune: Arc<AtomicU64>,
    max_keys: usize,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("known", &self.known.len())
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

impl ClientKeys {
    /// Keys for `credentials`, trusting forwarding headers from `trusted_proxies`.
    pub fn new(credentials: &Credentials, trusted_proxies: Vec<IpNet>) -> ClientKeys {
        let known = credentials
            .admin
            .iter()
            .chain(credentials.read.iter())
            .chain(credentials.calendar.iter())
            .chain(credentials.chains.values().flatten())
            .map(|t| t.0)
            .collect();
        ClientKeys {
            known: Arc::new(known),
            trusted_proxies: Arc::new(trusted_proxies),
            limiter: Arc::default(),
            last_prune: Arc::default(),
            max_keys: MAX_KEYS,
        }
    }

    /// The same, with another cap (tests).
    pub fn with_max_keys(mut self, max_keys: usize) -> ClientKeys {
        self.max_keys = max_keys;
        self
    }

    /// Hands the extractor its limiter (after the limiter is built from it).
    pub fn attach(&self, handle: LimiterHandle) {
        let _ = self.limiter.set(handle);
    }

    /// The key of a request with `headers` from `peer`.
    pub fn key(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> ClientKey {
        if let Ok(Some(TokenHash(token))) = crate::auth::bearer(headers) {
            if self.known.contains(&token) {
                return ClientKey::Credential(token);
            }
        }
        let Some(peer) = peer else {
            return ClientKey::Overflow;
        };
        let client = client_address(headers, peer, &self.trusted_proxies);
        if let Some(limiter) = self.limiter.get() {
            if (limiter.len)() >= self.max_keys {
                self.prune_at_most_once_a_second(limiter);
                if (limiter.len)() >= self.max_keys {
                    return ClientKey::Overflow;
                }
            }
        }
        ClientKey::Address(bucket_of(client))
    }

    fn prune_at_most_once_a_second(&self, limiter: &LimiterHandle) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_prune.swap(now, Ordering::Relaxed) != now {
            (limiter.prune)();
        }
    }
}

impl KeyExtractor for ClientKeys {
    type Key = ClientKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(self.key(req.headers(), peer))
    }
}

/// The bucket of an address: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by
/// its /64 (one subscriber's prefix).
pub fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: the connection's peer, unless the peer is a
/// trusted proxy; then the forwarding chain is walked from the right
/// (`Forwarded` if present, else `X-Forwarded-For`), skipping trusted
/// proxies, and the first other hop is the client. A hop that cannot be
/// read stops the walk at the last address known.
pub fn client_address(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The hops of `Forwarded` (its `for=` values), else of `X-Forwarded-For`,
/// left to right; `None` for a hop that is not an address (`unknown`,
/// obfuscated identifiers, garbage).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .collect()
    };
    let forwarded = all("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    all("x-forwarded-for")
        .iter()
        .map(|hop| parse_node(hop))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn creds(chain_token: &str) -> Credentials {
        let mut chains = std::collections::BTreeMap::new();
        chains.insert(
            aggregator::ChainId::new("chain-0").expect("chain id"),
            vec![TokenHash::of(chain_token)],
        );
        Credentials {
            chains,
            ..Credentials::default()
        }
    }

    #[test]
    fn only_known_tokens_get_their_own_bucket() {
        let keys = ClientKeys::new(&creds("good"), Vec::new());
        let peer = Some(ip("198.51.100.7"));
        let good = keys.key(&headers(&[("authorization", "Bearer good")]), peer);
        assert_eq!(good, ClientKey::Credential(TokenHash::of("good").0));
        for random in ["a", "b", "not-a-token", "Bearer"] {
            let h = headers(&[("authorization", &format!("Bearer {random}"))]);
            assert_eq!(
                keys.key(&h, peer),
                ClientKey::Address(ip("198.51.100.7")),
                "{random}"
            );
        }
        assert_eq!(
            keys.key(&HeaderMap::new(), peer),
            ClientKey::Address(ip("198.51.100.7"))
        );
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.2.3")]);
        // From the proxy: the first untrusted hop from the right.
        assert_eq!(
            client_address(&xff, ip("10.0.0.1"), &proxies),
            ip("203.0.113.9")
        );
        // From anyone else: the header is the client's own claim.
        assert_eq!(
            client_address(&xff, ip("192.0.2.1"), &proxies),
            ip("192.0.2.1")
        );
        // A spoofed leftmost entry is not believed past an untrusted hop.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            client_address(&spoofed, ip("10.0.0.1"), &proxies),
            ip("203.0.113.9")
        );
        // RFC 7239, quoted IPv6 with a port; it wins over X-Forwarded-For.
        let fwd = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(
            client_address(&fwd, ip("10.0.0.1"), &proxies),
            ip("2001:db8:cafe::17")
        );
        // An unreadable hop stops the walk at the proxy.
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_address(&unknown, ip("10.0.0.1"), &proxies),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_million_random_tokens_make_one_key_and_addresses_are_capped() {
        let keys = ClientKeys::new(&creds("good"), Vec::new()).with_max_keys(100);
        let peer = Some(ip("198.51.100.7"));
        let mut distinct = HashSet::new();
        for i in 0..1_000_000u32 {
            let h = headers(&[("authorization", &format!("Bearer t{i}"))]);
            distinct.insert(keys.key(&h, peer));
        }
        assert_eq!(distinct.len(), 1, "limiter memory stays flat");

        // A stand-in limiter: the keys it holds; pruning forgets none (every
        // client is busy), so past the cap new addresses share Overflow.
        let held = Arc::new(std::sync::Mutex::new(HashSet::new()));
        let (len, pruned) = (held.clone(), Arc::new(AtomicU64::new(0)));
        let prunes = pruned.clone();
        keys.attach(LimiterHandle {
            len: Box::new(move || len.lock().map_or(0, |h| h.len())),
            prune: Box::new(move || {
                prunes.fetch_add(1, Ordering::Relaxed);
            }),
        });
        for i in 0..1_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let key = keys.key(&HeaderMap::new(), Some(addr));
            held.lock().expect("lock").insert(key);
        }
        let held = held.lock().expect("lock");
        assert_eq!(
            held.len(),
            101,
            "100 addresses and the shared overflow bucket"
        );
        assert!(held.contains(&ClientKey::Overflow));
        assert!(
            pruned.load(Ordering::Relaxed) >= 1,
            "a full map is pruned first"
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            bucket_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(bucket_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(bucket_of(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
