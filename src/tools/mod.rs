//! The tool registry: what an agent's model may call, one module per tool
//! family. Each tool has a name, a JSON schema, the grant it needs
//! (`memory` reads, `memory:write` writes — writes are never implied), and
//! whether it has side effects. [`execute`] enforces the agent's
//! `allowed_tools` at call time — whatever the model was offered — and
//! audits every call, allowed or not.
//!
//! Today: `memory_search`, `memory_write`, `web_fetch`.

pub mod memory;
pub mod web;

use serde_json::{Value, json};

use crate::app::App;
use crate::config::AgentConfig;
use crate::handlers::ask::AskJob;
use crate::llm::openai::{ToolCall, ToolSpec};
use crate::policy::{ToolGrant, tool_permitted};
use crate::store::StoreError;
use crate::store::audit::{self, AuditEntry};

/// How much of a call's arguments the audit row keeps.
const AUDIT_ARGS_CHARS: usize = 500;

/// One tool.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Its name, as the model calls it.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// The grant family it needs (`memory`).
    pub family: &'static str,
    /// Whether it needs the family's `:write` grant.
    pub writes: bool,
    /// Whether every call waits for a person's approval, whatever the
    /// config says (shell, GitHub and PagerDuty writes, browser submits
    /// when they land). `approvals.tools` in the config adds others.
    pub approval: bool,
}

/// Every tool Pincer has.
pub const TOOLS: &[Tool] = &[memory::SEARCH, memory::WRITE, web::FETCH];

fn schema(tool: &Tool) -> Value {
    match tool.name {
        "memory_search" => {
            json!({"type": "object", "properties": {"query": {"type": "string", "description": "words to search for"}}, "required": ["query"]})
        }
        _ => {
            json!({"type": "object", "properties": {"text": {"type": "string", "description": "the note to remember"}}, "required": ["text"]})
        }
    }
}

/// Whether a tool changes anything (its grant is a `:write` one).
pub fn has_side_effects(name: &str) -> bool {
    TOOLS.iter().any(|t| t.name == name && t.writes)
}

/// The tools an agent's grants allow, as offered to its model.
pub fn offered(grants: &[ToolGrant]) -> Vec<ToolSpec> {
    TOOLS
        .iter()
        .filter(|t| tool_permitted(grants, t.family, t.writes))
        .map(|t| ToolSpec { name: t.name, description: t.description, parameters: schema(t) })
        .collect()
}

/// Runs one call the model asked for and returns what the model is told.
/// Refusals and failures are told to the model as `error: …` and audited;
/// only a database failure is an `Err`.
pub async fn execute(app: &App, agent: &AgentConfig, ask: &AskJob, call: &ToolCall) -> Result<String, StoreError> {
    let args_shown: String = call.arguments.chars().take(AUDIT_ARGS_CHARS).collect();
    let base = json!({"agent": agent.name, "tool": call.name, "arguments": args_shown});
    let entry =
        |action: &str, extra: Value| AuditEntry::new(Some(&ask.user_email), action, crate::router::with(&base, extra));
    let refuse = |action: &'static str, extra: Value, told: String| async move {
        let mut tx = app.store.pool.begin().await?;
        audit::append(&mut tx, vec![entry(action, extra)]).await?;
        tx.commit().await?;
        Ok::<String, StoreError>(told)
    };
    let Some(tool) = TOOLS.iter().find(|t| t.name == call.name) else {
        return refuse(
            "tool.denied",
            json!({"reason": "unknown_tool"}),
            format!("error: there is no tool named {}", call.name),
        )
        .await;
    };
    if !tool_permitted(&agent.allowed_tools, tool.family, tool.writes) {
        let told = format!("error: agent {} may not use {}", agent.name, tool.name);
        return refuse("tool.denied", json!({"reason": "not_allowed"}), told).await;
    }
    let args: Value = match serde_json::from_str(&call.arguments) {
        Ok(v) => v,
        Err(e) => {
            let told = format!("error: the arguments are not valid JSON: {e}");
            return refuse("tool.call", json!({"ok": false, "error": "bad_arguments"}), told).await;
        }
    };
    // Network work happens before the transaction that records it, never
    // inside it; a memory write and its audit row commit together.
    let fetched = match tool.name {
        "web_fetch" => Some(web::fetch(&args, &app.config.egress_allow).await),
        _ => None,
    };
    let mut tx = app.store.pool.begin().await?;
    let outcome = match (tool.name, fetched) {
        (_, Some(fetched)) => fetched,
        ("memory_search", None) => memory::search(&mut tx, ask, &args).await?,
        _ => memory::write(&mut tx, agent, ask, &args).await?,
    };
    let (ok, text) = match outcome {
        Ok(text) => (true, text),
        Err(why) => (false, format!("error: {why}")),
    };
    audit::append(&mut tx, vec![entry("tool.call", json!({"ok": ok, "result_chars": text.len()}))]).await?;
    tx.commit().await?;
    Ok(text)
}
