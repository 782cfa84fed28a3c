//! Approvals: a tool call waiting for a person. A row is bound to its run
//! (the answer job), the tool and a SHA-256 of the exact arguments; a click
//! names it by a random token; it is decided once, used once, and expires.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgConnection};

use super::StoreError;

/// One approval.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Approval {
    /// Its id.
    pub id: i64,
    /// The run's job.
    pub job_id: i64,
    /// The agent whose run it is.
    pub agent: String,
    /// Who asked the question.
    pub asker_email: String,
    /// The tool.
    pub tool: String,
    /// The arguments as shown (redacted).
    pub arguments: String,
    /// SHA-256 of the exact arguments.
    pub args_hash: String,
    /// Where the request was posted.
    pub platform: String,
    /// The workspace there.
    pub tenant: String,
    /// The channel there.
    pub channel: String,
    /// The request message in the outbox.
    pub outbox_id: Option<i64>,
    /// `pending`, `approved`, `denied`, `expired` or `voided`.
    pub state: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When it stops being answerable.
    pub expires_at: DateTime<Utc>,
    /// When the approved call ran.
    pub used_at: Option<DateTime<Utc>>,
    /// Still waiting and not yet expired, by the database's clock (the one
    /// `expires_at` was set by).
    pub open: bool,
}

/// A new request.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    /// A random token for the buttons.
    pub token: &'a str,
    /// The run's job.
    pub job_id: i64,
    /// The agent.
    pub agent: &'a str,
    /// The asker.
    pub asker_email: &'a str,
    /// The tool.
    pub tool: &'a str,
    /// The arguments as shown.
    pub arguments: &'a str,
    /// The hash of the exact arguments.
    pub args_hash: &'a str,
    /// Where it is posted.
    pub platform: &'a str,
    /// The workspace there.
    pub tenant: &'a str,
    /// The channel there.
    pub channel: &'a str,
    /// How long it stays open.
    pub expire: std::time::Duration,
}

/// The hash an approval is bound to.
pub fn args_hash(tool: &str, arguments: &str) -> String {
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    h.update([0]);
    h.update(arguments.as_bytes());
    hex::encode(h.finalize())
}

const INSERT: &str = "INSERT INTO approvals (token, job_id, agent, asker_email, tool, arguments, args_hash, platform, tenant, channel, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11)) RETURNING id, expires_at";
const SET_MESSAGE: &str = "UPDATE approvals SET outbox_id = $2 WHERE id = $1";
const BY_TOKEN: &str = "SELECT id, job_id, agent, asker_email, tool, arguments, args_hash, platform, tenant, channel, outbox_id, state, decided_by, expires_at, used_at,
            (state = 'pending' AND expires_at > now()) AS open
     FROM approvals WHERE token = $1 FOR UPDATE";
const BY_ID: &str = "SELECT id, job_id, agent, asker_email, tool, arguments, args_hash, platform, tenant, channel, outbox_id, state, decided_by, expires_at, used_at,
            (state = 'pending' AND expires_at > now()) AS open
     FROM approvals WHERE id = $1 FOR UPDATE";
// A decision wakes the paused run at once.
const DECIDE: &str = "WITH d AS (
         UPDATE approvals SET state = $2, decided_by = $3, decided_at = now() WHERE id = $1 AND state = 'pending' RETURNING job_id
     )
     UPDATE jobs SET run_after = now() WHERE id = (SELECT job_id FROM d)";
const USE_ONCE: &str = "UPDATE approvals SET used_at = now() WHERE id = $1 AND state = 'approved' AND used_at IS NULL";
const VOID_FOR_AGENT: &str = "WITH v AS (
         UPDATE approvals SET state = 'voided', decided_by = $2, decided_at = now()
         WHERE agent = $1 AND state = 'pending' RETURNING job_id
     )
     UPDATE jobs SET run_after = now() WHERE id IN (SELECT job_id FROM v)";
const PENDING: &str = "SELECT id, job_id, agent, asker_email, tool, arguments, args_hash, platform, tenant, channel, outbox_id, state, decided_by, expires_at, used_at,
            (state = 'pending' AND expires_at > now()) AS open
     FROM approvals WHERE state = 'pending' ORDER BY id LIMIT $1";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("approvals.insert", INSERT),
    ("approvals.set_message", SET_MESSAGE),
    ("approvals.by_token", BY_TOKEN),
    ("approvals.by_id", BY_ID),
    ("approvals.decide", DECIDE),
    ("approvals.use_once", USE_ONCE),
    ("approvals.void_for_agent", VOID_FOR_AGENT),
    ("approvals.pending", PENDING),
];

/// Records a request. Returns its id and when it expires.
pub async fn insert(conn: &mut PgConnection, a: &NewApproval<'_>) -> Result<(i64, DateTime<Utc>), StoreError> {
    Ok(sqlx::query_as(INSERT)
        .bind(a.token)
        .bind(a.job_id)
        .bind(a.agent)
        .bind(a.asker_email)
        .bind(a.tool)
        .bind(a.arguments)
        .bind(a.args_hash)
        .bind(a.platform)
        .bind(a.tenant)
        .bind(a.channel)
        .bind(a.expire.as_secs_f64())
        .fetch_one(conn)
        .await?)
}

/// Remembers the request's message.
pub async fn set_message(conn: &mut PgConnection, id: i64, outbox_id: i64) -> Result<(), StoreError> {
    sqlx::query(SET_MESSAGE).bind(id).bind(outbox_id).execute(conn).await?;
    Ok(())
}

/// The approval a button names, locked until the transaction ends.
pub async fn by_token(conn: &mut PgConnection, token: &str) -> Result<Option<Approval>, StoreError> {
    Ok(sqlx::query_as(BY_TOKEN).bind(token).fetch_optional(conn).await?)
}

/// An approval by id, locked until the transaction ends.
pub async fn by_id(conn: &mut PgConnection, id: i64) -> Result<Option<Approval>, StoreError> {
    Ok(sqlx::query_as(BY_ID).bind(id).fetch_optional(conn).await?)
}

/// Decides a pending approval (`approved`, `denied`, `expired`) and wakes
/// its run. Does nothing to one already decided.
pub async fn decide(conn: &mut PgConnection, id: i64, state: &str, by: Option<&str>) -> Result<(), StoreError> {
    sqlx::query(DECIDE).bind(id).bind(state).bind(by).execute(conn).await?;
    Ok(())
}

/// Marks an approved call as run. `false` if it was used already (or was
/// never approved): the call must not run.
pub async fn use_once(conn: &mut PgConnection, id: i64) -> Result<bool, StoreError> {
    Ok(sqlx::query(USE_ONCE).bind(id).execute(conn).await?.rows_affected() == 1)
}

/// Voids an agent's pending approvals (break-glass) and wakes their runs,
/// which then end with the agent's disabled sentence. Returns how many.
pub async fn void_for_agent(conn: &mut PgConnection, agent: &str, by: &str) -> Result<u64, StoreError> {
    let woken = sqlx::query(VOID_FOR_AGENT).bind(agent).bind(by).execute(conn).await?.rows_affected();
    Ok(woken)
}

/// Open requests, oldest first (for `/admin approvals`).
pub async fn pending(conn: &mut PgConnection, limit: i64) -> Result<Vec<Approval>, StoreError> {
    Ok(sqlx::query_as(PENDING).bind(limit).fetch_all(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_binds_tool_and_exact_arguments() {
        let a = args_hash("memory_write", r#"{"text":"x"}"#);
        assert_eq!(a, args_hash("memory_write", r#"{"text":"x"}"#));
        assert_ne!(a, args_hash("memory_write", r#"{"text":"y"}"#));
        assert_ne!(a, args_hash("web_fetch", r#"{"text":"x"}"#));
        assert_ne!(args_hash("a", "bc"), args_hash("ab", "c"));
    }
}
