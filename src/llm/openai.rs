//! OpenAI-compatible chat completions: `POST {base_url}/chat/completions`.
//! The request is built and the response read by pure functions, so the
//! exact wire body is unit-tested; [`OpenAi::answer`] only moves bytes.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Prompt, ProviderError};
use crate::config::ProviderConfig;

/// A configured OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAi {
    config: ProviderConfig,
    http: reqwest::Client,
}

/// The request body for one prompt.
pub fn request_body(model: &str, max_tokens: u32, prompt: Prompt<'_>) -> Value {
    let mut system = prompt.system.trim().to_string();
    if !prompt.passages.is_empty() {
        system.push_str(
            "\n\nAnswer from these passages of the team's memory when they are relevant, and cite them as [n]:\n",
        );
        for (i, p) in prompt.passages.iter().enumerate() {
            system.push_str(&format!("\n[{}] ({}: {} {})\n{}\n", i + 1, p.scope, p.source, p.locator, p.body.trim()));
        }
    }
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt.question},
        ],
    })
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Reads a chat completion response.
pub fn parse_response(provider: &str, body: &[u8]) -> Result<Answer, ProviderError> {
    let c: Completion = serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let text = c
        .choices
        .into_iter()
        .next()
        .and_then(|ch| ch.message.content)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ProviderError::Malformed("no message content in the first choice".into()))?;
    Ok(Answer {
        text: text.trim().to_string(),
        provider: provider.to_string(),
        tokens_in: c.usage.as_ref().map(|u| u.prompt_tokens),
        tokens_out: c.usage.as_ref().map(|u| u.completion_tokens),
    })
}

impl OpenAi {
    /// Wraps a provider config and a shared HTTP client.
    pub fn new(config: ProviderConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    /// Sends one prompt and reads the answer.
    pub async fn answer(&self, prompt: Prompt<'_>) -> Result<Answer, ProviderError> {
        let url = format!("{}/chat/completions", self.config.base_url);
        let mut req = self.http.post(url).timeout(self.config.timeout).json(&request_body(
            &self.config.model,
            self.config.max_tokens,
            prompt,
        ));
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() { ProviderError::Timeout } else { ProviderError::Transport(e.without_url().to_string()) }
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ProviderError::Status { status: status.as_u16() });
        }
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() { ProviderError::Timeout } else { ProviderError::Transport(e.without_url().to_string()) }
        })?;
        parse_response(&self.config.name, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::Passage;

    #[test]
    fn the_request_carries_prompt_passages_and_question() {
        let passages = [Passage {
            id: 1,
            scope: "incidents".into(),
            source: "pm.md".into(),
            locator: "Root cause".into(),
            body: "The disk filled.".into(),
            rank: 0.5,
        }];
        let body =
            request_body("m", 100, Prompt { system: "Be brief.", question: "why?", passages: &passages, scopes: &[] });
        assert_eq!(body["model"], "m");
        assert_eq!(body["messages"][1]["content"], "why?");
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("Be brief."));
        assert!(system.contains("[1] (incidents: pm.md Root cause)\nThe disk filled."));
    }

    #[test]
    fn responses_are_read_or_refused() {
        let ok = br#"{"choices":[{"message":{"role":"assistant","content":" hi "}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let a = parse_response("default", ok).unwrap();
        assert_eq!((a.text.as_str(), a.tokens_in, a.tokens_out), ("hi", Some(3), Some(1)));
        assert!(matches!(parse_response("d", b"{not json"), Err(ProviderError::Malformed(_))));
        assert!(matches!(parse_response("d", br#"{"choices":[]}"#), Err(ProviderError::Malformed(_))));
    }
}
