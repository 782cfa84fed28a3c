//! `/ask QUESTION` (and free text in a bound channel): the agent bound to the
//! channel answers from the memory its policy and the asker's workspace allow.
//!
//! [`accept`] runs inside the router's transaction and records the question;
//! [`answer`] runs after commit: memory search over the permitted scopes, the
//! agent's provider, the answer stored and returned for the thread.

use std::time::Instant;

use pincer_adapters::Reply;
use pincer_commands::{AgentName, ScopeName};
use serde_json::json;
use sqlx::PgConnection;

use super::{Ctx, Outcome};
use crate::app::{App, Metrics};
use crate::llm::Prompt;
use crate::messages;
use crate::policy::read_scopes;
use crate::store::audit::{self, AuditEntry};
use crate::store::conversations::{self, Author, ThreadKey};
use crate::store::{StoreError, memory};

/// How many passages an answer is built from.
const PASSAGES: i64 = 5;
/// How much of a question the audit row keeps.
const AUDIT_QUESTION_CHARS: usize = 500;

/// An accepted ask, answered after the router commits.
#[derive(Debug, Clone)]
pub struct AskJob {
    /// The agent that answers.
    pub agent: AgentName,
    /// Who asked.
    pub user_email: String,
    /// Their user id.
    pub user_id: i64,
    /// The question.
    pub question: String,
    /// The scopes it may read.
    pub scopes: Vec<ScopeName>,
    /// The workspace it runs in, if not shared.
    pub workspace: Option<String>,
    /// The conversation it belongs to.
    pub conversation_id: i64,
}

/// Records the question and returns the job to answer it.
pub async fn accept(
    ctx: &Ctx<'_>,
    conn: &mut PgConnection,
    question: &str,
) -> Result<Outcome, StoreError> {
    // The router only lets an ask through in a channel with an agent.
    let Some(agent) = ctx.agent else {
        return Ok(Outcome::refused(
            "No agent answers in this channel.",
            json!({}),
        ));
    };
    let ev = ctx.event;
    let channel = ev.channel.channel.as_str();
    let key = ThreadKey {
        platform: ev.platform().as_str(),
        tenant: &ev.tenant,
        channel,
        thread: ev.thread.as_deref().unwrap_or(""),
    };
    let conversation_id = conversations::upsert(conn, key, agent.name.as_str()).await?;
    let workspace = ctx.user.active_workspace.as_ref().map(|w| w.to_string());
    conversations::add_message(
        conn,
        conversation_id,
        Author::User,
        Some(ctx.user.id),
        workspace.as_deref(),
        question,
    )
    .await?;
    let scopes = read_scopes(&agent.memory_scopes, ctx.user.active_workspace.as_ref());
    let metadata = json!({
        "agent": agent.name,
        "workspace": workspace,
        "scopes": scopes,
        "question": question.chars().take(AUDIT_QUESTION_CHARS).collect::<String>(),
    });
    Ok(Outcome {
        replies: Vec::new(),
        metadata,
        ok: true,
        ask: Some(AskJob {
            agent: agent.name.clone(),
            user_email: ctx.user.email.to_string(),
            user_id: ctx.user.id,
            question: question.to_string(),
            scopes,
            workspace,
            conversation_id,
        }),
    })
}

/// Produces the answer: search, provider, record. A provider failure is a
/// sentence for the asker and an audit row, never silence.
pub async fn answer(app: &App, job: AskJob) -> Result<Reply, StoreError> {
    let started = Instant::now();
    let Some(agent) = app.config.agents.get(&job.agent) else {
        return Ok(Reply::error(format!(
            "The agent {} is no longer configured.",
            job.agent
        )));
    };
    let mut conn = app.store.pool.acquire().await?;
    let passages = memory::search(&mut conn, &job.scopes, &job.question, PASSAGES).await?;
    let provider = app.providers.get(agent.provider.as_deref());
    let prompt = Prompt {
        system: &agent.prompt,
        question: &job.question,
        passages: &passages,
        scopes: &job.scopes,
    };
    match provider.answer(prompt).await {
        Ok(answer) => {
            conversations::add_message(
                &mut conn,
                job.conversation_id,
                Author::Assistant,
                None,
                job.workspace.as_deref(),
                &answer.text,
            )
            .await?;
            Metrics::inc(&app.metrics.answers);
            tracing::info!(
                provider = %answer.provider,
                passages = passages.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                tokens_in = answer.tokens_in,
                tokens_out = answer.tokens_out,
                "answered"
            );
            Ok(Reply::answer(answer.text))
        }
        Err(error) => {
            Metrics::inc(&app.metrics.provider_failures);
            tracing::warn!(%error, "provider failed");
            let mut tx = app.store.pool.begin().await?;
            let meta = json!({"agent": job.agent, "provider": agent.provider, "error": error.code(), "detail": error.to_string()});
            audit::append(
                &mut tx,
                vec![AuditEntry::new(Some(&job.user_email), "ask.failed", meta)],
            )
            .await?;
            tx.commit().await?;
            Ok(Reply::error(messages::provider_unavailable()))
        }
    }
}
