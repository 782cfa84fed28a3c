//! The OpenAI-compatible provider against a scripted mock on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use pincer_adapters::ReplyKind;

use crate::helpers::{TestApp, config_from};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Script {
    Answer,
    ServerError,
    Hang,
    Malformed,
    /// 429 with Retry-After: 1, then answers.
    RateLimitedOnce,
}

/// What the mock received: the Authorization header and the body.
pub type Received = Arc<Mutex<Vec<(Option<String>, String)>>>;

#[derive(Clone)]
pub struct Mock {
    /// Bodies answered in order before the script applies.
    pub queue: Arc<Mutex<std::collections::VecDeque<String>>>,
    pub script: Arc<Mutex<Script>>,
    pub bodies: Received,
    /// How long each completion waits before answering.
    pub delay: Arc<Mutex<Duration>>,
    /// Texts sent to `/v1/embeddings`.
    pub embedded: Arc<Mutex<Vec<String>>>,
}

/// A toy embedding: texts about things getting stuck point one way,
/// everything else the other.
fn toy_embedding(text: &str) -> Vec<f32> {
    let t = text.to_lowercase();
    if ["freeze", "froze", "lock", "stall", "stuck"].iter().any(|w| t.contains(w)) {
        vec![1.0, 0.0]
    } else {
        vec![0.0, 1.0]
    }
}

async fn embeddings(State(m): State<Mock>, body: String) -> impl IntoResponse {
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let inputs: Vec<String> = v["input"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": toy_embedding(t)}))
        .collect();
    m.embedded.lock().unwrap().extend(inputs);
    axum::Json(serde_json::json!({"object": "list", "data": data, "model": v["model"]}))
}

async fn completions(State(m): State<Mock>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    m.bodies.lock().unwrap().push((auth, body));
    let delay = *m.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let queued = m.queue.lock().unwrap().pop_front();
    if let Some(body) = queued {
        return (StatusCode::OK, body).into_response();
    }
    let script = *m.script.lock().unwrap();
    if script == Script::RateLimitedOnce {
        *m.script.lock().unwrap() = Script::Answer;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            r#"{"error":{"message":"slow down"}}"#.to_string(),
        )
            .into_response();
    }
    match script {
        Script::Answer => (
            StatusCode::OK,
            r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The migration waited on a lock [1]."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":9,"total_tokens":129}}"#.to_string(),
        ),
        Script::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":{"message":"boom"}}"#.to_string()),
        Script::Hang => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            (StatusCode::OK, String::new())
        }
        Script::Malformed => (StatusCode::OK, "{\"choices\": [".to_string()),
        Script::RateLimitedOnce => unreachable!("answered above"),
    }
    .into_response()
}

async fn messages(State(m): State<Mock>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let version = headers.get("anthropic-version").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    m.bodies.lock().unwrap().push((key, body));
    if let Some(body) = m.queue.lock().unwrap().pop_front() {
        return (StatusCode::OK, body);
    }
    if version != "2023-06-01" {
        return (StatusCode::BAD_REQUEST, "missing anthropic-version".to_string());
    }
    (StatusCode::OK, r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Anthropic says: a lock."}],"stop_reason":"end_turn","usage":{"input_tokens":90,"output_tokens":6}}"#.to_string())
}

pub async fn start_mock() -> (Mock, String) {
    let mock = Mock {
        queue: Arc::new(Mutex::new(std::collections::VecDeque::new())),
        script: Arc::new(Mutex::new(Script::Answer)),
        bodies: Arc::new(Mutex::new(Vec::new())),
        delay: Arc::new(Mutex::new(Duration::ZERO)),
        embedded: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (mock, format!("http://{addr}/v1"))
}

const CANARY: &str = "sk-canary-7f3a9c";

async fn spawn_with_provider(base_url: &str) -> (TestApp, [tempfile::TempDir; 2]) {
    spawn_with(base_url, "openai", "").await
}

/// Pincer whose `default` provider is of `kind` at `base_url`; `agent_extra`
/// is added to ops-oncall's settings.
async fn spawn_with(base_url: &str, kind: &str, agent_extra: &str) -> (TestApp, [tempfile::TempDir; 2]) {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("openai_key");
    std::fs::write(&key, format!("{CANARY}\n")).unwrap();
    let providers = format!(
        "providers:\n  default:\n    kind: {kind}\n    base_url: {base_url}\n    model: test-model\n    api_key: file://{}\n    timeout_secs: 1\n\nagents:\n",
        key.display()
    );
    let yaml = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml"))
        .unwrap()
        .replacen("agents:\n", &providers, 1)
        .replacen("  ops-oncall:\n", &format!("  ops-oncall:\n{agent_extra}"), 1);
    let (config, dir) = config_from(&yaml);
    (TestApp::with_config(config).await, [dir, keys])
}

#[tokio::test]
async fn a_configured_model_answers_with_the_permitted_passages_and_never_sees_the_key() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_provider(&url).await;
    t.import_examples().await;
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    assert_eq!(r[0].kind, ReplyKind::Answer);
    assert_eq!(r[0].text, "The migration waited on a lock [1].");
    let bodies = mock.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let (auth, body) = &bodies[0];
    assert_eq!(auth.as_deref(), Some(format!("Bearer {CANARY}").as_str()));
    assert!(!body.contains(CANARY), "the key never enters the model's input");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["model"], "test-model");
    assert_eq!(json["messages"][1]["content"], "why did the deploy fail?");
    let system = json["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You are Acme's on-call assistant"), "{system}");
    assert!(system.contains("14 October"), "{system}");
    assert!(!system.contains("(product:"), "a scope the agent lacks never reaches the model: {system}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_failing_model_gets_a_sentence_and_an_audit_row_never_silence() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_provider(&url).await;
    for script in [Script::ServerError, Script::Malformed, Script::Hang] {
        *mock.script.lock().unwrap() = script;
        let r = t.say("bob@acme.com", "console:#oncall", "/ask anything").await;
        assert_eq!(r.len(), 1, "{script:?}");
        assert_eq!(r[0].kind, ReplyKind::Error, "{script:?}");
        assert_eq!(
            r[0].text,
            "The model provider is unavailable right now, so I could not answer. Try again in a few minutes."
        );
    }
    let codes: Vec<String> =
        sqlx::query_scalar("SELECT metadata->>'error' FROM audit_log WHERE action = 'ask.failed' ORDER BY seq")
            .fetch_all(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(codes, ["status", "malformed", "timeout"]);
    t.cleanup().await;
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after_then_answered() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_provider(&url).await;
    *mock.script.lock().unwrap() = Script::RateLimitedOnce;
    let started = std::time::Instant::now();
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why?").await;
    assert_eq!(r[0].kind, ReplyKind::Answer, "{r:?}");
    assert_eq!(mock.bodies.lock().unwrap().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After honoured: {:?}", started.elapsed());
    t.cleanup().await;
}

#[tokio::test]
async fn when_the_model_keeps_failing_the_fallback_answers_from_memory() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with(&url, "openai", "    fallback: extractive\n").await;
    t.import_examples().await;
    *mock.script.lock().unwrap() = Script::ServerError;
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    assert_eq!(r[0].kind, ReplyKind::Answer, "{r:?}");
    assert!(r[0].text.starts_with("From memory"), "{r:?}");
    assert_eq!(mock.bodies.lock().unwrap().len(), 3, "one call and two retries before the fallback");
    assert!(!t.audit_actions().await.contains(&"ask.failed".to_string()));
    t.cleanup().await;
}

#[tokio::test]
async fn anthropic_messages_are_spoken_with_the_key_in_its_header_only() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with(&url, "anthropic", "").await;
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why?").await;
    assert_eq!(r[0].text, "Anthropic says: a lock.", "{r:?}");
    let (key, body) = mock.bodies.lock().unwrap()[0].clone();
    assert_eq!(key.as_deref(), Some(CANARY));
    assert!(!body.contains(CANARY));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["messages"][0]["content"], "why?");
    assert!(json["system"].as_str().unwrap().starts_with("You are Acme's on-call assistant"));
    t.cleanup().await;
}

#[tokio::test]
async fn usage_is_priced_per_person_and_agent_and_budgets_stop_asks_with_a_sentence() {
    let (_mock, url) = start_mock().await;
    let providers = format!(
        "providers:\n  default:\n    kind: openai\n    base_url: {url}\n    model: m\n    prices: {{ input_per_mtok: 1.0, output_per_mtok: 2.0 }}\n\nbudgets:\n  person_daily_tokens: 200\n\nagents:\n"
    );
    let yaml = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml")).unwrap().replacen(
        "agents:\n",
        &providers,
        1,
    );
    let (config, _dir) = config_from(&yaml);
    let t = TestApp::with_config(config).await;
    // The mock reports 120 prompt and 9 completion tokens per answer.
    for _ in 0..2 {
        assert_eq!(t.say("bob@acme.com", "console:#oncall", "/ask why?").await[0].kind, ReplyKind::Answer);
    }
    let text = t.refused("bob@acme.com", "console:#oncall", "/ask and now?").await;
    assert!(text.starts_with("You have used today's allowance of 200 tokens"), "{text}");
    // Others are not held by bob's allowance.
    assert_eq!(t.say("alice@acme.com", "console:#oncall", "/ask why?").await[0].kind, ReplyKind::Answer);
    let report = t.say1("dan@acme.com", "console:#oncall", "/admin usage").await;
    assert!(report.contains("3 answered asks"), "{report}");
    let bob = report.lines().find(|l| l.contains("bob@acme.com")).unwrap();
    assert!(
        bob.contains("2 asks") && bob.contains("240 in") && bob.contains("18 out") && bob.contains("$0.0003"),
        "{bob}"
    );
    assert!(report.lines().any(|l| l.contains("ops-oncall") && l.contains("3 asks")), "{report}");
    let alice = report.lines().find(|l| l.contains("alice@acme.com")).unwrap();
    assert!(alice.contains(" 1 ask ") && alice.contains("120 in"), "{alice}");
    assert_eq!(bob.find(" in "), alice.find(" in "), "the columns line up:\n{bob}\n{alice}");
    let today = t.say1("dan@acme.com", "console:#oncall", "/admin usage 1").await;
    assert!(today.starts_with("Usage over the last day: 3 answered asks"), "{today}");
    t.cleanup().await;
}

pub fn tool_call(name: &str, args: serde_json::Value) -> String {
    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": format!("call-{name}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}}
    ]}}], "usage": {"prompt_tokens": 100, "completion_tokens": 10}})
    .to_string()
}

pub fn final_answer(text: &str) -> String {
    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": text}}], "usage": {"prompt_tokens": 150, "completion_tokens": 12}}).to_string()
}

/// Pincer whose ops-oncall agent may use `grants` with the mock model.
async fn spawn_with_tools(base_url: &str, grants: &str) -> (TestApp, tempfile::TempDir) {
    let providers = format!(
        "providers:\n  default:\n    kind: openai\n    base_url: {base_url}\n    model: m\n    timeout_secs: 2\n\nagents:\n"
    );
    let yaml = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml"))
        .unwrap()
        .replacen("agents:\n", &providers, 1)
        .replace("allowed_tools: [memory, web]", &format!("allowed_tools: {grants}"));
    let (config, dir) = config_from(&yaml);
    (TestApp::with_config(config).await, dir)
}

#[tokio::test]
async fn the_model_searches_memory_through_a_tool_then_answers_and_the_call_is_audited() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_tools(&url, "[memory]").await;
    t.import_examples().await;
    mock.queue.lock().unwrap().extend([
        tool_call("memory_search", serde_json::json!({"query": "migration lock timeout"})),
        final_answer("A migration waited on a lock [1]."),
    ]);
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    assert_eq!(r[0].text, "A migration waited on a lock [1].", "{r:?}");
    let bodies = mock.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&bodies[0].1).unwrap();
    let offered: Vec<&str> =
        first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["memory_search"], "only what the grants allow is offered");
    let second: serde_json::Value = serde_json::from_str(&bodies[1].1).unwrap();
    let tool_msg = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool_msg["tool_call_id"], "call-memory_search");
    assert!(tool_msg["content"].as_str().unwrap().contains("deploy-locks.md"), "{tool_msg}");
    assert!(!tool_msg["content"].as_str().unwrap().contains("(product"), "only the ask's scopes are searched");
    let meta: serde_json::Value = sqlx::query_scalar("SELECT metadata FROM audit_log WHERE action = 'tool.call'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!((meta["tool"].as_str(), meta["ok"].as_bool()), (Some("memory_search"), Some(true)));
    // Tokens of both turns are counted.
    let used: (i64, i64) =
        sqlx::query_as("SELECT tokens_in, tokens_out FROM usage").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(used, (250, 22));
    t.cleanup().await;
}

#[tokio::test]
async fn a_tool_the_agent_is_not_granted_is_refused_at_call_time_and_audited() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_tools(&url, "[memory]").await;
    mock.queue.lock().unwrap().extend([
        tool_call("memory_write", serde_json::json!({"text": "remember me"})),
        final_answer("Could not save it."),
    ]);
    let r = t.say("bob@acme.com", "console:#oncall", "/ask save a note").await;
    assert_eq!(r[0].text, "Could not save it.");
    let second: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[1].1).unwrap();
    let tool_msg = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap().clone();
    assert_eq!(tool_msg["content"], "error: agent ops-oncall may not use memory_write");
    assert!(t.audit_actions().await.contains(&"tool.denied".to_string()));
    let notes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memory_items").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(notes, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn endless_tool_calls_stop_at_the_step_budget_with_a_sentence() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_tools(&url, "[memory]").await;
    for _ in 0..20 {
        mock.queue.lock().unwrap().push_back(tool_call("memory_search", serde_json::json!({"query": "again"})));
    }
    let r = t.say("bob@acme.com", "console:#oncall", "/ask loop forever").await;
    assert!(r[0].text.starts_with("I stopped before finishing because it took more than 6 steps"), "{r:?}");
    assert_eq!(mock.bodies.lock().unwrap().len(), 6);
    t.cleanup().await;
}

#[tokio::test]
async fn a_note_written_in_a_workspace_stays_in_that_workspace() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_tools(&url, r#"["memory:write"]"#).await;
    t.say1("dan@acme.com", "console:#oncall", "/admin workspace create --user alice@acme.com --scope alice-lab").await;
    t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    mock.queue.lock().unwrap().extend([
        tool_call("memory_write", serde_json::json!({"text": "The canary runs on pod group B."})),
        final_answer("Noted."),
    ]);
    assert_eq!(t.say("alice@acme.com", "console:#oncall", "/ask remember the canary group").await[0].text, "Noted.");
    let scopes: Vec<String> =
        sqlx::query_scalar("SELECT scope FROM memory_items").fetch_all(&t.app.store.pool).await.unwrap();
    assert_eq!(scopes, ["alice-lab"]);
    t.cleanup().await;
}

#[tokio::test]
async fn web_fetch_refuses_local_addresses_unless_the_egress_rule_allows_them() {
    // A page on loopback, standing in for an internal service.
    let page = axum::Router::new().route(
        "/status",
        axum::routing::get(|| async {
            ([("content-type", "text/html")], "<html><body><h1>Internal</h1><p>db-7 is degraded</p></body></html>")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!("http://{}/status", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, page).await });

    for (allow, expect) in
        [("", "a private or local address"), ("\negress:\n  allow: [\"127.0.0.1/32\"]\n", "db-7 is degraded")]
    {
        let (mock, url) = start_mock().await;
        let providers =
            format!("providers:\n  default:\n    kind: openai\n    base_url: {url}\n    model: m\n{allow}\nagents:\n");
        let yaml = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml"))
            .unwrap()
            .replacen("agents:\n", &providers, 1)
            .replace("allowed_tools: [memory, web]", "allowed_tools: [web]");
        let (config, _dir) = config_from(&yaml);
        let t = TestApp::with_config(config).await;
        mock.queue
            .lock()
            .unwrap()
            .extend([tool_call("web_fetch", serde_json::json!({"url": page_url})), final_answer("ok")]);
        assert_eq!(t.say("bob@acme.com", "console:#oncall", "/ask what does the status page say?").await[0].text, "ok");
        let second: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[1].1).unwrap();
        let tool_msg = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap().clone();
        assert!(tool_msg["content"].as_str().unwrap().contains(expect), "{tool_msg}");
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_follow_up_carries_the_askers_earlier_turns_but_not_another_persons_or_another_workspaces() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with_provider(&url).await;
    t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    t.say("bob@acme.com", "console:#oncall", "/ask and what fixed it?").await;
    let second: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[1].1).unwrap();
    let turns: Vec<(String, String)> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        turns,
        [
            ("user".to_string(), "why did the deploy fail?".to_string()),
            ("assistant".to_string(), "The migration waited on a lock [1].".to_string()),
            ("user".to_string(), "and what fixed it?".to_string()),
        ]
    );
    // Dan, asking at the top of the same channel, starts his own
    // conversation: bob's question is not context for his.
    t.say("dan@acme.com", "console:#oncall", "/ask is the canary healthy?").await;
    let third: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[2].1).unwrap();
    assert_eq!(third["messages"].as_array().unwrap().len(), 2, "{third}");
    assert!(!third.to_string().contains("deploy fail"), "{third}");
    // Alice, asking from her own workspace in the same channel, does not get
    // the earlier turns either.
    t.say1("dan@acme.com", "console:#oncall", "/admin workspace create --user alice@acme.com --scope alice-lab").await;
    t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    t.say("alice@acme.com", "console:#oncall", "/ask anything new?").await;
    let fourth: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[3].1).unwrap();
    assert_eq!(fourth["messages"].as_array().unwrap().len(), 2, "{fourth}");
    // Bob's next top-level ask still follows on from his own two.
    t.say("bob@acme.com", "console:#oncall", "/ask is it fixed for good?").await;
    let fifth: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[4].1).unwrap();
    let said = fifth.to_string();
    assert_eq!(fifth["messages"].as_array().unwrap().len(), 6, "{fifth}");
    assert!(said.contains("what fixed it") && !said.contains("canary healthy"), "{fifth}");
    let threads: Vec<String> =
        sqlx::query_scalar("SELECT thread FROM conversations ORDER BY id").fetch_all(&t.app.store.pool).await.unwrap();
    assert_eq!(threads, ["user:bob@acme.com", "user:dan@acme.com", "user:alice@acme.com"]);
    t.cleanup().await;
}

#[tokio::test]
async fn the_tool_loop_speaks_anthropic_tool_use_too() {
    let (mock, url) = start_mock().await;
    let (t, _dir) = spawn_with(&url, "anthropic", "").await;
    t.import_examples().await;
    mock.queue.lock().unwrap().extend([
        serde_json::json!({"id": "m1", "type": "message", "role": "assistant", "content": [
            {"type": "tool_use", "id": "tu1", "name": "memory_search", "input": {"query": "migration lock"}}
        ], "usage": {"input_tokens": 80, "output_tokens": 9}})
        .to_string(),
        serde_json::json!({"id": "m2", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "A lock held the migration."}],
            "usage": {"input_tokens": 120, "output_tokens": 7}})
        .to_string(),
    ]);
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    assert_eq!(r[0].text, "A lock held the migration.", "{r:?}");
    let second: serde_json::Value = serde_json::from_str(&mock.bodies.lock().unwrap()[1].1).unwrap();
    assert_eq!(second["tools"][0]["name"], "memory_search");
    let last = second["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "tu1");
    assert!(last["content"][0]["content"].as_str().unwrap().contains("deploy-locks.md"), "{last}");
    t.cleanup().await;
}

#[tokio::test]
async fn embeddings_rerank_full_text_candidates_when_configured() {
    let (mock, url) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, CANARY).unwrap();
    let yaml = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml")).unwrap().replacen(
        "agents:\n",
        &format!(
            "providers:\n  default:\n    kind: openai\n    base_url: {url}\n    model: m\n    api_key: file://{}\n\nembeddings:\n  provider: default\n  model: toy-embed\n\nagents:\n",
            key.display()
        ),
        1,
    );
    let (config, _d) = config_from(&yaml);
    assert_eq!(config.embeddings.as_ref().unwrap().model, "toy-embed");
    let t = TestApp::with_config(config).await;
    let notes = tempfile::tempdir().unwrap();
    let a = notes.path().join("a.txt");
    let b = notes.path().join("b.txt");
    std::fs::write(&a, "Deploy froze on a table lock during the migration.").unwrap();
    std::fs::write(&b, "Deploy dashboard: every deploy, deploy owner and deploy status.").unwrap();
    let scope = pincer_commands::ScopeName::parse("incidents").unwrap();
    for f in [&a, &b] {
        pincer::memory::import_file(&t.app.store, &scope, f, "test").await.unwrap();
    }
    assert_eq!(pincer::memory::embed_pending(&t.app).await.unwrap(), 2);
    assert_eq!(pincer::memory::embed_pending(&t.app).await.unwrap(), 0, "embedded once");

    let scopes = [scope];
    let mut conn = t.conn().await;
    let text_only = pincer::store::memory::search(&mut conn, &scopes, "deploy freeze", 5).await.unwrap();
    assert!(text_only[0].body.starts_with("Deploy dashboard"), "full text alone prefers the word count: {text_only:?}");
    let hybrid =
        pincer::store::memory::search_hybrid(&mut conn, &scopes, "deploy freeze", &[1.0, 0.0], 0.5, 5).await.unwrap();
    assert!(hybrid[0].body.starts_with("Deploy froze"), "the embedding lifts the passage that means it: {hybrid:?}");
    drop(conn);

    // Through an ask: the question is embedded, and the model sees the fused order.
    let r = t.say("bob@acme.com", "console:#oncall", "/ask deploy freeze").await;
    assert_eq!(r[0].kind, ReplyKind::Answer, "{r:?}");
    assert!(mock.embedded.lock().unwrap().iter().any(|t| t == "deploy freeze"));
    let (_, body) = mock.bodies.lock().unwrap().last().cloned().unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let system = json["messages"][0]["content"].as_str().unwrap().to_string();
    let first = system.find("Deploy froze").unwrap();
    let second = system.find("Deploy dashboard").unwrap();
    assert!(first < second, "{system}");
    t.cleanup().await;
}
