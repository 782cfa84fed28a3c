//! Ingest: a verified platform event is stored before it is acknowledged.
//! One statement records its dedupe key and queues it as a job; a repeat
//! (a Slack retry, the same event reaching another replica) finds the key
//! taken and is acknowledged without effect — the key's unique index makes
//! a concurrent copy wait for the first insert to commit, so only one is
//! queued. A job for this process's worker starts at once; other
//! processes' workers find their jobs by polling.

use pincer_adapters::ChannelEvent;

use crate::app::{App, Metrics};
use crate::store::{StoreError, jobs, routing};

/// Whether an event was queued or was a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored and queued.
    Queued,
    /// Seen before; nothing done.
    Duplicate,
}

/// Stores and queues one event. When this returns `Ok`, the event survives
/// a crash and may be acknowledged. A job this process's worker took at
/// ingest is started in a task of its own.
pub async fn enqueue(app: &App, ev: ChannelEvent) -> Result<Ingested, StoreError> {
    let (ingested, taken) = store(app, ev).await?;
    if let (Some(local), Some((job, slot))) = (app.handoff.local.get(), taken) {
        local.run(job, slot);
    }
    Ok(ingested)
}

/// Stores and queues one event as [`enqueue`] does, tells `stored` the
/// outcome (the event may be acknowledged once it is `Ok`), then — if this
/// process's worker took the job — runs it here: for a caller that gives
/// the ingest a task of its own anyway (so that a client hanging up cannot
/// cut it short), one task per event instead of two, and no hand-over of
/// the job to another thread while the acknowledgement is written.
pub async fn enqueue_then_run(
    app: std::sync::Arc<App>,
    ev: ChannelEvent,
    stored: tokio::sync::oneshot::Sender<Result<Ingested, StoreError>>,
) {
    let taken = match store(&app, ev).await {
        Ok((ingested, taken)) => {
            // (A caller that has gone away still gets its job run.)
            let _ = stored.send(Ok(ingested));
            taken
        }
        Err(error) => {
            let _ = stored.send(Err(error));
            return;
        }
    };
    if let (Some(local), Some((job, slot))) = (app.handoff.local.get(), taken) {
        // (On the heap: the task's future stays small while it is spawned
        // and stored.)
        Box::pin(local.run_here(job, slot)).await;
    }
}

/// A job taken at ingest by this process's worker, with its slot.
type Taken = Option<(jobs::Job, tokio::sync::OwnedSemaphorePermit)>;

async fn store(app: &App, ev: ChannelEvent) -> Result<(Ingested, Taken), StoreError> {
    let pool = &app.store.pool;
    // With a free slot in the local worker, queue the job claimed by it and
    // run it at once; otherwise queue it for any worker to claim.
    let slot = app.handoff.local.get().and_then(|local| local.slot());
    let queued = match slot {
        Some(slot) => {
            // Stored, claimed, and what routing needs to know read (with,
            // for an ask, its thread's conversation and memory), in one
            // statement (the router reads again if the event turns out bound
            // to another agent once its channel's name is known).
            let worker = &app.handoff.worker;
            let bound = ev.channel_refs().iter().find_map(|c| app.config.agent_for(c));
            let agent = bound.map(|a| a.name.as_str());
            // An ask's memory is searched here too, so its answer can
            // start as soon as it is routed.
            let search = crate::router::prefetch_for(app, &ev, bound);
            let stored = routing::enqueue_with_facts(pool, &ev, worker, crate::worker::LEASE, agent, search).await?;
            // The worker gets the event as parsed here; the stored payload
            // is read back only by a worker that claims the job.
            stored.map(|(id, facts)| {
                let job = jobs::Job {
                    id,
                    kind: "event".into(),
                    payload: serde_json::Value::Null,
                    attempts: 1,
                    side_effects_at: None,
                    facts: Some(facts),
                    event: Some(Box::new(ev)),
                };
                (id, Some((job, slot)))
            })
        }
        None => {
            let id = jobs::enqueue_event(pool, ev.platform().as_str(), &ev.dedupe_key, &ev).await?;
            app.wake.jobs.notify_one();
            id.map(|id| (id, None))
        }
    };
    match queued {
        Some((_, taken)) => Ok((Ingested::Queued, taken)),
        None => {
            Metrics::inc(&app.metrics.duplicates);
            Ok((Ingested::Duplicate, None))
        }
    }
}
