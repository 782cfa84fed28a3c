//! Memory items: passages of text in a scope, searched with Postgres full
//! text (a generated tsvector with a GIN index). The table is partitioned
//! by scope, so a search reads only the scopes it may read. The scopes a search may read
//! are decided by policy before the query and applied in the query's WHERE;
//! this module never widens them.

use pincer_commands::ScopeName;
use sqlx::{FromRow, PgConnection};

use super::StoreError;

/// One passage to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// Where in the source it came from (a heading, a line number).
    pub locator: String,
    /// The text.
    pub body: String,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Passage {
    /// Row id.
    pub id: i64,
    /// The scope it lives in.
    pub scope: String,
    /// The file or URL it came from.
    pub source: String,
    /// Where in the source.
    pub locator: String,
    /// The text.
    pub body: String,
    /// Full-text rank (higher is better).
    pub rank: f32,
}

const DELETE_SOURCE: &str = "DELETE FROM memory_items WHERE scope = $1 AND source = $2";
const INSERT: &str = "INSERT INTO memory_items (scope, source, locator, author, body)
     SELECT $1, $2, l, $3, b FROM UNNEST($4::text[], $5::text[]) AS t(l, b)";
// Candidates first, ranking second: passages with every query word (AND),
// then passages with any (OR), each capped, so a common word in a large
// memory costs a bounded amount of ranking; then cover-density ranking over
// the candidates with the OR query, so a natural-language question that no
// single passage answers word for word still finds its best passages.
const SEARCH: &str = "WITH q AS (
         SELECT plainto_tsquery('english', $2) AS qand,
                NULLIF(replace(plainto_tsquery('english', $2)::text, ' & ', ' | '), '')::tsquery AS qor
     ),
     cand AS (
         (SELECT m.scope, m.id FROM memory_items m, q WHERE m.scope = ANY($1) AND m.tsv @@ q.qand LIMIT $4)
         UNION
         (SELECT m.scope, m.id FROM memory_items m, q WHERE m.scope = ANY($1) AND m.tsv @@ q.qor LIMIT $4)
     )
     SELECT m.id, m.scope, m.source, m.locator, m.body, ts_rank_cd(m.tsv, q.qor) AS rank
     FROM cand JOIN memory_items m ON m.scope = cand.scope AND m.id = cand.id, q
     ORDER BY rank DESC, m.id DESC
     LIMIT $3";
/// How many candidates of each kind are ranked.
const CANDIDATES: i64 = 200;
const COUNT: &str = "SELECT count(*) FROM memory_items WHERE scope = ANY($1)";
const PARTITION: &str = "SELECT pincer_memory_partition($1)";
const LIST: &str = "SELECT id, scope, source, locator, body, 0::real AS rank FROM memory_items WHERE scope = $1 ORDER BY id DESC LIMIT $2";
const FORGET: &str = "DELETE FROM memory_items WHERE id = $1 RETURNING scope, source, locator";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("memory.delete_source", DELETE_SOURCE),
    ("memory.insert", INSERT),
    ("memory.search", SEARCH),
    ("memory.count", COUNT),
    ("memory.partition", PARTITION),
    ("memory.list", LIST),
    ("memory.forget", FORGET),
];

/// Replaces everything stored from `source` in `scope` with `items`, so a
/// re-import of an edited file leaves no stale passages. Returns how many
/// passages were replaced.
pub async fn replace_source(
    conn: &mut PgConnection,
    scope: &ScopeName,
    source: &str,
    author: &str,
    items: &[NewItem],
) -> Result<u64, StoreError> {
    // A scope's first write gives it its own partition (and GIN index).
    sqlx::query(PARTITION).bind(scope.as_str()).execute(&mut *conn).await?;
    let removed =
        sqlx::query(DELETE_SOURCE).bind(scope.as_str()).bind(source).execute(&mut *conn).await?.rows_affected();
    let locators: Vec<&str> = items.iter().map(|i| i.locator.as_str()).collect();
    let bodies: Vec<&str> = items.iter().map(|i| i.body.as_str()).collect();
    sqlx::query(INSERT)
        .bind(scope.as_str())
        .bind(source)
        .bind(author)
        .bind(&locators)
        .bind(&bodies)
        .execute(conn)
        .await?;
    Ok(removed)
}

/// The best `limit` passages for `query` among `scopes`.
pub async fn search(
    conn: &mut PgConnection,
    scopes: &[ScopeName],
    query: &str,
    limit: i64,
) -> Result<Vec<Passage>, StoreError> {
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_as(SEARCH).bind(&scopes).bind(query).bind(limit).bind(CANDIDATES).fetch_all(conn).await?)
}

/// How many passages the scopes hold.
pub async fn count(conn: &mut PgConnection, scopes: &[&str]) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(COUNT).bind(scopes).fetch_one(conn).await?)
}

/// The newest `limit` passages of a scope.
pub async fn list(conn: &mut PgConnection, scope: &ScopeName, limit: i64) -> Result<Vec<Passage>, StoreError> {
    Ok(sqlx::query_as(LIST).bind(scope.as_str()).bind(limit).fetch_all(conn).await?)
}

/// Deletes one passage; returns its scope, source and locator if it existed.
pub async fn forget(conn: &mut PgConnection, id: i64) -> Result<Option<(String, String, String)>, StoreError> {
    Ok(sqlx::query_as(FORGET).bind(id).fetch_optional(conn).await?)
}
