//! The dispatcher: delivers the outbox.
//!
//! Per channel, one reply at a time and in order (the claim takes only each
//! channel's oldest open row; an answer stored when nothing waits in its
//! channel claims itself and is delivered by its own worker — two replies
//! to different threads of one channel stored at the same instant can then
//! both go, as two claims racing on rows not yet committed could before;
//! a thread's replies are always in order), paced by a token bucket (Slack allows about
//! one message a second per channel, with short bursts). A 429 holds that
//! channel's queue for `Retry-After` — in Postgres, so every replica holds
//! it — without stalling other channels. Transient failures are retried
//! with exponential backoff and jitter; permanent ones, and transient ones
//! past [`MAX_ATTEMPTS`], are dead-lettered with an audit row and listed by
//! `/admin outbox`. A row is marked delivered the moment the platform
//! accepts it; a process killed mid-delivery leaves the row `sending`, and
//! it is delivered again when its lease runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_adapters::delivery::{Delivered, DeliveryError, OutboundMessage};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{App, Metrics};
use crate::store::StoreError;
use crate::store::audit::{self, AuditEntry};
use crate::store::outbox::{self, OutboxRow};

/// How long a claimed row is held before another dispatcher may take it.
pub const LEASE: Duration = Duration::from_secs(30);
/// The longest one delivery attempt may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Transient failures before a reply is dead-lettered.
pub const MAX_ATTEMPTS: i32 = 8;
/// Rows claimed at once.
const BATCH: i64 = 64;
/// How often an idle dispatcher looks for work without being woken.
const POLL: Duration = Duration::from_millis(250);

/// Per-channel token buckets.
#[derive(Debug)]
pub struct Pacer {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Pacer {
    /// `rate_per_sec` messages a second per channel, up to `burst` at once.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        Self { rate_per_sec, burst, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key`, or says how long until one is free.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate_per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate_per_sec))
        }
    }
}

/// Backoff for deliveries: 0.5 s, 1 s, 2 s, … with ±50% jitter, capped at 5 min.
pub fn backoff(attempts: i32) -> Duration {
    crate::backoff::backoff(attempts, Duration::from_millis(500), Duration::from_secs(300))
}

async fn send(app: &App, row: &OutboxRow) -> Result<Delivered, DeliveryError> {
    let msg = OutboundMessage {
        id: row.id,
        tenant: &row.tenant,
        channel: &row.channel,
        thread: row.thread.as_deref(),
        response_url: row.response_url.as_deref(),
        recipient: row.recipient.as_deref(),
        reply: &row.reply.0,
        update: row.progress_ts.as_deref(),
    };
    let sending = async {
        match (row.platform.as_str(), &app.slack) {
            ("slack", Some(slack)) => slack.api.deliver(&msg).await,
            (platform, _) => Err(DeliveryError::Permanent(format!("no {platform} sender is configured"))),
        }
    };
    // Well inside the row's lease, so a stalled call cannot outlive it.
    tokio::time::timeout(SEND_TIMEOUT, sending)
        .await
        .unwrap_or_else(|_| Err(DeliveryError::Transient(format!("no answer within {SEND_TIMEOUT:?}"))))
}

async fn dead_letter(app: &App, row: &OutboxRow, error: &str) -> Result<(), StoreError> {
    let mut tx = app.store.pool.begin().await?;
    if !outbox::dead(&mut tx, row.id, row.attempts, error).await? {
        return Ok(());
    }
    let meta = json!({"outbox_id": row.id, "platform": row.platform, "tenant": row.tenant, "channel": row.channel, "attempts": row.attempts, "error": error});
    audit::append(&mut tx, vec![AuditEntry::new(None, "outbox.dead_letter", meta)]).await?;
    tx.commit().await?;
    Metrics::inc(&app.metrics.dead_letters);
    tracing::warn!(outbox_id = row.id, error, "reply dead-lettered");
    Ok(())
}

/// Delivers one claimed row and records the outcome. Returns whether the
/// outbox should be looked at again now: a later reply waits in the
/// channel, or this one went back to wait.
pub async fn deliver(app: &App, pacer: &Pacer, row: OutboxRow) -> Result<bool, StoreError> {
    let key = pacing_key(&row);
    loop {
        match pacer.take(&key, Instant::now()) {
            Ok(()) => break,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
    send_and_record(app, row).await
}

fn pacing_key(row: &OutboxRow) -> String {
    format!("{}:{}:{}", row.platform, row.tenant, row.channel)
}

/// Delivers a reply claimed outside the dispatcher loop (an answer that
/// claimed its own reply as it was stored) if the channel's pacing allows
/// it now; otherwise gives it back to the dispatcher, due when its turn
/// comes.
pub async fn deliver_claimed(app: &App, pacer: &Pacer, row: OutboxRow) {
    let outcome = match pacer.take(&pacing_key(&row), Instant::now()) {
        Ok(()) => send_and_record(app, row).await,
        Err(wait) => outbox::unclaim(&app.store.pool, row.id, row.attempts, wait).await.map(|()| true),
    };
    delivered_then_wake(app, outcome);
}

/// After a delivery: wakes the dispatcher if the outbox should be looked at
/// again (an error recording the outcome counts: the row's lease expires).
fn delivered_then_wake(app: &App, outcome: Result<bool, StoreError>) {
    let again = outcome.unwrap_or_else(|error| {
        tracing::error!(%error, "could not record a delivery; the row's lease will expire");
        true
    });
    if again {
        app.wake.outbox.notify_one();
    }
}

async fn send_and_record(app: &App, row: OutboxRow) -> Result<bool, StoreError> {
    match send(app, &row).await {
        Ok(d) => {
            let more = outbox::delivered(&app.store.pool, row.id, row.attempts, d.message_id.as_deref()).await?;
            Metrics::inc(&app.metrics.delivered);
            return Ok(more);
        }
        Err(DeliveryError::RateLimited(wait)) => {
            Metrics::inc(&app.metrics.rate_limited);
            tracing::info!(outbox_id = row.id, channel = %row.channel, ?wait, "rate limited; holding the channel");
            outbox::hold_channel(&app.store.pool, &row.platform, &row.tenant, &row.channel, wait).await?;
            outbox::retry(&app.store.pool, row.id, row.attempts, wait, "rate limited").await?;
        }
        Err(DeliveryError::Transient(e)) if row.attempts < MAX_ATTEMPTS => {
            let wait = backoff(row.attempts);
            tracing::info!(outbox_id = row.id, attempts = row.attempts, ?wait, error = %e, "delivery failed; will retry");
            outbox::retry(&app.store.pool, row.id, row.attempts, wait, &e).await?;
        }
        Err(DeliveryError::Transient(e)) => {
            dead_letter(app, &row, &format!("gave up after {} attempts: {e}", row.attempts)).await?
        }
        Err(DeliveryError::Permanent(e)) => dead_letter(app, &row, &e).await?,
    }
    Ok(true)
}

/// Delivers the outbox until `shutdown` flips to true.
pub async fn run(app: Arc<App>, pacer: Arc<Pacer>, mut shutdown: watch::Receiver<bool>) {
    if app.handoff.pacer.set(pacer.clone()).is_err() {
        tracing::warn!("a dispatcher already runs in this process");
    }
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let room = BATCH - running.len() as i64;
        let claimed = if room > 0 {
            outbox::claim(&app.store.pool, LEASE, room).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "could not claim replies");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        // A full batch may mean more are waiting: look again at once.
        // Otherwise wait to be woken: by a new reply, or by a delivery after
        // which its channel's next reply can go.
        let full = room > 0 && claimed.len() as i64 == room;
        for row in claimed {
            let (app, pacer) = (app.clone(), pacer.clone());
            running.spawn(async move { delivered_then_wake(&app, deliver(&app, &pacer, row).await) });
        }
        if full {
            continue;
        }
        let at_capacity = running.len() as i64 >= BATCH;
        tokio::select! {
            _ = app.wake.outbox.notified() => {}
            // With every slot taken, a finished delivery makes room to claim.
            Some(_) = running.join_next(), if at_capacity => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => break,
        }
    }
    while running.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_allows_a_burst_then_one_a_second_per_channel() {
        let p = Pacer::new(1.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(p.take("c1", t0).is_ok());
        }
        let wait = p.take("c1", t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(p.take("c2", t0).is_ok(), "other channels are not held");
        assert!(p.take("c1", t0 + Duration::from_millis(1000)).is_ok());
    }
}
