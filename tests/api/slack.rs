//! Slack end to end: signed requests to the real gateway (started on port 0)
//! and a mock Slack Web API on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer::service::{self, ServeRole};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{TestApp, config_from, root};
use crate::slack_mock::{MockSlack, now, sign};

const SECRET: &str = "test-signing-secret";

/// The example config plus a `slack:` section pointing at the mock.
pub fn slack_yaml(api: &str, extra: &str) -> String {
    let base = std::fs::read_to_string(root().join("examples/pincer.yaml")).unwrap();
    format!("{base}\nslack:\n  bot_token: xoxb-test\n  signing_secret: {SECRET}\n  api_url: {api}\n{extra}")
}

/// A running gateway (HTTP + worker + dispatcher) over a fresh database.
pub struct Gateway {
    pub t: TestApp,
    pub url: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn start(yaml: &str) -> Gateway {
        let (config, dir) = config_from(yaml);
        let t = TestApp::with_config(config).await;
        t.import_examples().await;
        Self::over(t, dir).await
    }

    /// Another gateway process on the same database (a second replica).
    pub async fn replica(&self, yaml: &str) -> Gateway {
        let (config, dir) = config_from(yaml);
        let store = pincer::store::Store::connect(&crate::helpers::db_url(&self.t.db), 8).await.unwrap();
        let app = pincer::app::App::start(config, store).await.unwrap();
        let t = TestApp { router: pincer::router::Router::new(app.clone()), app, db: self.t.db.clone() };
        Self::over(t, dir).await
    }

    async fn over(t: TestApp, dir: tempfile::TempDir) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(service::run(t.app.clone(), listener, ServeRole::Gateway, rx));
        Gateway { t, url, stop, task, _dir: dir }
    }

    pub async fn post(&self, path: &str, body: &str, ts_offset: i64, secret: &str) -> reqwest::Response {
        let ts = now() + ts_offset;
        let content_type =
            if path.ends_with("events") { "application/json" } else { "application/x-www-form-urlencoded" };
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sign(secret, ts, body))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn signed(&self, path: &str, body: &str) -> u16 {
        self.post(path, body, 0, SECRET).await.status().as_u16()
    }

    pub async fn stop(self) -> TestApp {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        self.t
    }
}

pub fn mention(event_id: &str, user: &str, channel: &str, text: &str, ts: &str) -> String {
    json!({
        "token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": event_id, "event_time": 1700000000,
        "event": {"type": "app_mention", "user": user, "channel": channel, "text": format!("<@UBOT> {text}"), "ts": ts, "event_ts": ts},
    })
    .to_string()
}

pub fn command(
    mock: &MockSlack,
    name: &str,
    text: &str,
    user: &str,
    channel: &str,
    channel_name: &str,
    trigger: &str,
) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "token=x&team_id=T1&team_domain=acme&channel_id={channel}&channel_name={channel_name}&user_id={user}&user_name=u&command={}&text={}&api_app_id=A1&response_url={}&trigger_id={trigger}",
        enc(name),
        enc(text),
        enc(&mock.response_url(trigger))
    )
}

async fn count(t: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&t.app.store.pool).await.unwrap()
}

#[tokio::test]
async fn forged_stale_future_and_tampered_requests_get_401_and_change_nothing() {
    let (_mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let body = mention("EvX", "UALICE", "CONCALL", "why did the deploy fail?", "1.1");
    assert_eq!(gw.post("/slack/events", &body, 0, "wrong-secret").await.status(), 401);
    // (Five seconds past the window each way: the gateway's clock reads a
    // moment after the test's, and a second can turn between them.)
    assert_eq!(gw.post("/slack/events", &body, -305, SECRET).await.status(), 401, "stale");
    assert_eq!(gw.post("/slack/events", &body, 305, SECRET).await.status(), 401, "future");
    let ts = now();
    let tampered = reqwest::Client::new()
        .post(format!("{}/slack/events", gw.url))
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sign(SECRET, ts, &body))
        .body(body.replace("deploy", "DEPLOY"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);
    let unsigned =
        reqwest::Client::new().post(format!("{}/slack/commands", gw.url)).body("text=hi").send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(count(&gw.t, "SELECT count(*) FROM inbound_events").await, 0);
    assert_eq!(count(&gw.t, "SELECT count(*) FROM jobs").await, 0);
    // Too big: 413 before any parsing; malformed but signed: 400.
    let big = "x".repeat(300 * 1024);
    assert_eq!(gw.post("/slack/events", &big, 0, SECRET).await.status(), 413);
    assert_eq!(gw.signed("/slack/events", "{not json").await, 400);
    // url_verification answers its challenge.
    let r = gw.post("/slack/events", r#"{"type":"url_verification","token":"x","challenge":"c-123"}"#, 0, SECRET).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "c-123");
    let metrics = reqwest::get(format!("{}/metrics", gw.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pincer_bad_signatures_total 5"), "{metrics}");
    gw.stop().await.cleanup().await;
}

#[tokio::test]
async fn a_mention_is_answered_once_in_its_thread_even_when_slack_retries() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let body = mention("Ev1", "UALICE", "CONCALL", "why did the deploy fail?", "1700000100.000200");
    let started = Instant::now();
    assert_eq!(gw.signed("/slack/events", &body).await, 200);
    let ack = started.elapsed();
    // Slack retries while the first is still being worked on, and later.
    for _ in 0..3 {
        assert_eq!(gw.signed("/slack/events", &body).await, 200);
    }
    mock.wait_for(10, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    assert_eq!(gw.signed("/slack/events", &body).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = mock.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].body["channel"], "CONCALL");
    assert_eq!(posts[0].body["thread_ts"], "1700000100.000200");
    assert!(posts[0].body["text"].as_str().unwrap().contains("14 October"), "{posts:#?}");
    assert_eq!(posts[0].body["blocks"][1]["elements"][0]["action_id"], "pincer.feedback");
    assert!(ack < Duration::from_secs(3), "acked in {ack:?}");
    // The sender was identified by e-mail, once.
    assert_eq!(mock.calls("users.info").len(), 1);
    // Now linked, the next ask takes the router's one-statement path, whose
    // memory search runs in the same statement: the same passages answer.
    let again = mention("Ev1b", "UALICE", "CONCALL", "why did the deploy fail?", "1700000100.000300");
    assert_eq!(gw.signed("/slack/events", &again).await, 200);
    mock.wait_for(10, "the second answer", |c| c.iter().filter(|c| c.method == "chat.postMessage").count() == 2).await;
    let second = mock.calls("chat.postMessage").pop().unwrap();
    assert_eq!(second.body["thread_ts"], "1700000100.000300");
    assert_eq!(second.body["text"], posts[0].body["text"], "{second:#?}");
    let t = gw.stop().await;
    let who: String = sqlx::query_scalar("SELECT user_email FROM audit_log WHERE action = 'ask'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(who, "alice@acme.com");
    t.cleanup().await;
}

#[tokio::test]
async fn own_messages_and_chat_get_no_answer_but_a_mention_always_gets_a_sentence() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let message = |id: &str, user: &str, channel: &str, text: &str| {
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": id, "event_time": 1,
            "event": {"type": "message", "user": user, "channel": channel, "text": text, "ts": "1.2"}})
        .to_string()
    };
    // Our own message, people talking where no agent answers, and a
    // message in a bound channel addressed to someone else: nothing.
    assert_eq!(gw.signed("/slack/events", &message("Ev2", "UBOT", "CONCALL", "an answer")).await, 200);
    assert_eq!(gw.signed("/slack/events", &message("Ev5", "UALICE", "CRANDOM", "lunch?")).await, 200);
    assert_eq!(gw.signed("/slack/events", &message("Ev6", "UALICE", "CONCALL", "<@UDAN> can you look?")).await, 200);
    // A mention where no agent answers says where agents are; a bare
    // mention says what Pincer does. Both to the person alone.
    assert_eq!(gw.signed("/slack/events", &mention("Ev3", "UALICE", "CRANDOM", "hello", "1.3")).await, 200);
    assert_eq!(gw.signed("/slack/events", &mention("Ev4", "UALICE", "CONCALL", "", "1.4")).await, 200);
    mock.wait_for(10, "two private sentences", |c| c.iter().filter(|c| c.method == "chat.postEphemeral").count() >= 2)
        .await;
    let t = gw.t.app.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pincer::store::jobs::pending(&t.store.pool).await.unwrap() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mock.calls("chat.postMessage").is_empty());
    let private = mock.calls("chat.postEphemeral");
    assert_eq!(private.len(), 2, "{private:#?}");
    let to = |ts: &str| {
        let call = private.iter().find(|c| c.body["thread_ts"] == ts).unwrap();
        assert_eq!(call.body["user"], "UALICE");
        call.body["text"].as_str().unwrap().to_string()
    };
    assert!(to("1.3").contains("No agent answers in") && to("1.3").contains("#oncall"), "{}", to("1.3"));
    assert!(to("1.4").contains("/ask QUESTION") && to("1.4").contains("/pincer help"), "{}", to("1.4"));
    let t = gw.stop().await;
    let ignored = t.audit_actions().await.iter().filter(|a| *a == "event.ignored").count();
    assert_eq!(ignored, 1, "the chat where no agent answers (our own and the addressed message never reach the queue)");
    t.cleanup().await;
}

#[tokio::test]
async fn slash_commands_ack_at_once_answer_in_channel_and_keep_errors_private() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let ask = command(&mock, "/ask", "when does billing v2 ship?", "UBOB", "CPRODUCT", "product-bot", "tr1");
    assert_eq!(gw.signed("/slack/commands", &ask).await, 200);
    mock.wait_for(10, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    let post = &mock.calls("chat.postMessage")[0];
    assert_eq!(post.body["channel"], "CPRODUCT");
    assert!(post.body.get("thread_ts").is_none());
    assert!(post.body["text"].as_str().unwrap().contains("November"), "{post:?}");
    // The channel never saw the slash command: the answer says who asked what.
    assert!(
        post.body["text"].as_str().unwrap().starts_with("<@UBOB> asked: _when does billing v2 ship?_\n\n"),
        "{post:?}"
    );

    let ws = command(&mock, "/workspace", "", "UBOB", "CPRODUCT", "product-bot", "tr2");
    assert_eq!(gw.signed("/slack/commands", &ws).await, 200);
    let denied = command(&mock, "/admin", "user add eve@acme.com", "UBOB", "CPRODUCT", "product-bot", "tr3");
    assert_eq!(gw.signed("/slack/commands", &denied).await, 200);
    let nowhere = command(&mock, "/ask", "hello?", "UBOB", "CRANDOM", "random", "tr4");
    assert_eq!(gw.signed("/slack/commands", &nowhere).await, 200);
    // Slack has no /help for Pincer: /pincer help, and sentences say so.
    let help = command(&mock, "/pincer", "help", "UBOB", "CPRODUCT", "product-bot", "tr5");
    assert_eq!(gw.signed("/slack/commands", &help).await, 200);
    let bogus = command(&mock, "/pincer", "bogus", "UBOB", "CPRODUCT", "product-bot", "tr6");
    assert_eq!(gw.signed("/slack/commands", &bogus).await, 200);
    let whoami = command(&mock, "/admin", "whoami", "UBOB", "CPRODUCT", "product-bot", "tr7");
    assert_eq!(gw.signed("/slack/commands", &whoami).await, 200);
    // A retried trigger is answered once.
    assert_eq!(gw.signed("/slack/commands", &denied).await, 200);
    mock.wait_for(10, "six private replies", |c| c.iter().filter(|c| c.method == "response_url").count() >= 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let private = mock.calls("response_url");
    assert_eq!(private.len(), 6, "{private:#?}");
    let text = |id: &str| {
        private.iter().find(|c| c.body["response_url_id"] == id).unwrap().body["text"].as_str().unwrap().to_string()
    };
    assert!(text("tr2").contains("shared workspace"), "{}", text("tr2"));
    assert!(text("tr3").contains("Only admins can run /admin user add"), "{}", text("tr3"));
    // The channel is named as people know it.
    assert!(text("tr4").contains("No agent answers in #random."), "{}", text("tr4"));
    assert!(text("tr4").contains("#oncall (ops-oncall)"), "{}", text("tr4"));
    assert!(text("tr7").contains("writing as UBOB on slack in #product-bot (CPRODUCT)."), "{}", text("tr7"));
    assert!(text("tr5").contains("/pincer help [admin]") && text("tr5").contains("/ask QUESTION"), "{}", text("tr5"));
    assert!(!text("tr5").contains(" /help"), "{}", text("tr5"));
    assert!(
        text("tr6").ends_with("'/bogus' is not a Pincer command. Try /pincer help to see what you can do."),
        "{}",
        text("tr6")
    );
    assert_eq!(mock.calls("chat.postMessage").len(), 1, "errors and usage never go to the channel");
    // Slack's certificate check is answered and runs nothing; unsigned, it is refused.
    assert_eq!(gw.signed("/slack/commands", "ssl_check=1&token=x").await, 200);
    let unsigned =
        reqwest::Client::new().post(format!("{}/slack/commands", gw.url)).body("ssl_check=1").send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let t = gw.stop().await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbound_events").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(stored, 7, "seven commands, one of them retried");
    t.cleanup().await;
}

#[tokio::test]
async fn two_gateways_on_one_database_answer_each_event_once() {
    let (mock, api) = MockSlack::start().await;
    let yaml = slack_yaml(&api, "");
    let a = Gateway::start(&yaml).await;
    let b = a.replica(&yaml).await;
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            mention(&format!("EvD{i}"), "UBOB", "CONCALL", "why did the deploy fail?", &format!("1700000200.{i:06}"))
        })
        .collect();
    let mut sends = Vec::new();
    for body in &bodies {
        for gw in [&a, &b, &a, &b] {
            sends.push(gw.signed("/slack/events", body));
        }
    }
    for status in futures_util::future::join_all(sends).await {
        assert_eq!(status, 200);
    }
    mock.wait_for(15, "ten answers", |c| c.iter().filter(|c| c.method == "chat.postMessage").count() >= 10).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posts = mock.calls("chat.postMessage");
    assert_eq!(posts.len(), 10);
    let mut threads: Vec<&str> = posts.iter().map(|p| p.body["thread_ts"].as_str().unwrap()).collect();
    threads.sort();
    threads.dedup();
    assert_eq!(threads.len(), 10, "one answer per event");
    b.stop().await;
    a.stop().await.cleanup().await;
}

#[tokio::test]
async fn a_429_storm_loses_nothing_and_holds_only_its_channel() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    mock.script.rate_limit_next.store(4, std::sync::atomic::Ordering::SeqCst);
    for i in 0..6 {
        let (channel, user) = if i % 2 == 0 { ("CONCALL", "UBOB") } else { ("CPRODUCT", "UALICE") };
        let body = mention(&format!("EvR{i}"), user, channel, "deploy roadmap", &format!("1700000300.{i:06}"));
        assert_eq!(gw.signed("/slack/events", &body).await, 200);
    }
    mock.wait_for(20, "six answers", |c| c.iter().filter(|c| c.method == "chat.postMessage").count() >= 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = mock.calls("chat.postMessage");
    assert_eq!(posts.len(), 6, "{posts:#?}");
    let limited = mock.calls("429");
    assert_eq!(limited.len(), 4);
    // After a 429 in a channel, nothing more went to that channel for Retry-After.
    for l in &limited {
        let ch = l.body["channel"].as_str().unwrap();
        let next = posts.iter().filter(|p| p.body["channel"] == ch && p.at > l.at).map(|p| p.at).min();
        if let Some(next) = next {
            assert!(
                next.duration_since(l.at) >= Duration::from_millis(950),
                "{ch}: resent after {:?}",
                next.duration_since(l.at)
            );
        }
    }
    let t = gw.stop().await;
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status <> 'delivered'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
    // A 429 is not an attempt: each reply took one, however often it was
    // refused (a storm must not use up what real failures are allowed).
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM outbox WHERE NOT is_progress ORDER BY id")
        .fetch_all(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(attempts, vec![1; 6], "{attempts:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_reply_stuck_in_a_channel_holds_back_only_that_channels_public_replies_and_an_expired_response_url_is_not_the_end()
 {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    // Slack answers every message post with 503: the answer to bob's
    // mention is stored, tried, and stays in #oncall's queue.
    mock.script.down.store(1, std::sync::atomic::Ordering::SeqCst);
    let asked = mention("EvS", "UBOB", "CONCALL", "deploy", "1700000800.000001");
    assert_eq!(gw.signed("/slack/events", &asked).await, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while count(
        &gw.t,
        "SELECT count(*) FROM outbox WHERE recipient IS NULL AND attempts >= 1 AND status <> 'delivered'",
    )
    .await
        == 0
    {
        assert!(Instant::now() < deadline, "the answer was never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A reply for one person in that channel does not wait behind it.
    let ws = command(&mock, "/workspace", "", "UBOB", "CONCALL", "oncall", "trs1");
    assert_eq!(gw.signed("/slack/commands", &ws).await, 200);
    mock.wait_for(5, "the private reply", |c| c.iter().any(|c| c.method == "response_url")).await;
    assert!(mock.calls("chat.postMessage").is_empty());
    // A new message, never in place of the one a button was on.
    assert_eq!(mock.calls("response_url")[0].body["replace_original"], json!(false));
    // Slack is back: the answer goes out, once.
    mock.script.down.store(0, std::sync::atomic::Ordering::SeqCst);
    mock.wait_for(20, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.calls("chat.postMessage").len(), 1);
    assert_eq!(mock.calls("response_url").len(), 1);
    // A reply whose response_url Slack no longer takes goes ephemerally.
    mock.script.expired_urls.lock().unwrap().push("trs2".into());
    let late = command(&mock, "/workspace", "", "UBOB", "CONCALL", "oncall", "trs2");
    assert_eq!(gw.signed("/slack/commands", &late).await, 200);
    mock.wait_for(5, "the ephemeral reply", |c| c.iter().any(|c| c.method == "chat.postEphemeral")).await;
    let ephemeral = &mock.calls("chat.postEphemeral")[0];
    assert_eq!((ephemeral.body["channel"].as_str(), ephemeral.body["user"].as_str()), (Some("CONCALL"), Some("UBOB")));
    assert!(ephemeral.body["text"].as_str().unwrap().contains("shared workspace"), "{ephemeral:?}");
    assert_eq!(mock.calls("response_url expired").len(), 1);
    let t = gw.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn a_reply_whose_answer_from_slack_was_lost_is_found_in_its_thread_not_posted_twice() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    // Slack posts the reply but its answer never comes back (a 502 on the way).
    mock.script.lose_answer_next.store(1, std::sync::atomic::Ordering::SeqCst);
    let body = mention("EvLost", "UBOB", "CONCALL", "deploy", "1700000310.000001");
    assert_eq!(gw.signed("/slack/events", &body).await, 200);
    mock.wait_for(15, "the retry's look into the thread", |c| c.iter().any(|c| c.method == "conversations.replies"))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let posts = mock.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "posted once: {posts:#?}");
    let metadata = &posts[0].body["metadata"];
    assert_eq!(metadata["event_type"], "pincer_reply");
    let look = &mock.calls("conversations.replies")[0].body;
    assert_eq!(
        (&look["channel"], &look["ts"], &look["include_all_metadata"]),
        (&json!("CONCALL"), &json!("1700000310.000001"), &json!("true"))
    );
    let t = gw.stop().await;
    let (id, status, ts, attempts): (i64, String, Option<String>, i32) =
        sqlx::query_as("SELECT id, status, platform_ts, attempts FROM outbox WHERE NOT is_progress")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(metadata["event_payload"]["outbox_id"], id.to_string());
    assert_eq!(status, "delivered");
    assert_eq!(ts.as_deref(), posts[0].body["ts"].as_str(), "recorded as the message Slack had");
    assert_eq!(attempts, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn undeliverable_replies_are_dead_lettered_audited_and_listed() {
    let (mock, api) = MockSlack::start().await;
    mock.channels.lock().unwrap().insert("CGONE".into(), "oncall".into());
    mock.script.gone.lock().unwrap().push("CGONE".into());
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    assert_eq!(gw.signed("/slack/events", &mention("EvG", "UBOB", "CGONE", "deploy", "1.9")).await, 200);
    let t = &gw.t;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(t, "SELECT count(*) FROM outbox WHERE status = 'dead'").await == 0 {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(t.audit_actions().await.contains(&"outbox.dead_letter".to_string()));
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin outbox").await;
    // (The channel by the name this gateway looked up when the mention came.)
    assert!(text.contains("channel_not_found") && text.contains("slack #oncall (CGONE)"), "{text}");
    gw.stop().await.cleanup().await;
}

#[tokio::test]
async fn a_stored_reply_this_version_cannot_read_is_dead_lettered_and_does_not_hold_back_the_others() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let t = &gw.t;
    // A reply another version wrote in a shape this one cannot read, at its
    // last attempt, then a readable one: claimed together.
    let good = serde_json::to_value(pincer_adapters::Reply::answer("Still here.")).unwrap();
    let last = pincer::dispatcher::MAX_ATTEMPTS - 1;
    sqlx::query(
        "INSERT INTO outbox (platform, tenant, channel, thread, reply, attempts)
         VALUES ('slack', 'T1', 'CONCALL', NULL, '{\"text\": 5, \"layout\": \"v9\"}', $1),
                ('slack', 'T1', 'CPRODUCT', NULL, $2, 0)",
    )
    .bind(last)
    .bind(&good)
    .execute(&t.app.store.pool)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('pincer_outbox', '')").execute(&t.app.store.pool).await.unwrap();
    mock.wait_for(10, "the readable reply", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(t, "SELECT count(*) FROM outbox WHERE status = 'dead'").await == 0 {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posts = mock.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(
        (posts[0].body["channel"].as_str(), posts[0].body["text"].as_str()),
        (Some("CPRODUCT"), Some("Still here."))
    );
    let (channel, error): (String, String) =
        sqlx::query_as("SELECT channel, last_error FROM outbox WHERE status = 'dead'")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(channel, "CONCALL");
    assert!(error.contains("cannot read the stored reply") && error.contains("invalid type"), "{error}");
    assert!(t.audit_actions().await.contains(&"outbox.dead_letter".to_string()));
    gw.stop().await.cleanup().await;
}

#[tokio::test]
async fn a_slow_answer_shows_progress_then_replaces_it() {
    // An agent with tools (its run is an answer job from the start), and one
    // without (its router's rows wait for the answer, and are written when
    // the answer is slow).
    for tools in [true, false] {
        let (mock, api) = MockSlack::start().await;
        let (llm_url, _llm) = slow_llm(Duration::from_millis(2500)).await;
        let provider = format!(
            "providers:\n  default:\n    kind: openai\n    base_url: {llm_url}\n    model: m\n    timeout_secs: 10\n"
        );
        let mut yaml = slack_yaml(&api, "").replacen("agents:\n", &format!("{provider}\nagents:\n"), 1);
        if !tools {
            yaml = without_tools(&yaml);
        }
        let gw = Gateway::start(&yaml).await;
        assert_eq!(
            gw.signed("/slack/events", &mention("EvS", "UBOB", "CONCALL", "what now?", "1700000400.000001")).await,
            200
        );
        mock.wait_for(10, "the update", |c| c.iter().any(|c| c.method == "chat.update")).await;
        let posts = mock.calls("chat.postMessage");
        assert_eq!(posts.len(), 1, "{posts:#?}");
        assert_eq!(posts[0].body["text"], "Working on it…");
        let update = &mock.calls("chat.update")[0];
        assert_eq!(update.body["ts"], posts[0].body["ts"]);
        assert_eq!(update.body["text"], "Slow but sure.");
        let t = &gw.t;
        assert_eq!(count(t, "SELECT count(*) FROM jobs").await, 0, "tools: {tools}");
        let said: Vec<String> =
            sqlx::query_scalar("SELECT author FROM messages ORDER BY id").fetch_all(&t.app.store.pool).await.unwrap();
        assert_eq!(said, ["user", "assistant"], "tools: {tools}");
        assert_eq!(count(t, "SELECT count(*) FROM audit_log WHERE action = 'ask'").await, 1);
        gw.stop().await.cleanup().await;
    }
}

/// The example config with the on-call agent offered no tools.
fn without_tools(yaml: &str) -> String {
    let tools = "allowed_tools: [memory, web]";
    assert!(yaml.contains(tools));
    yaml.replacen(tools, "allowed_tools: []", 1)
}

#[tokio::test]
async fn a_failing_model_in_slack_gets_a_sentence_in_the_thread_and_an_audit_row() {
    let (mock, api) = MockSlack::start().await;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async { (axum::http::StatusCode::BAD_REQUEST, r#"{"error":{"message":"no"}}"#) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let provider = format!("providers:\n  default:\n    kind: openai\n    base_url: http://{addr}/v1\n    model: m\n");
    let yaml = without_tools(&slack_yaml(&api, "").replacen("agents:\n", &format!("{provider}\nagents:\n"), 1));
    let gw = Gateway::start(&yaml).await;
    assert_eq!(
        gw.signed("/slack/events", &mention("EvX", "UBOB", "CONCALL", "what now?", "1700000450.000001")).await,
        200
    );
    // To the asker only, in the thread.
    mock.wait_for(10, "the reply", |c| c.iter().any(|c| c.method == "chat.postEphemeral")).await;
    let post = &mock.calls("chat.postEphemeral")[0];
    let text = post.body["text"].as_str().unwrap();
    assert!(
        text.ends_with(
            "The model provider is unavailable right now, so I could not answer. Try again in a few minutes."
        ),
        "{text}"
    );
    assert_eq!((&post.body["thread_ts"], &post.body["user"]), (&json!("1700000450.000001"), &json!("UBOB")));
    assert!(mock.calls("chat.postMessage").is_empty());
    let t = &gw.t;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(t, "SELECT count(*) FROM jobs").await > 0 {
        assert!(Instant::now() < deadline, "the job was not completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let actions = t.audit_actions().await;
    assert!(actions.contains(&"ask".to_string()) && actions.contains(&"ask.failed".to_string()), "{actions:?}");
    // The question is kept; no answer was.
    let said: Vec<String> =
        sqlx::query_scalar("SELECT author FROM messages ORDER BY id").fetch_all(&t.app.store.pool).await.unwrap();
    assert_eq!(said, ["user"]);
    gw.stop().await.cleanup().await;
}

/// An OpenAI-compatible mock that takes `delay` to answer.
async fn slow_llm(delay: Duration) -> (String, Arc<()>) {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || async move {
            tokio::time::sleep(delay).await;
            (
                [("content-type", "application/json")],
                r#"{"choices":[{"message":{"role":"assistant","content":"Slow but sure."}}]}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), Arc::new(()))
}

#[tokio::test]
async fn a_feedback_click_is_recorded_checked_against_policy_and_audited() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    assert_eq!(
        gw.signed("/slack/events", &mention("EvF", "UBOB", "CONCALL", "deploy", "1700000500.000001")).await,
        200
    );
    mock.wait_for(10, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    let ts = mock.calls("chat.postMessage")[0].body["ts"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let click = |user: &str, trigger: &str| {
        let payload = json!({"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1", "trigger_id": trigger,
            "container": {"type": "message", "message_ts": ts, "channel_id": "CONCALL"}, "channel": {"id": "CONCALL"},
            "response_url": mock.response_url(trigger),
            "message": {"ts": ts, "thread_ts": "1700000500.000001", "text": "x"},
            "actions": [{"type": "button", "action_id": "pincer.feedback", "value": "up", "block_id": "b"}]});
        format!("payload={}", url::form_urlencoded::byte_serialize(payload.to_string().as_bytes()).collect::<String>())
    };
    assert_eq!(gw.signed("/slack/interactive", &click("UALICE", "cl1")).await, 200);
    assert_eq!(gw.signed("/slack/interactive", &click("UOLIVIA", "cl2")).await, 200);
    mock.wait_for(10, "two private replies", |c| c.iter().filter(|c| c.method == "response_url").count() >= 2).await;
    let replies: Vec<Value> = mock.calls("response_url").into_iter().map(|c| c.body).collect();
    let by =
        |id: &str| replies.iter().find(|r| r["response_url_id"] == id).unwrap()["text"].as_str().unwrap().to_string();
    assert!(by("cl1").contains("noted that this answer helped"), "{replies:?}");
    assert!(by("cl2").contains("Observers"), "{replies:?}");
    let t = gw.stop().await;
    assert_eq!(count(&t, "SELECT count(*) FROM feedback WHERE helpful").await, 1);
    let actions = t.audit_actions().await;
    assert!(actions.contains(&"action.feedback".to_string()), "{actions:?}");
    t.cleanup().await;
}

/// A gateway with Socket Mode on, once its websocket is connected.
async fn socket_mode_gateway(mock: &MockSlack, api: &str) -> Gateway {
    let gw = Gateway::start(&slack_yaml(api, "  app_token: xapp-test\n")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.socket_clients() == 0 {
        assert!(Instant::now() < deadline, "socket mode never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw
}

#[tokio::test]
async fn socket_mode_events_are_acked_after_storage_and_answered() {
    let (mock, api) = MockSlack::start().await;
    let gw = socket_mode_gateway(&mock, &api).await;
    let payload: Value =
        serde_json::from_str(&mention("EvW", "UBOB", "CONCALL", "why did the deploy fail?", "1700000600.000001"))
            .unwrap();
    mock.push_socket(
        json!({"type": "events_api", "envelope_id": "env-1", "accepts_response_payload": false, "payload": payload}),
    );
    mock.wait_for(10, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    assert_eq!(mock.acks.lock().unwrap().iter().filter(|a| a["envelope_id"] == "env-1").count(), 1);
    let t = gw.stop().await;
    assert_eq!(count(&t, "SELECT count(*) FROM inbound_events WHERE dedupe_key = 'EvW'").await, 1);
    t.cleanup().await;
}

#[tokio::test]
async fn an_event_that_cannot_be_stored_gets_500_and_a_command_a_sentence_for_its_sender() {
    let (mock, api) = MockSlack::start().await;
    let gw = socket_mode_gateway(&mock, &api).await;
    let pool = gw.t.app.store.pool.clone();
    // The database refuses every ingest.
    sqlx::query("ALTER TABLE inbound_events RENAME TO inbound_events_away").execute(&pool).await.unwrap();
    let event = mention("EvDown", "UBOB", "CONCALL", "deploy", "1700000900.000001");
    assert_eq!(gw.signed("/slack/events", &event).await, 500, "Slack retries an event");
    let ask = command(&mock, "/ask", "why?", "UBOB", "CONCALL", "oncall", "trdown");
    let r = gw.post("/slack/commands", &ask, 0, SECRET).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    assert!(body["text"].as_str().unwrap().contains("please run it again"), "{body}");
    // Over Socket Mode too: the envelope is acked with the sentence.
    let payload = json!({"team_id": "T1", "channel_id": "CONCALL", "channel_name": "oncall", "user_id": "UBOB",
                         "command": "/ask", "text": "why?", "response_url": mock.response_url("trsock"),
                         "trigger_id": "trsock"});
    mock.push_socket(json!({"type": "slash_commands", "envelope_id": "env-cmd", "accepts_response_payload": true, "payload": payload}));
    let deadline = Instant::now() + Duration::from_secs(10);
    let ack = loop {
        if let Some(a) = mock.acks.lock().unwrap().iter().find(|a| a["envelope_id"] == "env-cmd").cloned() {
            break a;
        }
        assert!(Instant::now() < deadline, "the command's envelope was never acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(ack["payload"]["text"].as_str().unwrap_or_default().contains("please run it again"), "{ack}");
    // Back: Slack's retry of the event is stored and answered.
    sqlx::query("ALTER TABLE inbound_events_away RENAME TO inbound_events").execute(&pool).await.unwrap();
    assert_eq!(gw.signed("/slack/events", &event).await, 200);
    mock.wait_for(10, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    gw.stop().await.cleanup().await;
}

/// A real `pincer serve` process.
struct Process {
    child: std::process::Child,
    url: String,
}

impl Process {
    async fn start(config: &std::path::Path, db: &str) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_pincer"))
            .args(["--config", config.to_str().unwrap(), "serve", "--role", "gateway", "--listen", &listen])
            .env("DATABASE_URL", crate::helpers::db_url(db))
            .env_remove("PINCER_CONFIG")
            .env_remove("SLACK_BOT_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{url}/readyz")).await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "pincer serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Process { child, url }
    }

    async fn signed(&self, path: &str, body: &str) -> u16 {
        let ts = now();
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sign(SECRET, ts, body))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[tokio::test]
async fn a_gateway_killed_between_store_and_delivery_delivers_after_restart_once() {
    pincer::init_crypto();
    let (mock, api) = MockSlack::start().await;
    let (_config, dir) = config_from(&slack_yaml(&api, ""));
    let path = dir.path().join("pincer.yaml");
    let db = format!("pincer_test_{}", uuid::Uuid::new_v4().simple());
    // Slack is down: the answer is stored but cannot be delivered.
    mock.script.down.store(1, std::sync::atomic::Ordering::SeqCst);
    let first = Process::start(&path, &db).await;
    assert_eq!(
        first.signed("/slack/events", &mention("EvK", "UBOB", "CONCALL", "deploy", "1700000700.000001")).await,
        200
    );
    let store = pincer::store::Store::connect(&crate::helpers::db_url(&db), 2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let tried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE NOT is_progress AND attempts >= 1 AND status = 'pending'",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        if tried > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the answer was never stored and tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    assert!(mock.calls("chat.postMessage").is_empty());
    // Slack is back; a new process delivers what the dead one stored, once.
    mock.script.down.store(0, std::sync::atomic::Ordering::SeqCst);
    let second = Process::start(&path, &db).await;
    mock.wait_for(15, "the answer after restart", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let posts = mock.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].body["thread_ts"], "1700000700.000001");
    second.kill();
    store.pool.close().await;
    crate::helpers::drop_db(&db).await;
}

#[tokio::test]
async fn someone_who_cannot_ask_is_told_once_not_at_every_message() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let message = |id: &str, user: &str, text: &str, ts: &str| {
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": id, "event_time": 1,
            "event": {"type": "message", "user": user, "channel": "CONCALL", "text": text, "ts": ts}})
        .to_string()
    };
    // Olivia (an observer) and a stranger chat in #oncall: each is told
    // once why they cannot ask, and their next messages pass quietly.
    for (i, user) in ["UOLIVIA", "UNOBODY", "UOLIVIA", "UNOBODY", "UOLIVIA"].iter().enumerate() {
        let body = message(&format!("EvT{i}"), user, "nice work everyone", &format!("1.{i}"));
        assert_eq!(gw.signed("/slack/events", &body).await, 200);
    }
    mock.wait_for(10, "two sentences", |c| c.iter().filter(|c| c.method == "chat.postEphemeral").count() >= 2).await;
    let t = gw.t.app.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pincer::store::jobs::pending(&t.store.pool).await.unwrap() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.calls("chat.postEphemeral").len(), 2, "{:#?}", mock.calls("chat.postEphemeral"));
    // Speaking to Pincer by name is always answered.
    assert_eq!(gw.signed("/slack/events", &mention("EvT9", "UOLIVIA", "CONCALL", "deploy?", "2.1")).await, 200);
    mock.wait_for(10, "a third sentence", |c| c.iter().filter(|c| c.method == "chat.postEphemeral").count() >= 3).await;
    let t = gw.stop().await;
    let actions = t.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "event.ignored").count(), 3, "{actions:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn strangers_get_a_private_sentence_and_nothing_else() {
    let (mock, api) = MockSlack::start().await;
    mock.emails.lock().unwrap().insert("UEVE".into(), "eve@elsewhere.com".into());
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    assert_eq!(gw.signed("/slack/events", &mention("EvU1", "UNOBODY", "CONCALL", "deploy?", "1.1")).await, 200);
    assert_eq!(gw.signed("/slack/events", &mention("EvU2", "UEVE", "CONCALL", "deploy?", "1.2")).await, 200);
    mock.wait_for(10, "two private replies", |c| c.iter().filter(|c| c.method == "chat.postEphemeral").count() >= 2)
        .await;
    let private = mock.calls("chat.postEphemeral");
    let to = |u: &str| private.iter().find(|c| c.body["user"] == u).unwrap().body["text"].as_str().unwrap().to_string();
    assert!(to("UNOBODY").contains("can't tell who you are"), "{private:#?}");
    assert!(to("UEVE").contains("not a member of this Pincer org"), "{private:#?}");
    assert!(mock.calls("chat.postMessage").is_empty(), "nothing public");
    let t = gw.stop().await;
    assert_eq!(t.audit_actions().await.iter().filter(|a| *a == "event.denied").count(), 2);
    t.cleanup().await;
}

#[tokio::test]
async fn another_apps_mentions_are_not_answered_at_all() {
    let (mock, api) = MockSlack::start().await;
    // An app whose bot user Slack would give an e-mail-less profile; the
    // mock's says so with `is_bot`.
    mock.emails.lock().unwrap().insert("UAPP1".into(), "app@bots.example".into());
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    // Over HTTP the mention says which bot posted it: dropped before it is stored.
    let mut by_bot_id: serde_json::Value =
        serde_json::from_str(&mention("EvApp1", "UAPP1", "CONCALL", "deploy?", "1.1")).unwrap();
    by_bot_id["event"]["bot_id"] = json!("BAPP1");
    assert_eq!(gw.signed("/slack/events", &by_bot_id.to_string()).await, 200);
    // Without `bot_id` (as in Socket Mode), users.info tells.
    assert_eq!(gw.signed("/slack/events", &mention("EvApp2", "UAPP1", "CONCALL", "deploy?", "1.2")).await, 200);
    // A person after them, to know both were handled.
    assert_eq!(gw.signed("/slack/events", &mention("EvApp3", "UALICE", "CONCALL", "deploy?", "1.3")).await, 200);
    mock.wait_for(10, "alice's answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    let ignored = "SELECT count(*) FROM audit_log WHERE action = 'event.ignored'";
    for _ in 0..100 {
        if count(&gw.t, ignored).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = gw.stop().await;
    assert!(mock.calls("chat.postEphemeral").is_empty(), "{:#?}", mock.calls("chat.postEphemeral"));
    let posts = mock.calls("chat.postMessage");
    assert!(posts.iter().all(|p| p.body["thread_ts"] == "1.3"), "{posts:#?}");
    let stored: Vec<String> = sqlx::query_scalar("SELECT dedupe_key FROM inbound_events ORDER BY dedupe_key")
        .fetch_all(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(stored, ["EvApp2", "EvApp3"]);
    let ignored: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT metadata FROM audit_log WHERE action = 'event.ignored'")
            .fetch_all(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(ignored.len(), 1, "{ignored:#?}");
    assert_eq!((ignored[0]["reason"].as_str(), ignored[0]["sender"].as_str()), (Some("bot"), Some("UAPP1")));
    assert!(!t.audit_actions().await.contains(&"event.denied".to_string()));
    t.cleanup().await;
}

#[tokio::test]
async fn a_slash_command_answer_reaches_a_channel_the_bot_is_not_in_through_its_response_url() {
    let (mock, api) = MockSlack::start().await;
    mock.script.gone.lock().unwrap().push("CPRODUCT".into());
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let ask = command(&mock, "/ask", "when does billing v2 ship?", "UBOB", "CPRODUCT", "product-bot", "trx");
    assert_eq!(gw.signed("/slack/commands", &ask).await, 200);
    mock.wait_for(10, "the answer via response_url", |c| c.iter().any(|c| c.method == "response_url")).await;
    let r = &mock.calls("response_url")[0];
    assert_eq!(r.body["response_type"], "in_channel");
    assert_eq!(r.body["replace_original"], json!(false));
    assert!(r.body["text"].as_str().unwrap().contains("November"), "{r:?}");
    let t = gw.stop().await;
    assert_eq!(count(&t, "SELECT count(*) FROM outbox WHERE status = 'dead'").await, 0);
    t.cleanup().await;

    // A slow answer there: "Working on it…" cannot be updated through the
    // response_url, so only the asker sees it; the channel gets the answer.
    let (mock, api) = MockSlack::start().await;
    mock.script.gone.lock().unwrap().push("CPRODUCT".into());
    let (llm_url, _llm) = slow_llm(Duration::from_millis(2500)).await;
    let provider = format!(
        "providers:\n  default:\n    kind: openai\n    base_url: {llm_url}\n    model: m\n    timeout_secs: 10\n"
    );
    let yaml = slack_yaml(&api, "").replacen("agents:\n", &format!("{provider}\nagents:\n"), 1);
    let gw = Gateway::start(&yaml).await;
    let ask = command(&mock, "/ask", "when does billing v2 ship?", "UBOB", "CPRODUCT", "product-bot", "trslow");
    assert_eq!(gw.signed("/slack/commands", &ask).await, 200);
    mock.wait_for(10, "the answer", |c| c.iter().filter(|c| c.method == "response_url").count() >= 2).await;
    let r = mock.calls("response_url");
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(r[0].body["text"], "Working on it…");
    assert_ne!(r[0].body["response_type"], "in_channel", "{r:#?}");
    assert_eq!(r[1].body["response_type"], "in_channel");
    assert_eq!(r[1].body["text"], "<@UBOB> asked: _when does billing v2 ship?_\n\nSlow but sure.");
    // No 👍 / 👎 there: a click could not find which answer it was on.
    assert!(!r[1].body.to_string().contains("pincer.feedback"), "{r:#?}");
    let t = gw.stop().await;
    assert_eq!(count(&t, "SELECT count(*) FROM outbox WHERE status <> 'delivered'").await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn someone_from_another_organisation_in_a_shared_channel_is_not_taken_for_an_org_member() {
    let (mock, api) = MockSlack::start().await;
    // An outsider whose own workspace says their e-mail is dan@acme.com.
    mock.emails.lock().unwrap().insert("UEXT1".into(), "dan@acme.com".into());
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let admin = command(&mock, "/admin", "user list", "UEXT1", "CONCALL", "oncall", "trext");
    assert_eq!(gw.signed("/slack/commands", &admin).await, 200);
    mock.wait_for(10, "a private reply", |c| c.iter().any(|c| c.method == "response_url")).await;
    let reply = mock.calls("response_url")[0].body["text"].as_str().unwrap().to_string();
    assert!(reply.contains("can't tell who you are"), "{reply}");
    gw.stop().await.cleanup().await;
}

/// A gateway whose default provider is `model` (an OpenAI-compatible
/// router serving `/v1/chat/completions`), served on a port of its own.
async fn gateway_with_model(api: &str, model: axum::Router) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, model).await });
    let provider = format!("providers:\n  default:\n    kind: openai\n    base_url: {llm_url}\n    model: m\n");
    Gateway::start(&slack_yaml(api, "").replacen("agents:\n", &format!("{provider}\nagents:\n"), 1)).await
}

#[tokio::test]
async fn asks_in_one_thread_are_answered_in_the_order_asked() {
    let (mock, api) = MockSlack::start().await;
    // A model that takes a second over the first question and answers the second at once.
    let llm = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|body: String| async move {
            let v: Value = serde_json::from_str(&body).unwrap();
            let q = v["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
            if q.contains("first") {
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            let reply = json!({"choices": [{"message": {"role": "assistant", "content": format!("answer to: {q}")}}]});
            ([("content-type", "application/json")], reply.to_string())
        }),
    );
    let gw = gateway_with_model(&api, llm).await;
    let first = json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvO1", "event_time": 1,
        "event": {"type": "app_mention", "user": "UBOB", "channel": "CONCALL", "text": "<@UBOT> first question", "ts": "1700000800.000002", "thread_ts": "1700000800.000001"}});
    let second = json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvO2", "event_time": 1,
        "event": {"type": "app_mention", "user": "UBOB", "channel": "CONCALL", "text": "<@UBOT> second question", "ts": "1700000800.000003", "thread_ts": "1700000800.000001"}});
    assert_eq!(gw.signed("/slack/events", &first.to_string()).await, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(gw.signed("/slack/events", &second.to_string()).await, 200);
    mock.wait_for(15, "two answers", |c| c.iter().filter(|c| c.method == "chat.postMessage").count() >= 2).await;
    let texts: Vec<String> =
        mock.calls("chat.postMessage").iter().map(|c| c.body["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["answer to: first question", "answer to: second question"]);
    gw.stop().await.cleanup().await;
}

#[tokio::test]
async fn a_follow_up_waiting_for_its_threads_earlier_ask_is_woken_when_that_ask_is_answered() {
    let (mock, api) = MockSlack::start().await;
    // A model that holds the first question until the test lets it go.
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let llm = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: String| {
            let held = held.clone();
            async move {
                let v: Value = serde_json::from_str(&body).unwrap();
                let q = v["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
                if q.contains("first") {
                    held.notified().await;
                }
                let reply =
                    json!({"choices": [{"message": {"role": "assistant", "content": format!("answer to: {q}")}}]});
                ([("content-type", "application/json")], reply.to_string())
            }
        }),
    );
    let gw = gateway_with_model(&api, llm).await;
    let mention = |id: &str, text: &str, ts: &str| {
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": id, "event_time": 1,
            "event": {"type": "app_mention", "user": "UBOB", "channel": "CONCALL", "text": format!("<@UBOT> {text}"), "ts": ts, "thread_ts": "1700000900.000001"}})
        .to_string()
    };
    assert_eq!(gw.signed("/slack/events", &mention("EvW1", "first question", "1700000900.000002")).await, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(gw.signed("/slack/events", &mention("EvW2", "second question", "1700000900.000003")).await, 200);
    // The follow-up waits its turn. Its next look is put an hour away, so
    // that only the first answer's end can bring it back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query(
        "UPDATE jobs SET run_after = now() + interval '1 hour'
          WHERE kind = 'event' AND locked_by IS NULL AND run_after > now()
            AND payload->>'text' LIKE '%second question%'",
    )
    .execute(&gw.t.app.store.pool)
    .await
    .unwrap()
    .rows_affected()
        == 0
    {
        assert!(Instant::now() < deadline, "the follow-up never waited for the first ask");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    release.notify_one();
    // (Either answer may come as an update of a "working on it" post on a slow machine.)
    let answers = |calls: &[crate::slack_mock::Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.method == "chat.postMessage" || c.method == "chat.update")
            .filter_map(|c| c.body["text"].as_str().filter(|t| t.starts_with("answer to:")).map(str::to_string))
            .collect()
    };
    mock.wait_for(10, "the follow-up's answer", |calls| answers(calls).len() >= 2).await;
    assert_eq!(answers(&mock.calls.lock().unwrap()), ["answer to: first question", "answer to: second question"]);
    gw.stop().await.cleanup().await;
}

#[tokio::test]
async fn a_thread_started_under_a_slash_commands_answer_continues_from_that_question_and_answer() {
    let (mock, api) = MockSlack::start().await;
    // A model that answers "A(question)" and keeps, for each prompt, the
    // earlier turns it was given.
    let prompts: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = prompts.clone();
    let llm = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                let v: Value = serde_json::from_str(&body).unwrap();
                let said: Vec<String> = v["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["content"].as_str().unwrap().to_string())
                    .collect();
                let question = said[said.len() - 1].clone();
                seen.lock().unwrap().push(said[1..said.len() - 1].to_vec());
                let reply =
                    json!({"choices": [{"message": {"role": "assistant", "content": format!("A({question})")}}]});
                ([("content-type", "application/json")], reply.to_string())
            }
        }),
    );
    let gw = gateway_with_model(&api, llm).await;
    let posts = |n: usize| {
        let mock = &mock;
        async move {
            mock.wait_for(10, "answers", |c| c.iter().filter(|c| c.method == "chat.postMessage").count() >= n).await;
            mock.calls("chat.postMessage")
        }
    };
    let earlier = |n: usize| prompts.lock().unwrap()[n].clone();
    // Bob asks twice at the top of the channel: both answers are posted
    // there, and his second ask carries his first.
    let ask = command(&mock, "/ask", "why did the deploy fail?", "UBOB", "CONCALL", "oncall", "trb1");
    assert_eq!(gw.signed("/slack/commands", &ask).await, 200);
    posts(1).await;
    let ask = command(&mock, "/ask", "is it fixed?", "UBOB", "CONCALL", "oncall", "trb2");
    assert_eq!(gw.signed("/slack/commands", &ask).await, 200);
    let second = posts(2).await[1].clone();
    assert!(second.body["thread_ts"].is_null(), "{second:?}");
    assert_eq!(second.body["text"], "<@UBOB> asked: _is it fixed?_\n\nA(is it fixed?)");
    assert_eq!(earlier(1), ["why did the deploy fail?", "A(why did the deploy fail?)"]);
    // Alice replies in the thread under the second answer: the model gets
    // that question and its answer — not bob's earlier turns, which were
    // never shown in the channel.
    let root = second.body["ts"].as_str().unwrap().to_string();
    // The thread's conversation is opened when the answer's delivery is
    // recorded (in the recorder's next batch, a few ms after the post).
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM conversations WHERE thread = $1")
        .bind(&root)
        .fetch_one(&gw.t.app.store.pool)
        .await
        .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "the answer's delivery was not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_thread = |id: &str, text: &str, ts: &str| {
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": id, "event_time": 1,
            "event": {"type": "app_mention", "user": "UALICE", "channel": "CONCALL", "text": format!("<@UBOT> {text}"), "ts": ts, "thread_ts": root}})
        .to_string()
    };
    assert_eq!(gw.signed("/slack/events", &in_thread("EvT1", "what fixed it?", "1700001000.000001")).await, 200);
    let reply = posts(3).await[2].clone();
    assert_eq!(
        (reply.body["thread_ts"].as_str(), reply.body["text"].as_str()),
        (Some(root.as_str()), Some("A(what fixed it?)"))
    );
    assert_eq!(earlier(2), ["is it fixed?", "A(is it fixed?)"]);
    // The thread goes on from there; bob's next top-level ask does not see it.
    assert_eq!(gw.signed("/slack/events", &in_thread("EvT2", "for good?", "1700001000.000002")).await, 200);
    posts(4).await;
    assert_eq!(earlier(3), ["is it fixed?", "A(is it fixed?)", "what fixed it?", "A(what fixed it?)"]);
    let ask = command(&mock, "/ask", "any other risk?", "UBOB", "CONCALL", "oncall", "trb3");
    assert_eq!(gw.signed("/slack/commands", &ask).await, 200);
    posts(5).await;
    assert_eq!(earlier(4).len(), 4);
    assert!(!earlier(4).iter().any(|t| t.contains("fixed it")), "{:?}", earlier(4));
    let t = gw.stop().await;
    let first_root = mock.calls("chat.postMessage")[0].body["ts"].as_str().unwrap().to_string();
    let threads: Vec<String> =
        sqlx::query_scalar("SELECT thread FROM conversations ORDER BY id").fetch_all(&t.app.store.pool).await.unwrap();
    let third_root = mock.calls("chat.postMessage")[4].body["ts"].as_str().unwrap().to_string();
    assert_eq!(threads, ["user:UBOB".to_string(), first_root, root, third_root]);
    t.cleanup().await;
}

#[tokio::test]
async fn a_run_interrupted_after_a_side_effect_is_not_repeated_but_handed_to_a_person() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    // A job whose earlier run died after a tool with side effects had started.
    let sender = pincer_adapters::Sender {
        platform_user_id: "UBOB".into(),
        display_name: None,
        verified_email: None,
        is_bot: false,
    };
    let event = pincer_adapters::ChannelEvent::new(
        "T1",
        "slack:CONCALL".parse().unwrap(),
        Some("1700000900.000001".into()),
        sender,
        "save a note",
        "EvI".into(),
    );
    let ask = pincer::handlers::ask::AskJob {
        agent: pincer_commands::AgentName::parse("ops-oncall").unwrap(),
        user_email: "bob@acme.com".into(),
        user_id: 0,
        question: "save a note".into(),
        scopes: vec![],
        workspace: None,
        conversation_id: 0,
        new_thread: false,
        prefetched: None,
    };
    let job = pincer::handlers::ask::AnswerJob { ask, event, progress_id: None, run: None };
    sqlx::query("INSERT INTO jobs (kind, payload, attempts, side_effects_at) VALUES ('answer', $1, 1, now())")
        .bind(serde_json::to_value(&job).unwrap())
        .execute(&gw.t.app.store.pool)
        .await
        .unwrap();
    gw.t.app.wake.jobs.notify_one();
    mock.wait_for(10, "the sentence", |c| c.iter().any(|c| c.method == "chat.postEphemeral")).await;
    let told = mock.calls("chat.postEphemeral")[0].body["text"].as_str().unwrap().to_string();
    assert!(told.contains("I was interrupted after I had started making changes"), "{told}");
    let t = gw.stop().await;
    assert!(t.audit_actions().await.contains(&"run.interrupted".to_string()));
    assert_eq!(count(&t, "SELECT count(*) FROM jobs").await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn with_every_worker_slot_taken_an_event_waits_in_the_queue_and_is_answered_when_one_frees() {
    let (mock, api) = MockSlack::start().await;
    let gw = Gateway::start(&slack_yaml(&api, "")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let local = loop {
        if let Some(local) = gw.t.app.handoff.local.get() {
            break local.clone();
        }
        assert!(Instant::now() < deadline, "the worker did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Every slot taken (the worker holds the free ones for a moment while it
    // claims from the queue, so take them as they come back).
    let mut held = Vec::new();
    while held.len() < pincer::worker::BATCH as usize {
        match local.slot() {
            Some(slot) => held.push(slot),
            None => {
                assert!(Instant::now() < deadline, "only {} worker slots could be taken", held.len());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    assert_eq!(
        gw.signed("/slack/events", &mention("EvQ", "UBOB", "CONCALL", "deploy", "1700000600.000001")).await,
        200
    );
    // Stored before the ack, for any worker; none has a free slot.
    let unclaimed = "SELECT count(*) FROM jobs WHERE kind = 'event' AND locked_by IS NULL";
    assert_eq!(count(&gw.t, unclaimed).await, 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(mock.calls("chat.postMessage").is_empty());
    assert_eq!(count(&gw.t, unclaimed).await, 1);
    // One slot frees: the worker takes the job and answers.
    held.pop();
    mock.wait_for(10, "the answer", |c| c.iter().any(|c| c.method == "chat.postMessage")).await;
    assert_eq!(mock.calls("chat.postMessage")[0].body["thread_ts"], "1700000600.000001");
    drop(held);
    gw.stop().await.cleanup().await;
}
