//! Governance end to end: approvals with Slack buttons (approve, deny,
//! foreign and replayed clicks, expiry, argument tampering, break-glass
//! voiding), identity linking with one-time codes, audit shipping and
//! retention, secret redaction, and `admin doctor`.

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
        .replacen(r#"allowed_tools: [memory, shell, pagerduty, "github:write"]"#, r#"allowed_tools: [memory, "memory:write"]"#, 1)
        + approvals
}

const APPROVALS: &str = "approvals:\n  tools: [memory_write]\n  approvers: [owner, admins]\n";

fn click(mock: &MockSlack, user: &str, trigger: &str, ts: &str, value: &str) -> String {
    let payload = json!({"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1", "trigger_id": trigger,
        "container": {"type": "message", "message_ts": ts, "channel_id": "CONCALL"}, "channel": {"id": "CONCALL"},
        "response_url": mock.response_url(trigger),
        "message": {"ts": ts, "text": "x"},
        "actions": [{"type": "button", "action_id": "pincer.approval", "value": value, "block_id": "b"}]});
    format!("payload={}", url::form_urlencoded::byte_serialize(payload.to_string().as_bytes()).collect::<String>())
}

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
    (req.body["ts"].as_str().unwrap().to_string(), value("approve:"), value("deny:"))
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
    mock.wait_for(15, text, |c| {
        c.iter()
            .any(|c| c.method.starts_with("chat.") && c.body.to_string().contains(text))
    })
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
    assert!(r[0].text.contains("1 pending approval request(s) were voided"), "{r:?}");
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
