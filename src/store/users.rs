//! People and their platform identities.

use pincer_commands::{Email, Role, WorkspaceName};
use sqlx::{FromRow, PgConnection};

use super::StoreError;
use crate::config::UserSpec;

/// A person in the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Their e-mail.
    pub email: Email,
    /// Their role.
    pub role: Role,
    /// The workspace their asks run in; `None` is shared.
    pub active_workspace: Option<WorkspaceName>,
}

#[derive(FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) active_workspace: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<User, StoreError> {
        let bad = |e: pincer_commands::NameError| StoreError::Corrupt(e.to_string());
        Ok(User {
            id: r.id,
            email: Email::parse(&r.email).map_err(bad)?,
            role: Role::parse(&r.role).map_err(bad)?,
            active_workspace: r.active_workspace.as_deref().map(WorkspaceName::parse).transpose().map_err(bad)?,
        })
    }
}

const BY_IDENTITY: &str =
    "SELECT u.id, u.email, u.role, u.active_workspace FROM identities i JOIN users u ON u.id = i.user_id
     WHERE i.platform = $1 AND i.tenant = $2 AND i.platform_user_id = $3 AND u.removed_at IS NULL";
const BY_EMAIL: &str = "SELECT id, email, role, active_workspace FROM users WHERE email = $1 AND removed_at IS NULL";
const LINK: &str = "INSERT INTO identities (platform, tenant, platform_user_id, user_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (platform, tenant, platform_user_id) DO UPDATE SET user_id = EXCLUDED.user_id, linked_at = now()";
const ADD: &str = "INSERT INTO users (email, role) VALUES ($1, $2)
     ON CONFLICT (email) DO UPDATE SET role = EXCLUDED.role, removed_at = NULL, active_workspace = NULL, created_at = now()
     WHERE users.removed_at IS NOT NULL
     RETURNING id, email, role, active_workspace";
const SEED: &str = "INSERT INTO users (email, role) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING";
// A concurrent join of the same person returns the row the other one made;
// a removed person is not brought back.
const JOIN: &str = "INSERT INTO users (email, role) VALUES ($1, $2)
     ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email WHERE users.removed_at IS NULL
     RETURNING id, email, role, active_workspace";
const COUNT_ADMINS: &str = "SELECT count(*) FROM users WHERE role = 'admin' AND removed_at IS NULL";
// Returns the role the person had before.
// An observer asks nothing, so has no workspace to be in (and could not
// leave one: switching is for members).
const SET_ROLE: &str = "UPDATE users u SET role = $2,
         active_workspace = CASE WHEN $2 = 'observer' THEN NULL ELSE u.active_workspace END
     FROM (SELECT id, role FROM users WHERE email = $1 AND removed_at IS NULL FOR UPDATE) was
     WHERE u.id = was.id RETURNING was.role";
const REMOVE: &str =
    "UPDATE users SET removed_at = now(), active_workspace = NULL WHERE email = $1 AND removed_at IS NULL RETURNING id";
const UNLINK_ALL: &str = "DELETE FROM identities WHERE user_id = $1";
// One live code per person: a new one replaces the old.
const ISSUE_CODE: &str = "WITH gone AS (DELETE FROM link_codes WHERE user_id = $1)
     INSERT INTO link_codes (code_hash, user_id, expires_at) VALUES ($2, $1, now() + make_interval(secs => $3))";
const TAKE_CODE: &str = "DELETE FROM link_codes WHERE code_hash = $1 AND expires_at > now() RETURNING user_id";
const BY_ID: &str = "SELECT id, email, role, active_workspace FROM users WHERE id = $1 AND removed_at IS NULL";
const IDENTITIES: &str = "SELECT u.email, i.platform, i.tenant, i.platform_user_id, i.linked_at
     FROM identities i JOIN users u ON u.id = i.user_id
     WHERE ($1::text IS NULL OR u.email = $1) AND u.removed_at IS NULL ORDER BY u.email, i.platform, i.linked_at";
const UNLINK_PLATFORM: &str =
    "DELETE FROM identities i USING users u WHERE u.id = i.user_id AND u.email = $1 AND i.platform = $2";
const LIST: &str = "SELECT id, email, role, active_workspace FROM users WHERE removed_at IS NULL ORDER BY email";
const SET_WORKSPACE: &str = "UPDATE users SET active_workspace = $2 WHERE id = $1";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("users.by_identity", BY_IDENTITY),
    ("users.by_email", BY_EMAIL),
    ("users.link", LINK),
    ("users.add", ADD),
    ("users.seed", SEED),
    ("users.join", JOIN),
    ("users.count_admins", COUNT_ADMINS),
    ("users.set_role", SET_ROLE),
    ("users.remove", REMOVE),
    ("users.unlink_all", UNLINK_ALL),
    ("users.list", LIST),
    ("users.issue_code", ISSUE_CODE),
    ("users.take_code", TAKE_CODE),
    ("users.by_id", BY_ID),
    ("users.identities", IDENTITIES),
    ("users.unlink_platform", UNLINK_PLATFORM),
    ("users.set_workspace", SET_WORKSPACE),
];

/// The person a platform identity is linked to, if any and not removed.
pub async fn by_identity(
    conn: &mut PgConnection,
    platform: &str,
    tenant: &str,
    platform_user_id: &str,
) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> =
        sqlx::query_as(BY_IDENTITY).bind(platform).bind(tenant).bind(platform_user_id).fetch_optional(conn).await?;
    row.map(User::try_from).transpose()
}

/// The person with this e-mail, if any and not removed.
pub async fn by_email(conn: &mut PgConnection, email: &Email) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(BY_EMAIL).bind(email.as_str()).fetch_optional(conn).await?;
    row.map(User::try_from).transpose()
}

/// Links a platform identity to a person.
pub async fn link(
    conn: &mut PgConnection,
    platform: &str,
    tenant: &str,
    platform_user_id: &str,
    user_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(LINK).bind(platform).bind(tenant).bind(platform_user_id).bind(user_id).execute(conn).await?;
    Ok(())
}

/// Adds a person (or brings back a removed one). Conflict if they are already in.
pub async fn add(conn: &mut PgConnection, email: &Email, role: Role) -> Result<User, StoreError> {
    let row: Option<UserRow> =
        sqlx::query_as(ADD).bind(email.as_str()).bind(role.as_str()).fetch_optional(conn).await?;
    row.ok_or_else(|| StoreError::Conflict(email.to_string()))?.try_into()
}

/// Adds a newcomer (or returns them, if a concurrent event just did). `None`
/// for a removed person, whom only an admin can bring back.
pub async fn join(conn: &mut PgConnection, email: &Email, role: Role) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> =
        sqlx::query_as(JOIN).bind(email.as_str()).bind(role.as_str()).fetch_optional(conn).await?;
    row.map(User::try_from).transpose()
}

/// How many admins the org has.
pub async fn count_admins(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(COUNT_ADMINS).fetch_one(conn).await?)
}

/// Adds the people declared in the config who are not in the database yet.
/// Never changes a role set at run time, nor brings back a removed person.
pub async fn seed(conn: &mut PgConnection, users: &[UserSpec]) -> Result<u64, StoreError> {
    let mut added = 0;
    for u in users {
        added +=
            sqlx::query(SEED).bind(u.email.as_str()).bind(u.role.as_str()).execute(&mut *conn).await?.rows_affected();
    }
    Ok(added)
}

/// Changes a person's role. Returns whether they exist.
pub async fn set_role(conn: &mut PgConnection, email: &Email, role: Role) -> Result<Option<Role>, StoreError> {
    let was: Option<String> =
        sqlx::query_scalar(SET_ROLE).bind(email.as_str()).bind(role.as_str()).fetch_optional(conn).await?;
    was.map(|r| Role::parse(&r).map_err(|e| StoreError::Corrupt(format!("users.role of {email}: {e}")))).transpose()
}

/// Removes a person and unlinks their identities. Returns whether they existed.
pub async fn remove(conn: &mut PgConnection, email: &Email) -> Result<bool, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(REMOVE).bind(email.as_str()).fetch_optional(&mut *conn).await?;
    match id {
        Some(id) => {
            sqlx::query(UNLINK_ALL).bind(id).execute(conn).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Everyone in the org, by e-mail.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<User>, StoreError> {
    let rows: Vec<UserRow> = sqlx::query_as(LIST).fetch_all(conn).await?;
    rows.into_iter().map(User::try_from).collect()
}

/// Sets (or clears) the workspace a person's asks run in.
pub async fn set_workspace(
    conn: &mut PgConnection,
    user_id: i64,
    workspace: Option<&WorkspaceName>,
) -> Result<(), StoreError> {
    sqlx::query(SET_WORKSPACE).bind(user_id).bind(workspace.map(|w| w.as_str())).execute(conn).await?;
    Ok(())
}

/// Stores a one-time link code (its hash) for a person, replacing any
/// earlier one.
pub async fn issue_code(
    conn: &mut PgConnection,
    user_id: i64,
    code_hash: &str,
    ttl: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query(ISSUE_CODE).bind(user_id).bind(code_hash).bind(ttl.as_secs_f64()).execute(conn).await?;
    Ok(())
}

/// Uses a link code: the person it was issued to, if it is live. A code
/// works once.
pub async fn take_code(conn: &mut PgConnection, code_hash: &str) -> Result<Option<User>, StoreError> {
    let Some(id): Option<i64> = sqlx::query_scalar(TAKE_CODE).bind(code_hash).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let row: Option<UserRow> = sqlx::query_as(BY_ID).bind(id).fetch_optional(conn).await?;
    row.map(User::try_from).transpose()
}

/// One linked platform account.
#[derive(Debug, Clone, FromRow)]
pub struct Identity {
    /// Whose.
    pub email: String,
    /// The platform.
    pub platform: String,
    /// The workspace there.
    pub tenant: String,
    /// The account's id there.
    pub platform_user_id: String,
    /// When it was linked.
    pub linked_at: chrono::DateTime<chrono::Utc>,
}

/// Linked accounts, of one person or everyone.
pub async fn identities(conn: &mut PgConnection, email: Option<&Email>) -> Result<Vec<Identity>, StoreError> {
    Ok(sqlx::query_as(IDENTITIES).bind(email.map(|e| e.as_str())).fetch_all(conn).await?)
}

/// Unlinks a person's accounts on one platform. Returns how many.
pub async fn unlink_platform(conn: &mut PgConnection, email: &Email, platform: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(UNLINK_PLATFORM).bind(email.as_str()).bind(platform).execute(conn).await?.rows_affected())
}
