//! OpenAI-compatible chat completions: `POST {base_url}/chat/completions`.
//! The request is built and the response read by pure functions, so the
//! exact wire body is unit-tested; [`answer`] only moves bytes.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Answer, Prompt, ProviderError};
use crate::config::ProviderConfig;

/// The request body for one prompt, serialised straight from the prompt
/// (no JSON tree is built for it).
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<ChatMessage<'a>>,
}

#[derive(Debug, Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Cow<'a, str>,
}

/// The request body for one prompt: the system text, the thread's history
/// oldest first, then the question.
pub fn request_body<'a>(model: &'a str, max_tokens: u32, prompt: Prompt<'a>) -> Request<'a> {
    let mut messages = Vec::with_capacity(prompt.history.len() + 2);
    messages.push(ChatMessage { role: "system", content: Cow::Owned(super::system_text(prompt)) });
    messages.extend(prompt.history.iter().map(|t| ChatMessage {
        role: if t.assistant { "assistant" } else { "user" },
        content: Cow::Borrowed(t.text.as_str()),
    }));
    messages.push(ChatMessage { role: "user", content: Cow::Borrowed(prompt.question) });
    Request { model, max_tokens, messages }
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

/// Where answers are asked for, under the base URL.
pub const ANSWER_PATH: &str = "/chat/completions";

/// Sends one prompt to `url`, `POST {base_url}/chat/completions`.
pub async fn answer(
    config: &ProviderConfig,
    url: &reqwest::Url,
    http: &reqwest::Client,
    prompt: Prompt<'_>,
) -> Result<Answer, ProviderError> {
    let mut req =
        http.post(url.clone()).timeout(config.timeout).json(&request_body(&config.model, config.max_tokens, prompt));
    if let Some(key) = &config.api_key {
        req = req.bearer_auth(key.expose());
    }
    let body = super::send(req).await?;
    parse_response(&config.name, &body)
}

/// A tool the model may call, as offered to it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// Its arguments' JSON schema.
    pub parameters: Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    /// The call's id (echoed back with its result).
    pub id: String,
    /// The tool.
    pub name: String,
    /// The arguments, as the JSON text the model wrote.
    pub arguments: String,
}

/// One model turn in a tool loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// The final answer.
    Answer(Answer),
    /// Tools to call first; `message` is the assistant message to keep in
    /// the conversation.
    Calls { calls: Vec<ToolCall>, message: Value, tokens_in: u32, tokens_out: u32 },
}

/// The request body for a turn with tools.
pub fn turn_body(model: &str, max_tokens: u32, messages: &[Value], tools: &[ToolSpec]) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
        .collect();
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Reads a turn: tool calls if the model asked for any, else the answer.
pub fn parse_turn(provider: &str, body: &[u8]) -> Result<Turn, ProviderError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let message = v["choices"][0]["message"].clone();
    let calls: Vec<ToolCall> = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| {
                    Some(ToolCall {
                        id: c["id"].as_str()?.to_string(),
                        name: c["function"]["name"].as_str()?.to_string(),
                        arguments: c["function"]["arguments"].as_str().unwrap_or("{}").to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if calls.is_empty() {
        return parse_response(provider, body).map(Turn::Answer);
    }
    let usage = |k: &str| v["usage"][k].as_u64().unwrap_or(0) as u32;
    Ok(Turn::Calls { calls, message, tokens_in: usage("prompt_tokens"), tokens_out: usage("completion_tokens") })
}

/// Embeds `inputs` with `model` at the provider's `/embeddings` endpoint
/// (OpenAI's shape: `{"data": [{"index": i, "embedding": [...]}]}`), one
/// vector per input, in order.
pub async fn embed(
    config: &ProviderConfig,
    http: &reqwest::Client,
    model: &str,
    inputs: &[&str],
) -> Result<Vec<Vec<f32>>, ProviderError> {
    let url = format!("{}/embeddings", config.base_url);
    let mut req = http.post(url).timeout(config.timeout).json(&json!({"model": model, "input": inputs}));
    if let Some(key) = &config.api_key {
        req = req.bearer_auth(key.expose());
    }
    let body = super::send(req).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let mut data: Vec<(u64, Vec<f32>)> = v["data"]
        .as_array()
        .ok_or_else(|| ProviderError::Malformed("no data in the embeddings response".into()))?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let vector =
                d["embedding"].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect());
            (d["index"].as_u64().unwrap_or(i as u64), vector.unwrap_or_default())
        })
        .collect();
    data.sort_by_key(|(i, _)| *i);
    if data.len() != inputs.len() || data.iter().any(|(_, v)| v.is_empty()) {
        return Err(ProviderError::Malformed(format!("{} embeddings for {} inputs", data.len(), inputs.len())));
    }
    Ok(data.into_iter().map(|(_, v)| v).collect())
}

/// Sends one turn of a tool loop.
pub async fn turn(
    config: &ProviderConfig,
    http: &reqwest::Client,
    messages: &[Value],
    tools: &[ToolSpec],
) -> Result<Turn, ProviderError> {
    let url = format!("{}/chat/completions", config.base_url);
    let mut req =
        http.post(url).timeout(config.timeout).json(&turn_body(&config.model, config.max_tokens, messages, tools));
    if let Some(key) = &config.api_key {
        req = req.bearer_auth(key.expose());
    }
    let body = super::send(req).await?;
    parse_turn(&config.name, &body)
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
        let body = serde_json::to_value(request_body(
            "m",
            100,
            Prompt { system: "Be brief.", question: "why?", passages: &passages, scopes: &[], history: &[] },
        ))
        .unwrap();
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(body["model"], "m");
        assert_eq!(body["messages"][1]["content"], "why?");
        let history = [
            super::super::Turn { assistant: false, text: "first?".into() },
            super::super::Turn { assistant: true, text: "one".into() },
        ];
        let threaded = serde_json::to_value(request_body(
            "m",
            100,
            Prompt { system: "s", question: "and then?", passages: &[], scopes: &[], history: &history },
        ))
        .unwrap();
        let roles: Vec<&str> =
            threaded["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        let contents: Vec<&str> =
            threaded["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["s", "first?", "one", "and then?"]);
        // Exactly these keys, as the OpenAI API takes them.
        let mut keys: Vec<&String> = threaded.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["max_tokens", "messages", "model"]);
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("Be brief."));
        assert!(system.contains("[1] (incidents: pm.md Root cause)\nThe disk filled."));
    }

    #[test]
    fn tool_calls_are_read_before_answers() {
        let calls = br#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"memory_search","arguments":"{\"query\":\"deploy\"}"}}]}}],"usage":{"prompt_tokens":10,"completion_tokens":3}}"#;
        let Turn::Calls { calls, tokens_in, .. } = parse_turn("d", calls).unwrap() else { panic!() };
        assert_eq!(
            calls,
            vec![ToolCall { id: "c1".into(), name: "memory_search".into(), arguments: r#"{"query":"deploy"}"#.into() }]
        );
        assert_eq!(tokens_in, 10);
        let answer = br#"{"choices":[{"message":{"role":"assistant","content":"done"}}]}"#;
        assert!(matches!(parse_turn("d", answer).unwrap(), Turn::Answer(a) if a.text == "done"));
        let body = turn_body(
            "m",
            10,
            &[json!({"role": "user", "content": "q"})],
            &[ToolSpec { name: "t", description: "d", parameters: json!({"type": "object"}) }],
        );
        assert_eq!(body["tools"][0]["function"]["name"], "t");
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
