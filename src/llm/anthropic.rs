//! Anthropic Messages: `POST {base_url}/messages` with `x-api-key` and
//! `anthropic-version`. Pure request/response functions, unit-tested; the
//! network part is [`answer`].

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Prompt, ProviderError};
use crate::config::ProviderConfig;

/// The API version Pincer speaks.
pub const VERSION: &str = "2023-06-01";

/// The request body for one prompt.
pub fn request_body(model: &str, max_tokens: u32, prompt: Prompt<'_>) -> Value {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "system": super::system_text(prompt),
        "messages": messages(prompt),
    })
}

/// The conversation as Anthropic wants it: starting with the user, roles
/// alternating (consecutive messages of one role are joined).
fn messages(prompt: Prompt<'_>) -> Vec<Value> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for t in prompt
        .history
        .iter()
        .map(|t| (t.assistant, t.text.clone()))
        .chain(std::iter::once((false, prompt.question.to_string())))
    {
        match out.last_mut() {
            Some(last) if last.0 == t.0 => {
                last.1.push_str("\n\n");
                last.1.push_str(&t.1);
            }
            None if t.0 => {}
            _ => out.push(t),
        }
    }
    out.into_iter()
        .map(|(assistant, text)| json!({"role": if assistant { "assistant" } else { "user" }, "content": text}))
        .collect()
}

#[derive(Deserialize)]
struct Message {
    content: Vec<Block>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}

/// Reads a Messages response: the text blocks, joined.
pub fn parse_response(provider: &str, body: &[u8]) -> Result<Answer, ProviderError> {
    let m: Message = serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let text: String =
        m.content.iter().filter(|b| b.kind == "text").filter_map(|b| b.text.as_deref()).collect::<Vec<_>>().join("");
    if text.trim().is_empty() {
        return Err(ProviderError::Malformed("no text block in the answer".into()));
    }
    Ok(Answer {
        text: text.trim().to_string(),
        provider: provider.to_string(),
        tokens_in: m.usage.as_ref().map(|u| u.input_tokens),
        tokens_out: m.usage.as_ref().map(|u| u.output_tokens),
    })
}

/// Sends one prompt to `POST {base_url}/messages`.
pub async fn answer(
    config: &ProviderConfig,
    http: &reqwest::Client,
    prompt: Prompt<'_>,
) -> Result<Answer, ProviderError> {
    let url = format!("{}/messages", config.base_url);
    let mut req = http.post(url).timeout(config.timeout).header("anthropic-version", VERSION).json(&request_body(
        &config.model,
        config.max_tokens,
        prompt,
    ));
    if let Some(key) = &config.api_key {
        req = req.header("x-api-key", key.expose());
    }
    let body = super::send(req).await?;
    parse_response(&config.name, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_puts_the_prompt_in_system_and_the_question_in_messages() {
        let body = request_body(
            "claude",
            50,
            Prompt { system: "Be brief.", question: "why?", passages: &[], scopes: &[], history: &[] },
        );
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"][0], json!({"role": "user", "content": "why?"}));
        assert_eq!(body["max_tokens"], 50);
    }

    #[test]
    fn text_blocks_are_joined_and_usage_read() {
        let ok = br#"{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}],"usage":{"input_tokens":7,"output_tokens":2}}"#;
        let a = parse_response("claude", ok).unwrap();
        assert_eq!((a.text.as_str(), a.tokens_in, a.tokens_out), ("AB", Some(7), Some(2)));
        assert!(matches!(parse_response("c", br#"{"content":[]}"#), Err(ProviderError::Malformed(_))));
    }
}
