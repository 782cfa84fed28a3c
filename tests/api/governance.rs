//! Governance end to end: approvals with Slack buttons (approve, deny,
//! foreign and replayed clicks, expiry, argument tampering, break-glass
//! voiding), identity linking with one-time codes, audit shipping and
//! retention, secret redaction, and `admin doctor`.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::TestApp;
use crate::llm::{final_answer, start_mock, tool_call};
use crate::slack::{Gateway, mention, slack_yaml};
use crate::slack_mock::MockSlack;

const NOTE: &str = "The canary runs on pod group B.";

/// Slack + an OpenAI-compatible mock; ops-oncall (owner dan, in CONCALL) may
/// write memory, and every memory write waits for the owner or an admin.
fn approvals_yaml(api: &str, llm: &str, approvals: &str) -> String {
    slack_yaml(api, "")
        .replacen(
            "agents:\n",
            &format!("providers:\n  default:\n    kind: openai\n    base_url: {llm}\n    model: m\n    timeout_secs: 2\n\nagents:\n"),
            1,
        )
        .replacen("allowed_tools: [memory, web]", r#"allowed_tools: [memory, "memory:write"]"#, 1)
        + approvals
}

const APPROVALS: &str = "approvals:\n  tools: [memory_write]\n  approvers: [owner, admins]\n";

fn click(mock: &MockSlack, user: &str, trigger: &str, ts: &str, value: &str) -> String {
    let payload = json!({"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1", "trigger_id": trigger,
        "container": {"type": "message", "message_ts": ts, "channel_id": "CONCALL"}, "channel": {"id": "CONCALL"},
        "response_url": mock.response_url(trigger),
        "message": {"ts": ts, "thread_ts": thread_of(ts), "text": "x"},
        "actions": [{"type": "button", "action_id": "pincer.approval", "value": value, "block_id": "b"}]});
    format!("payload={}", url::form_urlencoded::byte_serialize(payload.to_string().as_bytes()).collect::<String>())
}

/// The thread an approval request was posted in (its message's `thread_ts`,
/// as Slack sends it with a click): the mock records it with the post.
fn thread_of(ts: &str) -> String {
    THREADS.lock().unwrap().get(ts).cloned().unwrap_or_default()
}

static THREADS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// Waits for the nth approval request and returns its ts and the two button values.
async fn request(mock: &MockSlack, nth: usize) -> (String, String, String) {
    let is_request =
        |c: &crate::slack_mock::Call| c.method == "chat.postMessage" && c.body.to_string().contains("approve:");
    mock.wait_for(10, "the approval request", |c| c.iter().filter(|c| is_request(c)).count() > nth).await;
    let calls = mock.calls("chat.postMessage");
    let req = calls.iter().filter(|c| is_request(c)).nth(nth).unwrap();
    let text = req.body.to_string();
    assert!(text.contains("memory_write") && text.contains("Approval needed"), "{text}");
    let value = |prefix: &str| {
        let at = text.find(prefix).unwrap();
        text[at..].split('"').next().unwrap().trim_end_matches('\\').to_string()
    };
    let ts = req.body["ts"].as_str().unwrap().to_string();
    let thread = req.body["thread_ts"].as_str().expect("the request is posted in the ask's thread").to_string();
    THREADS.lock().unwrap().insert(ts.clone(), thread);
    (ts, value("approve:"), value("deny:"))
}

async fn private_reply(mock: &MockSlack, trigger: &str) -> String {
    mock.wait_for(10, "a private reply", |c| {
        c.iter().any(|c| c.method == "response_url" && c.body["response_url_id"] == trigger)
    })
    .await;
    let calls = mock.calls("response_url");
    calls.iter().find(|c| c.body["response_url_id"] == trigger).unwrap().body["text"].as_str().unwrap().to_string()
}

async fn notes(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM memory_items WHERE body = $1")
        .bind(NOTE)
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap()
}

async fn answer_containing(mock: &MockSlack, text: &str) {
    mock.wait_for(15, text, |c| c.iter().any(|c| c.method.starts_with("chat.") && c.body.to_string().contains(text)))
        .await;
}

#[tokio::test]
async fn a_dangerous_call_waits_for_an_approver_runs_once_and_refuses_foreign_and_replayed_clicks() {
    let (mock, api) = MockSlack::start().await;
    let (llm, url) = start_mock().await;
    llm.queue
        .lock()
        .unwrap()
        .extend([tool_call("memory_write", json!({"text": NOTE})), final_answer("Noted for next time.")]);
    let gw = Gateway::start(&approvals_yaml(&api, &url, APPROVALS)).await;
    assert_eq!(
        gw.signed("/slack/events", &mention("EvA1", "UALICE", "CONCALL", "remember the canary", "1700000600.000001"))
            .await,
        200
    );
    let (ts, approve, _deny) = request(&mock, 0).await;
    assert_eq!(notes(&gw.t).await, 0, "nothing runs before approval");

    // The asker is not an approver here; an observer never is.
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UALICE", "c1", &ts, &approve)).await, 200);
    assert!(private_reply(&mock, "c1").await.contains("only the agent's owner (dan@acme.com) or an admin may"));
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UOLIVIA", "c2", &ts, &approve)).await, 200);
    assert!(private_reply(&mock, "c2").await.contains("Observers"));
    // A made-up token names nothing.
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "c3", &ts, "approve:0000")).await, 200);
    assert!(private_reply(&mock, "c3").await.contains("don't know that approval request"));
    assert_eq!(notes(&gw.t).await, 0);

    // The owner approves: the request is updated in place, the call runs, the answer lands.
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "c4", &ts, &approve)).await, 200);
    mock.wait_for(10, "the request updated", |c| {
        c.iter().any(|c| {
            c.method == "chat.update" && c.body["ts"] == ts.as_str() && c.body.to_string().contains("approved")
        })
    })
    .await;
    // Its buttons go: Slack keeps a message's blocks through an update that
    // names none.
    let update = mock.calls("chat.update").into_iter().find(|c| c.body["ts"] == ts.as_str()).unwrap();
    assert_eq!(update.body["blocks"], serde_json::json!([]), "{update:?}");
    answer_containing(&mock, "Noted for next time.").await;
    assert_eq!(notes(&gw.t).await, 1);

    // A replayed click changes nothing.
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "c5", &ts, &approve)).await, 200);
    assert!(private_reply(&mock, "c5").await.contains("approved already by dan@acme.com"));
    let t = gw.stop().await;
    assert_eq!(notes(&t).await, 1, "approved once, run once");
    let actions = t.audit_actions().await;
    for a in ["approval.requested", "action.approval", "approval.used", "tool.call"] {
        assert!(actions.contains(&a.to_string()), "{a} in {actions:?}");
    }
    let refused: Vec<String> = sqlx::query_scalar(
        "SELECT metadata->>'reason' FROM audit_log WHERE action IN ('action.approval', 'command.denied') AND (metadata->>'ok')::boolean IS NOT TRUE ORDER BY seq",
    )
    .fetch_all(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(
        refused,
        ["not_an_approver", "observer_read_only", "unknown_request", "already_decided"],
        "foreign and replayed clicks are audited"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn denied_expired_tampered_and_voided_requests_never_run_and_say_why() {
    let (mock, api) = MockSlack::start().await;
    let (llm, url) = start_mock().await;
    let gw = Gateway::start(&approvals_yaml(&api, &url, APPROVALS)).await;
    let pool = gw.t.app.store.pool.clone();
    let mut asked = 0;
    let mut ask = |thread: &str| {
        asked += 1;
        llm.queue
            .lock()
            .unwrap()
            .extend([tool_call("memory_write", json!({"text": NOTE})), final_answer(&format!("Run {asked} done."))]);
        mention(&format!("EvD{asked}"), "UALICE", "CONCALL", "remember the canary", thread)
    };

    // Denied: the model is told who denied it.
    assert_eq!(gw.signed("/slack/events", &ask("1700000700.000001")).await, 200);
    let (ts, _, deny) = request(&mock, 0).await;
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "d1", &ts, &deny)).await, 200);
    answer_containing(&mock, "Run 1 done.").await;
    assert!(llm.bodies.lock().unwrap().iter().any(|(_, b)| b.contains("dan@acme.com denied this call")));

    // Expired: the run wakes at the deadline and the request says so.
    assert_eq!(gw.signed("/slack/events", &ask("1700000701.000001")).await, 200);
    let (ts, _, _) = request(&mock, 1).await;
    sqlx::query("UPDATE approvals SET expires_at = now() WHERE state = 'pending'").execute(&pool).await.unwrap();
    sqlx::query("UPDATE jobs SET run_after = now() WHERE kind = 'answer'").execute(&pool).await.unwrap();
    mock.wait_for(15, "the expiry notice", |c| {
        c.iter().any(|c| {
            c.method == "chat.update" && c.body["ts"] == ts.as_str() && c.body.to_string().contains("Nobody approved")
        })
    })
    .await;
    answer_containing(&mock, "Run 2 done.").await;

    // Tampered: the arguments saved with the paused run are changed after the
    // request; approving the request does not run the changed call.
    assert_eq!(gw.signed("/slack/events", &ask("1700000702.000001")).await, 200);
    let (ts, approve, _) = request(&mock, 2).await;
    let changed = sqlx::query(
        "UPDATE jobs SET payload = jsonb_set(payload, '{run,pending,0,arguments}', to_jsonb('{\"text\":\"rm -rf everything\"}'::text)) WHERE kind = 'answer'",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "d3", &ts, &approve)).await, 200);
    answer_containing(&mock, "Run 3 done.").await;

    // Voided: break-glass while a request is open ends the run with the reason.
    assert_eq!(gw.signed("/slack/events", &ask("1700000703.000001")).await, 200);
    let (ts, approve, _) = request(&mock, 3).await;
    let r = gw.t.say("dan@acme.com", "console:#oncall", "/admin agent disable ops-oncall leaking notes").await;
    assert!(r[0].text.contains("its pending approval request was voided"), "{r:?}");
    answer_containing(&mock, "was disabled by dan@acme.com (leaking notes)").await;
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "d4", &ts, &approve)).await, 200);
    assert!(private_reply(&mock, "d4").await.contains("voided already"));

    let t = gw.stop().await;
    assert_eq!(notes(&t).await, 0, "no denied, expired, tampered or voided call ran");
    let memory: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_items WHERE body LIKE 'rm -rf%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(memory, 0);
    let actions = t.audit_actions().await;
    for a in ["approval.expired", "approval.mismatch"] {
        assert!(actions.contains(&a.to_string()), "{a} in {actions:?}");
    }
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM approvals ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(states, ["denied", "expired", "approved", "voided"]);
    t.cleanup().await;
}

#[tokio::test]
async fn break_glass_reaches_another_process_within_a_second_and_stops_a_run_at_its_next_tool() {
    let (mock, api) = MockSlack::start().await;
    let (llm, url) = start_mock().await;
    let yaml = approvals_yaml(&api, &url, "");
    let a = Gateway::start(&yaml).await;
    let b = a.replica(&yaml).await;
    // A run on B is between its model turn and its tool when A disables the agent.
    llm.queue.lock().unwrap().extend([tool_call("memory_write", json!({"text": NOTE})), final_answer("never")]);
    *llm.delay.lock().unwrap() = Duration::from_millis(800);
    assert_eq!(
        b.signed("/slack/events", &mention("EvB1", "UALICE", "CONCALL", "remember", "1700000800.000001")).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let disabled_at = Instant::now();
    let r = a.t.say("dan@acme.com", "console:#oncall", "/admin agent disable ops-oncall incident 42").await;
    assert!(r[0].text.starts_with("Disabled ops-oncall"), "{r:?}");
    // B refuses a new run at once.
    let refused = b.t.refused("bob@acme.com", "console:#oncall", "/ask anything").await;
    assert!(disabled_at.elapsed() < Duration::from_secs(1));
    assert!(refused.contains("disabled"), "{refused}");
    answer_containing(&mock, "disabled by dan@acme.com (incident 42) while it was working").await;
    *llm.delay.lock().unwrap() = Duration::ZERO;
    b.stop().await;
    let t = a.stop().await;
    assert_eq!(notes(&t).await, 0, "the tool after the boundary never ran");
    t.cleanup().await;
}

#[tokio::test]
async fn a_one_time_code_links_an_account_on_another_platform_once_and_admins_can_unlink_it() {
    let t = TestApp::spawn().await;
    let issued = t.say1("alice@acme.com", "console:#oncall", "/link").await;
    let code = issued.split_whitespace().find(|w| w.len() == 11 && w.as_bytes()[5] == b'-').unwrap().to_string();
    // A Telegram account Pincer does not know (Telegram gives no e-mail).
    let tg = |puid: &str, text: &str| {
        t.event("telegram:+15550100", puid, None, "bot1", text, &uuid::Uuid::new_v4().to_string())
    };
    let before = t.router.handle(tg("tg-42", "/admin whoami")).await;
    assert!(before[0].text.contains("can't tell who you are"), "{before:?}");
    let linked = t.router.handle(tg("tg-42", &format!("/link {}", code.to_lowercase()))).await;
    assert!(linked[0].text.starts_with("Linked: on telegram you are now alice@acme.com"), "{linked:?}");
    let whoami = t.router.handle(tg("tg-42", "/admin whoami")).await;
    assert!(whoami[0].text.contains("alice@acme.com"), "{whoami:?}");
    // The code worked once.
    let again = t.router.handle(tg("tg-77", &format!("/link {code}"))).await;
    assert!(again[0].text.contains("not valid"), "{again:?}");
    // Admins see and remove links; a member cannot.
    assert!(t.refused("bob@acme.com", "console:#oncall", "/admin identity list").await.contains("admin"));
    let list = t.say1("dan@acme.com", "console:#oncall", "/admin identity list alice@acme.com").await;
    assert!(list.contains("telegram bot1 user tg-42"), "{list}");
    let gone = t.say1("dan@acme.com", "console:#oncall", "/admin identity unlink alice@acme.com telegram").await;
    assert!(gone.starts_with("Unlinked 1 telegram account from alice@acme.com."), "{gone}");
    let odd = t.refused("dan@acme.com", "console:#oncall", "/admin identity unlink alice@acme.com myspace").await;
    assert_eq!(
        odd,
        "'myspace' is not a platform Pincer knows: use one of console, slack, discord, telegram, whatsapp, cli."
    );
    let after = t.router.handle(tg("tg-42", "/admin whoami")).await;
    assert!(after[0].text.contains("can't tell who you are"), "{after:?}");
    let actions = t.audit_actions().await;
    for a in ["link", "identity.link", "identity.link.refused", "admin.identity.unlink"] {
        assert!(actions.contains(&a.to_string()), "{a} in {actions:?}");
    }
    t.cleanup().await;
}

/// A config with an audit file sink and a signing key, in `dir`.
fn audit_yaml(dir: &std::path::Path, sink: &str) -> String {
    std::fs::write(dir.join("audit_key"), "checkpoint-signing-key-1-0123456789abcdef\n").unwrap();
    let base = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml")).unwrap();
    format!(
        "{base}\naudit:\n  retention_days: 90\n  signing_key: file://{}\n  sink: {sink}\n",
        dir.join("audit_key").display()
    )
}

/// Pincer with an audit file sink and a signing key: the app, its sink,
/// the file, and the folders to keep alive.
async fn with_file_sink() -> (TestApp, pincer::config::AuditSink, std::path::PathBuf, [tempfile::TempDir; 2]) {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("audit.jsonl");
    let (config, dir) = crate::helpers::config_from(&audit_yaml(out.path(), &format!("{{file: {}}}", file.display())));
    let sink = config.audit.sink.clone().unwrap();
    pincer::init_crypto();
    (TestApp::with_config(config).await, sink, file, [out, dir])
}

async fn traffic(t: &TestApp, n: usize) {
    for i in 0..n {
        t.say("dan@acme.com", "console:#oncall", &format!("/admin audit tail {}", i % 5 + 1)).await;
    }
}

fn seqs_in(path: &std::path::Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_i64().unwrap())
        .collect()
}

async fn head(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT seq FROM audit_head").fetch_one(&t.app.store.pool).await.unwrap()
}

#[tokio::test]
async fn the_file_sink_ships_every_row_once_across_a_crash_and_retention_leaves_a_verifiable_chain() {
    use pincer::store::audit;
    let (t, sink, file, _dirs) = with_file_sink().await;
    let http = reqwest::Client::new();
    traffic(&t, 5).await;
    let shipped = pincer::audit_ship::ship_once(&t.app, &sink, &http).await.unwrap();
    assert_eq!(shipped as i64, head(&t).await);

    // A crash after writing two more rows (and half of a third) but before
    // recording the cursor: the restart neither repeats nor skips.
    traffic(&t, 4).await;
    let cursor = audit::cursor(&mut *t.conn().await, &sink.name()).await.unwrap();
    let next = audit::page(&mut *t.conn().await, cursor, 3).await.unwrap();
    let mut written = String::new();
    for r in &next[..2] {
        written.push_str(&audit::json_line(r));
        written.push('\n');
    }
    written.push_str(&audit::json_line(&next[2])[..40]);
    std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(written.as_bytes()).unwrap();
    pincer::audit_ship::ship_once(&t.app, &sink, &http).await.unwrap();
    let h = head(&t).await;
    assert_eq!(seqs_in(&file), (1..=h).collect::<Vec<_>>(), "every row exactly once, in order");

    // Retention: everything shipped and older than the cutoff goes, behind a signed checkpoint.
    let key = b"checkpoint-signing-key-1-0123456789abcdef";
    let cut = chrono::Utc::now();
    let r = audit::retain(&mut *t.conn().await, cut, key, Some(h - 3)).await.unwrap();
    assert_eq!(r, audit::Retention::Removed { up_to: h - 3, rows: (h - 3) as u64 }, "never past what was shipped");
    let report = audit::verify(&mut *t.conn().await, Some(key)).await.unwrap();
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!(report.last_seq, h + 1, "the retention row itself is chained");
    let verified = t.say1("dan@acme.com", "console:#oncall", "/admin audit verify").await;
    assert!(verified.contains("from the signed retention checkpoint"), "{verified}");
    // Without the key, or with another, the checkpoint proves nothing.
    assert!(audit::verify(&mut *t.conn().await, None).await.unwrap().broken.unwrap().reason.contains("signing_key"));
    let forged = audit::verify(&mut *t.conn().await, Some(b"another key")).await.unwrap().broken.unwrap();
    assert!(forged.reason.contains("forged"), "{forged:?}");
    // Rows after the checkpoint are still guarded.
    let mut c = t.conn().await;
    sqlx::query("SET session_replication_role = replica").execute(&mut *c).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM audit_log WHERE seq = {}", h - 1)))
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = origin").execute(&mut *c).await.unwrap();
    drop(c);
    assert_eq!(audit::verify(&mut *t.conn().await, Some(key)).await.unwrap().broken.unwrap().seq, h - 1);
    // And plain deletes stay refused outside retention.
    assert!(sqlx::query("DELETE FROM audit_log").execute(&t.app.store.pool).await.is_err());
    t.cleanup().await;
}

#[tokio::test]
async fn the_http_sink_retries_until_taken_and_sends_each_row_once() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let fail_first = Arc::new(Mutex::new(true));
    let (g, f) = (got.clone(), fail_first.clone());
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (g, f) = (g.clone(), f.clone());
            async move {
                assert_eq!(headers["authorization"], "Bearer sink-token-123");
                assert_eq!(headers["content-type"], "application/x-ndjson");
                if std::mem::replace(&mut *f.lock().unwrap(), false) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock().unwrap().extend(body.lines().map(str::to_string));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("sink_token"), "sink-token-123").unwrap();
    let sink = format!("{{http: {url}, token: file://{}}}", out.path().join("sink_token").display());
    let (config, _dir) = crate::helpers::config_from(&audit_yaml(out.path(), &sink));
    let sink = config.audit.sink.clone().unwrap();
    let t = TestApp::with_config(config).await;
    traffic(&t, 3).await;
    pincer::init_crypto();
    let http = reqwest::Client::new();
    assert!(pincer::audit_ship::ship_once(&t.app, &sink, &http).await.is_err(), "a 503 is an error, the cursor stays");
    pincer::audit_ship::ship_once(&t.app, &sink, &http).await.unwrap();
    traffic(&t, 2).await;
    pincer::audit_ship::ship_once(&t.app, &sink, &http).await.unwrap();
    let seqs: Vec<i64> = got
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=head(&t).await).collect::<Vec<_>>());
    let line: serde_json::Value = serde_json::from_str(&got.lock().unwrap()[0]).unwrap();
    for k in ["seq", "ts", "user_email", "action", "metadata", "prev_hash", "row_hash"] {
        assert!(line.get(k).is_some(), "{k} in {line}");
    }
    t.cleanup().await;
}

#[tokio::test]
async fn audit_export_writes_json_lines_from_a_point_and_is_itself_audited() {
    let t = TestApp::spawn().await;
    traffic(&t, 4).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("export.jsonl");
    let db = crate::helpers::db_url(&t.db);
    let env = [("DATABASE_URL", db.as_str())];
    let args = ["--config", "examples/pincer.yaml", "admin", "audit", "export", "--after-seq", "2", "--out"];
    let (code, _, err) = crate::helpers::pincer(&[&args[..], &[file.to_str().unwrap()]].concat(), &env, None);
    assert_eq!(code, 0, "{err}");
    let h = head(&t).await;
    assert_eq!(seqs_in(&file), (3..h).collect::<Vec<_>>(), "rows after seq 2, up to the export's own row");
    assert!(t.audit_actions().await.contains(&"admin.audit.export".to_string()));
    let (code, _, err) = crate::helpers::pincer(
        &["--config", "examples/pincer.yaml", "admin", "--as", "bob@acme.com", "audit", "export"],
        &env,
        None,
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("Only admins can run pincer admin audit export"), "{err}");
    let (code, stdout, _) = crate::helpers::pincer(
        &["--config", "examples/pincer.yaml", "admin", "audit", "export", "--since", "1d"],
        &env,
        None,
    );
    assert_eq!(code, 0);
    assert!(stdout.lines().count() as i64 >= h, "{stdout}");
    t.cleanup().await;
}

#[tokio::test]
async fn doctor_reports_each_checklist_line_and_exercises_break_glass() {
    let t = TestApp::spawn().await;
    let report = t.refused("dan@acme.com", "console:#oncall", "/admin doctor").await;
    for line in [
        "PASS RBAC on",
        "PASS no plaintext secrets in config",
        "FAIL audit shipped off-box",
        "FAIL audit retention set",
        "PASS every agent has an owner and a prompt file",
        "PASS break-glass works",
    ] {
        assert!(report.contains(line), "{line} in {report}");
    }
    let probe: i64 = sqlx::query_scalar("SELECT count(*) FROM agents WHERE name = 'pincer-doctor-probe'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(probe, 0, "the probe leaves nothing behind");
    t.cleanup().await;

    let (t, sink, _file, _dirs) = with_file_sink().await;
    pincer::audit_ship::ship_once(&t.app, &sink, &reqwest::Client::new()).await.unwrap();
    let report = t.say1("dan@acme.com", "console:#oncall", "/admin doctor").await;
    assert!(report.ends_with("All checks pass."), "{report}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_run_that_wrote_once_can_pause_again_and_finish_after_a_second_approval() {
    let (mock, api) = MockSlack::start().await;
    let (llm, url) = start_mock().await;
    let second = "The canary's rollback takes two minutes.";
    llm.queue.lock().unwrap().extend([
        tool_call("memory_write", json!({"text": NOTE})),
        tool_call("memory_write", json!({"text": second})),
        final_answer("Both noted."),
    ]);
    let gw = Gateway::start(&approvals_yaml(&api, &url, APPROVALS)).await;
    assert_eq!(
        gw.signed("/slack/events", &mention("EvT1", "UALICE", "CONCALL", "remember both", "1700000900.000001")).await,
        200
    );
    let (ts, approve, _) = request(&mock, 0).await;
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "t1", &ts, &approve)).await, 200);
    let (ts, approve, _) = request(&mock, 1).await;
    assert_eq!(gw.signed("/slack/interactive", &click(&mock, "UDAN", "t2", &ts, &approve)).await, 200);
    answer_containing(&mock, "Both noted.").await;
    let t = gw.stop().await;
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_items WHERE body IN ($1, $2)")
        .bind(NOTE)
        .bind(second)
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(written, 2);
    assert!(!t.audit_actions().await.contains(&"run.interrupted".to_string()));
    t.cleanup().await;
}
