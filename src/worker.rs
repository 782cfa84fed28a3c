//! The worker: takes jobs off the queue — platform events to route, asks to
//! answer — and runs them; a thread's asks in the order they were asked,
//! different threads side by side. Any number of workers in any number of processes
//! share the queue; each job is held under a lease, and a job whose worker
//! died is taken over when the lease runs out — by another process, never
//! by the one still running it. A job that keeps failing (a payload this
//! version cannot read among the failures) is given up after
//! [`MAX_ATTEMPTS`], audited, and the person told.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_adapters::delivery::DeliveryError;
use pincer_adapters::{ChannelEvent, Platform, Reply, conversation_thread};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::app::App;
use crate::handlers::ask::{self, AnswerJob};
use crate::messages;
use crate::router::{QueuedOutcome, Router, outbound};
use crate::store::audit::{self, AuditEntry};
use crate::store::jobs::{self, Job};
use crate::store::{StoreError, outbox};

/// How long a claimed job is held before another worker may take it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Tries before a job is given up.
pub const MAX_ATTEMPTS: i32 = 5;
/// How long an ask that has waited `waited` for the earlier ask in its
/// thread waits before looking again: a tenth of that, from 200 ms (an
/// answer being written) to 2 s (a run paused for an approval, which may
/// take minutes: each look re-reads the routing facts). When the earlier
/// ask ends in this process, [`Turns`] wakes it at once; when it ends in
/// another, the cap is what a follow-up can lose.
fn thread_wait(waited: Duration) -> Duration {
    (waited / 10).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// A conversation as the routing facts' `earlier_in_thread` check keys it:
/// the tenant, the channel as a job's payload writes it, and the
/// conversation's thread (the thread, or `user:` and the sender outside
/// one).
type ThreadKey = (String, String, String);

/// Asks this process deferred behind an earlier ask of their conversation,
/// by conversation. When a job of that conversation ends here, they are
/// made due at once instead of at their next look ([`thread_wait`]).
#[derive(Debug, Default)]
pub struct Turns {
    /// How many asks wait: a job's end looks no further when none do.
    waiting: AtomicUsize,
    by_thread: Mutex<HashMap<ThreadKey, Vec<(i64, Instant)>>>,
}

impl Turns {
    /// How long an ask is remembered as waiting: one whose earlier ask ends
    /// in another process is never taken here, and is forgotten after this.
    const KEEP: Duration = Duration::from_secs(600);

    /// Remembers that job `id` waits for the end of an earlier ask of `key`.
    fn wait(&self, key: ThreadKey, id: i64) {
        let Ok(mut by_thread) = self.by_thread.lock() else { return };
        let now = Instant::now();
        by_thread.retain(|_, ids| {
            ids.retain(|(_, at)| now.duration_since(*at) < Self::KEEP);
            !ids.is_empty()
        });
        let ids = by_thread.entry(key).or_default();
        if !ids.iter().any(|(waiting, _)| *waiting == id) {
            ids.push((id, now));
        }
        self.waiting.store(by_thread.values().map(Vec::len).sum(), Ordering::Relaxed);
    }

    /// Whether no ask waits (most of the time: then a job's end costs nothing).
    fn none(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) == 0
    }

    /// Forgets job `id` (it runs again: if it waits after this, for Slack
    /// or after a failure, no other job's end may cut that wait short).
    fn forget(&self, id: i64) {
        if self.none() {
            return;
        }
        let Ok(mut by_thread) = self.by_thread.lock() else { return };
        by_thread.retain(|_, ids| {
            ids.retain(|(waiting, _)| *waiting != id);
            !ids.is_empty()
        });
        self.waiting.store(by_thread.values().map(Vec::len).sum(), Ordering::Relaxed);
    }

    /// The asks waiting for `key`, forgotten as they are returned.
    fn take(&self, key: &ThreadKey) -> Vec<i64> {
        let Ok(mut by_thread) = self.by_thread.lock() else { return Vec::new() };
        let ids = by_thread.remove(key).unwrap_or_default();
        self.waiting.store(by_thread.values().map(Vec::len).sum(), Ordering::Relaxed);
        ids.into_iter().map(|(id, _)| id).collect()
    }
}

/// The conversation a job belongs to: its event's, read from the payload
/// as the routing facts read it (`payload->'event'` for an answer job, the
/// payload itself for an event job not yet parsed).
fn thread_key(job: &Job) -> Option<ThreadKey> {
    if let Some(ev) = &job.event {
        return Some(event_thread_key(ev));
    }
    let e = job.payload.get("event").unwrap_or(&job.payload);
    let thread = conversation_thread(e["thread"].as_str(), e["sender"]["platform_user_id"].as_str()?);
    Some((e["tenant"].as_str()?.to_string(), e["channel"].as_str()?.to_string(), thread.into_owned()))
}

/// An event's conversation, as [`thread_key`] reads it.
fn event_thread_key(ev: &ChannelEvent) -> ThreadKey {
    (ev.tenant.clone(), ev.channel.to_string(), ev.conversation_thread().into_owned())
}

/// After `job` has ended: the asks of this process waiting for the end of
/// an earlier ask of its conversation are made due now, and the worker
/// woken to take them. (Any of them with another ask still before it
/// looks, and waits again.)
async fn wake_turns(app: &App, job: &Job) {
    if app.wake.turns.none() {
        return;
    }
    let Some(key) = thread_key(job) else { return };
    let ids = app.wake.turns.take(&key);
    if ids.is_empty() {
        return;
    }
    match jobs::due_now(&app.store.pool, &ids).await {
        Ok(_) => app.wake.jobs.notify_one(),
        Err(error) => {
            tracing::warn!(%error, "could not wake the asks waiting in a thread; they look again on their own")
        }
    }
}

/// Jobs claimed at once by one worker, and jobs it runs at once.
pub const BATCH: i64 = 32;
/// How often an idle worker looks for work without being woken.
const POLL: Duration = Duration::from_millis(500);

/// Why a job failed this time.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the job's payload is unreadable: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("slack lookup failed: {0}")]
    Slack(#[from] DeliveryError),
}

/// Fills in what the adapter could not know at ingest without a network
/// call: the sender's e-mail and the channel's name (Slack, cached).
async fn enrich(app: &App, ev: &mut ChannelEvent) -> Result<(), JobError> {
    if ev.platform() != Platform::Slack {
        return Ok(());
    }
    let Some(slack) = &app.slack else { return Ok(()) };
    if ev.channel_name.is_none() && binds_by_name(app) {
        ev.channel_name = slack.api.channel_name(&ev.channel.channel).await?;
    }
    // People talking in a channel no agent answers in are not told
    // anything (the router only audits it): who they are is not needed,
    // and Slack being slow to say must not turn their chat into an error.
    if ev.is_chatter() && ev.channel_refs().iter().all(|c| app.config.agent_for(c).is_none()) {
        return Ok(());
    }
    if ev.sender.verified_email.is_none() {
        let email = slack.api.user_email(&ev.sender.platform_user_id, &ev.tenant).await?;
        ev.sender.verified_email = email.and_then(|e| pincer_commands::Email::parse(&e).ok());
        // (Over HTTP another app's mention is dropped by its `bot_id`; Socket
        // Mode's events do not carry it.)
        ev.sender.is_bot =
            ev.sender.verified_email.is_none() && slack.api.is_bot(&ev.sender.platform_user_id, &ev.tenant);
    }
    Ok(())
}

fn binds_by_name(app: &App) -> bool {
    app.config
        .agents
        .values()
        .flat_map(|a| &a.channels)
        .any(|c| c.platform == Platform::Slack && c.channel.starts_with('#'))
}

/// What [`enrich`] would fill in that the caches already know, without a
/// call to Slack: at ingest, so the event's agent is known when it is stored.
pub(crate) fn enrich_from_cache(app: &App, ev: &mut ChannelEvent) {
    let Some(slack) = app.slack.as_ref().filter(|_| ev.platform() == Platform::Slack) else { return };
    if ev.channel_name.is_none()
        && binds_by_name(app)
        && let Some(name) = slack.api.cached_channel_name(&ev.channel.channel)
    {
        ev.channel_name = name;
    }
}

/// How a job's run went, when it did not fail.
enum Ran {
    /// It has done its part (or paused for a person's decision).
    Ended,
    /// It waits for an earlier ask of its conversation.
    WaitsItsTurn,
}

async fn run_job(app: &App, router: &Router, job: &mut Job, me: &str) -> Result<Ran, JobError> {
    match job.kind.as_str() {
        "event" => {
            // Handed over at ingest as parsed, or read from the payload.
            let ev: &mut ChannelEvent = match &mut job.event {
                Some(ev) => ev,
                slot @ None => slot.insert(Box::new(serde::Deserialize::deserialize(&job.payload)?)),
            };
            enrich(app, ev).await?;
            match router.handle_queued(ev, job.id, me, job.facts.take()).await? {
                QueuedOutcome::Later => {
                    // An earlier ask in this thread is still being answered.
                    let waited = (chrono::Utc::now() - ev.received_at).to_std().unwrap_or_default();
                    jobs::defer(&app.store.pool, job.id, me, thread_wait(waited)).await?;
                    app.wake.turns.wait(event_thread_key(ev), job.id);
                    return Ok(Ran::WaitsItsTurn);
                }
                QueuedOutcome::Routed(Some(routed)) => {
                    let (answer_id, answer) = *routed;
                    let _runs = runs(app, answer_id);
                    // The answer job is ours already: run it now (the router
                    // has just checked the agent and the asker). A failure
                    // here leaves it to be retried when its lease runs out.
                    if let Err(error) = ask::answer_routed(app, answer, answer_id, me).await {
                        tracing::warn!(job = answer_id, %error, "answer failed; it will be retried");
                        let _ = jobs::release(&app.store.pool, answer_id, me, Duration::from_millis(500)).await;
                    }
                }
                QueuedOutcome::Routed(None) => {}
                // Nothing written yet: answered now, and written with the answer.
                QueuedOutcome::Deferred(ask) => ask::answer_deferred(app, *ask, me).await?,
            }
        }
        _ => {
            let answer: AnswerJob = serde::Deserialize::deserialize(&job.payload)?;
            if job.side_effects_at.is_some() {
                // An earlier run died after a tool with side effects started:
                // running again could repeat them. A person decides.
                interrupted(app, job, answer, me).await?;
            } else {
                ask::answer_queued(app, answer, job.id, me).await?;
            }
        }
    }
    Ok(Ran::Ended)
}

/// Ends a run that was interrupted after a tool with side effects started:
/// completes the job, audits it for a human to look at, and tells the asker.
pub(crate) async fn interrupted(app: &App, job: &Job, answer: AnswerJob, me: &str) -> Result<(), StoreError> {
    let mut tx = app.store.pool.begin().await?;
    if !jobs::complete(&mut tx, job.id, me).await? {
        tx.rollback().await?;
        return Err(StoreError::LeaseLost(job.id));
    }
    let reply = Reply::error(messages::interrupted_after_side_effects());
    let mut row = outbound(&answer.event, &reply, false, answer.progress_id, Duration::ZERO);
    if answer.progress_id.is_some() {
        row.recipient = None;
    }
    outbox::insert(&mut tx, &row).await?;
    let meta = json!({"job": job.id, "agent": answer.ask.agent, "question": answer.ask.question.chars().take(500).collect::<String>(),
        "side_effects_at": job.side_effects_at});
    audit::append(&mut tx, vec![AuditEntry::new(Some(&answer.ask.user_email), "run.interrupted", meta)]).await?;
    tx.commit().await?;
    app.wake.outbox.notify_one();
    Ok(())
}

/// Gives a job up: completes it, audits why, and tells the person.
async fn give_up(app: &App, job: &Job, me: &str, error: &JobError) -> Result<(), StoreError> {
    let mut tx = app.store.pool.begin().await?;
    if !jobs::complete(&mut tx, job.id, me).await? {
        // (Rolled back here, the connection stays in the pool.)
        tx.rollback().await?;
        return Ok(());
    }
    let (event, placeholder): (Option<ChannelEvent>, Option<i64>) = match job.kind.as_str() {
        "event" => match &job.event {
            Some(ev) => (Some((**ev).clone()), None),
            None => (serde::Deserialize::deserialize(&job.payload).ok(), None),
        },
        _ => match serde_json::from_value::<AnswerJob>(job.payload.clone()) {
            Ok(a) => (Some(a.event), a.progress_id),
            Err(_) => (None, None),
        },
    };
    if let Some(ev) = &event {
        let reply = Reply::error(messages::internal_error(&ev.id));
        let mut row = outbound(ev, &reply, false, placeholder, Duration::ZERO);
        if placeholder.is_some() {
            // "Working on it…" is public: the failure replaces it there.
            row.recipient = None;
        }
        outbox::insert(&mut tx, &row).await?;
        outbox::notify(&mut tx).await?;
    }
    let meta = json!({"job": job.id, "kind": job.kind, "attempts": job.attempts, "error": error.to_string()});
    audit::append(&mut tx, vec![AuditEntry::new(None, "job.failed", meta)]).await?;
    tx.commit().await?;
    app.wake.outbox.notify_one();
    Ok(())
}

async fn process(app: Arc<App>, router: Router, mut job: Job, me: Arc<str>) {
    app.wake.turns.forget(job.id);
    // Claimed too often already (its runs kept dying or losing the lease):
    // stop, and tell the person.
    if job.attempts > MAX_ATTEMPTS {
        let error = JobError::Store(StoreError::Corrupt(format!("abandoned after {} claims", job.attempts)));
        match give_up(&app, &job, &me, &error).await {
            Ok(()) => wake_turns(&app, &job).await,
            Err(e) => tracing::error!(job = job.id, error = %e, "could not give the job up"),
        }
        return;
    }
    let error = match run_job(&app, &router, &mut job, &me).await {
        Ok(Ran::Ended) => return wake_turns(&app, &job).await,
        Ok(Ran::WaitsItsTurn) => return,
        Err(error) => error,
    };
    if matches!(error, JobError::Store(StoreError::LeaseLost(_))) {
        tracing::warn!(job = job.id, "lease lost; another worker has the job");
        return;
    }
    if let JobError::Slack(DeliveryError::RateLimited(wait)) = error {
        // Slack asked for a pause (a burst of new senders to look up): wait
        // as long as it said, without counting it as a failed try.
        tracing::info!(job = job.id, ?wait, "Slack rate-limited a lookup; the job waits");
        if let Err(e) = jobs::defer(&app.store.pool, job.id, &me, wait.max(Duration::from_secs(1))).await {
            tracing::error!(job = job.id, error = %e, "could not put the job back; its lease will expire");
        }
        return;
    }
    tracing::warn!(job = job.id, attempts = job.attempts, %error, "job failed");
    // (A payload this version cannot read is tried again too: during a
    // rolling upgrade, a replica of the version that wrote it may take it.)
    let result = if job.attempts >= MAX_ATTEMPTS {
        let given_up = give_up(&app, &job, &me, &error).await;
        if given_up.is_ok() {
            wake_turns(&app, &job).await;
        }
        given_up
    } else {
        let backoff = Duration::from_millis(200 * 2u64.pow(job.attempts.clamp(0, 8) as u32));
        jobs::release(&app.store.pool, job.id, &me, backoff).await
    };
    if let Err(e) = result {
        tracing::error!(job = job.id, error = %e, "could not record the job's failure; its lease will expire");
    }
}

/// This process's worker, as ingest sees it: [`BATCH`] slots, one per job
/// running; a job handed over with a free slot runs at once in a task of
/// its own, with no queue or task in between. (It holds the app weakly:
/// the app holds it.)
#[derive(Debug, Clone)]
pub struct Local {
    slots: Arc<Semaphore>,
    app: std::sync::Weak<App>,
    me: Arc<str>,
    running: Running,
}

/// The jobs this process is running. A run can outlast its lease (the
/// model slow, the pool busy); the job is then claimable again — by
/// another process, whose claim fences this run's writes off, but not by
/// this one, whose worker id the run's writes carry too: two runs of one
/// job in one process would both pass every check.
#[derive(Debug, Clone, Default)]
struct Running(Arc<Mutex<std::collections::HashSet<i64>>>);

/// A job's place in [`Running`], taken back when the run ends.
pub(crate) struct Runs(Running, i64);

/// Counts job `id` among those this process runs until the result is
/// dropped: for an answer job a run writes and goes on running (the
/// event's job already counts). `None` without a worker in this process.
pub(crate) fn runs(app: &App, id: i64) -> Option<Runs> {
    app.handoff.local.get().map(|l| l.running.start(id))
}

impl Running {
    fn start(&self, id: i64) -> Runs {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        Runs(self.clone(), id)
    }

    fn ids(&self) -> Vec<i64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

impl Local {
    /// A free slot, if there is one.
    pub fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Runs `job` (claimed by this worker) in `slot`. (An app being torn
    /// down runs nothing; the job's lease runs out.)
    pub fn run(&self, job: Job, slot: OwnedSemaphorePermit) {
        let Some(app) = self.app.upgrade() else { return };
        let (router, me) = (Router::new(app.clone()), self.me.clone());
        let runs = self.running.start(job.id);
        // (The job's future on the heap: the task's own stays small.)
        let job = Box::pin(process(app, router, job, me));
        tokio::spawn(async move {
            job.await;
            drop((runs, slot));
        });
    }

    /// Runs `job` (claimed by this worker) in `slot`, in the caller's task.
    pub async fn run_here(&self, job: Job, slot: OwnedSemaphorePermit) {
        let Some(app) = self.app.upgrade() else { return };
        let router = Router::new(app.clone());
        let runs = self.running.start(job.id);
        process(app, router, job, self.me.clone()).await;
        drop((runs, slot));
    }
}

/// Works the queue until `shutdown` flips to true, then waits for the jobs
/// it is running.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(BATCH as usize));
    let local = Local { slots, app: Arc::downgrade(&app), me: app.handoff.worker.clone(), running: Running::default() };
    if app.handoff.local.set(local.clone()).is_err() {
        tracing::warn!("a worker already runs in this process; this one only polls");
    }
    let mut poll = true;
    // All slots taken when the queue was to be looked at: look once one frees.
    let mut full = false;
    loop {
        if poll {
            let room = local.slots.available_permits();
            match local.slots.clone().try_acquire_many_owned(room as u32) {
                Ok(mut slots) if room > 0 => {
                    let running = local.running.ids();
                    let claimed = jobs::claim(&app.store.pool, &local.me, LEASE, room as i64, &running)
                        .await
                        .unwrap_or_else(|error| {
                            tracing::warn!(%error, "could not claim jobs");
                            Vec::new()
                        });
                    // A full batch may mean more are waiting: look again at once.
                    poll = claimed.len() == room;
                    for job in claimed {
                        match slots.split(1) {
                            Some(slot) => local.run(job, slot),
                            // (Claimed no more than there were slots for.)
                            None => break,
                        }
                    }
                    drop(slots);
                    if poll {
                        continue;
                    }
                }
                _ => full = true,
            }
        }
        tokio::select! {
            _ = app.wake.jobs.notified() => poll = true,
            _ = tokio::time::sleep(POLL) => poll = true,
            freed = local.slots.acquire(), if full => {
                drop(freed);
                (full, poll) = (false, true);
            }
            _ = shutdown.changed() => break,
        }
    }
    // Every slot back: every job running here has ended (and none is
    // handed over any more).
    if let Ok(all) = local.slots.acquire_many(BATCH as u32).await {
        all.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_waiting_behind_its_thread_looks_again_less_often_the_longer_it_waits() {
        assert_eq!(thread_wait(Duration::ZERO), Duration::from_millis(200));
        assert_eq!(thread_wait(Duration::from_secs(1)), Duration::from_millis(200));
        assert_eq!(thread_wait(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(thread_wait(Duration::from_secs(600)), Duration::from_secs(2));
    }

    fn event(thread: Option<&str>) -> ChannelEvent {
        let sender = pincer_adapters::Sender {
            platform_user_id: "UBOB".into(),
            display_name: Some("bob".into()),
            verified_email: None,
            is_bot: false,
        };
        let channel = pincer_adapters::ChannelRef::new(Platform::Slack, "C1").unwrap();
        ChannelEvent::new("T1", channel, thread.map(str::to_string), sender, "why?", "Ev1".into())
    }

    fn job(kind: &str, payload: serde_json::Value, event: Option<ChannelEvent>) -> Job {
        Job {
            id: 1,
            kind: kind.into(),
            payload,
            attempts: 1,
            side_effects_at: None,
            facts: None,
            event: event.map(Box::new),
        }
    }

    #[test]
    fn a_jobs_conversation_is_the_same_read_from_the_event_or_from_either_payload() {
        for thread in [Some("1700000000.000100"), None] {
            let ev = event(thread);
            let stored = serde_json::to_value(&ev).unwrap();
            let expected = ("T1".to_string(), "slack:C1".to_string(), ev.conversation_thread().into_owned());
            assert_eq!(thread_key(&job("event", serde_json::Value::Null, Some(ev.clone()))), Some(expected.clone()));
            assert_eq!(thread_key(&job("event", stored.clone(), None)), Some(expected.clone()));
            assert_eq!(thread_key(&job("answer", json!({"ask": {}, "event": stored}), None)), Some(expected));
        }
        assert_eq!(thread_key(&job("event", event(None).conversation_thread().into(), None)), None);
    }

    #[test]
    fn asks_waiting_their_turn_are_taken_once_by_their_conversation() {
        let turns = Turns::default();
        assert!(turns.none());
        let key = |t: &str| ("T1".to_string(), "slack:C1".to_string(), t.to_string());
        turns.wait(key("a"), 7);
        turns.wait(key("a"), 7);
        turns.wait(key("a"), 8);
        turns.wait(key("b"), 9);
        assert!(!turns.none());
        assert_eq!(turns.take(&key("a")), [7, 8]);
        assert_eq!(turns.take(&key("a")), Vec::<i64>::new());
        assert!(!turns.none());
        assert_eq!(turns.take(&key("b")), [9]);
        assert!(turns.none());
        // A job that runs again is forgotten until it waits again.
        turns.wait(key("a"), 7);
        turns.wait(key("a"), 8);
        turns.forget(7);
        assert_eq!(turns.take(&key("a")), [8]);
        turns.wait(key("c"), 10);
        turns.forget(10);
        assert!(turns.none());
    }
}
