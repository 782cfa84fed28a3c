//! LLM providers: what turns a question and the passages an agent may read
//! into an answer.
//!
//! - [`extractive`] — no model at all: the best matching sentences from
//!   memory, each with where it came from. The default, so Pincer answers
//!   with no API key.
//! - [`openai`] — OpenAI-compatible chat completions (OpenAI, Azure, Ollama,
//!   vLLM, llama.cpp, LiteLLM, OpenRouter), base URL configurable.
//!
//! Providers never see secrets: the prompt is built only from the agent's
//! prompt file, the question and memory passages.

pub mod extractive;
pub mod openai;

use std::collections::HashMap;

use pincer_commands::ScopeName;

use crate::config::Config;
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
    Status { status: u16 },
    /// The answer was not the JSON the protocol promises.
    #[error("the provider's answer was malformed: {0}")]
    Malformed(String),
    /// The connection failed.
    #[error("could not reach the provider: {0}")]
    Transport(String),
}

impl ProviderError {
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

/// One configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Answers from memory alone.
    Extractive,
    /// OpenAI-compatible chat completions.
    OpenAi(openai::OpenAi),
}

impl Provider {
    /// Answers one prompt.
    pub async fn answer(&self, prompt: Prompt<'_>) -> Result<Answer, ProviderError> {
        match self {
            Provider::Extractive => Ok(Answer {
                text: extractive::compose(prompt.question, prompt.passages, prompt.scopes),
                provider: crate::config::EXTRACTIVE.into(),
                tokens_in: None,
                tokens_out: None,
            }),
            Provider::OpenAi(p) => p.answer(prompt).await,
        }
    }
}

/// Every provider by name, built once at start-up around one HTTP client.
#[derive(Debug, Clone)]
pub struct Providers {
    by_name: HashMap<String, Provider>,
}

impl Providers {
    /// Builds the providers the config declares.
    pub fn from_config(config: &Config) -> anyhow::Result<Providers> {
        let http = reqwest::Client::builder().user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION"))).build()?;
        let by_name = config
            .providers
            .values()
            .map(|p| (p.name.clone(), Provider::OpenAi(openai::OpenAi::new(p.clone(), http.clone()))))
            .collect();
        Ok(Providers { by_name })
    }

    /// The provider an agent uses; `None` (or an unknown name) is extractive.
    pub fn get(&self, name: Option<&str>) -> &Provider {
        static EXTRACTIVE: Provider = Provider::Extractive;
        name.and_then(|n| self.by_name.get(n)).unwrap_or(&EXTRACTIVE)
    }
}
