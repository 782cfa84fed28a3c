//! Command handlers: one file per command (one per noun under `admin/`).
//! A handler runs after the router has deduplicated, identified and
//! authorised the event, inside the router's transaction; it returns an
//! [`Outcome`] — replies, audit details, and for `/ask` the job to answer
//! after commit. Refusals a person can fix (a workspace that does not exist,
//! a user already invited) are outcomes with `ok: false`, not errors; only
//! the unexpected is an `Err`.

pub mod admin;
pub mod ask;
pub mod help;
pub mod link;
pub mod workspace;

use pincer_adapters::{ChannelEvent, Reply};
use pincer_commands::Command;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::app::App;
use crate::config::AgentConfig;
use crate::store::StoreError;
use crate::store::users::User;

/// What a handler sees.
pub struct Ctx<'a> {
    /// Shared state.
    pub app: &'a App,
    /// The event being handled.
    pub event: &'a ChannelEvent,
    /// The person who sent it.
    pub user: &'a User,
    /// The agent bound to the event's channel, if any.
    pub agent: Option<&'a AgentConfig>,
}

/// What a handler did.
#[derive(Debug)]
pub struct Outcome {
    /// Replies to deliver now.
    pub replies: Vec<Reply>,
    /// Details for the command's audit row.
    pub metadata: Value,
    /// Whether the command did what was asked.
    pub ok: bool,
    /// For `/ask`: the answer to produce after commit.
    pub ask: Option<ask::AskJob>,
    /// The delivered message the replies replace in place (a decided
    /// approval request loses its buttons), if any.
    pub replaces: Option<i64>,
}

impl Outcome {
    /// Success, with a reply and audit details.
    pub fn done(reply: impl Into<String>, metadata: Value) -> Self {
        Self { replies: vec![Reply::info(reply)], metadata, ok: true, ask: None, replaces: None }
    }

    /// A refusal the person can act on.
    pub fn refused(reply: impl Into<String>, metadata: Value) -> Self {
        let reply = reply.into();
        let metadata = match metadata {
            Value::Object(mut m) => {
                m.insert("refused".into(), json!(reply));
                Value::Object(m)
            }
            other => other,
        };
        Self { replies: vec![Reply::error(reply)], metadata, ok: false, ask: None, replaces: None }
    }
}

/// Runs a command.
pub async fn execute(ctx: &Ctx<'_>, conn: &mut PgConnection, command: &Command) -> Result<Outcome, StoreError> {
    match command {
        Command::Help { admin } => Ok(help::run(ctx, *admin)),
        Command::Ask { question } => ask::accept(ctx, conn, question).await,
        Command::Workspace(w) => workspace::run(ctx, conn, w).await,
        Command::Admin(a) => admin::run(ctx, conn, a).await,
        Command::Link { code: None } => link::issue(ctx, conn).await,
        Command::Link { code: Some(code) } => {
            let (entry, mut outcome) = link::redeem(conn, ctx.event, code, Some(ctx.user)).await?;
            // The router writes the command's own row; keep the link's details in it.
            outcome.metadata = json!({"link": entry.action, "details": entry.metadata, "ok": outcome.ok});
            Ok(outcome)
        }
    }
}
