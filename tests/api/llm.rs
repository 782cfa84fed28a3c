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
enum Script {
    Answer,
    ServerError,
    Hang,
    Malformed,
}

/// What the mock received: the Authorization header and the body.
type Received = Arc<Mutex<Vec<(Option<String>, String)>>>;

#[derive(Clone)]
struct Mock {
    script: Arc<Mutex<Script>>,
    bodies: Received,
}

async fn completions(State(m): State<Mock>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    m.bodies.lock().unwrap().push((auth, body));
    let script = *m.script.lock().unwrap();
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
    }
}

async fn start_mock() -> (Mock, String) {
    let mock = Mock { script: Arc::new(Mutex::new(Script::Answer)), bodies: Arc::new(Mutex::new(Vec::new())) };
    let app = axum::Router::new().route("/v1/chat/completions", post(completions)).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (mock, format!("http://{addr}/v1"))
}

const CANARY: &str = "sk-canary-7f3a9c";

async fn spawn_with_provider(base_url: &str) -> (TestApp, [tempfile::TempDir; 2]) {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("openai_key");
    std::fs::write(&key, format!("{CANARY}\n")).unwrap();
    let providers = format!(
        "providers:\n  default:\n    kind: openai\n    base_url: {base_url}\n    model: test-model\n    api_key: file://{}\n    timeout_secs: 1\n\nagents:\n",
        key.display()
    );
    let yaml = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml")).unwrap().replacen(
        "agents:\n",
        &providers,
        1,
    );
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
