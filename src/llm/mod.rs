//! LLM providers: what turns a question and the passages an agent may read
//! into an answer.
//!
//! - [`extractive`] — no model at all: the best matching sentences from
//!   memory, each with where it came from. The default, so Pincer answers
//!   with no API key.
//! - [`openai`] — OpenAI-compatible chat completions (OpenAI, Azure, Ollama,
//!   vLLM, llama.cpp, LiteLLM, OpenRouter), base URL configurable;
//! - [`anthropic`] — Anthropic Messages.
//!
//! Every network call is retried on 429, 5xx, timeouts and connection
//! failures, with exponential backoff and jitter, honouring `Retry-After`
//! (up to [`MAX_RETRY_AFTER`]); an agent may name a fallback provider
//! (`extractive` included) for when its own fails.
//!
//! Providers never see secrets: the prompt is built only from the agent's
//! prompt file, the question and memory passages.

pub mod anthropic;
pub mod extractive;
pub mod openai;

use std::collections::HashMap;
use std::time::Duration;

use pincer_commands::ScopeName;

use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::store::memory::Passage;

/// Everything a provider is given for one answer.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    /// The agent's prompt file.
    pub system: &'a str,
    /// The question.
    pub question: &'a str,
    /// Passages from the scopes the asker may read, best first.
    pub passages: &'a [Passage],
    /// The scopes searched (to say where nothing was found).
    pub scopes: &'a [ScopeName],
    /// Earlier turns of the thread, oldest first.
    pub history: &'a [Turn],
}

/// One earlier message in the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// `true` for the agent's answers, `false` for people's questions.
    pub assistant: bool,
    /// The text (older turns condensed).
    pub text: String,
}

/// The history as chat messages (`user`/`assistant`), oldest first.
pub fn history_messages(history: &[Turn]) -> Vec<serde_json::Value> {
    history
        .iter()
        .map(|t| serde_json::json!({"role": if t.assistant { "assistant" } else { "user" }, "content": t.text}))
        .collect()
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The text for the chat.
    pub text: String,
    /// The provider's name (for the audit log).
    pub provider: String,
    /// Prompt tokens, when the provider reports them.
    pub tokens_in: Option<u32>,
    /// Completion tokens, when the provider reports them.
    pub tokens_out: Option<u32>,
}

/// Why a provider gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the configured timeout.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider answered with an error status.
    #[error("the provider answered HTTP {status}")]
    Status { status: u16, retry_after: Option<Duration> },
    /// The answer was not the JSON the protocol promises.
    #[error("the provider's answer was malformed: {0}")]
    Malformed(String),
    /// The connection failed.
    #[error("could not reach the provider: {0}")]
    Transport(String),
}

impl ProviderError {
    /// Whether trying again may help.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Timeout | ProviderError::Transport(_) => true,
            ProviderError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            ProviderError::Malformed(_) => false,
        }
    }

    /// A short code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Timeout => "timeout",
            ProviderError::Status { .. } => "status",
            ProviderError::Malformed(_) => "malformed",
            ProviderError::Transport(_) => "transport",
        }
    }
}

/// The longest `Retry-After` a provider call waits for; a longer one fails
/// the call (and moves on to the fallback) rather than hold the ask.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The system text: the agent's prompt, then the passages to answer from.
pub fn system_text(prompt: Prompt<'_>) -> String {
    let mut system = prompt.system.trim().to_string();
    if !prompt.passages.is_empty() {
        system.push_str(
            "\n\nAnswer from these passages of the team's memory when they are relevant, and cite them as [n]:\n",
        );
        for (i, p) in prompt.passages.iter().enumerate() {
            system.push_str(&format!("\n[{}] ({}: {} {})\n{}\n", i + 1, p.scope, p.source, p.locator, p.body.trim()));
        }
    }
    system
}

/// Reads `Retry-After` in seconds (the HTTP-date form is not used by model APIs).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok())
}

fn transport(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() { ProviderError::Timeout } else { ProviderError::Transport(e.without_url().to_string()) }
}

/// Sends a built request once; a non-2xx status is an error.
async fn send(req: reqwest::RequestBuilder) -> Result<axum::body::Bytes, ProviderError> {
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ProviderError::Status { status: status.as_u16(), retry_after: retry_after(&resp) });
    }
    resp.bytes().await.map_err(transport)
}

/// Calls `call` until it succeeds, fails for good, or `max_retries` retries
/// are spent.
pub async fn with_retries<T, F, Fut>(max_retries: u32, mut call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(a) => return Ok(a),
            Err(e) if e.retryable() && attempt < max_retries => {
                let wait = match &e {
                    ProviderError::Status { retry_after: Some(d), .. } if *d > MAX_RETRY_AFTER => return Err(e),
                    ProviderError::Status { retry_after: Some(d), .. } => *d,
                    _ => {
                        crate::backoff::backoff(attempt as i32 + 1, Duration::from_millis(500), Duration::from_secs(10))
                    }
                };
                attempt += 1;
                tracing::info!(error = %e, attempt, ?wait, "model call failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Answers from memory alone.
    Extractive,
    /// A remote model.
    Remote(Box<Remote>),
}

/// A remote model's settings, with the URL its answers are asked at parsed
/// once (not for every request).
#[derive(Debug, Clone)]
pub struct Remote {
    /// As configured.
    pub config: ProviderConfig,
    /// `{base_url}/chat/completions` or `{base_url}/messages`.
    pub answer_url: reqwest::Url,
}

impl Remote {
    fn new(config: ProviderConfig) -> anyhow::Result<Remote> {
        let path = match config.kind {
            ProviderKind::Openai => openai::ANSWER_PATH,
            ProviderKind::Anthropic => anthropic::ANSWER_PATH,
        };
        let answer_url = reqwest::Url::parse(&format!("{}{path}", config.base_url))
            .map_err(|e| anyhow::anyhow!("provider {}: base_url {}: {e}", config.name, config.base_url))?;
        Ok(Remote { config, answer_url })
    }
}

impl Provider {
    /// Answers one prompt (with retries, for a remote model).
    pub async fn answer(&self, http: &reqwest::Client, prompt: Prompt<'_>) -> Result<Answer, ProviderError> {
        match self {
            Provider::Extractive => Ok(Answer {
                text: extractive::compose(prompt.question, prompt.passages, prompt.scopes),
                provider: crate::config::EXTRACTIVE.into(),
                tokens_in: None,
                tokens_out: None,
            }),
            Provider::Remote(remote) => {
                let (config, url) = (&remote.config, &remote.answer_url);
                with_retries(config.max_retries, || async {
                    match config.kind {
                        ProviderKind::Openai => openai::answer(config, url, http, prompt).await,
                        ProviderKind::Anthropic => anthropic::answer(config, url, http, prompt).await,
                    }
                })
                .await
            }
        }
    }
}

/// Every provider by name, built once at start-up around one HTTP client.
#[derive(Debug, Clone)]
pub struct Providers {
    http: reqwest::Client,
    by_name: HashMap<String, Provider>,
}

impl Providers {
    /// Builds the providers the config declares.
    pub fn from_config(config: &Config) -> anyhow::Result<Providers> {
        let http = reqwest::Client::builder().user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION"))).build()?;
        let by_name = config
            .providers
            .values()
            .map(|p| Ok((p.name.clone(), Provider::Remote(Box::new(Remote::new(p.clone())?)))))
            .collect::<anyhow::Result<_>>()?;
        Ok(Providers { http, by_name })
    }

    /// The provider named `name`; `None` (or `extractive`) is the extractive one.
    pub fn get(&self, name: Option<&str>) -> &Provider {
        static EXTRACTIVE: Provider = Provider::Extractive;
        name.and_then(|n| self.by_name.get(n)).unwrap_or(&EXTRACTIVE)
    }

    /// A remote provider's settings, by name.
    pub fn remote(&self, name: Option<&str>) -> Option<&ProviderConfig> {
        match self.get(name) {
            Provider::Remote(r) => Some(&r.config),
            Provider::Extractive => None,
        }
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Answers with the agent's provider, then — if that fails for good —
    /// with its fallback. The error is the primary's when both fail.
    pub async fn answer(
        &self,
        primary: Option<&str>,
        fallback: Option<&str>,
        prompt: Prompt<'_>,
    ) -> Result<Answer, ProviderError> {
        let first = self.get(primary).answer(&self.http, prompt).await;
        match (first, fallback) {
            (Err(error), Some(fb)) => {
                tracing::warn!(%error, fallback = fb, "provider failed; trying the fallback");
                self.get(Some(fb)).answer(&self.http, prompt).await.map_err(|_| error)
            }
            (result, _) => result,
        }
    }
}
