//! Webhooks: each chain with a `webhook_url` gets its events POSTed, one
//! at a time and in order, by a task of its own (docs/events.md, Webhooks).
//!
//! Delivery is at least once: the chain's cursor (the last event id its
//! receiver acknowledged) is written to the store after the delivery, never
//! before, at most a second late — a crash redelivers, it never skips.
//! A failed attempt is retried with exponential backoff; an event older
//! than `max_age` is dropped instead (counted and logged). One page of
//! events is held at a time, whatever the receiver does. Store calls run
//! on the blocking pool; nothing here waits on the anchoring loop or the
//! API, nor they on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::events::Event;
use aggregator::{Clock, Store, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{WebhookSettings, WebhookTarget};

/// Events read from the store at a time.
const PAGE: usize = 100;
/// The longest a delivered event's cursor stays unwritten.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long a caught-up task waits without news before it reads again.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// `X-Btcts-Signature` for `body` signed at Unix second `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The wait after the `failures`-th failed attempt in a row (1-based):
/// 1 s, 2 s, 4 s … never more than `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    Duration::from_secs(1).saturating_mul(factor).min(cap)
}

/// Starts one delivery task per configured webhook; each ends when `stop`
/// turns true (or its sender is dropped).
pub fn start(
    settings: &WebhookSettings,
    store: &Store,
    clock: Arc<dyn Clock>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    if settings.targets.is_empty() {
        return Ok(Vec::new());
    }
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("btcts-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(settings
        .targets
        .iter()
        .map(|target| {
            let webhook = Webhook {
                target: target.clone(),
                store: store.clone(),
                client: client.clone(),
                clock: clock.clone(),
                max_age: settings.max_age,
                max_backoff: settings.max_backoff,
                failing: false,
                cursor: Cursor::at(0),
            };
            // Only the origin is ever logged: webhook URLs often carry a
            // credential in their path or query.
            let origin = reqwest::Url::parse(&target.url)
                .map_or_else(|_| "?".to_owned(), |u| u.origin().ascii_serialization());
            info!(chain = %target.chain, origin = %origin, "webhook delivery started");
            tokio::spawn(webhook.run(stop.clone()))
        })
        .collect())
}

/// One chain's delivery.
struct Webhook {
    target: WebhookTarget,
    store: Store,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    max_backoff: Duration,
    /// In an outage (logged once when it starts and once when it ends).
    failing: bool,
    /// Where delivery stands.
    cursor: Cursor,
}

/// The last event id delivered (or dropped), and the last one saved.
struct Cursor {
    at: u64,
    saved: u64,
    saved_at: Instant,
}

impl Cursor {
    fn at(id: u64) -> Cursor {
        Cursor {
            at: id,
            saved: id,
            saved_at: Instant::now(),
        }
    }
}

/// What became of one event.
enum Fate {
    Delivered,
    Dropped,
}

/// Why an attempt failed (the `result` label).
enum Failure {
    Http(u16),
    Network(String),
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Events dropped in a row, reported in one line.
#[derive(Default)]
struct Drops {
    count: u64,
    first: u64,
    last: u64,
}

impl Drops {
    fn add(&mut self, chain: &str, id: u64) {
        metrics::counter!("btcts_webhook_dropped_total", "chain" => chain.to_owned()).increment(1);
        if self.count == 0 {
            self.first = id;
        }
        self.count += 1;
        self.last = id;
    }

    fn report(&mut self, chain: &str, max_age: Duration) {
        if self.count > 0 {
            warn!(
                chain,
                dropped = self.count,
                first = self.first,
                last = self.last,
                max_age_secs = max_age.as_secs(),
                "webhook events older than webhooks.max_age_secs dropped undelivered"
            );
            *self = Drops::default();
        }
    }
}

impl Webhook {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Corrupt(format!("store task failed: {e}")))?
    }

    /// The stored cursor (the first time: the last event id now, stored at
    /// once — a new webhook gets the events from its configuration on) and
    /// the last event id.
    async fn initial_cursor(&self) -> Result<(u64, u64), StoreError> {
        let chain = self.target.chain.clone();
        self.blocking(move |store| {
            let bounds = store.event_bounds()?;
            if let Some(c) = store.webhook_cursor(&chain)? {
                if c.saturating_add(1) < bounds.oldest {
                    warn!(chain = %chain, cursor = c, oldest = bounds.oldest,
                        "events after the webhook cursor were pruned before delivery");
                }
                return Ok((c, bounds.last));
            }
            store.set_webhook_cursor(&chain, bounds.last)?;
            info!(chain = %chain, after = bounds.last,
                "new webhook: delivering the events after the current last one");
            Ok((bounds.last, bounds.last))
        })
        .await
    }

    /// Delivers events until `stop`; the cursor is saved on the way out.
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let chain = self.target.chain.to_string();
        let mut latest = self.store.subscribe_events();
        let mut last = loop {
            match self.initial_cursor().await {
                Ok((cursor, last)) => {
                    self.cursor = Cursor::at(cursor);
                    break last;
                }
                Err(e) => warn!(chain, error = %e, "webhook cursor unreadable; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stopped(&mut stop) => return,
            }
        };
        let mut drops = Drops::default();
        'run: loop {
            last = last.max(*latest.borrow_and_update());
            self.set_backlog(last);
            let (c, after) = (self.target.chain.clone(), self.cursor.at);
            let page = match self
                .blocking(move |s| s.events_after(after, Some(&c), PAGE))
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    warn!(chain, error = %e, "webhook events unreadable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_POLL) => continue,
                        _ = stopped(&mut stop) => break,
                    }
                }
            };
            for event in &page.events {
                let fate = tokio::select! {
                    fate = self.deliver(event, &mut drops) => fate,
                    _ = stopped(&mut stop) => break 'run,
                };
                if let Fate::Delivered = fate {
                    drops.report(&chain, self.max_age);
                }
                self.cursor.at = event.id;
                if self.cursor.saved_at.elapsed() >= SAVE_EVERY {
                    self.save().await;
                }
            }
            self.cursor.at = self.cursor.at.max(page.next);
            if page.events.is_empty() {
                drops.report(&chain, self.max_age);
                last = last.max(page.next);
                self.set_backlog(last);
                self.save().await;
                tokio::select! {
                    _ = latest.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stopped(&mut stop) => break,
                }
            }
        }
        drops.report(&chain, self.max_age);
        self.save().await;
    }

    fn set_backlog(&self, last: u64) {
        metrics::gauge!("btcts_webhook_backlog", "chain" => self.target.chain.to_string())
            .set(last.saturating_sub(self.cursor.at) as f64);
    }

    /// Saves the cursor if it moved; a failure is logged and the save
    /// tried again later (until then a restart would deliver again).
    async fn save(&mut self) {
        let at = self.cursor.at;
        if at == self.cursor.saved {
            return;
        }
        let chain = self.target.chain.clone();
        match self
            .blocking(move |store| store.set_webhook_cursor(&chain, at))
            .await
        {
            Ok(()) => {
                self.cursor.saved = at;
                self.cursor.saved_at = Instant::now();
            }
            Err(e) => warn!(chain = %self.target.chain, error = %e, "webhook cursor not saved"),
        }
    }

    fn too_old(&self, event: &Event) -> bool {
        let age_ms = self.clock.now_unix_ms().saturating_sub(event.time_unix_ms);
        u128::from(age_ms) > self.max_age.as_millis()
    }

    /// Posts `event` until the receiver takes it (2xx) or it is too old.
    async fn deliver(&mut self, event: &Event, drops: &mut Drops) -> Fate {
        let chain = self.target.chain.to_string();
        let body = serde_json::to_vec(event).expect("an event always serialises to JSON");
        let mut failures = 0u32;
        loop {
            if self.too_old(event) {
                drops.add(&chain, event.id);
                return Fate::Dropped;
            }
            let outcome = self.post(event, &body).await;
            let result = match &outcome {
                Ok(()) => "ok",
                Err(Failure::Http(_)) => "http_error",
                Err(Failure::Network(_)) => "network_error",
            };
            metrics::counter!("btcts_webhook_deliveries_total", "chain" => chain.clone(), "result" => result)
                .increment(1);
            let Err(failure) = outcome else {
                self.recovered(event);
                return Fate::Delivered;
            };
            failures += 1;
            self.failed(&failure, failures, event);
            if failures == 1 {
                // What was delivered before this event stays delivered
                // through the retries (and a restart during them).
                self.save().await;
            }
            tokio::time::sleep(backoff(failures, self.max_backoff)).await;
        }
    }

    /// Logs the end of an outage, once.
    fn recovered(&mut self, event: &Event) {
        if self.failing {
            info!(chain = %self.target.chain, event = event.id, "webhook receiver takes deliveries again");
            self.failing = false;
        }
    }

    /// Logs the start of an outage, once.
    fn failed(&mut self, failure: &Failure, failures: u32, event: &Event) {
        if self.failing {
            return;
        }
        let retry_in_s = backoff(failures, self.max_backoff).as_secs();
        let chain = &self.target.chain;
        match failure {
            Failure::Http(status) => warn!(chain = %chain, event = event.id, status, retry_in_s,
                "webhook receiver refused a delivery; retrying with backoff"),
            Failure::Network(error) => {
                warn!(chain = %chain, event = event.id, error = %error, retry_in_s,
                "webhook receiver unreachable; retrying with backoff")
            }
        }
        self.failing = true;
    }

    /// One attempt.
    async fn post(&self, event: &Event, body: &[u8]) -> Result<(), Failure> {
        let t = self.clock.now_unix_ms() / 1000;
        let response = self
            .client
            .post(&self.target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Btcts-Event-Id", event.id.to_string())
            .header("X-Btcts-Event-Type", event.kind.as_str())
            .header(
                "X-Btcts-Signature",
                signature(self.target.secret.as_bytes(), t, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure::Network(btcts_feeder::causes(&e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Http(status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_documented_vector() {
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, br#"{"id":1}"#),
            "t=1700000000,v1=2f441ba4b3b2d50d28a9ab9d9fd8880376ecd1eb5d0435401553f5d8d0a5dcf8"
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        let cap = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n, cap).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(1_000, cap), cap, "no overflow after many failures");
        assert_eq!(
            backoff(3, Duration::from_secs(2)),
            Duration::from_secs(2),
            "a small cap (the tests use 2 s)"
        );
    }
}
