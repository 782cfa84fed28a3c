//! `/workspace [NAME|shared]`: show or switch the workspace a person's asks
//! run in. Only one's own workspaces can be entered.

use pincer_commands::{ScopeName, WorkspaceCommand};
use serde_json::json;
use sqlx::PgConnection;

use super::{Ctx, Outcome};
use crate::store::{StoreError, users, workspaces};

fn shared_scopes(ctx: &Ctx<'_>) -> String {
    match ctx.agent {
        Some(a) if !a.memory_scopes.is_empty() => {
            format!(
                "the shared memory of {} ({})",
                a.name,
                a.memory_scopes.iter().map(ScopeName::as_str).collect::<Vec<_>>().join(", ")
            )
        }
        Some(a) => format!("{}'s shared memory (it reads no scopes)", a.name),
        // (No agent here: a workspace is a person's, and applies wherever
        // they ask.)
        None => "the shared memory of the agent of whichever channel you ask in".into(),
    }
}

/// Runs a `/workspace` command.
pub async fn run(ctx: &Ctx<'_>, conn: &mut PgConnection, cmd: &WorkspaceCommand) -> Result<Outcome, StoreError> {
    match cmd {
        WorkspaceCommand::Show => Ok(match &ctx.user.active_workspace {
            Some(w) => Outcome::done(
                format!(
                    "You are in workspace {w}: your asks read {w} plus {}; what they save goes to {w}. /workspace shared returns.",
                    shared_scopes(ctx)
                ),
                json!({"workspace": w}),
            ),
            None => Outcome::done(
                format!("You are in the shared workspace: your asks read {}.", shared_scopes(ctx)),
                json!({"workspace": null}),
            ),
        }),
        WorkspaceCommand::Shared => {
            users::set_workspace(conn, ctx.user.id, None).await?;
            let state = if ctx.user.active_workspace.is_some() { "back" } else { "already" };
            Ok(Outcome::done(
                format!("You are {state} in the shared workspace: your asks read {}.", shared_scopes(ctx)),
                json!({"from": ctx.user.active_workspace, "to": null}),
            ))
        }
        WorkspaceCommand::Switch(name) => {
            let meta = json!({"from": ctx.user.active_workspace, "to": name});
            match workspaces::get(conn, name).await? {
                None => Ok(Outcome::refused(
                    format!(
                        "There is no workspace {name}. An admin can create it with /admin workspace create --user {} --scope {name}.",
                        ctx.user.email
                    ),
                    meta,
                )),
                Some(w) if w.owner_id != ctx.user.id => Ok(Outcome::refused(
                    format!("Workspace {name} belongs to someone else; you can only switch into your own workspaces."),
                    meta,
                )),
                Some(_) => {
                    users::set_workspace(conn, ctx.user.id, Some(name)).await?;
                    let state = if ctx.user.active_workspace.as_ref() == Some(name) {
                        format!("You are already in workspace {name}. Your asks read")
                    } else {
                        format!("Switched to workspace {name}. Your asks now read")
                    };
                    Ok(Outcome::done(
                        format!(
                            "{state} {name} plus {}; what they save goes to {name}. /workspace shared returns.",
                            shared_scopes(ctx)
                        ),
                        meta,
                    ))
                }
            }
        }
    }
}
