//! The job queue: platform events waiting to be routed and asks waiting to
//! be answered. Claimed with `FOR UPDATE SKIP LOCKED` under a lease, so any
//! number of processes share it and a crashed one's jobs are taken over
//! when its lease runs out. A job is completed (deleted) in the same
//! transaction as its effect, and only by the worker that still holds it.

use std::time::Duration;

use serde_json::Value;
use sqlx::{FromRow, PgConnection};

use super::{Pool, StoreError};

/// What a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A platform event to route.
    Event,
    /// An accepted ask to answer.
    Answer,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Event => "event",
            JobKind::Answer => "answer",
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone, FromRow)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// `event` or `answer`.
    pub kind: String,
    /// The event or the ask, as JSON.
    pub payload: Value,
    /// How many times it has been claimed (this claim included).
    pub attempts: i32,
    /// When a tool with side effects started in an earlier run of it.
    pub side_effects_at: Option<chrono::DateTime<chrono::Utc>>,
    /// For an event handed over at ingest: what routing needs to know, read
    /// in the same statement that stored it.
    #[sqlx(skip)]
    pub facts: Option<super::routing::Facts>,
    /// For an event handed over at ingest: the event itself, as parsed (its
    /// `payload` is then not filled in).
    #[sqlx(skip)]
    pub event: Option<Box<pincer_adapters::ChannelEvent>>,
}

// Dedupe and queue in one statement: a repeat inserts no key, so no job.
const ENQUEUE_EVENT: &str = "WITH fresh AS (
         INSERT INTO inbound_events (platform, dedupe_key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1
     )
     INSERT INTO jobs (kind, payload) SELECT 'event', $3 FROM fresh RETURNING id";
const ENQUEUE_CLAIMED: &str = "INSERT INTO jobs (kind, payload, locked_by, locked_until, attempts)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4), 1) RETURNING id";
const DEFER: &str = "UPDATE jobs SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0),
            run_after = now() + make_interval(secs => $3)
     WHERE id = $1 AND locked_by = $2";
// Asks waiting their turn in a conversation whose earlier ask has ended:
// due now (only those still waiting: one being looked at is left alone).
const DUE_NOW: &str = "UPDATE jobs SET run_after = now()
     WHERE id = ANY($1) AND locked_by IS NULL AND run_after > now()";
const MARK_SIDE_EFFECTS: &str = "UPDATE jobs SET side_effects_at = now() WHERE id = $1 AND locked_by = $2";
const SET_PAYLOAD: &str = "UPDATE jobs SET payload = $3 WHERE id = $1 AND locked_by = $2";
// A run waiting for a person: unlocked, its state saved, not due before
// `run_after` (the approval's expiry; a decision brings it forward).
// The progress placeholder may have been posted while the run went on: the
// stored `progress_id` wins. The saved state holds the results of every
// tool that ran, so a pause is a safe point: resuming repeats none of them.
const PAUSE: &str = "UPDATE jobs SET payload = jsonb_set($3::jsonb, '{progress_id}', COALESCE(payload->'progress_id', 'null'::jsonb)), locked_by = NULL, locked_until = NULL, attempts = 0, run_after = $4,
         side_effects_at = NULL
     WHERE id = $1 AND locked_by = $2";
// $4: the jobs this process is still running (their leases may have run
// out; another run of them here would pass every check of the first).
const CLAIM: &str =
    "UPDATE jobs SET locked_by = $1, locked_until = now() + make_interval(secs => $2), attempts = attempts + 1
     WHERE id IN (
         SELECT id FROM jobs
         WHERE run_after <= now() AND (locked_until IS NULL OR locked_until < now()) AND id <> ALL($4::bigint[])
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
     RETURNING id, kind, payload, attempts, side_effects_at";
// A person's terminal asks whose process died (the lease ran out).
const CLAIM_TERMINAL: &str =
    "UPDATE jobs SET locked_by = $1, locked_until = now() + make_interval(secs => $2), attempts = attempts + 1
     WHERE id IN (
         SELECT id FROM jobs
         WHERE kind = 'answer' AND payload->'event'->>'channel' LIKE 'console:%'
           AND payload->'ask'->>'user_email' = $3
           AND run_after <= now() AND (locked_until IS NULL OR locked_until < now())
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING id, kind, payload, attempts, side_effects_at";
const COMPLETE: &str = "DELETE FROM jobs WHERE id = $1 AND locked_by = $2";
const RELEASE: &str =
    "UPDATE jobs SET locked_by = NULL, locked_until = NULL, run_after = now() + make_interval(secs => $3)
     WHERE id = $1 AND locked_by = $2";
const PENDING: &str = "SELECT count(*) FROM jobs";
const NOTIFY: &str = "SELECT pg_notify('pincer_jobs', '')";

/// The Postgres channel other processes' workers listen on.
pub const CHANNEL: &str = "pincer_jobs";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("jobs.enqueue_event", ENQUEUE_EVENT),
    ("jobs.enqueue_claimed", ENQUEUE_CLAIMED),
    ("jobs.set_payload", SET_PAYLOAD),
    ("jobs.pause", PAUSE),
    ("jobs.mark_side_effects", MARK_SIDE_EFFECTS),
    ("jobs.defer", DEFER),
    ("jobs.due_now", DUE_NOW),
    ("jobs.claim", CLAIM),
    ("jobs.complete", COMPLETE),
    ("jobs.claim_terminal", CLAIM_TERMINAL),
    ("jobs.release", RELEASE),
    ("jobs.pending", PENDING),
    ("jobs.notify", NOTIFY),
];

/// Records a platform event's dedupe key and queues it, atomically, in one
/// round trip. `None` when the key was seen before.
pub async fn enqueue_event<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    platform: &str,
    key: &str,
    payload: &(impl serde::Serialize + Sync),
) -> Result<Option<i64>, StoreError> {
    let payload = sqlx::types::Json(payload);
    Ok(sqlx::query_scalar(ENQUEUE_EVENT).bind(platform).bind(key).bind(payload).fetch_optional(conn).await?)
}

/// Adds a job already claimed by `worker` (who goes on to run it at once;
/// if it dies, the lease runs out and another worker takes the job).
pub async fn enqueue_claimed(
    conn: &mut PgConnection,
    kind: JobKind,
    payload: &(impl serde::Serialize + Sync),
    worker: &str,
    lease: Duration,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(ENQUEUE_CLAIMED)
        .bind(kind.as_str())
        .bind(sqlx::types::Json(payload))
        .bind(worker)
        .bind(lease.as_secs_f64())
        .fetch_one(conn)
        .await?)
}

/// Rewrites a held job's payload (to remember progress across a crash).
pub async fn set_payload(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    payload: &(impl serde::Serialize + Sync),
) -> Result<bool, StoreError> {
    let payload = sqlx::types::Json(payload);
    Ok(sqlx::query(SET_PAYLOAD).bind(id).bind(worker).bind(payload).execute(conn).await?.rows_affected() == 1)
}

/// Pauses a run held by `worker` until `until` (or until a decision wakes it),
/// saving its state. `false` if the lease was lost.
pub async fn pause(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    payload: &(impl serde::Serialize + Sync),
    until: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let payload = sqlx::types::Json(payload);
    Ok(sqlx::query(PAUSE).bind(id).bind(worker).bind(payload).bind(until).execute(conn).await?.rows_affected() == 1)
}

/// Claims the oldest of a person's interrupted terminal asks for `worker`.
pub async fn claim_terminal(
    pool: &Pool,
    worker: &str,
    lease: Duration,
    email: &str,
) -> Result<Option<Job>, StoreError> {
    Ok(sqlx::query_as(CLAIM_TERMINAL).bind(worker).bind(lease.as_secs_f64()).bind(email).fetch_optional(pool).await?)
}

/// Claims up to `limit` due jobs for `worker` for `lease`, none of
/// `running` (the jobs this process is running, whose leases may have run
/// out meanwhile).
pub async fn claim(
    pool: &Pool,
    worker: &str,
    lease: Duration,
    limit: i64,
    running: &[i64],
) -> Result<Vec<Job>, StoreError> {
    Ok(sqlx::query_as(CLAIM).bind(worker).bind(lease.as_secs_f64()).bind(limit).bind(running).fetch_all(pool).await?)
}

/// Deletes a finished job, in the caller's transaction. `false` means the
/// lease was lost to another worker: the caller must roll back.
pub async fn complete(conn: &mut PgConnection, id: i64, worker: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(COMPLETE).bind(id).bind(worker).execute(conn).await?.rows_affected() == 1)
}

/// Gives a job back to run again after `delay`.
pub async fn release(pool: &Pool, id: i64, worker: &str, delay: Duration) -> Result<(), StoreError> {
    sqlx::query(RELEASE).bind(id).bind(worker).bind(delay.as_secs_f64()).execute(pool).await?;
    Ok(())
}

/// How many jobs wait or run.
pub async fn pending(pool: &Pool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(PENDING).fetch_one(pool).await?)
}

/// Wakes workers in other processes when the transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(NOTIFY).execute(conn).await?;
    Ok(())
}

/// Gives a job back to wait its turn, without counting the claim.
pub async fn defer(pool: &Pool, id: i64, worker: &str, delay: Duration) -> Result<(), StoreError> {
    sqlx::query(DEFER).bind(id).bind(worker).bind(delay.as_secs_f64()).execute(pool).await?;
    Ok(())
}

/// Makes the waiting jobs `ids` due now; returns how many were waiting.
pub async fn due_now(pool: &Pool, ids: &[i64]) -> Result<u64, StoreError> {
    Ok(sqlx::query(DUE_NOW).bind(ids).execute(pool).await?.rows_affected())
}

/// Records that a tool with side effects is about to run in this job. A
/// worker that no longer holds the job gets [`StoreError::LeaseLost`]: the
/// tool must not run (the job's new holder may run it).
pub async fn mark_side_effects(conn: impl sqlx::PgExecutor<'_>, id: i64, worker: &str) -> Result<(), StoreError> {
    if sqlx::query(MARK_SIDE_EFFECTS).bind(id).bind(worker).execute(conn).await?.rows_affected() == 0 {
        return Err(StoreError::LeaseLost(id));
    }
    Ok(())
}
