//! `memory_search` (grant `memory`) and `memory_write` (grant
//! `memory:write`). Search reads exactly the scopes the ask may read; a
//! write goes to the one scope policy allows (the asker's workspace, else
//! the agent's first scope).

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::Tool;
use crate::config::AgentConfig;
use crate::handlers::ask::AskJob;
use crate::policy::write_scope;
use crate::store::StoreError;
use crate::store::memory::{self as store, NewItem};

/// `memory_search`.
pub const SEARCH: Tool = Tool {
    name: "memory_search",
    description: "Search the team's memory that this conversation may read. Returns the best matching passages with their sources.",
    family: "memory",
    writes: false,
    approval: false,
};

/// `memory_write`.
pub const WRITE: Tool = Tool {
    name: "memory_write",
    description: "Remember a short note for later questions, in the asker's workspace (or the agent's shared memory).",
    family: "memory",
    writes: true,
    // A note in memory the run may already write, undone with `/admin memory forget`.
    approval: false,
};

/// The longest note `memory_write` stores.
const MAX_NOTE_CHARS: usize = 4000;

/// Runs `memory_search`; the inner `Err` is told to the model.
pub async fn search(conn: &mut PgConnection, ask: &AskJob, args: &Value) -> Result<Result<String, String>, StoreError> {
    let Some(query) = args["query"].as_str().filter(|q| !q.trim().is_empty()) else {
        return Ok(Err("memory_search needs a non-empty \"query\"".into()));
    };
    let found = store::search(conn, &ask.scopes, query, 5).await?;
    let hits: Vec<Value> = found
        .iter()
        .map(|p| json!({"scope": p.scope, "source": p.source, "where": p.locator, "text": p.body}))
        .collect();
    Ok(Ok(json!({"passages": hits}).to_string()))
}

/// Runs `memory_write`; the inner `Err` is told to the model.
pub async fn write(
    conn: &mut PgConnection,
    agent: &AgentConfig,
    ask: &AskJob,
    args: &Value,
) -> Result<Result<String, String>, StoreError> {
    let Some(text) = args["text"].as_str().map(pincer_commands::clean_text).filter(|t| !t.is_empty()) else {
        return Ok(Err("memory_write needs a non-empty \"text\"".into()));
    };
    if text.chars().count() > MAX_NOTE_CHARS {
        return Ok(Err(format!("the note is longer than {MAX_NOTE_CHARS} characters")));
    }
    let workspace = ask.workspace.as_deref().and_then(|w| pincer_commands::WorkspaceName::parse(w).ok());
    let Some(scope) = write_scope(&agent.memory_scopes, workspace.as_ref()) else {
        return Ok(Err("this agent has no memory scope to write to".into()));
    };
    let source = format!("note:{}:{}", ask.user_email, Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    let item = NewItem { locator: format!("by {}", ask.user_email), body: text };
    store::replace_source(conn, &scope, &source, &ask.user_email, std::slice::from_ref(&item)).await?;
    Ok(Ok(format!("saved to {scope}")))
}
