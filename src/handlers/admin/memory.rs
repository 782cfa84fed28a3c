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
            // A section's passage starts with its heading, which the
            // locator already shows.
            let heading = p.locator.rsplit(" > ").next().unwrap_or_default();
            let text = match p.body.split_once('\n') {
                Some((first, rest)) if !heading.is_empty() && first.trim() == heading => rest,
                _ => p.body.as_str(),
            };
            let body: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
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
        match found.len() {
            1 => format!("The newest passage in {scope}:{}", lines(&found)),
            n => format!("The newest {n} passages in {scope}:{}", lines(&found)),
        }
    };
    Ok(Outcome::done(text, json!({"scope": scope, "count": found.len()})))
}

/// Searches one scope.
pub async fn search(conn: &mut PgConnection, scope: &ScopeName, query: &str) -> Result<Outcome, StoreError> {
    let found = memory::search(conn, std::slice::from_ref(scope), query, 10).await?;
    let text = if found.is_empty() {
        format!("Nothing in {scope} matches that.")
    } else {
        match found.len() {
            1 => format!("1 passage in {scope} matches:{}", lines(&found)),
            n => format!("{n} passages in {scope} match:{}", lines(&found)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(locator: &str, body: &str) -> Passage {
        Passage {
            id: 7,
            scope: "product".into(),
            source: "roadmap.md".into(),
            locator: locator.into(),
            body: body.into(),
            rank: 1.0,
        }
    }

    #[test]
    fn a_listing_does_not_repeat_the_heading_the_locator_shows() {
        let p = passage("Roadmap > Billing v2", "Billing v2\nBilling v2 moves invoices\nto usage-based pricing.");
        assert_eq!(
            lines(&[p]),
            "\n  #7 roadmap.md § Roadmap > Billing v2: Billing v2 moves invoices to usage-based pricing."
        );
        // Text that only happens to start like the heading is kept.
        let p = passage("line 3", "line 3 of the notes");
        assert_eq!(lines(&[p]), "\n  #7 roadmap.md § line 3: line 3 of the notes");
    }
}
