//! Agents as stored: a snapshot of each agent's policy from the config, and
//! the runtime switch (`disabled_at`) every replica reads, so a break-glass
//! `disable` holds across all of them.

use chrono::{DateTime, Utc};
use pincer_commands::AgentName;
use sqlx::{FromRow, PgConnection};

use super::StoreError;
use crate::config::AgentConfig;

/// Whether an agent is disabled, by whom and why.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AgentState {
    /// The agent's name.
    pub name: String,
    /// When it was disabled, if it is.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Who disabled it.
    pub disabled_by: Option<String>,
    /// Why.
    pub disabled_reason: Option<String>,
}

impl AgentState {
    /// Whether new runs are refused.
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

const UPSERT: &str = "INSERT INTO agents (name, owner_email, policy) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET owner_email = EXCLUDED.owner_email, policy = EXCLUDED.policy, updated_at = now()
     WHERE agents.owner_email IS DISTINCT FROM EXCLUDED.owner_email OR agents.policy IS DISTINCT FROM EXCLUDED.policy";
// An agent row with no policy snapshot (the doctor's break-glass probe).
const ENSURE: &str =
    "INSERT INTO agents (name, owner_email, policy) VALUES ($1, $2, '{}') ON CONFLICT (name) DO NOTHING";
const STATE: &str = "SELECT name, disabled_at, disabled_by, disabled_reason FROM agents WHERE name = $1";
const STATES: &str = "SELECT name, disabled_at, disabled_by, disabled_reason FROM agents ORDER BY name";
const DISABLE: &str =
    "UPDATE agents SET disabled_at = now(), disabled_by = $2, disabled_reason = $3, updated_at = now()
     WHERE name = $1 AND disabled_at IS NULL";
const ENABLE: &str =
    "UPDATE agents SET disabled_at = NULL, disabled_by = NULL, disabled_reason = NULL, updated_at = now()
     WHERE name = $1 AND disabled_at IS NOT NULL";

// One round trip for the two things a queued answer must still hold.
const ANSWERABLE: &str = "SELECT a.disabled_at IS NOT NULL AS disabled, a.disabled_by, a.disabled_reason,
            EXISTS (SELECT 1 FROM users u WHERE u.email = $2 AND u.removed_at IS NULL) AS asker_present
     FROM (SELECT 1) one LEFT JOIN agents a ON a.name = $1";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("agents.answerable", ANSWERABLE),
    ("agents.upsert", UPSERT),
    ("agents.state", STATE),
    ("agents.ensure", ENSURE),
    ("agents.states", STATES),
    ("agents.disable", DISABLE),
    ("agents.enable", ENABLE),
];

/// The policy snapshot stored for an agent.
pub fn policy_snapshot(a: &AgentConfig) -> serde_json::Value {
    serde_json::json!({
        "model": a.provider.as_deref().unwrap_or(crate::config::EXTRACTIVE),
        "prompt": a.prompt_path.display().to_string(),
        "allowed_tools": a.allowed_tools,
        "channels": a.channels,
        "memory_scopes": a.memory_scopes,
    })
}

/// Writes each configured agent's owner and policy snapshot; keeps whether
/// it is disabled. Returns how many rows changed.
pub async fn sync<'a>(
    conn: &mut PgConnection,
    agents: impl Iterator<Item = &'a AgentConfig>,
) -> Result<u64, StoreError> {
    let mut changed = 0;
    for a in agents {
        changed += sqlx::query(UPSERT)
            .bind(a.name.as_str())
            .bind(a.owner.as_str())
            .bind(policy_snapshot(a))
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(changed)
}

/// One agent's state; `None` if it was never synced.
pub async fn state(conn: &mut PgConnection, name: &AgentName) -> Result<Option<AgentState>, StoreError> {
    Ok(sqlx::query_as(STATE).bind(name.as_str()).fetch_optional(conn).await?)
}

/// Makes sure an agent row exists (without touching one that does).
pub async fn ensure(conn: &mut PgConnection, name: &AgentName, owner: &str) -> Result<(), StoreError> {
    sqlx::query(ENSURE).bind(name.as_str()).bind(owner).execute(conn).await?;
    Ok(())
}

/// Every stored agent's state.
pub async fn states(conn: &mut PgConnection) -> Result<Vec<AgentState>, StoreError> {
    Ok(sqlx::query_as(STATES).fetch_all(conn).await?)
}

/// Disables an agent. Returns `false` if it was already disabled.
pub async fn disable(conn: &mut PgConnection, name: &AgentName, by: &str, reason: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(DISABLE).bind(name.as_str()).bind(by).bind(reason).execute(conn).await?.rows_affected() == 1)
}

/// Enables an agent. Returns `false` if it was not disabled.
pub async fn enable(conn: &mut PgConnection, name: &AgentName) -> Result<bool, StoreError> {
    Ok(sqlx::query(ENABLE).bind(name.as_str()).execute(conn).await?.rows_affected() == 1)
}

/// Whether an answer may still be given: the agent's break-glass state and
/// whether the asker is still in the org, read together.
#[derive(Debug, Clone, FromRow)]
pub struct Answerable {
    /// The agent is disabled.
    pub disabled: Option<bool>,
    /// Who disabled it.
    pub disabled_by: Option<String>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// The asker has not been removed.
    pub asker_present: bool,
}

/// Reads [`Answerable`] for an agent and an asker.
pub async fn answerable(conn: &mut PgConnection, agent: &AgentName, asker: &str) -> Result<Answerable, StoreError> {
    Ok(sqlx::query_as(ANSWERABLE).bind(agent.as_str()).bind(asker).fetch_one(conn).await?)
}
