//! The floor bot: what a Slack bot must do at the very least for an
//! `app_mention` — verify the signature, acknowledge, call the model, post
//! the reply — with no storage, no dedupe, no identity, no policy and no
//! audit. `pincer bench slack` runs it under the same load as Pincer, so
//! Pincer's CPU per event is measured against it in the same run.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

struct Floor {
    http: reqwest::Client,
    llm_url: String,
    slack_url: String,
    secret: String,
}

async fn events(State(f): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if pincer_adapters::slack::verify(&f.secret, h("x-slack-signature"), h("x-slack-request-timestamp"), &body).is_err()
    {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return StatusCode::BAD_REQUEST };
    tokio::spawn(async move {
        let ev = &v["event"];
        let question = ev["text"].as_str().unwrap_or_default();
        let req = json!({"model": "m", "messages": [{"role": "user", "content": question}]});
        let Ok(resp) = f.http.post(format!("{}/chat/completions", f.llm_url)).json(&req).send().await else { return };
        let Ok(answer) = resp.json::<Value>().await else { return };
        let text = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default();
        let post = json!({"channel": ev["channel"], "thread_ts": ev["ts"], "text": text});
        let _ =
            f.http.post(format!("{}/chat.postMessage", f.slack_url)).bearer_auth("xoxb-bench").json(&post).send().await;
    });
    StatusCode::OK
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Serves the floor bot until killed.
pub async fn serve(listen: SocketAddr, llm_url: String, slack_url: String, secret: String) -> anyhow::Result<ExitCode> {
    let floor = Arc::new(Floor { http: reqwest::Client::new(), llm_url, slack_url, secret });
    let app = axum::Router::new()
        .route("/slack/events", post(events))
        .route("/readyz", axum::routing::get(healthz))
        .with_state(floor);
    axum::serve(tokio::net::TcpListener::bind(listen).await?, app).await?;
    Ok(ExitCode::SUCCESS)
}
