//! OpenAI-compatible chat completions: `POST {base_url}/chat/completions`.
//! The request is built and the response read by pure functions, so the
//! exact wire body is unit-tested; [`answer`] only moves bytes.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Prompt, ProviderError};
use crate::config::ProviderConfig;

/// The request body for one prompt.
pub fn request_body(model: &str, max_tokens: u32, prompt: Prompt<'_>) -> Value {
    let system = super::system_text(prompt);
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

/// Sends one prompt to `POST {base_url}/chat/completions`.
pub async fn answer(
    config: &ProviderConfig,
    http: &reqwest::Client,
    prompt: Prompt<'_>,
) -> Result<Answer, ProviderError> {
    let url = format!("{}/chat/completions", config.base_url);
    let mut req = http.post(url).timeout(config.timeout).json(&request_body(&config.model, config.max_tokens, prompt));
    if let Some(key) = &config.api_key {
        req = req.bearer_auth(key.expose());
    }
    let body = super::send(req).await?;
    parse_response(&config.name, &body)
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
