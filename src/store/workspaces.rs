//! Personal workspaces: a memory scope owned by one person.

use chrono::{DateTime, Utc};
use pincer_commands::{Email, WorkspaceName};
use sqlx::{FromRow, PgConnection};

use super::StoreError;

/// A workspace and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Its name (also its memory scope).
    pub name: WorkspaceName,
    /// The owner's e-mail.
    pub owner: Email,
    /// The owner's user id.
    pub owner_id: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct Row {
    name: String,
    owner: String,
    owner_id: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<Row> for Workspace {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let bad = |e: pincer_commands::NameError| StoreError::Corrupt(e.to_string());
        Ok(Workspace {
            name: WorkspaceName::parse(&r.name).map_err(bad)?,
            owner: Email::parse(&r.owner).map_err(bad)?,
            owner_id: r.owner_id,
            created_at: r.created_at,
        })
    }
}

const CREATE: &str =
    "INSERT INTO workspaces (name, owner_id, created_by) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
const GET: &str = "SELECT w.name, u.email AS owner, w.owner_id, w.created_at FROM workspaces w JOIN users u ON u.id = w.owner_id WHERE w.name = $1";
const LIST: &str =
    "SELECT w.name, u.email AS owner, w.owner_id, w.created_at FROM workspaces w JOIN users u ON u.id = w.owner_id
     WHERE ($1::text IS NULL OR u.email = $1) ORDER BY w.name";
const DELETE: &str = "DELETE FROM workspaces WHERE name = $1";

pub(crate) const QUERIES: &[(&str, &str)] =
    &[("workspaces.create", CREATE), ("workspaces.get", GET), ("workspaces.list", LIST), ("workspaces.delete", DELETE)];

/// Creates a workspace. Conflict if the name is taken.
pub async fn create(
    conn: &mut PgConnection,
    name: &WorkspaceName,
    owner_id: i64,
    created_by: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(CREATE).bind(name.as_str()).bind(owner_id).bind(created_by).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("workspace {name}")));
    }
    Ok(())
}

/// Looks a workspace up.
pub async fn get(conn: &mut PgConnection, name: &WorkspaceName) -> Result<Option<Workspace>, StoreError> {
    let row: Option<Row> = sqlx::query_as(GET).bind(name.as_str()).fetch_optional(conn).await?;
    row.map(Workspace::try_from).transpose()
}

/// Lists workspaces, optionally only one person's.
pub async fn list(conn: &mut PgConnection, owner: Option<&Email>) -> Result<Vec<Workspace>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(LIST).bind(owner.map(|e| e.as_str())).fetch_all(conn).await?;
    rows.into_iter().map(Workspace::try_from).collect()
}

/// Deletes a workspace; people in it return to shared (the foreign key sets
/// their active workspace to NULL). Returns whether it existed.
pub async fn delete(conn: &mut PgConnection, name: &WorkspaceName) -> Result<bool, StoreError> {
    Ok(sqlx::query(DELETE).bind(name.as_str()).execute(conn).await?.rows_affected() == 1)
}
