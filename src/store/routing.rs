//! The router's two round trips for a queued platform event: one statement
//! reads what routing needs to know ([`facts`]), one writes everything it
//! decided ([`finish`]). A statement is atomic on its own, so the write
//! needs no `BEGIN`/`COMMIT`: completing the event's job, the conversation
//! and the asker's message, the answer job, the replies and the audit rows
//! commit together or not at all, and nothing is written if another worker
//! took the job over. Events whose handling writes more than this (admin
//! commands, a first link of an identity) go through a transaction instead;
//! an ask answered at once has no write of its own here — its rows go in
//! its answer's statement (`outbox::finish_asked`). The read also brings,
//! for an ask, its thread's conversation and the memory its answer needs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pincer_adapters::ChannelEvent;
use sqlx::postgres::PgRow;
use sqlx::{Column, FromRow, PgConnection, Row};

use super::agents::AgentState;
use super::audit::{self, AuditEntry};
use super::conversations::ThreadKey;
use super::memory::Passage;
use super::outbox::NewOutbound;
use super::users::{User, UserRow};
use super::{Pool, StoreError};

// An earlier job of the same conversation still queued or being answered
// (asks in a conversation are answered in order); the sender, if Pincer knows their
// account on this platform; the bound agent's runtime state; for an ask,
// its thread's conversation if it has one, and the memory its answer will
// be built from — searched in the scopes the asker may read: the agent's
// ($10) plus the asker's active workspace (the rule of
// `policy::read_scopes`, which the router checks the result against).
// `me` is the event's job. Parameters: $1 is an ask, $2 tenant, $3 channel
// as the job payload writes it, $4 the conversation's thread key (the
// thread, or `user:` and the sender outside one — the rule of
// `pincer_adapters::conversation_thread`, which the check of queued events
// repeats on their payloads), $5 received at, $6 platform,
// $7 sender, $8 agent, $9 the question to search memory for (none: no
// search), $10 the agent's scopes, $11 passages wanted, $12 candidates,
// $13 the channel's id.
macro_rules! facts_of_me {
    () => {
        "SELECT me.id AS job_id,
             CASE WHEN $1 THEN EXISTS (
                 SELECT 1 FROM jobs j, LATERAL (SELECT COALESCE(j.payload->'event', j.payload) AS e) x
                 WHERE j.id <> me.id AND x.e->>'tenant' = $2 AND x.e->>'channel' = $3
                   AND COALESCE(x.e->>'thread', 'user:' || (x.e->'sender'->>'platform_user_id')) = $4
                   AND (x.e->>'received_at')::timestamptz < $5)
             ELSE false END AS earlier_in_thread,
             u.id AS user_id, u.email, u.role, u.active_workspace,
             a.name AS agent, a.disabled_at, a.disabled_by, a.disabled_reason,
             c.id AS conversation_id, m.scopes AS searched, m.passages
         FROM me
         LEFT JOIN (identities i JOIN users u ON u.id = i.user_id AND u.removed_at IS NULL)
             ON i.platform = $6 AND i.tenant = $2 AND i.platform_user_id = $7
         LEFT JOIN agents a ON a.name = $8
         LEFT JOIN conversations c ON $1 AND c.platform = $6 AND c.tenant = $2 AND c.channel = $13 AND c.thread = $4
         LEFT JOIN LATERAL (
             SELECT s.scopes,
                    COALESCE((SELECT jsonb_agg(jsonb_build_object('id', f.id, 'scope', f.scope, 'source', f.source,
                                                                  'locator', f.locator, 'body', f.body, 'rank', f.rank)
                                               ORDER BY f.n)
                              FROM pincer_memory_search(s.scopes, $9, $11, $12)
                                   WITH ORDINALITY AS f(id, scope, source, locator, body, rank, n)),
                             '[]'::jsonb) AS passages
             FROM (SELECT CASE WHEN u.active_workspace IS NULL OR u.active_workspace = ANY($10::text[]) THEN $10::text[]
                               ELSE $10::text[] || u.active_workspace END AS scopes) s
             WHERE $9::text IS NOT NULL AND u.id IS NOT NULL
         ) m ON true"
    };
}

// For an event already queued (job $14).
const FACTS: &str = concat!("WITH me AS (SELECT $14::bigint AS id) ", facts_of_me!());

// Ingest and facts in one statement, for an event handed to this process's
// worker: the dedupe key ($14) and the job ($15) claimed by $16 for $17
// seconds, then the same facts for it. No row: the key was seen before.
const ENQUEUE_WITH_FACTS: &str = concat!(
    "WITH fresh AS (
         INSERT INTO inbound_events (platform, dedupe_key) VALUES ($6, $14) ON CONFLICT DO NOTHING RETURNING 1
     ),
     me AS (
         INSERT INTO jobs (kind, payload, locked_by, locked_until, attempts)
         SELECT 'event', $15, $16, now() + make_interval(secs => $17), 1 FROM fresh RETURNING id
     ) ",
    facts_of_me!()
);

// Everything a routed event decided, in one statement; `done` is empty when
// the lease was lost, and then nothing else is written either. The result
// columns are evaluated in order: the job row, the conversation and the
// audit head — the lock order used everywhere.
const FINISH: &str = "WITH done AS (DELETE FROM jobs WHERE id = $1 AND locked_by = $2 RETURNING id),
     conv AS (
         INSERT INTO conversations (platform, tenant, channel, thread, agent)
         SELECT $3::text, $4::text, $5::text, $6::text, $7::text FROM done WHERE $7::text IS NOT NULL
         ON CONFLICT (platform, tenant, channel, thread) DO UPDATE SET agent = EXCLUDED.agent
         RETURNING id, xmax = 0 AS fresh
     ),
     said AS (
         INSERT INTO messages (conversation_id, author, user_id, workspace, body)
         SELECT id, 'user', $8::bigint, $9::text, $10::text FROM conv
     ),
     answer AS (
         INSERT INTO jobs (kind, payload, locked_by, locked_until, attempts)
         SELECT 'answer',
                jsonb_set(jsonb_set($11::jsonb, '{ask,conversation_id}', to_jsonb(conv.id)), '{ask,new_thread}', to_jsonb(conv.fresh)),
                $2, now() + make_interval(secs => $12::float8), 1
         FROM conv
         RETURNING id
     ),
     sent AS (
         INSERT INTO outbox (platform, tenant, channel, thread, response_url, recipient, reply, is_progress, progress_of)
         SELECT $13::text, $25::text, $14::text, $15::text, $16::text, r.recipient, r.reply, false, $17::bigint
         FROM done, UNNEST($18::text[], $19::jsonb[]) AS r(recipient, reply)
     ),
     audited AS (SELECT pincer_audit_append($20, $21, $22, $23, $24) AS seq FROM done)
     SELECT (SELECT id FROM answer) AS answer_job, (SELECT id FROM conv) AS conversation_id,
            (SELECT fresh FROM conv) AS new_thread, (SELECT seq FROM audited) AS seq";

pub(crate) const QUERIES: &[(&str, &str)] =
    &[("routing.facts", FACTS), ("routing.enqueue_with_facts", ENQUEUE_WITH_FACTS), ("routing.finish", FINISH)];

/// What routing a queued event needs to know before it decides.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The agent the facts were read for (the router uses them only if the
    /// event is still bound to it).
    pub for_agent: Option<String>,
    /// When they were read (the router uses facts read at ingest only while
    /// they are fresh).
    pub read_at: std::time::Instant,
    /// An earlier ask of the event's thread is still open: this one waits.
    pub earlier_in_thread: bool,
    /// The sender, if their platform account is linked to a person.
    pub user: Option<User>,
    /// The bound agent's runtime state (`None`: no agent asked for, or no
    /// row for it).
    pub agent: Option<AgentState>,
    /// For an ask: its thread's conversation, if the thread has one.
    pub conversation: Option<i64>,
    /// For an ask from a known person, when a search was asked for: the
    /// memory found for it.
    pub found: Option<Found>,
}

/// Memory found for an ask while its facts were read.
#[derive(Debug, Clone)]
pub struct Found {
    /// The scopes searched (the router uses the passages only if these are
    /// the scopes the ask may read).
    pub scopes: Vec<String>,
    /// The passages, best first.
    pub passages: Vec<Passage>,
}

/// A memory search to run with the facts: an ask's question and its
/// agent's scopes (the statement adds the asker's active workspace).
#[derive(Debug, Clone, Copy)]
pub struct Prefetch<'a> {
    /// The question.
    pub question: &'a str,
    /// The agent's memory scopes.
    pub scopes: &'a [pincer_commands::ScopeName],
}

struct FactsRow {
    job_id: i64,
    earlier_in_thread: bool,
    user_id: Option<i64>,
    email: Option<String>,
    role: Option<String>,
    active_workspace: Option<String>,
    agent: Option<String>,
    disabled_at: Option<DateTime<Utc>>,
    disabled_by: Option<String>,
    disabled_reason: Option<String>,
    conversation_id: Option<i64>,
    searched: Option<Vec<String>>,
    passages: Option<sqlx::types::Json<Vec<Passage>>>,
}

/// The columns both facts statements return, in order. [`FactsRow`] is
/// read by position — a lookup by name for each of them was ~1% of an
/// event's CPU — with each column's name checked as it is read, so a
/// statement whose columns move fails loudly instead of misreading.
const FACTS_COLUMNS: [&str; 13] = [
    "job_id",
    "earlier_in_thread",
    "user_id",
    "email",
    "role",
    "active_workspace",
    "agent",
    "disabled_at",
    "disabled_by",
    "disabled_reason",
    "conversation_id",
    "searched",
    "passages",
];

impl<'r> FromRow<'r, PgRow> for FactsRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let columns = row.columns();
        if let Some(i) = (0..FACTS_COLUMNS.len()).find(|&i| columns.get(i).map(|c| c.name()) != Some(FACTS_COLUMNS[i]))
        {
            return Err(sqlx::Error::ColumnNotFound(FACTS_COLUMNS[i].to_string()));
        }
        Ok(FactsRow {
            job_id: row.try_get(0)?,
            earlier_in_thread: row.try_get(1)?,
            user_id: row.try_get(2)?,
            email: row.try_get(3)?,
            role: row.try_get(4)?,
            active_workspace: row.try_get(5)?,
            agent: row.try_get(6)?,
            disabled_at: row.try_get(7)?,
            disabled_by: row.try_get(8)?,
            disabled_reason: row.try_get(9)?,
            conversation_id: row.try_get(10)?,
            searched: row.try_get(11)?,
            passages: row.try_get(12)?,
        })
    }
}

/// Reads [`Facts`] for `ev`, queued as job `job_id`; the thread is looked
/// at only for an ask (`is_ask`), the agent only if one is bound, memory
/// only with `search`.
pub async fn facts(
    conn: &mut PgConnection,
    ev: &ChannelEvent,
    job_id: i64,
    is_ask: bool,
    agent: Option<&str>,
    search: Option<Prefetch<'_>>,
) -> Result<Facts, StoreError> {
    let row: FactsRow =
        bind_facts(sqlx::query_as(FACTS), ev, is_ask, agent, search).bind(job_id).fetch_one(conn).await?;
    Ok(row.into_facts(agent)?.1)
}

/// Stores and queues `ev` (claimed by `worker` for `lease`) and reads its
/// [`Facts`], in one statement. `None` when the event was seen before.
pub async fn enqueue_with_facts(
    pool: &Pool,
    ev: &ChannelEvent,
    worker: &str,
    lease: Duration,
    agent: Option<&str>,
    search: Option<Prefetch<'_>>,
) -> Result<Option<(i64, Facts)>, StoreError> {
    let is_ask = crate::router::is_ask(&ev.body);
    let row: Option<FactsRow> = bind_facts(sqlx::query_as(ENQUEUE_WITH_FACTS), ev, is_ask, agent, search)
        .bind(&ev.dedupe_key)
        .bind(sqlx::types::Json(ev))
        .bind(worker)
        .bind(lease.as_secs_f64())
        .fetch_optional(pool)
        .await?;
    row.map(|r| r.into_facts(agent)).transpose()
}

type FactsQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, FactsRow, sqlx::postgres::PgArguments>;

/// Binds the facts' parameters, $1–$13; the caller binds $14 and on.
fn bind_facts<'q>(
    q: FactsQuery<'q>,
    ev: &'q ChannelEvent,
    is_ask: bool,
    agent: Option<&'q str>,
    search: Option<Prefetch<'q>>,
) -> FactsQuery<'q> {
    let scopes: Vec<&str> = search.map(|p| p.scopes.iter().map(|s| s.as_str()).collect()).unwrap_or_default();
    q.bind(is_ask)
        .bind(&ev.tenant)
        .bind(ev.channel.to_string())
        .bind(ev.conversation_thread())
        .bind(ev.received_at)
        .bind(ev.platform().as_str())
        .bind(&ev.sender.platform_user_id)
        .bind(agent)
        .bind(search.map(|p| p.question))
        .bind(scopes)
        .bind(crate::handlers::ask::PASSAGES)
        .bind(super::memory::CANDIDATES)
        .bind(&ev.channel.channel)
}

impl FactsRow {
    fn into_facts(self, agent: Option<&str>) -> Result<(i64, Facts), StoreError> {
        let user = match (self.user_id, self.email, self.role) {
            (Some(id), Some(email), Some(role)) => {
                Some(User::try_from(UserRow { id, email, role, active_workspace: self.active_workspace })?)
            }
            _ => None,
        };
        let state = self.agent.map(|name| AgentState {
            name,
            disabled_at: self.disabled_at,
            disabled_by: self.disabled_by,
            disabled_reason: self.disabled_reason,
        });
        let found = match (self.searched, self.passages) {
            (Some(scopes), Some(passages)) => Some(Found { scopes, passages: passages.0 }),
            _ => None,
        };
        let facts = Facts {
            for_agent: agent.map(str::to_string),
            read_at: std::time::Instant::now(),
            earlier_in_thread: self.earlier_in_thread,
            user,
            agent: state,
            conversation: self.conversation_id,
            found,
        };
        Ok((self.job_id, facts))
    }
}

/// An accepted ask's writes: the thread's conversation (made on first use),
/// the asker's message, and the answer job, claimed by the router's worker.
pub struct NewAsk<'a, P> {
    /// The thread.
    pub thread: ThreadKey<'a>,
    /// The agent that answers.
    pub agent: &'a str,
    /// The asker.
    pub user_id: i64,
    /// Their workspace, if not shared.
    pub workspace: Option<&'a str>,
    /// The question.
    pub question: &'a str,
    /// The answer job's payload (stored as JSON); its `ask.conversation_id`
    /// and `ask.new_thread` are filled in by the statement.
    pub payload: &'a P,
    /// The answer job's lease.
    pub lease: Duration,
}

/// What [`finish`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The answer job, for an ask.
    pub answer_job: Option<i64>,
    /// The ask's conversation.
    pub conversation_id: Option<i64>,
    /// Whether this ask opened the conversation.
    pub new_thread: bool,
}

#[derive(FromRow)]
struct FinishRow {
    seq: Option<i64>,
    answer_job: Option<i64>,
    conversation_id: Option<i64>,
    new_thread: Option<bool>,
}

/// Completes the event's job `job_id` held by `worker` and writes, in the
/// same statement, the ask (if any), the replies (all to one place, as a
/// router's replies to one event are) and the audit rows. `None` if the
/// lease was lost: nothing was written.
pub async fn finish<P: serde::Serialize + Sync>(
    conn: &mut PgConnection,
    job_id: i64,
    worker: &str,
    ask: Option<&NewAsk<'_, P>>,
    replies: &[NewOutbound<'_>],
    trail: Vec<AuditEntry>,
) -> Result<Option<Finished>, StoreError> {
    let to = replies.first();
    let recipients: Vec<Option<&str>> = replies.iter().map(|r| r.recipient).collect();
    let bodies: Vec<sqlx::types::Json<_>> =
        replies.iter().map(|r| sqlx::types::Json(super::outbox::scrubbed(r.reply))).collect();
    let rows = audit::prepare(trail);
    let row: FinishRow = sqlx::query_as(FINISH)
        .bind(job_id)
        .bind(worker)
        .bind(ask.map(|a| a.thread.platform))
        .bind(ask.map(|a| a.thread.tenant))
        .bind(ask.map(|a| a.thread.channel))
        .bind(ask.map(|a| a.thread.key()))
        .bind(ask.map(|a| a.agent))
        .bind(ask.map(|a| a.user_id))
        .bind(ask.and_then(|a| a.workspace))
        .bind(ask.map(|a| a.question))
        .bind(ask.map(|a| sqlx::types::Json(a.payload)))
        .bind(ask.map(|a| a.lease.as_secs_f64()))
        .bind(to.map(|r| r.platform))
        .bind(to.map(|r| r.channel))
        .bind(to.and_then(|r| r.thread))
        .bind(to.and_then(|r| r.response_url))
        .bind(to.and_then(|r| r.progress_of))
        .bind(&recipients)
        .bind(&bodies)
        .bind(&rows.ts)
        .bind(&rows.users)
        .bind(&rows.actions)
        .bind(&rows.metadata)
        .bind(&rows.tails)
        .bind(to.map(|r| r.tenant))
        .fetch_one(conn)
        .await?;
    if row.seq.is_none() {
        return Ok(None);
    }
    Ok(Some(Finished {
        answer_job: row.answer_job,
        conversation_id: row.conversation_id,
        new_thread: row.new_thread.unwrap_or(false),
    }))
}
