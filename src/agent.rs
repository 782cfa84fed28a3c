//! The agent loop: the model may call the tools its agent is allowed, under
//! budgets — at most [`MAX_STEPS`] model turns and [`MAX_TOKENS`] tokens per
//! run (wall time is bounded by the caller) — and ends with an answer. A
//! budget that runs out ends the run with a sentence saying so.
//!
//! Used for remote models (OpenAI-compatible or Anthropic, each in its own
//! wire shapes) when the agent has tool grants; otherwise the plain
//! completion in [`crate::llm`] answers.

use serde_json::{Value, json};

use crate::app::App;
use crate::config::{AgentConfig, ProviderKind};
use crate::handlers::ask::AskJob;
use crate::llm::anthropic;
use crate::llm::openai::{self, ToolSpec, Turn};
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

/// Runs the loop for one ask.
/// `job` is the queued job the run belongs to (job id, worker), so a tool
/// with side effects can be recorded on it before it runs.
pub async fn run(
    app: &App,
    agent: &AgentConfig,
    ask: &AskJob,
    prompt: Prompt<'_>,
    job: Option<(i64, &str)>,
) -> Result<Answer, RunError> {
    let Some(config) = app.providers.remote(agent.provider.as_deref()) else {
        return Err(RunError::Provider(ProviderError::Malformed("the agent has no remote model".into())));
    };
    let offered: Vec<ToolSpec> = tools::offered(&agent.allowed_tools);
    let system = system_text(prompt);
    // Each protocol keeps its own message shapes; the loop is the same.
    let mut messages: Vec<Value> = match config.kind {
        ProviderKind::Openai => std::iter::once(json!({"role": "system", "content": system}))
            .chain(history_messages(prompt.history))
            .chain(std::iter::once(json!({"role": "user", "content": prompt.question})))
            .collect(),
        ProviderKind::Anthropic => anthropic::messages(prompt),
    };
    let (mut tokens_in, mut tokens_out) = (0u32, 0u32);
    for _ in 0..MAX_STEPS {
        let turn = with_retries(config.max_retries, || async {
            match config.kind {
                ProviderKind::Openai => openai::turn(config, app.providers.http(), &messages, &offered).await,
                ProviderKind::Anthropic => {
                    anthropic::turn(config, app.providers.http(), &system, &messages, &offered).await
                }
            }
        })
        .await?;
        match turn {
            Turn::Answer(mut answer) => {
                answer.tokens_in = Some(tokens_in + answer.tokens_in.unwrap_or(0));
                answer.tokens_out = Some(tokens_out + answer.tokens_out.unwrap_or(0));
                return Ok(answer);
            }
            Turn::Calls { calls, message, tokens_in: i, tokens_out: o } => {
                tokens_in += i;
                tokens_out += o;
                if tokens_in + tokens_out > MAX_TOKENS {
                    return Ok(stopped(
                        config.name.as_str(),
                        tokens_in,
                        tokens_out,
                        format!("the run used more than {MAX_TOKENS} tokens"),
                    ));
                }
                messages.push(message);
                let mut results = Vec::with_capacity(calls.len());
                for call in &calls {
                    if let Some((id, worker)) = job
                        && tools::has_side_effects(&call.name)
                    {
                        crate::store::jobs::mark_side_effects(&app.store.pool, id, worker).await?;
                    }
                    results.push((call.id.clone(), tools::execute(app, agent, ask, call).await?));
                }
                match config.kind {
                    ProviderKind::Openai => messages.extend(
                        results
                            .into_iter()
                            .map(|(id, content)| json!({"role": "tool", "tool_call_id": id, "content": content})),
                    ),
                    ProviderKind::Anthropic => messages.push(anthropic::tool_results(&results)),
                }
            }
        }
    }
    Ok(stopped(config.name.as_str(), tokens_in, tokens_out, format!("it took more than {MAX_STEPS} steps")))
}

fn stopped(provider: &str, tokens_in: u32, tokens_out: u32, why: String) -> Answer {
    Answer {
        text: format!(
            "I stopped before finishing because {why}, this agent's budget for one question. Try a narrower question."
        ),
        provider: provider.to_string(),
        tokens_in: Some(tokens_in),
        tokens_out: Some(tokens_out),
    }
}
