//! `/admin user add|role|remove|list`. The last admin can be neither demoted
//! nor removed, so an org can never lock itself out.

use pincer_commands::{Email, Role};
use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, users};

async fn is_last_admin(conn: &mut PgConnection, email: &Email) -> Result<bool, StoreError> {
    let target = users::by_email(conn, email).await?;
    Ok(target.is_some_and(|u| u.role == Role::Admin) && users::count_admins(conn).await? <= 1)
}

/// Invites a person with a role.
pub async fn add(_ctx: &Ctx<'_>, conn: &mut PgConnection, email: &Email, role: Role) -> Result<Outcome, StoreError> {
    let meta = json!({"email": email, "role": role});
    if let Some(existing) = users::by_email(conn, email).await? {
        return Ok(Outcome::refused(
            format!(
                "{email} is already in the org as {}. Use /admin user role {email} ROLE to change that.",
                existing.role
            ),
            meta,
        ));
    }
    match users::add(conn, email, role).await {
        Ok(_) => Ok(Outcome::done(
            format!(
                "Added {email} as {role}. They can use Pincer as soon as their platform account shows that e-mail."
            ),
            meta,
        )),
        Err(StoreError::Conflict(_)) => Ok(Outcome::refused(format!("{email} is already in the org."), meta)),
        Err(e) => Err(e),
    }
}

/// Changes a person's role.
pub async fn set_role(
    _ctx: &Ctx<'_>,
    conn: &mut PgConnection,
    email: &Email,
    role: Role,
) -> Result<Outcome, StoreError> {
    let meta = json!({"email": email, "role": role});
    if role != Role::Admin && is_last_admin(conn, email).await? {
        return Ok(Outcome::refused(format!("{email} is the last admin; make someone else an admin first."), meta));
    }
    match users::set_role(conn, email, role).await? {
        Some(was) if was == role => Ok(Outcome::done(format!("{email} is already {role}."), meta)),
        Some(was) => Ok(Outcome::done(
            format!("{email} is now {role} (was {was})."),
            json!({"email": email, "role": role, "was": was}),
        )),
        None => Ok(Outcome::refused(
            format!("{email} is not in the org. Invite them with /admin user add {email} {role}."),
            meta,
        )),
    }
}

/// Removes a person.
pub async fn remove(ctx: &Ctx<'_>, conn: &mut PgConnection, email: &Email) -> Result<Outcome, StoreError> {
    let meta = json!({"email": email});
    if is_last_admin(conn, email).await? {
        return Ok(Outcome::refused(format!("{email} is the last admin; make someone else an admin first."), meta));
    }
    if users::remove(conn, email).await? {
        // An agent needs an owner who is a person (doctor checks it): say so now.
        let owned: Vec<&str> =
            ctx.app.config.agents.values().filter(|a| a.owner == *email).map(|a| a.name.as_str()).collect();
        let orphaned = match owned.as_slice() {
            [] => String::new(),
            names => format!(
                " They owned {} {}: give {} a new owner in the config; until then the doctor check reports it.",
                if names.len() == 1 { "agent" } else { "agents" },
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            ),
        };
        Ok(Outcome::done(
            format!(
                "Removed {email}. Their platform accounts are unlinked and they can no longer use Pincer.{orphaned}"
            ),
            meta,
        ))
    } else {
        Ok(Outcome::refused(format!("{email} is not in the org."), meta))
    }
}

/// Lists people.
pub async fn list(conn: &mut PgConnection) -> Result<Outcome, StoreError> {
    let people = users::list(conn).await?;
    let mut text = format!("{}:", crate::messages::count(people.len() as u64, "person", "people"));
    for u in &people {
        let ws = u.active_workspace.as_ref().map(|w| format!(" (in {w})")).unwrap_or_default();
        text.push_str(&format!("\n  {:<32} {}{ws}", u.email.as_str(), u.role));
    }
    Ok(Outcome::done(text, json!({"count": people.len()})))
}
