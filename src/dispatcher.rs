//! The dispatcher: delivers the outbox.
//!
//! Per channel, one public reply at a time and in order, and one private
//! reply per person at a time, in order (the claim takes only the oldest
//! open row of each; private replies neither wait for public ones nor hold
//! them back; an answer stored when nothing waits in its
//! channel claims itself and is delivered by its own worker — two replies
//! to different threads of one channel stored at the same instant can then
//! both go, as two claims racing on rows not yet committed could before;
//! a thread's replies are always in order), paced by a token bucket (Slack allows about
//! one message a second per channel, with short bursts). A 429 holds that
//! channel's queue for `Retry-After` — in Postgres, so every replica holds
//! it — without stalling other channels, and is not counted among the
//! reply's attempts. Transient failures are retried
//! with exponential backoff and jitter; permanent ones, and transient ones
//! past [`MAX_ATTEMPTS`], are dead-lettered with an audit row and listed by
//! `/admin outbox`. So is a row whose reply this version cannot read (one
//! another version wrote): it does not fail the claim of the rows with it.
//!
//! Deliveries are recorded in batches by a [`Recorder`] (one statement for
//! all the replies delivered within [`RECORD_WINDOW`] of each other, one at
//! once when deliveries are sparse). A row whose delivery was never recorded
//! — the process died first — stays `sending`; when its lease runs out it is
//! claimed again as `maybe_sent`, and so is a row whose attempt failed in a
//! way that does not say whether the platform took it. Before such a row is
//! sent, the platform is asked whether the reply is already there (Slack:
//! by the outbox id in the message's metadata), so it is not posted twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_adapters::Reply;
use pincer_adapters::delivery::{Delivered, DeliveryError, OutboundMessage};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{App, Metrics};
use crate::store::StoreError;
use crate::store::audit::{self, AuditEntry};
use crate::store::outbox::{self, Delivery, OutboxRow, StoredReply};

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
/// Deliveries are recorded at most once per this window: the first after a
/// quiet spell at once, later ones together at the end of the window.
pub const RECORD_WINDOW: Duration = Duration::from_millis(50);

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

async fn send(app: &App, row: &OutboxRow, reply: &Reply) -> Result<Delivered, DeliveryError> {
    let msg = OutboundMessage {
        id: row.id,
        tenant: &row.tenant,
        channel: &row.channel,
        thread: row.thread.as_deref(),
        response_url: row.response_url.as_deref(),
        recipient: row.recipient.as_deref(),
        reply,
        update: row.progress_ts.as_deref(),
        is_progress: row.is_progress,
        maybe_sent: row.maybe_sent,
        stored_at: row.created_at,
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
        // (Rolled back here, the connection stays in the pool.)
        tx.rollback().await?;
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

/// The bucket a row is paced by: its channel's, for a public reply; for a
/// private one, its recipient's in that channel (an ephemeral or
/// `response_url` reply is not one of the channel's messages).
fn pacing_key(row: &OutboxRow) -> String {
    match &row.recipient {
        None => format!("{}:{}:{}", row.platform, row.tenant, row.channel),
        Some(to) => format!("{}:{}:{}:to:{to}", row.platform, row.tenant, row.channel),
    }
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
    let reply = match &row.reply {
        StoredReply::Read(reply) => reply,
        // Nothing is sent: a replica of the version that wrote it may
        // claim it meanwhile, and an earlier attempt's chance stands.
        StoredReply::Unreadable(e) => {
            let error = format!("this version of Pincer cannot read the stored reply: {e}");
            return failed(app, &row, &error, row.maybe_sent).await.map(|()| true);
        }
    };
    match send(app, &row, reply).await {
        Ok(d) => {
            Metrics::inc(&app.metrics.delivered);
            let done = Delivery { id: row.id, attempts: row.attempts, platform_ts: d.message_id };
            return match app.handoff.recorder.get() {
                // The recorder wakes the dispatcher when it has recorded.
                Some(recorder) => recorder.record(&app.store.pool, done, row.is_progress).await.map(|()| false),
                None => outbox::delivered(&app.store.pool, &[done]).await,
            };
        }
        Err(DeliveryError::RateLimited(wait)) => {
            Metrics::inc(&app.metrics.rate_limited);
            tracing::info!(outbox_id = row.id, channel = %row.channel, ?wait, "rate limited; holding the channel");
            outbox::hold_channel(&app.store.pool, &row.platform, &row.tenant, &row.channel, wait).await?;
            // Refused: this attempt posted nothing (an earlier one still may
            // have), and it does not count against the reply's attempts.
            outbox::rate_limited(&app.store.pool, row.id, row.attempts, wait, row.maybe_sent).await?;
        }
        // A timeout or a 5xx does not say whether the platform took it.
        Err(DeliveryError::Transient(e)) => failed(app, &row, &e, true).await?,
        Err(DeliveryError::Permanent(e)) => dead_letter(app, &row, &e).await?,
    }
    Ok(true)
}

/// An attempt that may succeed later: tried again with backoff and
/// jitter, and dead-lettered (audited, listed by `/admin outbox`) after
/// [`MAX_ATTEMPTS`] claims. `maybe_sent`: whether the platform may have
/// taken the reply all the same.
async fn failed(app: &App, row: &OutboxRow, error: &str, maybe_sent: bool) -> Result<(), StoreError> {
    if row.attempts < MAX_ATTEMPTS {
        let wait = backoff(row.attempts);
        tracing::info!(outbox_id = row.id, attempts = row.attempts, ?wait, error, "delivery failed; will retry");
        outbox::retry(&app.store.pool, row.id, row.attempts, wait, error, maybe_sent).await
    } else {
        dead_letter(app, row, &format!("gave up after {} attempts: {error}", row.attempts)).await
    }
}

/// Records deliveries in batches: a delivery handed to it is recorded with
/// the others handed over within [`RECORD_WINDOW`] (at once after a quiet
/// spell), in one statement, and the dispatcher is woken if a later reply
/// waits in one of their channels. Handing a delivery over takes a lock and
/// a push; only the first of a batch wakes the recorder. Once the recorder
/// has stopped, deliveries are recorded one by one by whoever delivered them.
///
/// Until recorded, a delivered row is still `sending` in the table, which
/// would hold its channel's next reply back; the recorder tells claims
/// which rows are delivered already ([`Recorder::settled`]), so they do not
/// wait for the record. A "working on it…" placeholder is not listed: the
/// answer that replaces it needs its recorded message id.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<RecorderInner>);

#[derive(Debug, Default)]
struct RecorderInner {
    /// The next batch, and whether the recorder has stopped taking them.
    pending: Mutex<(Vec<Delivery>, bool)>,
    settled: Mutex<std::collections::HashSet<i64>>,
    wake: tokio::sync::Notify,
}

impl Recorder {
    /// A recorder and the loop that writes what it is given, to run until
    /// `shutdown` flips to true.
    pub fn new(app: Arc<App>, shutdown: watch::Receiver<bool>) -> (Recorder, impl Future<Output = ()>) {
        let inner = Arc::new(RecorderInner::default());
        (Recorder(inner.clone()), record_loop(app, inner, shutdown))
    }

    /// Records `done` (a placeholder if `is_progress`): in the next batch,
    /// or at once if the recorder has stopped.
    pub async fn record(&self, pool: &crate::store::Pool, done: Delivery, is_progress: bool) -> Result<(), StoreError> {
        let id = done.id;
        if !is_progress && let Ok(mut settled) = self.0.settled.lock() {
            settled.insert(id);
        }
        let handed = match self.0.pending.lock() {
            Ok(mut pending) if !pending.1 => {
                pending.0.push(done);
                Ok(pending.0.len() == 1)
            }
            _ => Err(done),
        };
        match handed {
            Ok(first) => {
                if first {
                    self.0.wake.notify_one();
                }
                Ok(())
            }
            Err(done) => {
                let recorded = outbox::delivered(pool, &[done]).await.map(|_| ());
                self.0.forget(&[id]);
                recorded
            }
        }
    }

    /// Replies delivered by this process whose delivery is not recorded yet
    /// (placeholders aside).
    pub fn settled(&self) -> Vec<i64> {
        self.0.settled.lock().map(|s| s.iter().copied().collect()).unwrap_or_default()
    }
}

/// The rows this process has delivered whose delivery is not recorded yet
/// (none without a recorder): what a claim may pass over in a channel.
pub fn settled(app: &App) -> Vec<i64> {
    app.handoff.recorder.get().map(Recorder::settled).unwrap_or_default()
}

impl RecorderInner {
    fn forget(&self, ids: &[i64]) {
        if let Ok(mut settled) = self.settled.lock() {
            for id in ids {
                settled.remove(id);
            }
        }
    }

    /// Takes the batch; with `stop`, no more are taken after it.
    fn take(&self, stop: bool) -> Vec<Delivery> {
        match self.pending.lock() {
            Ok(mut pending) => {
                pending.1 |= stop;
                std::mem::take(&mut pending.0)
            }
            Err(_) => Vec::new(),
        }
    }
}

async fn record_loop(app: Arc<App>, inner: Arc<RecorderInner>, mut shutdown: watch::Receiver<bool>) {
    let mut last = Instant::now().checked_sub(RECORD_WINDOW).unwrap_or_else(Instant::now);
    let stopping = |rx: &watch::Receiver<bool>| *rx.borrow();
    while !stopping(&shutdown) {
        tokio::select! {
            _ = inner.wake.notified() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        }
        // The first delivery after a quiet spell is recorded at once; under
        // load, what is handed over within the window goes in the same
        // statement (stopping cuts the wait short).
        let due = tokio::time::Instant::from_std(last + RECORD_WINDOW);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = shutdown.changed() => {}
        }
        flush(&app, &inner, inner.take(false)).await;
        last = Instant::now();
    }
    // Stopping: what is handed over is recorded now; later deliveries record
    // themselves.
    flush(&app, &inner, inner.take(true)).await;
}

async fn flush(app: &App, inner: &RecorderInner, batch: Vec<Delivery>) {
    if batch.is_empty() {
        return;
    }
    let outcome = outbox::delivered(&app.store.pool, &batch).await;
    if let Err(error) = &outcome {
        tracing::error!(%error, replies = batch.len(), "could not record deliveries; they are looked for before any resend");
    }
    // Recorded, or left `sending` for their leases to run out: either way no
    // longer this process's to vouch for.
    let ids: Vec<i64> = batch.iter().map(|d| d.id).collect();
    inner.forget(&ids);
    delivered_then_wake(app, outcome);
}

/// Delivers the outbox until `shutdown` flips to true.
pub async fn run(app: Arc<App>, pacer: Arc<Pacer>, mut shutdown: watch::Receiver<bool>) {
    if app.handoff.pacer.set(pacer.clone()).is_err() {
        tracing::warn!("a dispatcher already runs in this process");
    }
    let (recorder, recording) = Recorder::new(app.clone(), shutdown.clone());
    let recording = tokio::spawn(recording);
    if app.handoff.recorder.set(recorder).is_err() {
        tracing::warn!("a delivery recorder already runs in this process");
    }
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let room = BATCH - running.len() as i64;
        let claimed = if room > 0 {
            outbox::claim(&app.store.pool, LEASE, room, &settled(&app)).await.unwrap_or_else(|error| {
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
    let _ = recording.await;
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
