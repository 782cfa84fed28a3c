//! `/admin …`: one file per noun. The router has already checked the role.

pub mod agent;
pub mod audit;
pub mod doctor;
pub mod identity;
pub mod memory;
pub mod outbox;
pub mod usage;
pub mod user;
pub mod workspace;

use pincer_commands::AdminCommand;
use serde_json::json;
use sqlx::PgConnection;

use super::{Ctx, Outcome};
use crate::store::StoreError;

/// Runs an admin verb.
pub async fn run(ctx: &Ctx<'_>, conn: &mut PgConnection, cmd: &AdminCommand) -> Result<Outcome, StoreError> {
    use AdminCommand as A;
    match cmd {
        A::Whoami => Ok(whoami(ctx)),
        A::UserAdd { email, role } => user::add(ctx, conn, email, *role).await,
        A::UserRole { email, role } => user::set_role(ctx, conn, email, *role).await,
        A::UserRemove { email } => user::remove(ctx, conn, email).await,
        A::UserList => user::list(conn).await,
        A::AgentList => agent::list(ctx, conn).await,
        A::AgentDisable { agent, reason } => agent::disable(ctx, conn, agent, reason).await,
        A::AgentEnable { agent, reason } => agent::enable(ctx, conn, agent, reason.as_deref()).await,
        A::WorkspaceCreate { owner, name } => workspace::create(ctx, conn, owner, name).await,
        A::WorkspaceList { owner } => workspace::list(conn, owner.as_ref()).await,
        A::WorkspaceDelete { name } => workspace::delete(conn, name).await,
        A::AuditTail { n } => audit::tail(conn, *n).await,
        A::AuditVerify => audit::verify(ctx, conn).await,
        A::MemoryList { scope, n } => memory::list(conn, scope, *n).await,
        A::MemorySearch { scope, query } => memory::search(conn, scope, query).await,
        A::MemoryForget { id } => memory::forget(conn, *id).await,
        A::Usage { days } => usage::show(conn, *days).await,
        A::OutboxList { n } => outbox::list(ctx, conn, *n).await,
        A::OutboxRetry { id } => outbox::retry(ctx, conn, *id).await,
        A::IdentityList { email } => identity::list(conn, email.as_ref()).await,
        A::IdentityUnlink { email, platform } => identity::unlink(conn, email, platform).await,
        A::Doctor => doctor::run(ctx, conn).await,
    }
}

fn whoami(ctx: &Ctx<'_>) -> Outcome {
    let ev = ctx.event;
    let ws = ctx.user.active_workspace.as_ref().map(|w| w.to_string()).unwrap_or_else(|| "shared".into());
    let agent = ctx.agent.map(|a| a.name.to_string()).unwrap_or_else(|| "none".into());
    Outcome::done(
        format!(
            "You are {} ({}), writing as {} on {} in {}. Workspace: {ws}. Agent here: {agent}.",
            ctx.user.email,
            ctx.user.role,
            ev.sender.platform_user_id,
            ev.platform(),
            channel_shown(&ev.channel.channel, ev.channel_name.as_deref())
        ),
        json!({}),
    )
}

/// A channel as people know it: `#name (id)` when the platform gave its
/// name apart from its id (Slack's `C…`), else the id.
fn channel_shown(id: &str, name: Option<&str>) -> String {
    match name.map(|n| n.trim_start_matches('#')).filter(|n| !n.is_empty() && *n != id.trim_start_matches('#')) {
        Some(name) => format!("#{name} ({id})"),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_shown_by_name_when_its_id_is_not_its_name() {
        assert_eq!(channel_shown("C0ONCALL", Some("oncall")), "#oncall (C0ONCALL)");
        assert_eq!(channel_shown("C0ONCALL", Some("#oncall")), "#oncall (C0ONCALL)");
        assert_eq!(channel_shown("#oncall", Some("oncall")), "#oncall");
        assert_eq!(channel_shown("#oncall", None), "#oncall");
        assert_eq!(channel_shown("C0ONCALL", Some("")), "C0ONCALL");
    }
}
