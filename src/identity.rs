//! Identity: which person in the org sent an event.
//!
//! In order: a linked platform identity; else an e-mail the platform vouches
//! for that matches a person (the identity is linked on the way, audited);
//! else, for a member of a trusted platform workspace (or anyone, with RBAC
//! off), a new person with the org's default role (audited). Everyone else
//! is unknown and gets nothing but a sentence saying so. A removed person
//! stays removed: they do not rejoin through a trusted workspace.

use pincer_adapters::{ChannelEvent, ChannelRef};
use pincer_commands::Role;
use serde_json::json;
use sqlx::PgConnection;

use crate::config::Config;
use crate::store::StoreError;
use crate::store::audit::AuditEntry;
use crate::store::users::{self, User};

/// Who sent an event, and what resolving them did.
pub enum Resolved {
    /// A person, with audit rows for a link or join made on the way.
    Person(User, Vec<AuditEntry>),
    /// Nobody Pincer knows.
    Unknown,
}

/// Resolves the sender of `ev`.
pub async fn resolve(conn: &mut PgConnection, config: &Config, ev: &ChannelEvent) -> Result<Resolved, StoreError> {
    let platform = ev.platform().as_str();
    let puid = ev.sender.platform_user_id.as_str();
    if let Some(user) = users::by_identity(conn, platform, &ev.tenant, puid).await? {
        return Ok(Resolved::Person(user, Vec::new()));
    }
    let Some(email) = &ev.sender.verified_email else {
        return Ok(Resolved::Unknown);
    };
    let link = |user: &User, action: &str| {
        AuditEntry::new(
            Some(user.email.as_str()),
            action,
            json!({"platform": platform, "tenant": ev.tenant, "platform_user_id": puid, "role": user.role}),
        )
    };
    if let Some(user) = users::by_email(conn, email).await? {
        users::link(conn, platform, &ev.tenant, puid, user.id).await?;
        let entry = link(&user, "identity.link");
        return Ok(Resolved::Person(user, vec![entry]));
    }
    let tenant = ChannelRef { platform: ev.platform(), channel: ev.tenant.clone() };
    let trusted = config.trusted_tenants.contains(&tenant);
    if !trusted && config.rbac {
        return Ok(Resolved::Unknown);
    }
    let role = if trusted { config.default_role } else { Role::Member.min(config.default_role) };
    match users::join(conn, email, role).await? {
        Some(user) => {
            users::link(conn, platform, &ev.tenant, puid, user.id).await?;
            let mut entry = link(&user, "user.join");
            entry.metadata["via"] = json!(if trusted { "trusted_tenant" } else { "rbac_off" });
            Ok(Resolved::Person(user, vec![entry]))
        }
        None => Ok(Resolved::Unknown),
    }
}
