//! `/admin identity list|unlink`: the chat accounts linked to people.

use pincer_adapters::Platform;
use pincer_commands::Email;
use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::Outcome;
use crate::messages;
use crate::store::{StoreError, users};

/// Lists linked accounts, of one person or everyone.
pub async fn list(conn: &mut PgConnection, email: Option<&Email>) -> Result<Outcome, StoreError> {
    let rows = users::identities(conn, email).await?;
    if rows.is_empty() {
        return Ok(Outcome::done("No linked accounts.", json!({"count": 0})));
    }
    let mut text = format!("{}:", messages::count(rows.len() as u64, "linked account", "linked accounts"));
    for r in &rows {
        text.push_str(&format!(
            "\n• {} — {} {} user {} (since {})",
            r.email,
            r.platform,
            r.tenant,
            r.platform_user_id,
            r.linked_at.format("%Y-%m-%d")
        ));
    }
    Ok(Outcome::done(text, json!({"count": rows.len()})))
}

/// Unlinks a person's accounts on one platform.
pub async fn unlink(conn: &mut PgConnection, email: &Email, platform: &str) -> Result<Outcome, StoreError> {
    let meta = json!({"email": email, "platform": platform});
    if platform.parse::<Platform>().is_err() {
        let known: Vec<&str> = Platform::BINDABLE.iter().map(|p| p.as_str()).chain([Platform::Cli.as_str()]).collect();
        return Ok(Outcome::refused(
            format!("'{platform}' is not a platform Pincer knows: use one of {}.", known.join(", ")),
            meta,
        ));
    }
    match users::unlink_platform(conn, email, platform).await? {
        0 => Ok(Outcome::refused(format!("{email} has no linked {platform} account."), meta)),
        n => Ok(Outcome::done(
            format!(
                "Unlinked {} from {email}. {}",
                messages::count(n, &format!("{platform} account"), &format!("{platform} accounts")),
                match platform {
                    // These vouch for the e-mail themselves (`--user`, `--as`).
                    "console" | "cli" => "Their next session there links them again by e-mail.",
                    // (`users.info` gives the e-mail of a teammate in the workspace.)
                    "slack" =>
                        "Their next Slack message links them again if Slack shows the same e-mail; otherwise they link with /link.",
                    _ => "They will need to link again to use Pincer there.",
                }
            ),
            json!({"email": email, "platform": platform, "unlinked": n}),
        )),
    }
}
