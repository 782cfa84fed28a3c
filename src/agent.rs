//! The agent loop: the model may call the tools its agent is allowed, under
//! budgets — at most [`MAX_STEPS`] model turns and [`MAX_TOKENS`] tokens per
//! run (wall time is bounded by the caller) — and ends with an answer. A
//! budget that runs out ends the run with a sentence saying so.
//!
//! Used for remote models (OpenAI-compatible or Anthropic, each in its own
//! wire shapes) when the agent has tool grants; otherwise the plain
//! completion in [`crate::llm`] answers.
//!
//! The loop is a resumable state machine ([`RunState`]): a call that needs a
//! person's approval ([`crate::approvals`]) saves the state in the run's job
//! and pauses it; the decision (or the expiry) wakes the job, and whichever
//! worker takes it continues from the saved state. Between tool batches the
//! loop re-reads the agent's switch, so a break-glass disable stops a
//! running agent at its next tool boundary.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::approvals::{self, Gate};
use crate::config::{AgentConfig, ProviderKind};
use crate::handlers::ask::{AnswerJob, AskJob};
use crate::llm::anthropic;
use crate::llm::openai::{self, ToolCall, ToolSpec, Turn};
use crate::llm::{Answer, Prompt, ProviderError, history_messages, system_text, with_retries};
use crate::tools;

/// Model turns per run.
pub const MAX_STEPS: usize = 6;
/// Tokens (in + out) per run.
pub const MAX_TOKENS: u32 = 20_000;

/// Whether this agent's answers go through the tool loop.
pub fn uses_tools(app: &App, agent: &AgentConfig) -> bool {
    app.providers.remote(agent.provider.as_deref()).is_some() && !tools::offered(&agent.allowed_tools).is_empty()
}

/// A database failure inside a tool, or the provider's failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The model provider failed for good.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Where a run stands between model turns: what is saved when it pauses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// The conversation with the model so far, in its protocol's shapes.
    pub messages: Vec<Value>,
    /// Tokens used so far.
    pub tokens_in: u32,
    /// Tokens produced so far.
    pub tokens_out: u32,
    /// Model turns taken.
    pub steps: usize,
    /// The current turn's calls not yet run, in order.
    pub pending: Vec<ToolCall>,
    /// The current turn's results so far: (call id, what the model is told).
    pub results: Vec<(String, String)>,
    /// The approval the first pending call is waiting for.
    pub approval: Option<i64>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Finished {
    /// With an answer (or a sentence saying why it stopped).
    Answer(Answer),
    /// Paused for a person's approval; the job is saved and unlocked.
    Paused,
}

/// The queued job a run belongs to: a tool with side effects is recorded on
/// it before it runs, and a pause saves the run in it.
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    /// The answer job's id.
    pub job_id: i64,
    /// The worker holding it.
    pub worker: &'a str,
    /// The job itself (the event the run answers, any saved state).
    pub job: &'a AnswerJob,
}

/// Runs the loop for one ask, from the start or from the job's saved state.
pub async fn run(
    app: &App,
    agent: &AgentConfig,
    ask: &AskJob,
    prompt: Prompt<'_>,
    queued: Option<Queued<'_>>,
) -> Result<Finished, RunError> {
    let Some(config) = app.providers.remote(agent.provider.as_deref()) else {
        return Err(RunError::Provider(ProviderError::Malformed("the agent has no remote model".into())));
    };
    let offered: Vec<ToolSpec> = tools::offered(&agent.allowed_tools);
    let system = system_text(prompt);
    let mut st = match queued.and_then(|q| q.job.run.clone()) {
        Some(saved) => saved,
        // Each protocol keeps its own message shapes; the loop is the same.
        None => RunState {
            messages: match config.kind {
                ProviderKind::Openai => std::iter::once(json!({"role": "system", "content": system}))
                    .chain(history_messages(prompt.history))
                    .chain(std::iter::once(json!({"role": "user", "content": prompt.question})))
                    .collect(),
                ProviderKind::Anthropic => anthropic::messages(prompt),
            },
            ..RunState::default()
        },
    };
    loop {
        if !st.pending.is_empty() {
            // The tool boundary: a break-glass disable stops the run here.
            if let Some(why) = disabled(app, agent).await? {
                let sentence = format!("I stopped before finishing because {why}.");
                return Ok(Finished::Answer(stopped(config.name.as_str(), st.tokens_in, st.tokens_out, sentence)));
            }
        }
        while let Some(call) = st.pending.first().cloned() {
            let told = if approvals::needed(app, agent, &call.name) {
                match approvals::gate(app, agent, ask, &call, queued, &mut st).await? {
                    Gate::Paused => return Ok(Finished::Paused),
                    Gate::Refused(told) => told,
                    Gate::Approved => run_tool(app, agent, ask, &call, queued).await?,
                }
            } else {
                run_tool(app, agent, ask, &call, queued).await?
            };
            st.results.push((call.id.clone(), crate::redact::scrub(&told).into_owned()));
            st.pending.remove(0);
        }
        if !st.results.is_empty() {
            let results = std::mem::take(&mut st.results);
            match config.kind {
                ProviderKind::Openai => st.messages.extend(
                    results
                        .into_iter()
                        .map(|(id, content)| json!({"role": "tool", "tool_call_id": id, "content": content})),
                ),
                ProviderKind::Anthropic => st.messages.push(anthropic::tool_results(&results)),
            }
        }
        if st.steps >= MAX_STEPS {
            let why = over_budget(&format!("it took more than {MAX_STEPS} steps"));
            return Ok(Finished::Answer(stopped(config.name.as_str(), st.tokens_in, st.tokens_out, why)));
        }
        st.steps += 1;
        let turn = with_retries(config.max_retries, || async {
            match config.kind {
                ProviderKind::Openai => openai::turn(config, app.providers.http(), &st.messages, &offered).await,
                ProviderKind::Anthropic => {
                    anthropic::turn(config, app.providers.http(), &system, &st.messages, &offered).await
                }
            }
        })
        .await?;
        match turn {
            Turn::Answer(mut answer) => {
                answer.tokens_in = Some(st.tokens_in + answer.tokens_in.unwrap_or(0));
                answer.tokens_out = Some(st.tokens_out + answer.tokens_out.unwrap_or(0));
                return Ok(Finished::Answer(answer));
            }
            Turn::Calls { calls, message, tokens_in: i, tokens_out: o } => {
                st.tokens_in += i;
                st.tokens_out += o;
                if st.tokens_in + st.tokens_out > MAX_TOKENS {
                    let why = over_budget(&format!("the run used more than {MAX_TOKENS} tokens"));
                    return Ok(Finished::Answer(stopped(config.name.as_str(), st.tokens_in, st.tokens_out, why)));
                }
                st.messages.push(message);
                st.pending = calls;
            }
        }
    }
}

/// Runs one call, recording on the job first if it has side effects.
async fn run_tool(
    app: &App,
    agent: &AgentConfig,
    ask: &AskJob,
    call: &ToolCall,
    queued: Option<Queued<'_>>,
) -> Result<String, RunError> {
    if let Some(q) = queued
        && tools::has_side_effects(&call.name)
    {
        crate::store::jobs::mark_side_effects(&app.store.pool, q.job_id, q.worker).await?;
    }
    Ok(tools::execute(app, agent, ask, call).await?)
}

/// Why the agent may not go on, if an admin disabled it.
async fn disabled(app: &App, agent: &AgentConfig) -> Result<Option<String>, RunError> {
    let mut conn = app.store.pool.acquire().await.map_err(crate::store::StoreError::from)?;
    let state = crate::store::agents::state(&mut conn, &agent.name).await?;
    Ok(state.filter(|s| s.is_disabled()).map(|s| {
        format!(
            "the agent was disabled by {} ({}) while it was working",
            s.disabled_by.as_deref().unwrap_or("an admin"),
            s.disabled_reason.as_deref().unwrap_or("no reason given")
        )
    }))
}

fn stopped(provider: &str, tokens_in: u32, tokens_out: u32, sentence: String) -> Answer {
    Answer { text: sentence, provider: provider.to_string(), tokens_in: Some(tokens_in), tokens_out: Some(tokens_out) }
}

fn over_budget(why: &str) -> String {
    format!("I stopped before finishing because {why}, this agent's budget for one question. Try a narrower question.")
}
