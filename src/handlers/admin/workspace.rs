//! `/admin workspace create|list|delete`. A workspace name may not shadow a
//! scope an agent shares, so a personal workspace can never read or write
//! the team's memory under another name.

use pincer_commands::{Email, WorkspaceName};
use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, users, workspaces};

/// Creates a workspace owned by `owner`.
pub async fn create(
    ctx: &Ctx<'_>,
    conn: &mut PgConnection,
    owner: &Email,
    name: &WorkspaceName,
) -> Result<Outcome, StoreError> {
    let meta = json!({"workspace": name, "owner": owner});
    if let Some(agent) =
        ctx.app.config.agents.values().find(|a| a.memory_scopes.iter().any(|s| s.as_str() == name.as_str()))
    {
        return Ok(Outcome::refused(
            format!("{name} is a shared memory scope of agent {}; pick another workspace name.", agent.name),
            meta,
        ));
    }
    let Some(person) = users::by_email(conn, owner).await? else {
        return Ok(Outcome::refused(
            format!("{owner} is not in the org. Invite them first with /admin user add {owner}."),
            meta,
        ));
    };
    if person.role == pincer_commands::Role::Observer {
        // An observer may not switch workspaces: they could never enter it.
        return Ok(Outcome::refused(
            format!(
                "{owner} is an observer and could not enter a workspace. Make them a member first: /admin user role {owner} member."
            ),
            meta,
        ));
    }
    if let Some(existing) = workspaces::get(conn, name).await? {
        return Ok(Outcome::refused(format!("Workspace {name} already exists (owner {}).", existing.owner), meta));
    }
    match workspaces::create(conn, name, person.id, ctx.user.email.as_str()).await {
        Ok(()) => Ok(Outcome::done(
            format!("Created workspace {name} for {owner}. They enter it with /workspace {name}."),
            meta,
        )),
        Err(StoreError::Conflict(_)) => Ok(Outcome::refused(format!("Workspace {name} already exists."), meta)),
        Err(e) => Err(e),
    }
}

/// Lists workspaces.
pub async fn list(conn: &mut PgConnection, owner: Option<&Email>) -> Result<Outcome, StoreError> {
    let all = workspaces::list(conn, owner).await?;
    if all.is_empty() {
        let text = match owner {
            Some(email) => format!("{email} owns no workspace."),
            None => "No workspaces yet. /admin workspace create --user EMAIL --scope NAME makes one.".to_string(),
        };
        return Ok(Outcome::done(text, json!({"owner": owner, "count": 0})));
    }
    let mut text = format!("{}:", crate::messages::count(all.len() as u64, "workspace", "workspaces"));
    for w in &all {
        text.push_str(&format!(
            "\n  {:<24} owner {} · created {}",
            w.name.as_str(),
            w.owner,
            w.created_at.format("%Y-%m-%d")
        ));
    }
    Ok(Outcome::done(text, json!({"owner": owner, "count": all.len()})))
}

/// Deletes a workspace; anyone in it returns to shared. Its memory items are
/// kept (an admin may still read them through `pincer memory`).
pub async fn delete(conn: &mut PgConnection, name: &WorkspaceName) -> Result<Outcome, StoreError> {
    let meta = json!({"workspace": name});
    if workspaces::delete(conn, name).await? {
        Ok(Outcome::done(format!("Deleted workspace {name}; anyone in it is back in shared."), meta))
    } else {
        Ok(Outcome::refused(format!("There is no workspace {name}."), meta))
    }
}
