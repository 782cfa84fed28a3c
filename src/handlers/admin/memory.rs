//! `/admin memory list|search|forget`: look into a memory scope and delete
//! a passage (audited with where it came from).

use pincer_commands::ScopeName;
use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::Outcome;
use crate::store::StoreError;
use crate::store::memory::{self, Passage};

/// How much of a passage a listing shows.
const PREVIEW_CHARS: usize = 100;

fn lines(passages: &[Passage]) -> String {
    passages
        .iter()
        .map(|p| {
            let body: String = p.body.split_whitespace().collect::<Vec<_>>().join(" ");
            let preview = if body.chars().count() > PREVIEW_CHARS {
                format!("{}…", body.chars().take(PREVIEW_CHARS).collect::<String>())
            } else {
                body
            };
            let place = if p.locator.is_empty() { p.source.clone() } else { format!("{} § {}", p.source, p.locator) };
            format!("\n  #{} {place}: {preview}", p.id)
        })
        .collect()
}

/// The newest passages of a scope.
pub async fn list(conn: &mut PgConnection, scope: &ScopeName, n: u32) -> Result<Outcome, StoreError> {
    let found = memory::list(conn, scope, i64::from(n)).await?;
    let text = if found.is_empty() {
        format!("Scope {scope} holds no passages. pincer memory import --scope {scope} FILE… adds some.")
    } else {
        format!("The newest {} passages in {scope}:{}", found.len(), lines(&found))
    };
    Ok(Outcome::done(text, json!({"scope": scope, "count": found.len()})))
}

/// Searches one scope.
pub async fn search(conn: &mut PgConnection, scope: &ScopeName, query: &str) -> Result<Outcome, StoreError> {
    let found = memory::search(conn, std::slice::from_ref(scope), query, 10).await?;
    let text = if found.is_empty() {
        format!("Nothing in {scope} matches that.")
    } else {
        format!("{} passages in {scope} match:{}", found.len(), lines(&found))
    };
    Ok(Outcome::done(text, json!({"scope": scope, "query": query, "count": found.len()})))
}

/// Deletes one passage.
pub async fn forget(conn: &mut PgConnection, id: i64) -> Result<Outcome, StoreError> {
    match memory::forget(conn, id).await? {
        Some((scope, source, locator)) => Ok(Outcome::done(
            format!("Forgot passage #{id} ({scope}: {source}). Re-importing its file would bring it back."),
            json!({"id": id, "scope": scope, "source": source, "locator": locator}),
        )),
        None => Ok(Outcome::refused(format!("There is no passage #{id}."), json!({"id": id}))),
    }
}
