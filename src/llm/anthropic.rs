//! Anthropic Messages: `POST {base_url}/messages` with `x-api-key` and
//! `anthropic-version`. Pure request/response functions, unit-tested; the
//! network part is [`answer`].

use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::{ToolCall, ToolSpec, Turn};
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
pub fn messages(prompt: Prompt<'_>) -> Vec<Value> {
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

/// Where answers are asked for, under the base URL.
pub const ANSWER_PATH: &str = "/messages";

/// Sends one prompt to `url`, `POST {base_url}/messages`.
pub async fn answer(
    config: &ProviderConfig,
    url: &reqwest::Url,
    http: &reqwest::Client,
    prompt: Prompt<'_>,
) -> Result<Answer, ProviderError> {
    let mut req = http
        .post(url.clone())
        .timeout(config.timeout)
        .header("anthropic-version", VERSION)
        .json(&request_body(&config.model, config.max_tokens, prompt));
    if let Some(key) = &config.api_key {
        req = req.header("x-api-key", key.expose());
    }
    let body = super::send(req).await?;
    parse_response(&config.name, &body)
}

/// The request body for a turn with tools.
pub fn turn_body(model: &str, max_tokens: u32, system: &str, messages: &[Value], tools: &[ToolSpec]) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
        .collect();
    let mut body = json!({"model": model, "max_tokens": max_tokens, "system": system, "messages": messages});
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Reads a turn: `tool_use` blocks if the model asked for tools, else the answer.
pub fn parse_turn(provider: &str, body: &[u8]) -> Result<Turn, ProviderError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let blocks = v["content"].as_array().cloned().unwrap_or_default();
    let calls: Vec<ToolCall> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| {
            Some(ToolCall {
                id: b["id"].as_str()?.to_string(),
                name: b["name"].as_str()?.to_string(),
                arguments: b["input"].to_string(),
            })
        })
        .collect();
    if calls.is_empty() {
        return parse_response(provider, body).map(Turn::Answer);
    }
    let usage = |k: &str| v["usage"][k].as_u64().unwrap_or(0) as u32;
    let message = json!({"role": "assistant", "content": blocks});
    Ok(Turn::Calls { calls, message, tokens_in: usage("input_tokens"), tokens_out: usage("output_tokens") })
}

/// The user message carrying tool results back.
pub fn tool_results(results: &[(String, String)]) -> Value {
    let blocks: Vec<Value> = results
        .iter()
        .map(|(id, content)| json!({"type": "tool_result", "tool_use_id": id, "content": content}))
        .collect();
    json!({"role": "user", "content": blocks})
}

/// Sends one turn of a tool loop.
pub async fn turn(
    config: &ProviderConfig,
    http: &reqwest::Client,
    system: &str,
    messages: &[Value],
    tools: &[ToolSpec],
) -> Result<Turn, ProviderError> {
    let url = format!("{}/messages", config.base_url);
    let mut req = http.post(url).timeout(config.timeout).header("anthropic-version", VERSION).json(&turn_body(
        &config.model,
        config.max_tokens,
        system,
        messages,
        tools,
    ));
    if let Some(key) = &config.api_key {
        req = req.header("x-api-key", key.expose());
    }
    let body = super::send(req).await?;
    parse_turn(&config.name, &body)
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
    fn tool_use_blocks_become_calls_and_results_go_back_as_one_user_message() {
        let body = br#"{"content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"tu1","name":"memory_search","input":{"query":"lock"}}],"usage":{"input_tokens":5,"output_tokens":2}}"#;
        let Turn::Calls { calls, message, .. } = parse_turn("c", body).unwrap() else { panic!() };
        assert_eq!(calls[0].arguments, r#"{"query":"lock"}"#);
        assert_eq!(message["role"], "assistant");
        let back = tool_results(&[("tu1".into(), "found".into())]);
        assert_eq!(back["content"][0], json!({"type": "tool_result", "tool_use_id": "tu1", "content": "found"}));
    }

    #[test]
    fn text_blocks_are_joined_and_usage_read() {
        let ok = br#"{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}],"usage":{"input_tokens":7,"output_tokens":2}}"#;
        let a = parse_response("claude", ok).unwrap();
        assert_eq!((a.text.as_str(), a.tokens_in, a.tokens_out), ("AB", Some(7), Some(2)));
        assert!(matches!(parse_response("c", br#"{"content":[]}"#), Err(ProviderError::Malformed(_))));
    }
}
