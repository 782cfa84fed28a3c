//! `/ask QUESTION` (and free text in a bound channel): the agent bound to the
//! channel answers from the memory its policy and the asker's workspace allow.
//!
//! [`accept`] runs inside the router's transaction and records the question;
//! [`answer`] runs after commit: memory search over the permitted scopes, the
//! agent's provider, the answer stored and returned for the thread.

use std::time::{Duration, Instant};

use pincer_adapters::{AskedBy, ChannelEvent, Platform, Reply, ReplyKind};
use pincer_commands::{AgentName, ScopeName};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;

use super::{Ctx, Outcome};
use crate::app::{App, Metrics};
use crate::llm::Prompt;
use crate::messages;
use crate::policy::read_scopes;
use crate::store::audit::{self, AuditEntry};
use crate::store::conversations::{self, Author, ThreadKey};
use crate::store::jobs;
use crate::store::outbox;
use crate::store::usage::{self, NewUsage};
use crate::store::{StoreError, memory};

/// How many passages an answer is built from.
pub(crate) const PASSAGES: i64 = 5;
/// How much of a question the audit row keeps.
const AUDIT_QUESTION_CHARS: usize = 500;

/// An accepted ask, answered after the router commits.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The conversation it belongs to (set when the router stores the
    /// question, in the same write as the answer job).
    pub conversation_id: i64,
    /// Whether the question opened its conversation: there is no earlier
    /// history to read.
    #[serde(default)]
    pub new_thread: bool,
    /// Memory found for it when the router stored it (same statement); not
    /// kept in the job: an answer run from the queue searches again.
    #[serde(skip)]
    pub prefetched: Option<Vec<memory::Passage>>,
}

/// Accepts a question (within the budgets) and returns the job to answer
/// it. Nothing is written here: the router stores the question, opening the
/// thread's conversation, with the event's other writes.
pub async fn accept(ctx: &Ctx<'_>, conn: &mut PgConnection, question: &str) -> Result<Outcome, StoreError> {
    // The router only lets an ask through in a channel with an agent.
    let Some(agent) = ctx.agent else {
        return Ok(Outcome::refused("No agent answers in this channel.", json!({})));
    };
    let budgets = ctx.app.config.budgets;
    if budgets.person_daily_tokens.is_some() || budgets.agent_daily_tokens.is_some() {
        let (person, agent_used) = usage::today(conn, ctx.user.email.as_str(), agent.name.as_str()).await?;
        let meta = json!({"agent": agent.name, "person_tokens_today": person, "agent_tokens_today": agent_used});
        if let Some(limit) = budgets.person_daily_tokens.filter(|l| person >= *l) {
            return Ok(Outcome::refused(messages::person_over_budget(limit), meta));
        }
        if let Some(limit) = budgets.agent_daily_tokens.filter(|l| agent_used >= *l) {
            return Ok(Outcome::refused(messages::agent_over_budget(agent.name.as_str(), limit), meta));
        }
    }
    let workspace = ctx.user.active_workspace.as_ref().map(|w| w.to_string());
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
        replaces: None,
        ask: Some(AskJob {
            agent: agent.name.clone(),
            user_email: ctx.user.email.to_string(),
            user_id: ctx.user.id,
            question: question.to_string(),
            scopes,
            workspace,
            conversation_id: 0,
            new_thread: false,
            prefetched: None,
        }),
    })
}

/// The conversation an event's ask belongs to: its thread's, or outside any
/// thread the asker's own in the channel.
pub fn thread_of(ev: &ChannelEvent) -> ThreadKey<'_> {
    ThreadKey {
        platform: ev.platform().as_str(),
        tenant: &ev.tenant,
        channel: &ev.channel.channel,
        thread: ev.thread.as_deref(),
        asker: &ev.sender.platform_user_id,
    }
}

/// An ask from a platform, queued to be answered with its reply going to
/// the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerJob {
    /// The ask.
    pub ask: AskJob,
    /// The event it came from (where the answer goes).
    pub event: ChannelEvent,
    /// The "working on it…" outbox row the answer replaces, if any.
    pub progress_id: Option<i64>,
    /// A tool-loop run paused for an approval: where to go on from.
    #[serde(default)]
    pub run: Option<crate::agent::RunState>,
}

/// What the provider made of an ask.
enum Produced {
    Answer(crate::llm::Answer),
    /// Waiting for a person's approval; the job is saved and unlocked.
    Paused,
    Failed(crate::llm::ProviderError),
    NoAgent,
}

/// Search and provider: nothing is written.
async fn produce(app: &App, job: &AskJob, queued: Option<crate::agent::Queued<'_>>) -> Result<Produced, StoreError> {
    let started = Instant::now();
    let Some(agent) = app.config.agents.get(&job.agent) else { return Ok(Produced::NoAgent) };
    // With embeddings configured, the question's embedding re-ranks the
    // full-text candidates; if the provider fails, full text alone ranks.
    let question_vector = match &app.config.embeddings {
        Some(e) => match app.providers.remote(Some(&e.provider)) {
            Some(p) => match crate::llm::openai::embed(p, app.providers.http(), &e.model, &[&job.question]).await {
                Ok(mut v) => v.pop().map(|v| (v, e.weight)),
                Err(error) => {
                    tracing::warn!(%error, "question embedding failed; ranking by full text");
                    None
                }
            },
            None => None,
        },
        None => None,
    };
    let wants_history = agent.provider.is_some() && !job.new_thread;
    let (passages, recent) = match (&question_vector, &job.prefetched) {
        // Found by the router's statement, and no history to read: no
        // connection needed.
        (None, Some(found)) if !wants_history => (found.clone(), Vec::new()),
        _ => {
            let mut conn = app.store.pool.acquire().await?;
            let passages = match (&question_vector, &job.prefetched) {
                (Some((v, weight)), _) => {
                    memory::search_hybrid(&mut conn, &job.scopes, &job.question, v, *weight, PASSAGES).await?
                }
                (None, Some(found)) => found.clone(),
                (None, None) => memory::search(&mut conn, &job.scopes, &job.question, PASSAGES).await?,
            };
            let recent = if wants_history {
                let n = HISTORY_MESSAGES + 1;
                conversations::recent(&mut conn, job.conversation_id, job.workspace.as_deref(), n).await?
            } else {
                Vec::new()
            };
            conn.release();
            (passages, recent)
        }
    };
    let history = history(recent, &job.question);
    let prompt = Prompt {
        system: &agent.prompt,
        question: &job.question,
        passages: &passages,
        scopes: &job.scopes,
        history: &history,
    };
    let result = if crate::agent::uses_tools(app, agent) {
        match crate::agent::run(app, agent, job, prompt, queued).await {
            Ok(crate::agent::Finished::Answer(answer)) => Ok(answer),
            Ok(crate::agent::Finished::Paused) => return Ok(Produced::Paused),
            Err(crate::agent::RunError::Store(e)) => return Err(e),
            Err(crate::agent::RunError::Provider(error)) => match agent.fallback.as_deref() {
                Some(fb) => app.providers.answer(Some(fb), None, prompt).await.map_err(|_| error),
                None => Err(error),
            },
        }
    } else {
        app.providers.answer(agent.provider.as_deref(), agent.fallback.as_deref(), prompt).await
    };
    Ok(match result {
        Ok(mut answer) => {
            // A model may echo a secret it was never given (or guessed):
            // it is scrubbed before it is stored or shown.
            if let std::borrow::Cow::Owned(clean) = crate::redact::scrub(&answer.text) {
                answer.text = clean;
            }
            tracing::info!(
                provider = %answer.provider,
                passages = passages.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                tokens_in = answer.tokens_in,
                tokens_out = answer.tokens_out,
                "answered"
            );
            Produced::Answer(answer)
        }
        Err(error) => {
            tracing::warn!(%error, "provider failed");
            Produced::Failed(error)
        }
    })
}

/// Earlier messages of the thread a model sees.
const HISTORY_MESSAGES: i64 = 20;
/// Characters of recent history kept word for word; older turns are
/// condensed to their first sentence.
const HISTORY_CHARS: usize = 6000;
/// The most characters a condensed turn keeps.
const CONDENSED_CHARS: usize = 200;

/// The thread's history for the model, oldest first, from its newest
/// messages (newest first, the current question among them): recent turns
/// whole while they fit [`HISTORY_CHARS`], older ones condensed — the
/// summary is extractive, so it costs no model call.
pub fn history(newest_first: Vec<(bool, String)>, question: &str) -> Vec<crate::llm::Turn> {
    let mut rows = newest_first.into_iter().peekable();
    // The current question was stored when the ask was accepted.
    if rows.peek().is_some_and(|(assistant, body)| !assistant && body == question) {
        rows.next();
    }
    let mut used = 0;
    let mut turns: Vec<crate::llm::Turn> = rows
        .map(|(assistant, body)| {
            let text = if used + body.len() <= HISTORY_CHARS {
                used += body.len();
                body
            } else {
                let first = body.split_inclusive(['.', '?', '!', '\n']).next().unwrap_or(&body).trim().to_string();
                let short: String = first.chars().take(CONDENSED_CHARS).collect();
                format!("(earlier, condensed) {short}")
            };
            crate::llm::Turn { assistant, text }
        })
        .collect();
    turns.reverse();
    turns
}

/// What an answer cost, at its provider's configured prices.
fn usage_of<'a>(app: &App, job: &'a AskJob, answer: &'a crate::llm::Answer) -> NewUsage<'a> {
    let (tokens_in, tokens_out) = (i64::from(answer.tokens_in.unwrap_or(0)), i64::from(answer.tokens_out.unwrap_or(0)));
    let prices = app.config.providers.get(&answer.provider).map(|p| p.prices).unwrap_or_default();
    NewUsage {
        user_email: &job.user_email,
        agent: job.agent.as_str(),
        provider: &answer.provider,
        tokens_in,
        tokens_out,
        cost_micros: prices.cost_micros(tokens_in, tokens_out),
    }
}

/// The reply for an answer, with its feedback buttons.
fn answered(app: &App, ev: &ChannelEvent, question: &str, text: String) -> Reply {
    Metrics::inc(&app.metrics.answers);
    let mut reply = Reply::answer(text);
    reply.buttons = crate::actions::feedback_buttons();
    // A Slack slash command is seen by its sender alone: the channel is
    // shown who asked what above the answer.
    if ev.platform() == Platform::Slack && !ev.is_posted() {
        reply.asked = Some(AskedBy { user: ev.sender.platform_user_id.clone(), question: question.to_string() });
    }
    reply
}

/// Records what was produced (the assistant's message, or the failure's
/// audit row) and returns the reply for the asker.
async fn record(
    conn: &mut PgConnection,
    app: &App,
    ev: &ChannelEvent,
    job: &AskJob,
    produced: Produced,
) -> Result<Reply, StoreError> {
    match produced {
        Produced::Answer(answer) => {
            conversations::add_message(
                conn,
                job.conversation_id,
                Author::Assistant,
                None,
                job.workspace.as_deref(),
                &answer.text,
            )
            .await?;
            usage::record(conn, &usage_of(app, job, &answer)).await?;
            Ok(answered(app, ev, &job.question, answer.text))
        }
        Produced::Failed(error) => {
            Metrics::inc(&app.metrics.provider_failures);
            let provider = app.config.agents.get(&job.agent).and_then(|a| a.provider.clone());
            let meta =
                json!({"agent": job.agent, "provider": provider, "error": error.code(), "detail": error.to_string()});
            audit::append(conn, vec![AuditEntry::new(Some(&job.user_email), "ask.failed", meta)]).await?;
            Ok(Reply::error(messages::provider_unavailable()))
        }
        Produced::NoAgent => Ok(Reply::error(format!("The agent {} is no longer configured.", job.agent))),
        // Only queued runs pause, and they return before recording.
        Produced::Paused => Ok(Reply::info(messages::waiting_for_approval())),
    }
}

/// Answers a terminal ask held as job `job_id` by `worker`, and returns the
/// reply: the answer (or the failure's sentence) and the job's completion
/// commit together. If the process dies first, the job's lease runs out and
/// the answer is produced by whichever process takes it over, into the
/// outbox, where the person's next `pincer chat` shows it.
pub async fn answer_inline(app: &App, job: AnswerJob, job_id: i64, worker: &str) -> Result<Reply, StoreError> {
    let queued = crate::agent::Queued { job_id, worker, job: &job };
    let produced = bounded(produce(app, &job.ask, Some(queued))).await?;
    let mut tx = app.store.pool.begin().await?;
    if !jobs::complete(&mut tx, job_id, worker).await? {
        tx.rollback().await?;
        return Err(StoreError::LeaseLost(job_id));
    }
    let reply = record(&mut tx, app, &job.event, &job.ask, produced).await?;
    tx.commit().await?;
    Ok(reply)
}

/// What a person missed in a terminal channel: answers to their asks whose
/// process died (answered now, by this process) and replies that were
/// waiting there for them.
pub async fn catch_up(app: &App, email: &str, channel: &str) -> Result<Vec<Reply>, StoreError> {
    let worker = &app.handoff.worker;
    // One at a time, each under its own lease while it is answered.
    while let Some(job) = jobs::claim_terminal(&app.store.pool, worker, crate::worker::LEASE, email).await? {
        let answer: AnswerJob =
            serde::Deserialize::deserialize(&job.payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if job.side_effects_at.is_some() {
            crate::worker::interrupted(app, &job, answer, worker).await?;
        } else {
            answer_queued(app, answer, job.id, worker).await?;
        }
    }
    outbox::take_terminal(&app.store.pool, channel, email).await
}

/// The longest an answer may take, well inside the job's lease, so a hung
/// provider ends in a sentence for the asker instead of a job that is
/// taken over and started again.
pub const MAX_ANSWER_TIME: Duration = Duration::from_secs(45);

async fn bounded(
    work: impl std::future::Future<Output = Result<Produced, StoreError>>,
) -> Result<Produced, StoreError> {
    tokio::time::timeout(MAX_ANSWER_TIME, work)
        .await
        .unwrap_or(Ok(Produced::Failed(crate::llm::ProviderError::Timeout)))
}

/// Why a queued answer may no longer be given: its agent was disabled, or
/// its asker removed, since the ask was accepted.
async fn still_allowed(app: &App, ask: &AskJob) -> Result<Option<String>, StoreError> {
    let mut conn = app.store.pool.acquire().await?;
    let now = crate::store::agents::answerable(&mut conn, &ask.agent, &ask.user_email).await?;
    conn.release();
    if now.disabled == Some(true) {
        return Ok(Some(format!(
            "The agent {} was disabled by {} ({}) before it could answer.",
            ask.agent,
            now.disabled_by.as_deref().unwrap_or("an admin"),
            now.disabled_reason.as_deref().unwrap_or("no reason given")
        )));
    }
    if !now.asker_present {
        return Ok(Some("You were removed from this Pincer org, so this question will not be answered.".into()));
    }
    Ok(None)
}

/// A slow answer shows "working on it…" after this long.
pub const PROGRESS_DELAY: Duration = Duration::from_millis(1500);

/// Posts the "working on it…" placeholder and remembers it in the job, so a
/// worker that takes the job over after a crash replaces it too.
async fn post_progress(app: &App, job: &mut AnswerJob, job_id: i64, worker: &str) -> Result<(), StoreError> {
    let placeholder = Reply::info(messages::working_on_it());
    let mut row = crate::router::outbound(&job.event, &placeholder, true, None, Duration::ZERO);
    row.recipient = None;
    let mut tx = app.store.pool.begin().await?;
    let id = outbox::insert(&mut tx, &row).await?;
    job.progress_id = Some(id);
    if !jobs::set_payload(&mut tx, job_id, worker, &*job).await? {
        tx.rollback().await?;
        return Err(StoreError::LeaseLost(job_id));
    }
    tx.commit().await?;
    app.wake.outbox.notify_one();
    Ok(())
}

/// Answers a queued ask: the reply goes to the outbox — replacing the
/// "working on it…" placeholder if the answer took long enough to post one
/// — in the same transaction that completes the job.
pub async fn answer_queued(app: &App, job: AnswerJob, job_id: i64, worker: &str) -> Result<(), StoreError> {
    answer_job(app, job, job_id, worker, true).await
}

/// Answers an ask the router has just accepted in this process: like
/// [`answer_queued`], without checking again what the router checked a
/// moment ago (the agent not disabled, the asker not removed).
pub async fn answer_routed(app: &App, job: AnswerJob, job_id: i64, worker: &str) -> Result<(), StoreError> {
    answer_job(app, job, job_id, worker, false).await
}

async fn answer_job(app: &App, mut job: AnswerJob, job_id: i64, worker: &str, recheck: bool) -> Result<(), StoreError> {
    // Break-glass and removals apply to answers still queued too.
    let refused = if recheck { still_allowed(app, &job.ask).await? } else { None };
    if let Some(refusal) = refused {
        let reply = Reply::error(refusal);
        let mut row = crate::router::outbound(&job.event, &reply, false, job.progress_id, Duration::ZERO);
        if job.progress_id.is_some() {
            row.recipient = None;
        }
        let mut tx = app.store.pool.begin().await?;
        if !jobs::complete(&mut tx, job_id, worker).await? {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost(job_id));
        }
        outbox::insert(&mut tx, &row).await?;
        tx.commit().await?;
        app.wake.outbox.notify_one();
        return Ok(());
    }
    let produced = if job.progress_id.is_some() || job.run.is_some() {
        let queued = crate::agent::Queued { job_id, worker, job: &job };
        bounded(produce(app, &job.ask, Some(queued))).await?
    } else {
        let snapshot = job.clone();
        let queued = crate::agent::Queued { job_id, worker, job: &snapshot };
        // (On the heap: this future stays small while it waits.)
        let mut work = Box::pin(bounded(produce(app, &snapshot.ask, Some(queued))));
        tokio::select! {
            done = &mut work => done?,
            _ = tokio::time::sleep(PROGRESS_DELAY) => {
                // The run goes on while the placeholder is posted: it may be
                // inside a transaction holding this job's row.
                let (posted, done) = tokio::join!(post_progress(app, &mut job, job_id, worker), &mut work);
                let done = done?;
                if !matches!(done, Produced::Paused) {
                    // (A run that paused has released the job; its placeholder
                    // is not needed.)
                    posted?;
                }
                done
            }
        }
    };
    conclude(app, job, job_id, worker, produced).await
}

/// Stores what was produced for answer job `job_id` — the answer, or the
/// failure's sentence — and completes the job; the reply is delivered from
/// here if it can go at once.
async fn conclude(app: &App, job: AnswerJob, job_id: i64, worker: &str, produced: Produced) -> Result<(), StoreError> {
    if let Produced::Paused = produced {
        return Ok(());
    }
    if let Produced::Answer(answer) = produced {
        // The common case: one statement, no transaction round trips.
        let used = usage_of(app, &job.ask, &answer);
        let reply = answered(app, &job.event, &job.ask.question, answer.text.clone());
        let row = crate::router::outbound(&job.event, &reply, false, job.progress_id, Duration::ZERO);
        let settled = crate::dispatcher::settled(app);
        let rows = answer_rows(app, &job.ask, &reply, &row, &used, &settled);
        let answered = outbox::finish_answer(&app.store.pool, job_id, worker, job.ask.conversation_id, &rows).await?;
        return hand_over(app, answered, job_id).await;
    }
    let mut tx = app.store.pool.begin().await?;
    // The job row first, the audit head after: the same lock order as
    // everywhere else.
    if !jobs::complete(&mut tx, job_id, worker).await? {
        tx.rollback().await?;
        return Err(StoreError::LeaseLost(job_id));
    }
    let reply = record(&mut tx, app, &job.event, &job.ask, produced).await?;
    let mut row = crate::router::outbound(&job.event, &reply, false, job.progress_id, Duration::ZERO);
    if reply.kind == ReplyKind::Error && job.progress_id.is_some() {
        // The placeholder is public; the failure note replaces it there.
        row.recipient = None;
    }
    outbox::insert(&mut tx, &row).await?;
    tx.commit().await?;
    app.wake.outbox.notify_one();
    Ok(())
}

/// An answer's rows. With a dispatcher in this process, its reply is
/// claimed as it is stored, to be delivered from here if it can go at once
/// (terminal replies wait for `pincer chat`).
fn answer_rows<'a>(
    app: &App,
    ask: &'a AskJob,
    reply: &'a Reply,
    row: &'a outbox::NewOutbound<'a>,
    used: &'a NewUsage<'a>,
    settled: &'a [i64],
) -> outbox::AnswerRows<'a> {
    let claim = app.handoff.pacer.get().filter(|_| !matches!(row.platform, "console" | "cli"));
    outbox::AnswerRows {
        workspace: ask.workspace.as_deref(),
        body: &reply.text,
        reply: row,
        used,
        claim: claim.map(|_| crate::dispatcher::LEASE),
        settled,
    }
}

/// After an answer is stored: delivers its reply if it was claimed for
/// this process, or leaves it to the dispatcher.
async fn hand_over(app: &App, answered: outbox::Answered, job_id: i64) -> Result<(), StoreError> {
    match (answered, app.handoff.pacer.get()) {
        (outbox::Answered::LeaseLost, _) => return Err(StoreError::LeaseLost(job_id)),
        (outbox::Answered::Claimed(claimed), Some(pacer)) => {
            crate::dispatcher::deliver_claimed(app, pacer, *claimed).await
        }
        _ => app.wake.outbox.notify_one(),
    }
    Ok(())
}

/// Answers an ask the router accepted without writing anything
/// ([`crate::router::Deferred`]; its event's job is still held). An answer
/// that comes within [`PROGRESS_DELAY`] is stored in one statement with
/// what the router decided — the thread's conversation, the question, the
/// audit rows — completing the event's job: one write for the whole ask.
/// A slower answer, or a failure, first writes the router's rows as they
/// would have been (the answer job), then goes on as a queued answer does:
/// "working on it…", the failure's sentence.
pub async fn answer_deferred(app: &App, deferred: crate::router::Deferred, worker: &str) -> Result<(), StoreError> {
    let crate::router::Deferred { job_id, trail, answer: job } = deferred;
    // (On the heap: this future stays small while it waits.)
    let mut work = Box::pin(bounded(produce(app, &job.ask, None)));
    // Until the router's rows are written, a failure leaves the event's job
    // to be retried; after, the answer job.
    // (Once written, the answer job counts among the jobs this process
    // runs, until the run ends.)
    let (answer_id, concluded, _runs) = tokio::select! {
        done = &mut work => match done? {
            Produced::Answer(answer) => return answer_at_once(app, &job, job_id, worker, trail, answer).await,
            other => {
                let (id, saved) = write_routed(app, &job, job_id, worker, trail).await?;
                let runs = crate::worker::runs(app, id);
                (id, conclude(app, saved, id, worker, other).await, runs)
            }
        },
        _ = tokio::time::sleep(PROGRESS_DELAY) => {
            // The run goes on while the router's rows and the placeholder
            // are written.
            let routed = async {
                let (id, mut saved) = write_routed(app, &job, job_id, worker, trail).await?;
                let runs = crate::worker::runs(app, id);
                let posted = post_progress(app, &mut saved, id, worker).await;
                Ok::<_, StoreError>((id, saved, posted, runs))
            };
            let (routed, done) = tokio::join!(routed, &mut work);
            let (id, saved, posted, runs) = routed?;
            match (posted, done) {
                (Ok(()), Ok(produced)) => (id, conclude(app, saved, id, worker, produced).await, runs),
                (Err(error), _) | (_, Err(error)) => (id, Err(error), runs),
            }
        }
    };
    if let Err(error) = concluded {
        tracing::warn!(job = answer_id, %error, "answer failed; it will be retried");
        let _ = jobs::release(&app.store.pool, answer_id, worker, Duration::from_millis(500)).await;
    }
    Ok(())
}

/// The router's rows for a deferred ask, as the router would have written
/// them: the event's job completed, the conversation, the question, the
/// audit rows, and the answer job (claimed by `worker`). Returns the
/// answer job.
async fn write_routed(
    app: &App,
    job: &AnswerJob,
    job_id: i64,
    worker: &str,
    trail: Vec<AuditEntry>,
) -> Result<(i64, AnswerJob), StoreError> {
    let a = &job.ask;
    let ask = crate::store::routing::NewAsk {
        thread: thread_of(&job.event),
        agent: a.agent.as_str(),
        user_id: a.user_id,
        workspace: a.workspace.as_deref(),
        question: &a.question,
        payload: job,
        lease: crate::worker::LEASE,
    };
    let mut conn = app.store.pool.acquire().await?;
    let done = crate::store::routing::finish(&mut conn, job_id, worker, Some(&ask), &[], trail).await?;
    conn.release();
    let Some(done) = done else { return Err(StoreError::LeaseLost(job_id)) };
    let (Some(id), Some(conversation)) = (done.answer_job, done.conversation_id) else {
        return Err(StoreError::Corrupt(format!("job {job_id}: the ask was written without its answer job")));
    };
    let mut saved = job.clone();
    saved.ask.conversation_id = conversation;
    saved.ask.new_thread = done.new_thread;
    Ok((id, saved))
}

/// Stores a deferred ask's answer with the router's rows, in one statement.
async fn answer_at_once(
    app: &App,
    job: &AnswerJob,
    job_id: i64,
    worker: &str,
    trail: Vec<AuditEntry>,
    answer: crate::llm::Answer,
) -> Result<(), StoreError> {
    let ask = &job.ask;
    let used = usage_of(app, ask, &answer);
    let reply = answered(app, &job.event, &ask.question, answer.text.clone());
    let row = crate::router::outbound(&job.event, &reply, false, None, Duration::ZERO);
    let asked = outbox::Asked {
        thread: thread_of(&job.event),
        agent: ask.agent.as_str(),
        user_id: ask.user_id,
        question: &ask.question,
        trail,
    };
    let settled = crate::dispatcher::settled(app);
    let rows = answer_rows(app, ask, &reply, &row, &used, &settled);
    let answered = outbox::finish_asked(&app.store.pool, job_id, worker, asked, &rows).await?;
    hand_over(app, answered, job_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_drops_the_current_question_keeps_recent_turns_and_condenses_old_ones() {
        let long = format!("First sentence. {}", "x".repeat(7000));
        let rows = vec![
            (false, "and now?".to_string()),
            (true, "It was a lock.".to_string()),
            (false, "why?".to_string()),
            (true, long),
        ];
        let h = history(rows, "and now?");
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].text, "(earlier, condensed) First sentence.");
        assert!(h[0].assistant);
        assert_eq!((h[1].text.as_str(), h[2].text.as_str()), ("why?", "It was a lock."));
    }
}
