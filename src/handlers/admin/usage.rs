//! `/admin usage [DAYS]`: tokens and cost per person and per agent.

use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::Outcome;
use crate::store::{StoreError, usage};

fn dollars(micros: i64) -> String {
    format!("${:.4}", micros as f64 / 1_000_000.0)
}

fn table(title: &str, rows: &[usage::Total]) -> String {
    let mut out = format!("\n{title}:");
    if rows.is_empty() {
        out.push_str("\n  (none)");
    }
    for r in rows {
        out.push_str(&format!(
            "\n  {:<32} {:>6} {}  {:>9} in  {:>9} out  {}",
            r.key,
            r.runs,
            // (Padded, so the columns after it stay aligned.)
            if r.runs == 1 { "ask " } else { "asks" },
            r.tokens_in,
            r.tokens_out,
            dollars(r.cost_micros)
        ));
    }
    out
}

/// Shows usage over the last `days` days.
pub async fn show(conn: &mut PgConnection, days: u32) -> Result<Outcome, StoreError> {
    let (by_user, by_agent) = usage::totals(conn, days as i32).await?;
    let total: i64 = by_user.iter().map(|r| r.cost_micros).sum();
    let runs: i64 = by_user.iter().map(|r| r.runs).sum();
    let asks = if runs == 1 { "ask" } else { "asks" };
    let over = if days == 1 { "day".to_string() } else { format!("{days} days") };
    let mut text = format!("Usage over the last {over}: {runs} answered {asks}, {} in all.", dollars(total));
    text.push_str(&table("By person", &by_user));
    text.push_str(&table("By agent", &by_agent));
    Ok(Outcome::done(text, json!({"days": days, "runs": runs, "cost_micros": total})))
}
