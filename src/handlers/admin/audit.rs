//! `/admin audit tail|verify`: read the audit log and check its chain.

use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, audit};

/// How much of a row's metadata `tail` shows.
const META_CHARS: usize = 160;

/// Shows the newest `n` rows, oldest of them first.
pub async fn tail(conn: &mut PgConnection, n: u32) -> Result<Outcome, StoreError> {
    let mut rows = audit::tail(conn, n).await?;
    rows.reverse();
    let mut text = match rows.len() {
        0 => "The audit log is empty.".to_string(),
        1 => "The last audit row:".to_string(),
        n => format!("The last {n} audit rows:"),
    };
    for r in &rows {
        let meta = r.metadata.to_string();
        let meta = if meta.chars().count() > META_CHARS {
            format!("{}…", meta.chars().take(META_CHARS).collect::<String>())
        } else {
            meta
        };
        text.push_str(&format!(
            "\n  #{} {} {} {} {meta}",
            r.seq,
            r.ts.format("%Y-%m-%d %H:%M:%SZ"),
            r.user_email.as_deref().unwrap_or("(system)"),
            r.action
        ));
    }
    Ok(Outcome::done(text, json!({"n": n})))
}

/// Checks the hash chain (from the retention checkpoint, if there is one).
pub async fn verify(ctx: &Ctx<'_>, conn: &mut PgConnection) -> Result<Outcome, StoreError> {
    let key = ctx.app.config.audit.signing_key.as_ref().map(|k| k.expose());
    let report = audit::verify(conn, key.as_deref().map(str::as_bytes)).await?;
    let first = report.last_seq + 1 - report.rows as i64;
    Ok(match report.broken {
        None => Outcome::done(
            format!(
                "Audit chain intact: {} verified (seq {first} to {}{}).",
                crate::messages::count(report.rows as u64, "row", "rows"),
                report.last_seq,
                if first > 1 { ", from the signed retention checkpoint" } else { "" }
            ),
            json!({"rows": report.rows, "intact": true}),
        ),
        Some(b) => Outcome::refused(
            format!(
                "Audit chain BROKEN at seq {}: {}. {} before it verified.",
                b.seq,
                b.reason,
                crate::messages::count(report.rows as u64, "row", "rows")
            ),
            json!({"rows": report.rows, "intact": false, "first_bad_seq": b.seq}),
        ),
    })
}
