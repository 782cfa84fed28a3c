//! `/admin outbox [N]` and `/admin outbox retry ID`: replies that could not
//! be delivered (dead letters), and sending one again.

use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, outbox};

/// Lists the newest dead letters (a Slack channel by its name too, when
/// this process has it cached).
pub async fn list(ctx: &Ctx<'_>, conn: &mut PgConnection, n: u32) -> Result<Outcome, StoreError> {
    let dead = outbox::list_dead(conn, i64::from(n)).await?;
    if dead.is_empty() {
        return Ok(Outcome::done("Every reply was delivered: no dead letters.", json!({"count": 0})));
    }
    let mut text = match dead.len() {
        1 => "1 undelivered reply:".to_string(),
        n => format!("{n} undelivered replies (newest first):"),
    };
    for d in &dead {
        let name = match (&ctx.app.slack, d.platform.as_str()) {
            (Some(slack), "slack") => slack.api.cached_channel_name(&d.channel).flatten(),
            _ => None,
        };
        text.push_str(&format!(
            "\n  #{} {} {} {} after {} tries: {}",
            d.id,
            d.created_at.format("%Y-%m-%d %H:%M:%SZ"),
            d.platform,
            super::channel_shown(&d.channel, name.as_deref()),
            d.attempts,
            d.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    text.push_str("\n/admin outbox retry ID queues one again.");
    Ok(Outcome::done(text, json!({"count": dead.len()})))
}

/// Queues a dead letter again.
pub async fn retry(ctx: &Ctx<'_>, conn: &mut PgConnection, id: i64) -> Result<Outcome, StoreError> {
    let meta = json!({"outbox_id": id});
    if outbox::revive(conn, id).await? {
        outbox::notify(conn).await?;
        ctx.app.wake.outbox.notify_one();
        Ok(Outcome::done(format!("Reply #{id} is queued again."), meta))
    } else {
        Ok(Outcome::refused(format!("There is no undelivered reply #{id}. /admin outbox lists them."), meta))
    }
}
