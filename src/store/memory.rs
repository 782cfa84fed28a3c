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
// Candidates: up to $4 passages matching every word and up to $4 matching
// any, each partition searched through its own GIN index; then ranked. No
// join back to the table: the candidates carry what the answer needs.
const SEARCH: &str = "SELECT id, scope, source, locator, body, rank FROM (
         SELECT DISTINCT ON (c.id) c.id, c.scope, c.source, c.locator, c.body,
                ts_rank_cd(c.tsv, NULLIF(replace(plainto_tsquery('english', $2)::text, ' & ', ' | '), '')::tsquery) AS rank
         FROM (
             (SELECT id, scope, source, locator, body, tsv FROM memory_items
              WHERE scope = ANY($1) AND tsv @@ plainto_tsquery('english', $2) LIMIT $4)
             UNION ALL
             (SELECT id, scope, source, locator, body, tsv FROM memory_items
              WHERE scope = ANY($1)
                AND tsv @@ NULLIF(replace(plainto_tsquery('english', $2)::text, ' & ', ' | '), '')::tsquery LIMIT $4)
         ) c ORDER BY c.id
     ) r
     ORDER BY rank DESC, id DESC
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
    // Planned for these scopes and words every time (not as a cached
    // generic plan): only then are other scopes' partitions pruned at plan
    // time and the words' selectivity known, so each partition is read
    // through its GIN index (a generic plan scanned every partition).
    Ok(sqlx::query_as(SEARCH)
        .persistent(false)
        .bind(&scopes)
        .bind(query)
        .bind(limit)
        .bind(CANDIDATES)
        .fetch_all(conn)
        .await?)
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
