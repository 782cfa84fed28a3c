//! `/link [CODE]`: one person, many chat accounts. Where Pincer knows you,
//! `/link` gives a one-time code (10 minutes, one use, only its hash
//! stored); typing `/link CODE` on another platform links that account to
//! you. Platforms that give a verified e-mail (Slack) link by e-mail on
//! first contact instead ([`crate::identity`]).

use std::time::Duration;

use pincer_adapters::ChannelEvent;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::{Ctx, Outcome};
use crate::store::users::{self, User};
use crate::store::{StoreError, audit::AuditEntry};

/// How long a code works.
pub const CODE_TTL: Duration = Duration::from_secs(600);

/// Letters and digits that cannot be mistaken for one another.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// A fresh code: 10 characters (50 random bits), shown as `XXXXX-XXXXX`.
fn fresh_code() -> (String, String) {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    // Bytes 6 and 8 carry the UUID's version and variant bits: skipped, so
    // each of the ten characters takes five random bits.
    let code: String = [0, 1, 2, 3, 4, 5, 7, 9, 10, 11]
        .iter()
        .map(|&i| ALPHABET[(bytes[i] as usize) % ALPHABET.len()] as char)
        .collect();
    let shown = format!("{}-{}", &code[..5], &code[5..]);
    (code, shown)
}

/// `/link` with no code: issue one.
pub async fn issue(ctx: &Ctx<'_>, conn: &mut PgConnection) -> Result<Outcome, StoreError> {
    let (code, shown) = fresh_code();
    users::issue_code(conn, ctx.user.id, &hash(&code), CODE_TTL).await?;
    Ok(Outcome::done(
        format!(
            "Your link code is {shown}. On the other platform, type /link {shown} within {} minutes; it works once.",
            CODE_TTL.as_secs() / 60
        ),
        json!({"issued": true}),
    ))
}

/// `/link CODE`: link the sender's account to the code's owner. `current`
/// is who the sender already is here, if anyone. Returns the audit row and
/// the outcome; the caller commits both.
pub async fn redeem(
    conn: &mut PgConnection,
    ev: &ChannelEvent,
    code: &str,
    current: Option<&User>,
) -> Result<(AuditEntry, Outcome), StoreError> {
    let platform = ev.platform();
    let puid = ev.sender.platform_user_id.as_str();
    let meta = json!({"platform": platform, "tenant": ev.tenant, "platform_user_id": puid});
    let Some(owner) = users::take_code(conn, &hash(code)).await? else {
        let out = Outcome::refused(
            "That link code is not valid: it is wrong, used, or older than 10 minutes. Run /link again where Pincer knows you.",
            meta.clone(),
        );
        return Ok((AuditEntry::new(current.map(|u| u.email.as_str()), "identity.link.refused", meta), out));
    };
    if let Some(me) = current
        && me.id != owner.id
    {
        let out = Outcome::refused(
            format!(
                "This account is already linked to {}; an admin can unlink it with /admin identity unlink {} {platform}. The code is used up.",
                me.email, me.email
            ),
            meta.clone(),
        );
        return Ok((AuditEntry::new(Some(owner.email.as_str()), "identity.link.refused", meta), out));
    }
    users::link(conn, platform.as_str(), &ev.tenant, puid, owner.id).await?;
    let out = Outcome::done(
        format!("Linked: on {platform} you are now {} ({}).", owner.email, owner.role),
        json!({"via": "code"}),
    );
    let mut entry_meta = meta;
    entry_meta["via"] = json!("code");
    Ok((AuditEntry::new(Some(owner.email.as_str()), "identity.link", entry_meta), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_unambiguous_characters_and_differ() {
        let (a, shown) = fresh_code();
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(shown.replace('-', ""), a);
        assert_ne!(a, fresh_code().0);
        assert_eq!(hash(&a).len(), 64);
    }
}
