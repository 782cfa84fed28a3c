//! A mock Slack on 127.0.0.1: the Web API methods Pincer calls, with Slack's
//! JSON shapes, scripted 429s (with `Retry-After`) and failures, response
//! URLs, and a Socket Mode websocket. Every call is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// One recorded Web API call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
pub struct Script {
    /// The next N message posts answer 429 with Retry-After: 1.
    pub rate_limit_next: AtomicUsize,
    /// While non-zero, message posts answer HTTP 503.
    pub down: AtomicUsize,
    /// Channels that do not exist.
    pub gone: Mutex<Vec<String>>,
    /// How long users.info takes.
    pub users_delay_ms: AtomicU64,
    /// The next N message posts are posted, but answered HTTP 502 (the
    /// answer is lost on the way back).
    pub lose_answer_next: AtomicUsize,
    /// response_url ids Slack no longer takes (older than 30 minutes, or
    /// used five times): 404 `expired_url`.
    pub expired_urls: Mutex<Vec<String>>,
}

pub struct MockSlack {
    pub calls: Mutex<Vec<Call>>,
    pub emails: Mutex<HashMap<String, String>>,
    pub channels: Mutex<HashMap<String, String>>,
    pub script: Script,
    pub acks: Mutex<Vec<Value>>,
    /// The messages in Slack's channels, as `conversations.replies` and
    /// `conversations.history` show them (posts add to it; tests may seed it).
    pub posted: Mutex<Vec<Value>>,
    socket: broadcast::Sender<String>,
    ts: AtomicU64,
    pub base: Mutex<String>,
}

impl MockSlack {
    /// Starts the mock; returns it and its API base (`http://127.0.0.1:PORT/api`).
    pub async fn start() -> (Arc<MockSlack>, String) {
        let (socket, _) = broadcast::channel(64);
        let mock = Arc::new(MockSlack {
            calls: Mutex::new(Vec::new()),
            emails: Mutex::new(HashMap::from([
                ("UALICE".to_string(), "alice@acme.com".to_string()),
                ("UBOB".to_string(), "bob@acme.com".to_string()),
                ("UDAN".to_string(), "dan@acme.com".to_string()),
                ("UOLIVIA".to_string(), "olivia@acme.com".to_string()),
            ])),
            channels: Mutex::new(HashMap::from([
                ("CONCALL".to_string(), "oncall".to_string()),
                ("CPRODUCT".to_string(), "product-bot".to_string()),
                ("CRANDOM".to_string(), "random".to_string()),
            ])),
            script: Script::default(),
            acks: Mutex::new(Vec::new()),
            posted: Mutex::new(Vec::new()),
            socket,
            ts: AtomicU64::new(1),
            base: Mutex::new(String::new()),
        });
        let app = axum::Router::new()
            .route("/api/auth.test", any(auth_test))
            .route("/api/users.info", get(users_info))
            .route("/api/conversations.info", get(conversations_info))
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(chat_update))
            .route("/api/chat.postEphemeral", post(post_ephemeral))
            .route("/api/conversations.replies", get(conversations_replies))
            .route("/api/conversations.history", get(conversations_history))
            .route("/api/apps.connections.open", post(connections_open))
            .route("/response/{id}", post(response_url))
            .route("/ws", get(ws))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *mock.base.lock().unwrap() = format!("http://{addr}");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (mock.clone(), format!("http://{addr}/api"))
    }

    /// The URL Slack would give a slash command as its `response_url`.
    pub fn response_url(&self, id: &str) -> String {
        format!("{}/response/{id}", self.base.lock().unwrap())
    }

    /// Calls of one method.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.calls.lock().unwrap().iter().filter(|c| c.method == method).cloned().collect()
    }

    /// Waits until `pred` holds over the calls, or panics after `secs`.
    pub async fn wait_for(&self, secs: u64, what: &str, pred: impl Fn(&[Call]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if pred(&self.calls.lock().unwrap()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; calls: {:#?}", self.calls.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a Socket Mode envelope to connected clients.
    pub fn push_socket(&self, frame: Value) {
        let _ = self.socket.send(frame.to_string());
    }

    /// Whether a Socket Mode client is connected.
    pub fn socket_clients(&self) -> usize {
        self.socket.receiver_count()
    }

    fn record(&self, method: &str, body: Value) {
        self.calls.lock().unwrap().push(Call { method: method.into(), body, at: Instant::now() });
    }

    fn next_ts(&self) -> String {
        // Like Slack's: the current second, and a counter to keep them unique.
        format!("{}.{:06}", now(), self.ts.fetch_add(1, Ordering::SeqCst))
    }
}

fn ok(v: Value) -> Response {
    let mut v = v;
    v["ok"] = json!(true);
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn api_error(code: &str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json!({"ok": false, "error": code}).to_string()).into_response()
}

fn authed(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v == "Bearer xoxb-test")
}

async fn auth_test(State(_m): State<Arc<MockSlack>>, headers: HeaderMap) -> Response {
    if !authed(&headers) {
        return api_error("invalid_auth");
    }
    ok(
        json!({"url": "https://acme.slack.com/", "team": "Acme", "user": "pincer", "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"}),
    )
}

async fn users_info(State(m): State<Arc<MockSlack>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let delay = m.script.users_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let user = q.get("user").cloned().unwrap_or_default();
    m.record("users.info", json!({"user": user}));
    // Users named UEXT… belong to another organisation (Slack Connect);
    // UAPP… are other apps' bot users.
    let (team, stranger) = if user.starts_with("UEXT") { ("T9", true) } else { ("T1", false) };
    let bot = user.starts_with("UAPP");
    match m.emails.lock().unwrap().get(&user) {
        Some(email) => ok(
            json!({"user": {"id": user, "team_id": team, "is_stranger": stranger, "is_bot": bot, "name": user.to_lowercase(), "profile": {"email": email}}}),
        ),
        None => api_error("user_not_found"),
    }
}

async fn conversations_info(State(m): State<Arc<MockSlack>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let channel = q.get("channel").cloned().unwrap_or_default();
    m.record("conversations.info", json!({"channel": channel}));
    match m.channels.lock().unwrap().get(&channel) {
        Some(name) => ok(json!({"channel": {"id": channel, "name": name, "created": 1600000000, "is_channel": true}})),
        None => api_error("channel_not_found"),
    }
}

/// The shared gate for message posts: scripted outages, 429s and missing channels.
fn gate(m: &MockSlack, body: &Value) -> Option<Response> {
    if m.script.down.load(Ordering::SeqCst) > 0 {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response());
    }
    if m.script.rate_limit_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        m.record("429", body.clone());
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1"), (header::CONTENT_TYPE, "application/json")],
                json!({"ok": false, "error": "ratelimited"}).to_string(),
            )
                .into_response(),
        );
    }
    let channel = body["channel"].as_str().unwrap_or_default();
    if m.script.gone.lock().unwrap().iter().any(|c| c == channel) {
        return Some(api_error("channel_not_found"));
    }
    None
}

async fn post_message(State(m): State<Arc<MockSlack>>, headers: HeaderMap, body: String) -> Response {
    if !authed(&headers) {
        return api_error("not_authed");
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(r) = gate(&m, &body) {
        return r;
    }
    let ts = m.next_ts();
    let mut recorded = body.clone();
    recorded["ts"] = json!(ts);
    m.record("chat.postMessage", recorded);
    m.posted.lock().unwrap().push(json!({"channel": body["channel"], "ts": ts, "thread_ts": body["thread_ts"],
        "text": body["text"], "metadata": body["metadata"]}));
    if m.script.lose_answer_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return (StatusCode::BAD_GATEWAY, "upstream timed out").into_response();
    }
    ok(json!({"channel": body["channel"], "ts": ts, "message": {"ts": ts, "text": body["text"]}}))
}

/// The messages of a thread (`thread`: its parent's ts) or of a channel's
/// top level, newer than `oldest`, as Slack lists them: with their
/// metadata only when `include_all_metadata` is asked for.
fn history(m: &MockSlack, method: &str, q: &HashMap<String, String>, thread: Option<&str>) -> Response {
    m.record(method, json!(q));
    if m.script.down.load(Ordering::SeqCst) > 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response();
    }
    let oldest: f64 = q.get("oldest").and_then(|o| o.parse().ok()).unwrap_or(0.0);
    let with_metadata = q.get("include_all_metadata").is_some_and(|v| v == "true");
    let messages: Vec<Value> = m
        .posted
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p["channel"].as_str() == q.get("channel").map(String::as_str))
        .filter(|p| p["thread_ts"].as_str() == thread)
        .filter(|p| p["ts"].as_str().and_then(|t| t.parse::<f64>().ok()).is_some_and(|t| t > oldest))
        .map(|p| {
            let mut msg =
                json!({"type": "message", "ts": p["ts"], "text": p["text"], "user": "UBOT", "bot_id": "BBOT"});
            if with_metadata && !p["metadata"].is_null() {
                msg["metadata"] = p["metadata"].clone();
            }
            msg
        })
        .collect();
    ok(json!({"messages": messages, "has_more": false, "response_metadata": {"next_cursor": ""}}))
}

async fn conversations_replies(State(m): State<Arc<MockSlack>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(ts) = q.get("ts").cloned() else { return api_error("thread_not_found") };
    history(&m, "conversations.replies", &q, Some(&ts))
}

async fn conversations_history(State(m): State<Arc<MockSlack>>, Query(q): Query<HashMap<String, String>>) -> Response {
    history(&m, "conversations.history", &q, None)
}

async fn chat_update(State(m): State<Arc<MockSlack>>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(r) = gate(&m, &body) {
        return r;
    }
    m.record("chat.update", body.clone());
    ok(json!({"channel": body["channel"], "ts": body["ts"], "message": {"text": body["text"]}}))
}

async fn post_ephemeral(State(m): State<Arc<MockSlack>>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(r) = gate(&m, &body) {
        return r;
    }
    m.record("chat.postEphemeral", body);
    ok(json!({"message_ts": m.next_ts()}))
}

async fn response_url(State(m): State<Arc<MockSlack>>, Path(id): Path<String>, body: String) -> Response {
    let mut body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    body["response_url_id"] = json!(id);
    if m.script.expired_urls.lock().unwrap().contains(&id) {
        m.record("response_url expired", body);
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain")], "expired_url").into_response();
    }
    m.record("response_url", body);
    ([(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
}

async fn connections_open(State(m): State<Arc<MockSlack>>, headers: HeaderMap) -> Response {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    m.record("apps.connections.open", json!({"token": token}));
    if token != "Bearer xapp-test" {
        return api_error("invalid_auth");
    }
    let base = m.base.lock().unwrap().replace("http://", "ws://");
    ok(json!({"url": format!("{base}/ws")}))
}

async fn ws(State(m): State<Arc<MockSlack>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_ws(m, socket))
}

async fn serve_ws(m: Arc<MockSlack>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut frames = m.socket.subscribe();
    let hello = json!({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}, "debug_info": {"host": "mock", "approximate_connection_time": 3600}});
    if tx.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(f) => if tx.send(Message::Text(f.into())).await.is_err() { return },
                Err(_) => return,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&t) {
                        m.acks.lock().unwrap().push(v);
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// Signs a request body like Slack does.
pub fn sign(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
