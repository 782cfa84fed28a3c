//! The outbox: every reply to a platform is a row here first, written in the
//! same transaction as what produced it, then delivered by a dispatcher.
//!
//! Claiming takes, per channel, only the oldest open row, so replies in a
//! channel go out in order and one at a time; a row stuck in `sending` by a
//! crashed process is claimed again when its lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pincer_adapters::Reply;
use sqlx::{FromRow, PgConnection};

use super::{Pool, StoreError};

/// A reply to store.
#[derive(Debug, Clone)]
pub struct NewOutbound<'a> {
    /// Platform name.
    pub platform: &'a str,
    /// Platform workspace.
    pub tenant: &'a str,
    /// Channel id.
    pub channel: &'a str,
    /// Thread to answer in.
    pub thread: Option<&'a str>,
    /// Platform return address (Slack `response_url`).
    pub response_url: Option<&'a str>,
    /// The user an ephemeral reply is for.
    pub recipient: Option<&'a str>,
    /// The reply.
    pub reply: &'a Reply,
    /// A "working on it…" message, sent only from `not_before` on.
    pub is_progress: bool,
    /// The progress message this answer replaces.
    pub progress_of: Option<i64>,
    /// Not before this delay from now.
    pub delay: Duration,
}

/// A stored reply, as this version of Pincer reads it. A row another
/// version wrote in a shape this one cannot read (during a rolling upgrade,
/// or after a downgrade) is one undeliverable row, not a claim that fails
/// for every row with it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredReply {
    /// Read.
    Read(Reply),
    /// Not readable by this version: why.
    Unreadable(String),
}

impl sqlx::Type<sqlx::Postgres> for StoredReply {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <sqlx::types::Json<Reply> as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <sqlx::types::Json<Reply> as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for StoredReply {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(match <sqlx::types::Json<Reply> as sqlx::Decode<sqlx::Postgres>>::decode(value) {
            Ok(reply) => StoredReply::Read(reply.0),
            Err(e) => StoredReply::Unreadable(e.to_string()),
        })
    }
}

/// A claimed row.
#[derive(Debug, Clone, FromRow)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Platform name.
    pub platform: String,
    /// Platform workspace.
    pub tenant: String,
    /// Channel id.
    pub channel: String,
    /// Thread.
    pub thread: Option<String>,
    /// Return address.
    pub response_url: Option<String>,
    /// Ephemeral recipient.
    pub recipient: Option<String>,
    /// The reply.
    pub reply: StoredReply,
    /// Whether this is a progress message.
    pub is_progress: bool,
    /// The delivered progress message to update instead of posting, if any.
    pub progress_ts: Option<String>,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// An earlier attempt may have reached the platform: look before sending.
    pub maybe_sent: bool,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A dead letter, for `/admin outbox`.
#[derive(Debug, Clone, FromRow)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// Platform.
    pub platform: String,
    /// Channel.
    pub channel: String,
    /// Why.
    pub last_error: Option<String>,
    /// Tries.
    pub attempts: i32,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

const INSERT: &str = "INSERT INTO outbox (platform, tenant, channel, thread, response_url, recipient, reply, is_progress, progress_of, not_before)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10)) RETURNING id";
// An answer's four writes — the assistant's message, its usage, the reply,
// and the job's completion — in one statement; nothing is written if another worker
// took the job over. With a lease given ($20), the reply is claimed for
// delivery by the caller when nothing else waits in its channel (what the
// dispatcher's claim would have found), saving the dispatcher's round trip.
// $21: rows the caller knows are delivered, their delivery not yet recorded
// (they do not hold the channel).
// An answer's usage row, for each row of `$source` (the completed job).
macro_rules! answer_usage {
    ($source:literal) => {
        concat!(
            "used AS (
                 INSERT INTO usage (user_email, agent, provider, tokens_in, tokens_out, cost_micros)
                 SELECT $14, $15, $16, $17, $18, $19 FROM ",
            $source,
            "
             )"
        )
    };
}
// An answer's reply, for each row of `$source`: $6–$13 the reply, claimed
// for $20 seconds by the answering worker if nothing else waits in its
// channel ($21: rows known delivered, not yet recorded). A public reply
// outside any thread keeps its conversation (`$conversation`), which a
// thread started under it continues (see `DELIVERED`).
macro_rules! answer_reply {
    ($source:literal, $conversation:literal) => {
        concat!(
            "sent AS (
                 INSERT INTO outbox (platform, tenant, channel, thread, response_url, recipient, reply, is_progress,
                                     progress_of, status, locked_until, attempts, conversation_id)
                 SELECT $6, $7, $8, $9, $10, $11, $12, false, $13,
                        CASE WHEN f.free THEN 'sending' ELSE 'pending' END,
                        CASE WHEN f.free THEN now() + make_interval(secs => $20) END,
                        CASE WHEN f.free THEN 1 ELSE 0 END,
                        CASE WHEN $9::text IS NULL AND $11::text IS NULL THEN ",
            $conversation,
            " END
                 FROM ",
            $source,
            ", LATERAL (
                     SELECT $20::float8 IS NOT NULL AND NOT EXISTS (
                         SELECT 1 FROM outbox p
                         WHERE p.platform = $6 AND p.tenant = $7 AND p.channel = $8 AND p.status IN ('pending', 'sending')
                           AND p.recipient IS NOT DISTINCT FROM $11::text AND p.id <> ALL($21::bigint[])) AS free
                 ) f
                 RETURNING id, status = 'sending' AS claimed, created_at
             )"
        )
    };
}
const FINISH_ANSWER: &str = concat!(
    "WITH done AS (DELETE FROM jobs WHERE id = $1 AND locked_by = $2 RETURNING id),
     said AS (
         INSERT INTO messages (conversation_id, author, workspace, body) SELECT $3, 'assistant', $4, $5 FROM done
     ), ",
    answer_usage!("done"),
    ", ",
    answer_reply!("done", "$3"),
    "
     SELECT s.id, s.claimed, s.created_at,
            (SELECT pr.platform_ts FROM outbox pr WHERE pr.id = $13 AND pr.status = 'delivered') AS progress_ts
     FROM sent s"
);
// An ask answered before anything of it was written, all in one statement:
// the event's job ($1, held by $2) completed, the thread's conversation
// ($3 platform, $22 tenant, $23 channel, $24 thread, $25 agent) opened or
// reused, the question ($26 asker, $27 text) and the answer ($5) stored in
// that order (in workspace $4), the usage, the reply, and the audit rows
// ($28–$32). Locks in the usual order: the job row, the conversation, then
// (when the row is read) the audit head. No row: the lease was lost and
// nothing was written.
const FINISH_ASKED: &str = concat!(
    "WITH done AS (DELETE FROM jobs WHERE id = $1 AND locked_by = $2 RETURNING id),
     conv AS (
         INSERT INTO conversations (platform, tenant, channel, thread, agent)
         SELECT $3::text, $22::text, $23::text, $24::text, $25::text FROM done
         ON CONFLICT (platform, tenant, channel, thread) DO UPDATE SET agent = EXCLUDED.agent
         RETURNING id
     ),
     said AS (
         INSERT INTO messages (conversation_id, author, user_id, workspace, body)
         SELECT conv.id, m.author, m.user_id, $4::text, m.body
         FROM conv, (VALUES (1, 'user', $26::bigint, $27::text), (2, 'assistant', NULL, $5::text)) AS m(n, author, user_id, body)
         ORDER BY m.n
     ), ",
    answer_usage!("conv"),
    ", ",
    answer_reply!("conv", "conv.id"),
    ",
     audited AS (SELECT pincer_audit_append($28, $29, $30, $31, $32) AS seq FROM conv)
     SELECT s.id, s.claimed, s.created_at, NULL::text AS progress_ts, (SELECT seq FROM audited) AS seq
     FROM sent s"
);
// A row taken over from `sending` (its lease ran out mid-delivery) may have
// reached the platform: it is marked so (`o.status` is the row before the update).
// $3: rows known delivered, not yet recorded (they do not hold their channel).
const CLAIM: &str = "UPDATE outbox o SET status = 'sending', locked_until = now() + make_interval(secs => $1), attempts = o.attempts + 1,
         maybe_sent = o.maybe_sent OR o.status = 'sending'
     WHERE o.id IN (
         SELECT c.id FROM outbox c
         WHERE c.status IN ('pending', 'sending') AND c.not_before <= now()
           AND (c.status = 'pending' OR c.locked_until < now())
           -- Terminal replies wait for the person's next `pincer chat`.
           AND c.platform NOT IN ('console', 'cli')
           -- A channel's public replies go out in order, one at a time, and
           -- so do each person's private ones there; neither waits for
           -- the other.
           AND NOT EXISTS (
               SELECT 1 FROM outbox p
               WHERE p.platform = c.platform AND p.tenant = c.tenant AND p.channel = c.channel AND p.id < c.id
                 AND p.status IN ('pending', 'sending') AND p.recipient IS NOT DISTINCT FROM c.recipient
                 AND p.id <> ALL($3::bigint[]))
         ORDER BY c.id LIMIT $2 FOR UPDATE SKIP LOCKED)
     RETURNING o.id, o.platform, o.tenant, o.channel, o.thread, o.response_url, o.recipient, o.reply, o.is_progress,
               (SELECT pr.platform_ts FROM outbox pr WHERE pr.id = o.progress_of AND pr.status = 'delivered') AS progress_ts,
               o.attempts, o.maybe_sent, o.created_at";
// Outcomes are fenced on the claim (status and attempt count): a delivery
// that outlived its lease cannot overwrite what a later claim recorded.
// Deliveries are recorded in batches ($1 ids, $2 attempt counts, $3
// platform ids); also says whether a later reply waits in the channel of
// any of them (it can be claimed now that this one is out).
// An answer delivered outside any thread whose message the platform named
// (a slash command's `/ask`, posted to the channel) starts a conversation
// for the thread people may open under it, holding the question and that
// answer (the last two messages of its own conversation up to the answer,
// stored with it, so at the reply's `created_at`): a follow-up there
// carries them — not the asker's earlier turns, which the channel never
// saw — and the asker's later top-level asks do not see the thread.
const DELIVERED: &str = "WITH done AS (
         UPDATE outbox o SET status = 'delivered', platform_ts = d.ts, delivered_at = now(), locked_until = NULL,
                last_error = NULL, maybe_sent = false
         FROM UNNEST($1::bigint[], $2::int[], $3::text[]) AS d(id, attempts, ts)
         WHERE o.id = d.id AND o.status = 'sending' AND o.attempts = d.attempts
         RETURNING o.platform, o.tenant, o.channel, o.platform_ts, o.conversation_id, o.created_at,
                   EXISTS (SELECT 1 FROM outbox n WHERE n.platform = o.platform AND n.tenant = o.tenant AND n.channel = o.channel
                             AND n.id > o.id AND n.status IN ('pending', 'sending')) AS more
     ),
     branched AS (
         INSERT INTO conversations (platform, tenant, channel, thread, agent)
         SELECT d.platform, d.tenant, d.channel, d.platform_ts, c.agent
         FROM done d JOIN conversations c ON c.id = d.conversation_id
         WHERE d.platform_ts IS NOT NULL
         ON CONFLICT (platform, tenant, channel, thread) DO NOTHING
         RETURNING id, platform, tenant, channel, thread
     ),
     copied AS (
         INSERT INTO messages (conversation_id, author, user_id, workspace, body, created_at)
         SELECT b.id, m.author, m.user_id, m.workspace, m.body, m.created_at
         FROM branched b
         JOIN done d ON d.platform = b.platform AND d.tenant = b.tenant AND d.channel = b.channel AND d.platform_ts = b.thread
         CROSS JOIN LATERAL (
             SELECT * FROM messages m
             WHERE m.conversation_id = d.conversation_id AND m.created_at <= d.created_at
             ORDER BY m.id DESC LIMIT 2
         ) m
         ORDER BY b.id, m.id
     )
     SELECT COALESCE(bool_or(more), false) FROM done";
const RETRY: &str = "UPDATE outbox SET status = 'pending', locked_until = NULL, not_before = now() + make_interval(secs => $2), last_error = $3,
         maybe_sent = $5
     WHERE id = $1 AND status = 'sending' AND attempts = $4";
// A post the platform refused with a rate limit: tried again after `$2`
// seconds, and not counted as an attempt (a storm of 429s must not use up
// the attempts a reply has for real failures).
const RATE_LIMITED: &str = "UPDATE outbox SET status = 'pending', locked_until = NULL, attempts = attempts - 1,
         not_before = now() + make_interval(secs => $2), last_error = 'rate limited', maybe_sent = $4
     WHERE id = $1 AND status = 'sending' AND attempts = $3";
// A claim given back unused (its channel's pacing said wait): not counted
// as an attempt.
const UNCLAIM: &str = "UPDATE outbox SET status = 'pending', locked_until = NULL, attempts = attempts - 1,
         not_before = now() + make_interval(secs => $3)
     WHERE id = $1 AND status = 'sending' AND attempts = $2";
const DEAD: &str = "UPDATE outbox SET status = 'dead', locked_until = NULL, last_error = $2 WHERE id = $1 AND status = 'sending' AND attempts = $3";
const HOLD_CHANNEL: &str = "UPDATE outbox SET not_before = greatest(not_before, now() + make_interval(secs => $4))
     WHERE platform = $1 AND tenant = $2 AND channel = $3 AND status = 'pending'";
const LIST_DEAD: &str = "SELECT id, platform, channel, last_error, attempts, created_at FROM outbox WHERE status = 'dead' ORDER BY id DESC LIMIT $1";
const REVIVE: &str = "UPDATE outbox SET status = 'pending', not_before = now(), attempts = 0, last_error = NULL WHERE id = $1 AND status = 'dead'";
const FIND_DELIVERED: &str = "SELECT id FROM outbox WHERE platform = $1 AND tenant = $2 AND channel = $3 AND platform_ts = $4 AND status = 'delivered' AND NOT is_progress
     ORDER BY id DESC LIMIT 1";
const FEEDBACK: &str = "INSERT INTO feedback (outbox_id, user_id, helpful) VALUES ($1, $2, $3)
     ON CONFLICT (outbox_id, user_id) DO UPDATE SET helpful = EXCLUDED.helpful, created_at = now()";
const NOTIFY: &str = "SELECT pg_notify('pincer_outbox', '')";
const PRUNE: &str =
    "DELETE FROM outbox o WHERE o.status = 'delivered' AND o.delivered_at < now() - make_interval(days => $1)
     AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.outbox_id = o.id)
     AND NOT EXISTS (SELECT 1 FROM outbox a WHERE a.progress_of = o.id)";

/// The Postgres channel other processes' dispatchers listen on.
pub const CHANNEL: &str = "pincer_outbox";

// Terminal replies nobody was there to see, shown by the next `pincer chat`
// in that channel (the person's own private ones, and everyone's public ones).
const TAKE_TERMINAL: &str = "UPDATE outbox SET status = 'delivered', delivered_at = now()
     WHERE id IN (SELECT id FROM outbox WHERE platform = 'console' AND channel = $1 AND status = 'pending'
                    AND (recipient IS NULL OR recipient = $2) ORDER BY id FOR UPDATE SKIP LOCKED)
     RETURNING id, reply, is_progress";
const OPEN: &str = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("outbox.insert", INSERT),
    ("outbox.finish_answer", FINISH_ANSWER),
    ("outbox.finish_asked", FINISH_ASKED),
    ("outbox.claim", CLAIM),
    ("outbox.delivered", DELIVERED),
    ("outbox.retry", RETRY),
    ("outbox.dead", DEAD),
    ("outbox.unclaim", UNCLAIM),
    ("outbox.hold_channel", HOLD_CHANNEL),
    ("outbox.list_dead", LIST_DEAD),
    ("outbox.revive", REVIVE),
    ("outbox.open", OPEN),
    ("outbox.take_terminal", TAKE_TERMINAL),
    ("outbox.notify", NOTIFY),
    ("outbox.prune", PRUNE),
    ("outbox.find_delivered", FIND_DELIVERED),
    ("outbox.feedback", FEEDBACK),
];

/// The reply as it may leave: with every registered secret redacted
/// ([`crate::redact`]) from its text and buttons.
pub(crate) fn scrubbed(reply: &pincer_adapters::Reply) -> std::borrow::Cow<'_, pincer_adapters::Reply> {
    use std::borrow::Cow;
    let dirty = crate::redact::contains_secret;
    if !(dirty(&reply.text) || reply.buttons.iter().any(|b| dirty(&b.label))) {
        return Cow::Borrowed(reply);
    }
    let mut clean = reply.clone();
    clean.text = crate::redact::scrub(&clean.text).into_owned();
    for b in &mut clean.buttons {
        b.label = crate::redact::scrub(&b.label).into_owned();
    }
    Cow::Owned(clean)
}

/// Takes the terminal replies waiting in `channel` for `person`, oldest first.
pub async fn take_terminal(pool: &Pool, channel: &str, person: &str) -> Result<Vec<Reply>, StoreError> {
    let mut rows: Vec<(i64, StoredReply, bool)> =
        sqlx::query_as(TAKE_TERMINAL).bind(channel).bind(person).fetch_all(pool).await?;
    rows.sort_by_key(|(id, _, _)| *id);
    // A "working on it…" placeholder is stale by now: taken, not shown.
    Ok(rows
        .into_iter()
        .filter(|(_, _, progress)| !progress)
        .map(|(id, r, _)| match r {
            StoredReply::Read(r) => r,
            StoredReply::Unreadable(e) => {
                tracing::warn!(outbox_id = id, error = %e, "a stored reply this version cannot read");
                Reply::error(UNREADABLE_FOR_A_PERSON)
            }
        })
        .collect())
}

/// Shown in a terminal in place of a reply this version cannot read.
pub const UNREADABLE_FOR_A_PERSON: &str = "A reply to you was stored by a different version of Pincer, and this one cannot show it. Ask an admin to look at the gateway's log.";

/// Stores a reply. Returns its id.
pub async fn insert(conn: &mut PgConnection, o: &NewOutbound<'_>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(INSERT)
        .bind(o.platform)
        .bind(o.tenant)
        .bind(o.channel)
        .bind(o.thread)
        .bind(o.response_url)
        .bind(o.recipient)
        .bind(sqlx::types::Json(scrubbed(o.reply)))
        .bind(o.is_progress)
        .bind(o.progress_of)
        .bind(o.delay.as_secs_f64())
        .fetch_one(conn)
        .await?)
}

/// What [`finish_answer`] did.
#[derive(Debug)]
pub enum Answered {
    /// Another worker holds the job: nothing was written.
    LeaseLost,
    /// Stored; the dispatcher delivers the reply.
    Queued,
    /// Stored, and the reply claimed for the caller to deliver.
    Claimed(Box<OutboxRow>),
}

/// A produced answer's rows: its message (in `workspace`), its usage, and
/// its reply — claimed with `claim` (a lease) for the caller to deliver if
/// nothing else waits in its channel (`settled`: rows known delivered whose
/// delivery is not recorded yet).
pub struct AnswerRows<'a> {
    /// The asker's workspace, if not shared.
    pub workspace: Option<&'a str>,
    /// The answer's text.
    pub body: &'a str,
    /// The reply.
    pub reply: &'a NewOutbound<'a>,
    /// What it cost.
    pub used: &'a super::usage::NewUsage<'a>,
    /// Claim the reply for this long, for the caller to deliver.
    pub claim: Option<Duration>,
    /// Rows delivered, not yet recorded.
    pub settled: &'a [i64],
}

/// Records a produced answer, completing job `job_id` held by `worker`, in
/// one statement.
pub async fn finish_answer(
    pool: &Pool,
    job_id: i64,
    worker: &str,
    conversation_id: i64,
    a: &AnswerRows<'_>,
) -> Result<Answered, StoreError> {
    let reply = scrubbed(a.reply.reply);
    let q =
        sqlx::query_as(FINISH_ANSWER).bind(job_id).bind(worker).bind(conversation_id).bind(a.workspace).bind(a.body);
    let row: Option<AnsweredRow> = bind_answer(q, a, &reply).fetch_optional(pool).await?;
    Ok(answered(row, a.reply, reply))
}

/// An ask that was answered before anything of it was written: what the
/// router would have written for it (the thread's conversation, the
/// question, the audit rows), completing the event's job `job_id`.
pub struct Asked<'a> {
    /// The thread.
    pub thread: super::conversations::ThreadKey<'a>,
    /// The agent that answered.
    pub agent: &'a str,
    /// The asker.
    pub user_id: i64,
    /// The question.
    pub question: &'a str,
    /// The router's audit rows for the event.
    pub trail: Vec<super::audit::AuditEntry>,
}

/// Like [`finish_answer`], for an ask answered straight after routing: the
/// event's job `job_id` is completed, and the router's writes for it go in
/// the same statement as the answer's.
pub async fn finish_asked(
    pool: &Pool,
    job_id: i64,
    worker: &str,
    asked: Asked<'_>,
    a: &AnswerRows<'_>,
) -> Result<Answered, StoreError> {
    let reply = scrubbed(a.reply.reply);
    let rows = super::audit::prepare(asked.trail);
    let q = sqlx::query_as(FINISH_ASKED)
        .bind(job_id)
        .bind(worker)
        .bind(asked.thread.platform)
        .bind(a.workspace)
        .bind(a.body);
    let row: Option<AnsweredRow> = bind_answer(q, a, &reply)
        .bind(asked.thread.tenant)
        .bind(asked.thread.channel)
        .bind(asked.thread.key())
        .bind(asked.agent)
        .bind(asked.user_id)
        .bind(asked.question)
        .bind(&rows.ts)
        .bind(&rows.users)
        .bind(&rows.actions)
        .bind(&rows.metadata)
        .bind(&rows.tails)
        .fetch_optional(pool)
        .await?;
    Ok(answered(row, a.reply, reply))
}

type AnsweredRow = (i64, bool, DateTime<Utc>, Option<String>);
type AnswerQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, AnsweredRow, sqlx::postgres::PgArguments>;

/// Binds an answer's reply and usage, $6–$21 (the caller has bound $1–$5).
fn bind_answer<'q>(q: AnswerQuery<'q>, a: &AnswerRows<'q>, reply: &'q pincer_adapters::Reply) -> AnswerQuery<'q> {
    let (o, used) = (a.reply, a.used);
    q.bind(o.platform)
        .bind(o.tenant)
        .bind(o.channel)
        .bind(o.thread)
        .bind(o.response_url)
        .bind(o.recipient)
        .bind(sqlx::types::Json(reply))
        .bind(o.progress_of)
        .bind(used.user_email)
        .bind(used.agent)
        .bind(used.provider)
        .bind(used.tokens_in)
        .bind(used.tokens_out)
        .bind(used.cost_micros)
        .bind(a.claim.map(|l| l.as_secs_f64()))
        .bind(a.settled)
}

fn answered(
    row: Option<AnsweredRow>,
    o: &NewOutbound<'_>,
    reply: std::borrow::Cow<'_, pincer_adapters::Reply>,
) -> Answered {
    match row {
        None => Answered::LeaseLost,
        Some((_, false, _, _)) => Answered::Queued,
        Some((id, true, created_at, progress_ts)) => Answered::Claimed(Box::new(OutboxRow {
            id,
            platform: o.platform.to_string(),
            tenant: o.tenant.to_string(),
            channel: o.channel.to_string(),
            thread: o.thread.map(str::to_string),
            response_url: o.response_url.map(str::to_string),
            recipient: o.recipient.map(str::to_string),
            reply: StoredReply::Read(reply.into_owned()),
            is_progress: false,
            progress_ts,
            attempts: 1,
            maybe_sent: false,
            created_at,
        })),
    }
}

/// Claims up to `limit` deliverable rows for `lease`; `settled` are rows
/// known delivered whose delivery is not recorded yet.
pub async fn claim(pool: &Pool, lease: Duration, limit: i64, settled: &[i64]) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(CLAIM).bind(lease.as_secs_f64()).bind(limit).bind(settled).fetch_all(pool).await?)
}

/// One delivery to record: the row, the claim it was sent under, and the
/// platform's id for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The claim's attempt count.
    pub attempts: i32,
    /// The platform's message id (Slack `ts`), if it gave one.
    pub platform_ts: Option<String>,
}

/// Records deliveries, in one statement. Returns whether a later reply
/// waits in the channel of any of them.
///
/// Tried twice if the first attempt lost its connection (the update is
/// fenced on the claim, so a second try cannot record twice). A delivery
/// never recorded is looked for on the platform before it is sent again.
pub async fn delivered(pool: &Pool, batch: &[Delivery]) -> Result<bool, StoreError> {
    let ids: Vec<i64> = batch.iter().map(|d| d.id).collect();
    let attempts: Vec<i32> = batch.iter().map(|d| d.attempts).collect();
    let ts: Vec<Option<&str>> = batch.iter().map(|d| d.platform_ts.as_deref()).collect();
    let record = || sqlx::query_scalar(DELIVERED).bind(&ids).bind(&attempts).bind(&ts).fetch_one(pool);
    Ok(match record().await {
        Err(e) if !super::pool::keeps_connection(&e) => record().await?,
        other => other?,
    })
}

/// Gives a claimed row back, untried, to be claimed after `delay`.
pub async fn unclaim(pool: &Pool, id: i64, attempts: i32, delay: Duration) -> Result<(), StoreError> {
    sqlx::query(UNCLAIM).bind(id).bind(attempts).bind(delay.as_secs_f64()).execute(pool).await?;
    Ok(())
}

/// Puts a row back to be tried after `delay`; `maybe_sent` if the failed
/// attempt may have reached the platform all the same.
pub async fn retry(
    pool: &Pool,
    id: i64,
    attempts: i32,
    delay: Duration,
    error: &str,
    maybe_sent: bool,
) -> Result<(), StoreError> {
    sqlx::query(RETRY)
        .bind(id)
        .bind(delay.as_secs_f64())
        .bind(error)
        .bind(attempts)
        .bind(maybe_sent)
        .execute(pool)
        .await?;
    Ok(())
}

/// Puts a row refused with a rate limit back to be tried after `delay`,
/// giving its attempt back; `maybe_sent` as the claim had it (the refused
/// post reached nothing, an earlier attempt still may have).
pub async fn rate_limited(
    pool: &Pool,
    id: i64,
    attempts: i32,
    delay: Duration,
    maybe_sent: bool,
) -> Result<(), StoreError> {
    sqlx::query(RATE_LIMITED).bind(id).bind(delay.as_secs_f64()).bind(attempts).bind(maybe_sent).execute(pool).await?;
    Ok(())
}

/// Dead-letters a row, in the caller's transaction (with its audit row).
/// `false` if a later claim owns the row now.
pub async fn dead(conn: &mut PgConnection, id: i64, attempts: i32, error: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(DEAD).bind(id).bind(error).bind(attempts).execute(conn).await?.rows_affected() == 1)
}

/// Holds every pending row of a channel for `delay` (the platform said 429).
pub async fn hold_channel(
    pool: &Pool,
    platform: &str,
    tenant: &str,
    channel: &str,
    delay: Duration,
) -> Result<(), StoreError> {
    sqlx::query(HOLD_CHANNEL).bind(platform).bind(tenant).bind(channel).bind(delay.as_secs_f64()).execute(pool).await?;
    Ok(())
}

/// The newest dead letters.
pub async fn list_dead(conn: &mut PgConnection, n: i64) -> Result<Vec<DeadLetter>, StoreError> {
    Ok(sqlx::query_as(LIST_DEAD).bind(n).fetch_all(conn).await?)
}

/// Queues a dead letter again. `false` if it is not dead.
pub async fn revive(conn: &mut PgConnection, id: i64) -> Result<bool, StoreError> {
    Ok(sqlx::query(REVIVE).bind(id).execute(conn).await?.rows_affected() == 1)
}

/// Rows not yet delivered.
pub async fn open(pool: &Pool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(OPEN).fetch_one(pool).await?)
}

/// The delivered reply a platform message id belongs to.
pub async fn find_delivered(
    conn: &mut PgConnection,
    platform: &str,
    tenant: &str,
    channel: &str,
    ts: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(FIND_DELIVERED)
        .bind(platform)
        .bind(tenant)
        .bind(channel)
        .bind(ts)
        .fetch_optional(conn)
        .await?)
}

/// Records (or changes) a person's vote on a reply.
pub async fn feedback(conn: &mut PgConnection, outbox_id: i64, user_id: i64, helpful: bool) -> Result<(), StoreError> {
    sqlx::query(FEEDBACK).bind(outbox_id).bind(user_id).bind(helpful).execute(conn).await?;
    Ok(())
}

/// Wakes dispatchers in other processes when the transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(NOTIFY).execute(conn).await?;
    Ok(())
}

/// Forgets delivered replies older than `days` (keeping those with votes).
pub async fn prune(conn: &mut PgConnection, days: i32) -> Result<u64, StoreError> {
    Ok(sqlx::query(PRUNE).bind(days).execute(conn).await?.rows_affected())
}
