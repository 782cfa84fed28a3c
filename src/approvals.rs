//! Approvals for dangerous tool calls.
//!
//! A call to a tool that needs approval (one the config lists under
//! `approvals.tools`, or one that always does) pauses its run: the run's
//! state is saved in its job, and an approval request with Approve / Deny
//! buttons is posted in the thread, showing the tool and its arguments
//! with secrets redacted. The request is bound to the run, the tool and a
//! hash of the exact arguments, can be decided once and used once, and
//! expires (10 minutes unless configured). Only the approvers the config
//! names — the asker, the agent's owner, admins — may decide; observers
//! never. A click on a decided, expired or unknown request, or from
//! someone else, is refused and audited. Denied or expired, the model is
//! told why and the request's message says so in the thread.
//!
//! The buttons are channel-neutral [`Button`]s: any adapter that renders
//! buttons and reports clicks as [`Action`]s gets approvals.

use std::time::Duration;

use pincer_adapters::{Action, Button, Platform, Reply, ReplyKind, Visibility};
use pincer_commands::{CommandSpec, Role};
use serde_json::json;
use sqlx::PgConnection;

use crate::agent::{Queued, RunError, RunState};
use crate::app::App;
use crate::config::{AgentConfig, Approver};
use crate::handlers::ask::AskJob;
use crate::handlers::{Ctx, Outcome};
use crate::llm::openai::ToolCall;
use crate::store::approvals::{self, Approval, NewApproval, args_hash};
use crate::store::audit::{self, AuditEntry};
use crate::store::{StoreError, jobs, outbox};

/// The approval buttons' action id.
pub const ACTION: &str = "pincer.approval";

/// How much of a call's arguments a request shows.
const SHOWN_ARGS_CHARS: usize = 500;

/// The action's spec: members and admins may click; observers change nothing.
pub static SPEC: CommandSpec = CommandSpec {
    path: "action approval",
    usage: "(the Approve / Deny buttons under an approval request)",
    summary: "Approve or deny a tool call an agent wants to make.",
    min_role: Role::Member,
    mutates: true,
    needs_agent: false,
};

/// Whether a call to `tool` by `agent` waits for a person.
pub fn needed(app: &App, agent: &AgentConfig, tool: &str) -> bool {
    let Some(t) = crate::tools::TOOLS.iter().find(|t| t.name == tool) else { return false };
    // A call the agent may not make is refused by the registry, not asked about.
    crate::policy::tool_permitted(&agent.allowed_tools, t.family, t.writes)
        && (t.approval || app.config.approvals.tools.iter().any(|n| n == tool))
}

/// What the gate decided about a call.
#[derive(Debug)]
pub enum Gate {
    /// Run it: it was approved, and this is its one use.
    Approved,
    /// Do not run it; tell the model this.
    Refused(String),
    /// The run is saved and waits for a person.
    Paused,
}

/// Someone who clicked, as far as approving goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clicker {
    /// Their role.
    pub role: Role,
    /// Whether they asked the question.
    pub is_asker: bool,
    /// Whether they own the agent.
    pub is_owner: bool,
}

/// Where a request stands when someone clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Waiting, not expired.
    Open,
    /// Waiting, but past its expiry.
    Lapsed,
    /// Already decided or voided.
    Closed,
}

/// The verdict on a click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The decision stands.
    Decide,
    /// The clicker is not one of the approvers.
    NotAnApprover,
    /// The request was decided already (a replay, or a second approver).
    AlreadyDecided,
    /// The request expired.
    Expired,
}

/// Decides a click: pure, so the approver × state table is a unit test.
/// Observers never decide, whatever the config says.
pub fn verdict(approvers: &[Approver], who: Clicker, standing: Standing) -> Verdict {
    let allowed = who.role != Role::Observer
        && approvers.iter().any(|a| match a {
            Approver::Asker => who.is_asker,
            Approver::Owner => who.is_owner,
            Approver::Admins => who.role == Role::Admin,
        });
    match (allowed, standing) {
        (false, _) => Verdict::NotAnApprover,
        (true, Standing::Closed) => Verdict::AlreadyDecided,
        (true, Standing::Lapsed) => Verdict::Expired,
        (true, Standing::Open) => Verdict::Decide,
    }
}

fn approvers_text(app: &App, agent: &AgentConfig) -> String {
    let parts: Vec<String> = app
        .config
        .approvals
        .approvers
        .iter()
        .map(|a| match a {
            Approver::Asker => "the person who asked".to_string(),
            Approver::Owner => format!("the agent's owner ({})", agent.owner),
            Approver::Admins => "an admin".to_string(),
        })
        .collect();
    parts.join(" or ")
}

fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

/// A message everyone in the thread sees.
fn public(text: String, buttons: Vec<Button>) -> Reply {
    Reply { text, visibility: Visibility::Channel, kind: ReplyKind::Info, buttons, asked: None }
}

/// Passes a call through the gate. With no queued job to pause (the
/// console, the admin shell) the call cannot be approved and is refused.
pub async fn gate(
    app: &App,
    agent: &AgentConfig,
    ask: &AskJob,
    call: &ToolCall,
    queued: Option<Queued<'_>>,
    st: &mut RunState,
) -> Result<Gate, RunError> {
    let shown: String = crate::redact::scrub(&call.arguments).chars().take(SHOWN_ARGS_CHARS).collect();
    let base = json!({"agent": agent.name, "tool": call.name, "arguments": shown});
    let meta = |extra: serde_json::Value| crate::router::with(&base, extra);
    let mut tx = app.store.pool.begin().await.map_err(StoreError::from)?;
    // Only a platform with buttons can carry a request.
    let Some(q) = queued.filter(|q| !matches!(q.job.event.platform(), Platform::Console | Platform::Cli)) else {
        let entry =
            AuditEntry::new(Some(&ask.user_email), "tool.denied", meta(json!({"reason": "approval_unavailable"})));
        audit::append(&mut tx, vec![entry]).await?;
        tx.commit().await.map_err(StoreError::from)?;
        return Ok(Gate::Refused(format!(
            "error: {} needs a person's approval, which can only be given with buttons in a chat platform; it was not run",
            call.name
        )));
    };
    let Some(id) = st.approval else {
        request(app, &mut tx, agent, ask, call, q, st, &shown).await?;
        tx.commit().await.map_err(StoreError::from)?;
        app.wake.outbox.notify_one();
        return Ok(Gate::Paused);
    };
    let Some(a) = approvals::by_id(&mut tx, id).await? else {
        st.approval = None;
        return Ok(Gate::Refused("error: the approval request is gone; the call was not run".into()));
    };
    // Bound to this run, this tool and these exact arguments.
    if a.job_id != q.job_id || a.tool != call.name || a.args_hash != args_hash(&call.name, &call.arguments) {
        let entry = AuditEntry::new(
            Some(&ask.user_email),
            "approval.mismatch",
            meta(json!({"approval": a.id, "approved_tool": a.tool, "job": q.job_id})),
        );
        audit::append(&mut tx, vec![entry]).await?;
        tx.commit().await.map_err(StoreError::from)?;
        st.approval = None;
        return Ok(Gate::Refused("error: the call differs from the one that was approved, so it was not run".into()));
    }
    let gate = match a.state.as_str() {
        "approved" => {
            if approvals::use_once(&mut tx, a.id).await? {
                // The call is about to run: recorded with the approval's use, so
                // a crash in between hands the run to a person, not a repeat.
                if crate::tools::has_side_effects(&call.name) {
                    jobs::mark_side_effects(&mut *tx, q.job_id, q.worker).await?;
                }
                let by = json!({"approval": a.id, "approved_by": a.decided_by});
                audit::append(&mut tx, vec![AuditEntry::new(Some(&ask.user_email), "approval.used", meta(by))]).await?;
                Gate::Approved
            } else {
                let entry = AuditEntry::new(Some(&ask.user_email), "approval.replay", meta(json!({"approval": a.id})));
                audit::append(&mut tx, vec![entry]).await?;
                Gate::Refused("error: that approval was used already; the call was not run again".into())
            }
        }
        "pending" if a.open => {
            // Woken before anyone decided: wait again.
            let mut job = q.job.clone();
            job.run = Some(st.clone());
            if !jobs::pause(&mut tx, q.job_id, q.worker, &job, a.expires_at).await? {
                return Err(StoreError::LeaseLost(q.job_id).into());
            }
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(Gate::Paused);
        }
        "pending" | "expired" => {
            if a.state == "pending" {
                approvals::decide(&mut tx, a.id, "expired", None).await?;
                let entry = AuditEntry::new(Some(&ask.user_email), "approval.expired", meta(json!({"approval": a.id})));
                audit::append(&mut tx, vec![entry]).await?;
            }
            let text = format!(
                "⌛ Nobody approved `{}` for {} within {} minutes, so it was not run.",
                a.tool,
                a.asker_email,
                minutes(app.config.approvals.expire)
            );
            outbox::insert(
                &mut tx,
                &crate::router::outbound(&q.job.event, &public(text, vec![]), false, a.outbox_id, Duration::ZERO),
            )
            .await?;
            Gate::Refused(format!(
                "error: nobody approved this call within {} minutes, so it was not run; the person may ask again",
                minutes(app.config.approvals.expire)
            ))
        }
        "denied" => Gate::Refused(format!(
            "error: {} denied this call, so it was not run",
            a.decided_by.as_deref().unwrap_or("an approver")
        )),
        _ => Gate::Refused("error: the request was voided because the agent was disabled; the call was not run".into()),
    };
    tx.commit().await.map_err(StoreError::from)?;
    app.wake.outbox.notify_one();
    st.approval = None;
    Ok(gate)
}

/// Records a request, posts it, and pauses the run until it is decided or expires.
#[allow(clippy::too_many_arguments)]
async fn request(
    app: &App,
    tx: &mut PgConnection,
    agent: &AgentConfig,
    ask: &AskJob,
    call: &ToolCall,
    q: Queued<'_>,
    st: &mut RunState,
    shown: &str,
) -> Result<(), RunError> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let ev = &q.job.event;
    let hash = args_hash(&call.name, &call.arguments);
    let expire = app.config.approvals.expire;
    let (id, expires_at) = approvals::insert(
        tx,
        &NewApproval {
            token: &token,
            job_id: q.job_id,
            agent: agent.name.as_str(),
            asker_email: &ask.user_email,
            tool: &call.name,
            arguments: shown,
            args_hash: &hash,
            platform: ev.platform().as_str(),
            tenant: &ev.tenant,
            channel: &ev.reply_to.channel.channel,
            expire,
        },
    )
    .await?;
    let text = format!(
        "🔐 Approval needed: agent *{}* wants to run `{}` for {} with:\n```{}```\nWho may decide: {}. This request expires in {} minutes.",
        agent.name,
        call.name,
        ask.user_email,
        shown,
        approvers_text(app, agent),
        minutes(expire)
    );
    let buttons = vec![
        Button { label: "✅ Approve".into(), action_id: ACTION.into(), value: format!("approve:{token}") },
        Button { label: "❌ Deny".into(), action_id: ACTION.into(), value: format!("deny:{token}") },
    ];
    let reply = public(text, buttons);
    let outbox_id = outbox::insert(tx, &crate::router::outbound(ev, &reply, false, None, Duration::ZERO)).await?;
    approvals::set_message(tx, id, outbox_id).await?;
    st.approval = Some(id);
    let mut job = q.job.clone();
    job.run = Some(st.clone());
    if !jobs::pause(tx, q.job_id, q.worker, &job, expires_at).await? {
        return Err(StoreError::LeaseLost(q.job_id).into());
    }
    let meta = json!({"approval": id, "agent": agent.name, "tool": call.name, "arguments": shown, "job": q.job_id,
        "expires_at": expires_at});
    audit::append(tx, vec![AuditEntry::new(Some(&ask.user_email), "approval.requested", meta)]).await?;
    Ok(())
}

/// A click on Approve or Deny, inside the router's transaction.
pub async fn click(ctx: &Ctx<'_>, conn: &mut PgConnection, action: &Action) -> Result<Outcome, StoreError> {
    let (decision, token) = match action.value.split_once(':') {
        Some(("approve", t)) => ("approved", t),
        Some(("deny", t)) => ("denied", t),
        _ => {
            let text = crate::messages::unknown_action(ctx.event.platform());
            return Ok(Outcome::refused(text, json!({"value": action.value})));
        }
    };
    let Some(a) = approvals::by_token(conn, token).await? else {
        return Ok(Outcome::refused("I don't know that approval request.", json!({"reason": "unknown_request"})));
    };
    let ev = ctx.event;
    let meta = json!({"approval": a.id, "agent": a.agent, "tool": a.tool, "asker": a.asker_email, "decision": decision,
        "state": a.state});
    // A click names its request; it must also come from where the request is.
    if (ev.platform().as_str(), ev.tenant.as_str(), ev.reply_to.channel.channel.as_str())
        != (a.platform.as_str(), a.tenant.as_str(), a.channel.as_str())
    {
        return Ok(Outcome::refused(
            "That approval request belongs to another channel.",
            with_reason(meta, "foreign_channel"),
        ));
    }
    let owner = ctx.app.config.agents.values().find(|ag| ag.name.as_str() == a.agent).map(|ag| ag.owner.as_str());
    let who = Clicker {
        role: ctx.user.role,
        is_asker: ctx.user.email.as_str() == a.asker_email,
        is_owner: owner == Some(ctx.user.email.as_str()),
    };
    let standing = match (a.state.as_str(), a.open) {
        (_, true) => Standing::Open,
        ("pending", false) => Standing::Lapsed,
        _ => Standing::Closed,
    };
    match verdict(&ctx.app.config.approvals.approvers, who, standing) {
        Verdict::NotAnApprover => {
            let agent = ctx.app.config.agents.values().find(|ag| ag.name.as_str() == a.agent);
            let allowed = agent.map(|ag| approvers_text(ctx.app, ag)).unwrap_or_else(|| "an admin".into());
            Ok(Outcome::refused(
                format!("You can't decide this request: only {allowed} may."),
                with_reason(meta, "not_an_approver"),
            ))
        }
        Verdict::AlreadyDecided => Ok(Outcome::refused(
            format!(
                "This request was {} already{}.",
                a.state,
                a.decided_by.map(|b| format!(" by {b}")).unwrap_or_default()
            ),
            with_reason(meta, "already_decided"),
        )),
        Verdict::Expired => {
            approvals::decide(conn, a.id, "expired", None).await?;
            jobs::notify(conn).await?;
            Ok(Outcome::refused(
                "This request has expired; the agent was told it was not approved.",
                with_reason(meta, "expired"),
            ))
        }
        Verdict::Decide => {
            approvals::decide(conn, a.id, decision, Some(ctx.user.email.as_str())).await?;
            jobs::notify(conn).await?;
            let text = if decision == "approved" {
                format!("✅ {} approved `{}` for {}: {}", ctx.user.email, a.tool, a.asker_email, decided_args(&a))
            } else {
                format!(
                    "❌ {} denied `{}` for {}, so it will not run: {}",
                    ctx.user.email,
                    a.tool,
                    a.asker_email,
                    decided_args(&a)
                )
            };
            let mut out = Outcome::done(text, meta);
            out.replies = vec![public(out.replies.remove(0).text, vec![])];
            out.replaces = a.outbox_id;
            Ok(out)
        }
    }
}

fn decided_args(a: &Approval) -> String {
    format!("`{}`", a.arguments.chars().take(200).collect::<String>())
}

fn with_reason(meta: serde_json::Value, reason: &str) -> serde_json::Value {
    crate::router::with(&meta, json!({"reason": reason}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every approver setting × clicker × standing, generated, against the
    /// rule written out independently: observers never; otherwise the
    /// clicker must match one listed approver; then the standing decides.
    #[test]
    fn the_approver_table() {
        use Approver::*;
        let settings: Vec<Vec<Approver>> = vec![
            vec![Asker],
            vec![Owner],
            vec![Admins],
            vec![Asker, Owner],
            vec![Owner, Admins],
            vec![Asker, Admins],
            vec![Asker, Owner, Admins],
        ];
        let mut cells = 0;
        for approvers in &settings {
            for role in [Role::Observer, Role::Member, Role::Admin] {
                for is_asker in [false, true] {
                    for is_owner in [false, true] {
                        for standing in [Standing::Open, Standing::Lapsed, Standing::Closed] {
                            let who = Clicker { role, is_asker, is_owner };
                            let may = role != Role::Observer
                                && ((approvers.contains(&Asker) && is_asker)
                                    || (approvers.contains(&Owner) && is_owner)
                                    || (approvers.contains(&Admins) && role == Role::Admin));
                            let expected = if !may {
                                Verdict::NotAnApprover
                            } else {
                                match standing {
                                    Standing::Open => Verdict::Decide,
                                    Standing::Lapsed => Verdict::Expired,
                                    Standing::Closed => Verdict::AlreadyDecided,
                                }
                            };
                            assert_eq!(
                                verdict(approvers, who, standing),
                                expected,
                                "{approvers:?} {who:?} {standing:?}"
                            );
                            cells += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cells, 7 * 3 * 2 * 2 * 3);
        // Spot checks written by hand.
        let member = Clicker { role: Role::Member, is_asker: true, is_owner: false };
        assert_eq!(verdict(&[Owner, Admins], member, Standing::Open), Verdict::NotAnApprover);
        let observer_owner = Clicker { role: Role::Observer, is_asker: false, is_owner: true };
        assert_eq!(verdict(&[Owner], observer_owner, Standing::Open), Verdict::NotAnApprover);
        let admin = Clicker { role: Role::Admin, is_asker: false, is_owner: false };
        assert_eq!(verdict(&[Owner, Admins], admin, Standing::Closed), Verdict::AlreadyDecided);
    }
}
