//! Ingest: a verified platform event is stored before it is acknowledged.
//! One transaction records its dedupe key and queues it as a job; a repeat
//! (a Slack retry, the same event reaching another replica) finds the key
//! taken and is acknowledged without effect — the key's row lock makes a
//! concurrent copy wait for the first transaction, so only one is queued.

use pincer_adapters::ChannelEvent;

use crate::app::{App, Metrics};
use crate::store::jobs::{self, JobKind};
use crate::store::{StoreError, events};

/// Whether an event was queued or was a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored and queued.
    Queued,
    /// Seen before; nothing done.
    Duplicate,
}

/// Stores and queues one event. When this returns `Ok`, the event survives
/// a crash and may be acknowledged.
pub async fn enqueue(app: &App, ev: &ChannelEvent) -> Result<Ingested, StoreError> {
    let mut tx = app.store.pool.begin().await?;
    if !events::record(&mut tx, ev.platform().as_str(), &ev.dedupe_key).await? {
        tx.rollback().await?;
        Metrics::inc(&app.metrics.duplicates);
        return Ok(Ingested::Duplicate);
    }
    let payload = serde_json::to_value(ev).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    jobs::enqueue(&mut tx, JobKind::Event, &payload).await?;
    jobs::notify(&mut tx).await?;
    tx.commit().await?;
    app.wake.jobs.notify_one();
    Ok(Ingested::Queued)
}
