//! The router: every event from every adapter goes through here, in this
//! order, inside one transaction:
//!
//! 1. **dedupe** — the event's key is stored; a repeat ends here, silently;
//! 2. **channel** — free text in a channel no agent is bound to is ignored
//!    (audited, no reply);
//! 3. **identity** — platform user → person ([`crate::identity`]);
//! 4. **parse** — a malformed command gets its usage back (audited);
//! 5. **authorise** — role × command × channel's agent ([`crate::policy`]);
//! 6. **execute** — the command's handler ([`crate::handlers`]);
//! 7. **audit** — the rows for all of the above, then commit.
//!
//! Nothing has an effect unless its audit row commits with it. An ask's
//! answer is produced after the commit (a model may take seconds; no
//! transaction is held open for it) and recorded when it arrives.

use std::sync::Arc;

use pincer_adapters::{ChannelEvent, Dispatch, Reply};
use pincer_commands::{Command, Input};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::app::{App, Metrics};
use crate::handlers::{self, Ctx};
use crate::identity::{self, Resolved};
use crate::messages;
use crate::policy::{self, ChannelAgent, Decision};
use crate::store::audit::{self, AuditEntry};
use crate::store::{StoreError, agents, events};

/// Routes events to handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Router {
    app: Arc<App>,
}

impl Router {
    /// A router over the shared state.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// The shared state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Handles one event and returns the replies to deliver. Never fails:
    /// an unexpected error becomes a sentence for the person (and a log line).
    pub async fn handle(&self, ev: ChannelEvent) -> Vec<Reply> {
        let span = tracing::info_span!(
            "event",
            event_id = %ev.id,
            platform = %ev.platform(),
            channel = %ev.channel.channel,
            user = %ev.sender.platform_user_id,
            agent = tracing::field::Empty,
        );
        async {
            Metrics::inc(&self.app.metrics.events);
            match self.route(&ev).await {
                Ok(replies) => replies,
                Err(error) => {
                    Metrics::inc(&self.app.metrics.errors);
                    tracing::error!(%error, "event failed");
                    vec![Reply::error(messages::internal_error(&ev.id))]
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn route(&self, ev: &ChannelEvent) -> Result<Vec<Reply>, StoreError> {
        let app = &*self.app;
        let mut tx = app.store.pool.begin().await?;
        if !events::record(&mut tx, ev.platform().as_str(), &ev.dedupe_key).await? {
            tx.rollback().await?;
            Metrics::inc(&app.metrics.duplicates);
            tracing::debug!(dedupe_key = %ev.dedupe_key, "duplicate event dropped");
            return Ok(Vec::new());
        }
        let where_ = json!({"platform": ev.platform(), "tenant": ev.tenant, "channel": ev.channel.channel, "thread": ev.thread});
        let bound = app.config.agent_for(&ev.channel);
        if let Some(agent) = bound {
            tracing::Span::current().record("agent", agent.name.as_str());
        }

        if matches!(ev.input, Ok(Input::Text(_))) && bound.is_none() {
            let meta = with(
                &where_,
                json!({"reason": "no_agent_bound", "sender": ev.sender.platform_user_id}),
            );
            commit(tx, vec![AuditEntry::new(None, "event.ignored", meta)]).await?;
            Metrics::inc(&app.metrics.ignored);
            return Ok(Vec::new());
        }

        let (user, mut trail) = match identity::resolve(&mut tx, &app.config, ev).await? {
            Resolved::Person(user, trail) => (user, trail),
            Resolved::Unknown => {
                let meta = with(
                    &where_,
                    json!({"reason": "unknown_person", "sender": ev.sender.platform_user_id, "email": ev.sender.verified_email}),
                );
                commit(tx, vec![AuditEntry::new(None, "event.denied", meta)]).await?;
                Metrics::inc(&app.metrics.denied);
                return Ok(vec![Reply::error(messages::unknown_person(
                    ev.sender.verified_email.is_some(),
                ))]);
            }
        };
        let who = Some(user.email.as_str());

        let command = match &ev.input {
            Ok(Input::Command(c)) => c.clone(),
            Ok(Input::Text(t)) => Command::Ask {
                question: t.clone(),
            },
            Err(e) => {
                trail.push(AuditEntry::new(
                    who,
                    "command.invalid",
                    with(&where_, json!({"error": e.to_string()})),
                ));
                commit(tx, trail).await?;
                return Ok(vec![Reply::error(e.to_string())]);
            }
        };
        let path = command.path();

        let agent_state = match bound {
            Some(a) => agents::state(&mut tx, &a.name).await?,
            None => None,
        };
        let channel_agent = match (bound, &agent_state) {
            (None, _) => ChannelAgent::Unbound,
            (Some(_), Some(s)) if s.is_disabled() => ChannelAgent::Disabled,
            (Some(_), _) => ChannelAgent::Enabled,
        };
        if let Decision::Deny(denial) =
            policy::authorize(user.role, command.spec(), channel_agent, app.config.rbac)
        {
            let meta = with(
                &where_,
                json!({"command": path, "reason": denial.code(), "role": user.role}),
            );
            trail.push(AuditEntry::new(who, "command.denied", meta));
            commit(tx, trail).await?;
            Metrics::inc(&app.metrics.denied);
            let agent = bound.map(|a| (a.name.as_str(), agent_state.as_ref()));
            return Ok(vec![Reply::error(messages::denial(
                &denial,
                path,
                &app.config,
                &ev.channel,
                agent,
            ))]);
        }

        let ctx = Ctx {
            app,
            event: ev,
            user: &user,
            agent: bound,
        };
        let outcome = handlers::execute(&ctx, &mut tx, &command).await?;
        let meta = with(&where_, with(&outcome.metadata, json!({"ok": outcome.ok})));
        trail.push(AuditEntry::new(who, path.replace(' ', "."), meta));
        commit(tx, trail).await?;

        let mut replies = outcome.replies;
        if let Some(job) = outcome.ask {
            replies.push(handlers::ask::answer(app, job).await?);
        }
        Ok(replies)
    }
}

impl Dispatch for Router {
    async fn dispatch(&self, event: ChannelEvent) -> Vec<Reply> {
        self.handle(event).await
    }
}

/// Merges two JSON objects (keys of `b` win).
fn with(a: &Value, b: Value) -> Value {
    let mut out = a.clone();
    if let (Some(o), Value::Object(extra)) = (out.as_object_mut(), b) {
        o.extend(extra);
    }
    out
}

/// Appends the audit rows and commits: the action and its record land together.
async fn commit(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    trail: Vec<AuditEntry>,
) -> Result<(), StoreError> {
    audit::append(&mut tx, trail).await?;
    tx.commit().await?;
    Ok(())
}
