//! `/admin agent list|disable|enable`. Disabling is break-glass: it is
//! stored in Postgres, so every replica refuses the agent's next run, its
//! running runs stop at their next tool boundary, and its pending approval
//! requests are voided.

use pincer_commands::AgentName;
use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, agents, approvals, jobs};

fn unknown(ctx: &Ctx<'_>, name: &AgentName) -> Outcome {
    let known = ctx.app.config.agents.keys().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
    Outcome::refused(format!("There is no agent {name}. Agents: {known}."), json!({"agent": name}))
}

/// Lists agents with owner, model, channels, scopes, tools and state.
pub async fn list(ctx: &Ctx<'_>, conn: &mut PgConnection) -> Result<Outcome, StoreError> {
    let states = agents::states(conn).await?;
    let mut text = String::from("Agents:");
    for a in ctx.app.config.agents.values() {
        let state = states.iter().find(|s| s.name == a.name.as_str());
        let status = match state {
            Some(s) if s.is_disabled() => format!(
                "DISABLED by {} ({})",
                s.disabled_by.as_deref().unwrap_or("?"),
                s.disabled_reason.as_deref().unwrap_or("no reason")
            ),
            _ => "enabled".into(),
        };
        let join = |v: Vec<String>| {
            if v.is_empty() { "none".to_string() } else { v.join(", ") }
        };
        text.push_str(&format!(
            "\n• {} — {status}\n  owner {} · model {} · prompt {}\n  channels {}\n  memory {}\n  tools {}",
            a.name,
            a.owner,
            a.provider.as_deref().unwrap_or(crate::config::EXTRACTIVE),
            a.prompt_path.display(),
            join(a.channels.iter().map(|c| c.to_string()).collect()),
            join(a.memory_scopes.iter().map(|s| s.to_string()).collect()),
            join(a.allowed_tools.iter().map(|t| t.to_string()).collect()),
        ));
        if let Some(d) = &a.description {
            text.push_str(&format!("\n  {d}"));
        }
    }
    Ok(Outcome::done(text, json!({"count": ctx.app.config.agents.len()})))
}

/// Disables an agent, saying why.
pub async fn disable(
    ctx: &Ctx<'_>,
    conn: &mut PgConnection,
    name: &AgentName,
    reason: &str,
) -> Result<Outcome, StoreError> {
    if !ctx.app.config.agents.contains_key(name) {
        return Ok(unknown(ctx, name));
    }
    if agents::disable(conn, name, ctx.user.email.as_str(), reason).await? {
        let voided = approvals::void_for_agent(conn, name.as_str(), ctx.user.email.as_str()).await?;
        if voided > 0 {
            jobs::notify(conn).await?;
        }
        let meta = json!({"agent": name, "reason": reason, "approvals_voided": voided});
        Ok(Outcome::done(
            format!(
                "Disabled {name}: every Pincer process refuses its new runs from now on, and running ones stop at their next step{}. /admin agent enable {name} reverses it.",
                match voided {
                    0 => String::new(),
                    1 => "; its pending approval request was voided".to_string(),
                    n => format!("; its {n} pending approval requests were voided"),
                }
            ),
            meta,
        ))
    } else {
        Ok(Outcome::refused(format!("{name} is already disabled."), json!({"agent": name, "reason": reason})))
    }
}

/// Enables a disabled agent.
pub async fn enable(
    ctx: &Ctx<'_>,
    conn: &mut PgConnection,
    name: &AgentName,
    reason: Option<&str>,
) -> Result<Outcome, StoreError> {
    if !ctx.app.config.agents.contains_key(name) {
        return Ok(unknown(ctx, name));
    }
    let meta = json!({"agent": name, "reason": reason});
    if agents::enable(conn, name).await? {
        Ok(Outcome::done(format!("Enabled {name}; it answers again."), meta))
    } else {
        Ok(Outcome::refused(format!("{name} is not disabled."), meta))
    }
}
