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
#[derive(Debug, Clone, PartialEq, FromRow, serde::Deserialize)]
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
// Candidates first, ranking second (the query is in the function, see
// migration 10): passages with every query word, then with any, each
// capped, so a common word in a large memory costs a bounded amount of
// ranking; then cover-density ranking over the candidates with the OR
// query, so a natural-language question that no single passage answers
// word for word still finds its best passages. The function plans the
// search for its actual scopes and words on every call.
const SEARCH: &str = "SELECT id, scope, source, locator, body, rank FROM pincer_memory_search($1, $2, $3, $4)";
// The same candidates, every one, with their embeddings: hybrid ranking
// fuses full-text rank and embedding similarity in Rust.
const CANDIDATES_WITH_VECTORS: &str =
    "SELECT id, scope, source, locator, body, rank, embedding FROM pincer_memory_candidates($1, $2, $3)";
const UNEMBEDDED: &str = "SELECT scope, id, body FROM memory_items WHERE embedding IS NULL ORDER BY id LIMIT $1";
const SET_EMBEDDING: &str = "UPDATE memory_items SET embedding = $3 WHERE scope = $1 AND id = $2";
/// How many candidates of each kind are ranked.
pub(crate) const CANDIDATES: i64 = 200;
const COUNT: &str = "SELECT count(*) FROM memory_items WHERE scope = ANY($1)";
const PARTITION: &str = "SELECT pincer_memory_partition($1)";
const LIST: &str = "SELECT id, scope, source, locator, body, 0::real AS rank FROM memory_items WHERE scope = $1 ORDER BY id DESC LIMIT $2";
const FORGET: &str = "DELETE FROM memory_items WHERE id = $1 RETURNING scope, source, locator";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("memory.delete_source", DELETE_SOURCE),
    ("memory.insert", INSERT),
    ("memory.search", SEARCH),
    ("memory.candidates_with_vectors", CANDIDATES_WITH_VECTORS),
    ("memory.unembedded", UNEMBEDDED),
    ("memory.set_embedding", SET_EMBEDDING),
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

/// Deletes a source's passages from a scope; returns how many.
pub async fn forget_source(conn: &mut PgConnection, scope: &ScopeName, source: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(DELETE_SOURCE).bind(scope.as_str()).bind(source).execute(conn).await?.rows_affected())
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

#[derive(FromRow)]
struct Candidate {
    #[sqlx(flatten)]
    passage: Passage,
    embedding: Option<Vec<f32>>,
}

/// Cosine similarity; 0 for mismatched or empty vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// Fuses full-text rank and embedding similarity: each candidate scores
/// `(1 − weight) · rank / best rank + weight · max(cosine, 0)`; a passage
/// with no embedding yet scores on its rank alone (its similarity counts as
/// 0). Returns the best `limit`, with the fused score as their rank.
pub fn fuse(
    mut candidates: Vec<(Passage, Option<Vec<f32>>)>,
    query: &[f32],
    weight: f32,
    limit: usize,
) -> Vec<Passage> {
    let best = candidates.iter().map(|(p, _)| p.rank).fold(0f32, f32::max);
    for (p, v) in &mut candidates {
        let text = if best > 0.0 { p.rank / best } else { 0.0 };
        let similarity = v.as_deref().map(|v| cosine(v, query).max(0.0)).unwrap_or(0.0);
        p.rank = (1.0 - weight) * text + weight * similarity;
    }
    candidates.sort_by(|(a, _), (b, _)| b.rank.total_cmp(&a.rank).then(b.id.cmp(&a.id)));
    candidates.into_iter().take(limit).map(|(p, _)| p).collect()
}

/// Hybrid search: the full-text candidates, re-ranked with the question's
/// embedding. There is no vector index here (pgvector is not part of this
/// deployment), so embeddings re-rank what full text finds rather than
/// recall passages that share no word with the question.
pub async fn search_hybrid(
    conn: &mut PgConnection,
    scopes: &[ScopeName],
    query: &str,
    query_vector: &[f32],
    weight: f32,
    limit: i64,
) -> Result<Vec<Passage>, StoreError> {
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Candidate> =
        sqlx::query_as(CANDIDATES_WITH_VECTORS).bind(&scopes).bind(query).bind(CANDIDATES).fetch_all(conn).await?;
    let candidates = rows.into_iter().map(|c| (c.passage, c.embedding)).collect();
    Ok(fuse(candidates, query_vector, weight, limit.max(0) as usize))
}

/// Passages still without an embedding, oldest first: (scope, id, body).
pub async fn unembedded(conn: &mut PgConnection, limit: i64) -> Result<Vec<(String, i64, String)>, StoreError> {
    Ok(sqlx::query_as(UNEMBEDDED).bind(limit).fetch_all(conn).await?)
}

/// Stores one passage's embedding.
pub async fn set_embedding(conn: &mut PgConnection, scope: &str, id: i64, vector: &[f32]) -> Result<(), StoreError> {
    sqlx::query(SET_EMBEDDING).bind(scope).bind(id).bind(vector).execute(conn).await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(id: i64, rank: f32) -> Passage {
        Passage { id, scope: "s".into(), source: "f".into(), locator: String::new(), body: String::new(), rank }
    }

    #[test]
    fn fusion_weighs_text_rank_against_similarity() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0, "mismatched dimensions count as unrelated");
        let candidates = vec![
            (passage(1, 1.0), Some(vec![0.0, 1.0])),
            (passage(2, 0.4), Some(vec![1.0, 0.0])),
            (passage(3, 0.9), None),
        ];
        let ids = |w| fuse(candidates.clone(), &[1.0, 0.0], w, 3).iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(0.0), [1, 3, 2], "weight 0 is full text alone");
        assert_eq!(ids(0.5), [2, 1, 3], "0.5·0.4 + 0.5·1 beats 0.5·1 and 0.5·0.9");
        assert_eq!(ids(1.0), [2, 3, 1], "weight 1 is similarity alone (ties by newest id)");
    }
}
