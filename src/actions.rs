//! Buttons: each `action_id` a platform sends back maps to one handler here,
//! with a spec the router authorises like a command (role floor, observers
//! mutate nothing) and audits like one. Approval and on-call buttons plug in
//! as new entries.
//!
//! Today: `pincer.feedback` — 👍 / 👎 under an answer — and
//! `pincer.approval` — Approve / Deny under an approval request
//! ([`crate::approvals`]).

use pincer_adapters::{Action, Button, Reply};
use pincer_commands::{CommandSpec, Role};
use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, outbox};

/// The feedback buttons' action id.
pub const FEEDBACK: &str = pincer_adapters::FEEDBACK_ACTION;

static FEEDBACK_SPEC: CommandSpec = CommandSpec {
    path: "action feedback",
    usage: "(the 👍 / 👎 buttons under an answer)",
    summary: "Say whether an answer helped.",
    min_role: Role::Member,
    mutates: true,
    needs_agent: false,
};

/// The spec of a known action.
pub fn spec(action_id: &str) -> Option<&'static CommandSpec> {
    match action_id {
        FEEDBACK => Some(&FEEDBACK_SPEC),
        crate::approvals::ACTION => Some(&crate::approvals::SPEC),
        _ => None,
    }
}

/// The buttons under every answer.
pub fn feedback_buttons() -> Vec<Button> {
    vec![
        Button { label: "👍 Helpful".into(), action_id: FEEDBACK.into(), value: "up".into() },
        Button { label: "👎 Not helpful".into(), action_id: FEEDBACK.into(), value: "down".into() },
    ]
}

/// Runs an authorised action.
pub async fn execute(ctx: &Ctx<'_>, conn: &mut PgConnection, action: &Action) -> Result<Outcome, StoreError> {
    match action.action_id.as_str() {
        FEEDBACK => feedback(ctx, conn, action).await,
        crate::approvals::ACTION => crate::approvals::click(ctx, conn, action).await,
        _ => Ok(Outcome::refused(
            crate::messages::unknown_action(ctx.event.platform()),
            json!({"action_id": action.action_id}),
        )),
    }
}

async fn feedback(ctx: &Ctx<'_>, conn: &mut PgConnection, action: &Action) -> Result<Outcome, StoreError> {
    let meta = json!({"value": action.value, "message": action.message_ts});
    let helpful = match action.value.as_str() {
        "up" => true,
        "down" => false,
        _ => return Ok(Outcome::refused(crate::messages::unknown_action(ctx.event.platform()), meta)),
    };
    let ev = ctx.event;
    let found = match &action.message_ts {
        Some(ts) => {
            outbox::find_delivered(conn, ev.platform().as_str(), &ev.tenant, &ev.reply_to.channel.channel, ts).await?
        }
        None => None,
    };
    let Some(outbox_id) = found else {
        return Ok(Outcome::refused("I can't find the answer that button was on any more.", meta));
    };
    outbox::feedback(conn, outbox_id, ctx.user.id, helpful).await?;
    let mut out = Outcome::done(
        if helpful {
            "Thanks — noted that this answer helped."
        } else {
            "Thanks — noted that this answer did not help."
        },
        json!({"value": action.value, "message": action.message_ts, "outbox_id": outbox_id}),
    );
    out.replies = vec![Reply::info(out.replies.remove(0).text)];
    Ok(out)
}
