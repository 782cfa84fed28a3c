//! Workspaces: switching, ownership, and memory scope isolation.

use pincer_adapters::ReplyKind;

use crate::helpers::TestApp;

async fn with_alice_lab() -> TestApp {
    let t = TestApp::spawn().await;
    t.import_examples().await;
    let text = t
        .say1("dan@acme.com", "console:#oncall", "/admin workspace create --user alice@acme.com --scope alice-lab")
        .await;
    assert!(text.starts_with("Created workspace alice-lab for alice@acme.com"), "{text}");
    t.import("alice-lab", "alice-lab").await;
    t
}

#[tokio::test]
async fn alice_switches_into_her_workspace_and_back() {
    let t = with_alice_lab().await;
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace").await;
    assert!(text.starts_with("You are in the shared workspace"), "{text}");
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    assert!(text.starts_with("Switched to workspace alice-lab"), "{text}");
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace").await;
    assert!(text.starts_with("You are in workspace alice-lab"), "{text}");
    assert!(text.contains("incidents, postmortems"), "{text}");
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    assert!(text.starts_with("You are already in workspace alice-lab"), "{text}");
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace shared").await;
    assert!(text.starts_with("You are back in the shared workspace"), "{text}");
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace shared").await;
    assert!(text.starts_with("You are already in the shared workspace"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn an_ask_in_a_workspace_reads_it_plus_the_shared_scopes_and_nobody_else_sees_it() {
    let t = with_alice_lab().await;
    let q = "/ask tell me about the canary deploy experiment";
    // Shared: alice's notes are invisible, the shared postmortems are not.
    let text = t.say1("alice@acme.com", "console:#oncall", q).await;
    assert!(!text.contains("canary"), "{text}");
    t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    let text = t.say1("alice@acme.com", "console:#oncall", q).await;
    assert!(text.contains("canary deploy step") && text.contains("alice-lab:"), "{text}");
    assert!(text.contains("postmortems:") || text.contains("incidents:"), "shared scopes are still read: {text}");
    // Bob, in the same channel, never sees alice-lab.
    let text = t.say1("bob@acme.com", "console:#oncall", q).await;
    assert!(!text.contains("canary"), "{text}");
    // The workspace adds to what the agent reads; it never reaches another agent's scopes.
    let text = t.say1("alice@acme.com", "console:#oncall", "/ask billing v2 single sign-on roadmap").await;
    assert!(!text.contains("product:"), "{text}");
    let scopes: serde_json::Value =
        sqlx::query_scalar("SELECT metadata->'scopes' FROM audit_log WHERE action = 'ask' ORDER BY seq DESC LIMIT 1")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(scopes, serde_json::json!(["incidents", "postmortems", "alice-lab"]));
    t.cleanup().await;
}

#[tokio::test]
async fn switching_into_someone_elses_or_a_missing_workspace_is_refused() {
    let t = with_alice_lab().await;
    let text = t.refused("bob@acme.com", "console:#oncall", "/workspace alice-lab").await;
    assert_eq!(text, "Workspace alice-lab belongs to someone else; you can only switch into your own workspaces.");
    let text = t.refused("bob@acme.com", "console:#oncall", "/workspace bob-lab").await;
    assert!(text.starts_with("There is no workspace bob-lab"), "{text}");
    let active: Option<String> = sqlx::query_scalar("SELECT active_workspace FROM users WHERE email = 'bob@acme.com'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(active, None);
    t.cleanup().await;
}

#[tokio::test]
async fn a_workspace_cannot_shadow_a_shared_scope_or_an_existing_workspace() {
    let t = with_alice_lab().await;
    let text = t
        .refused("dan@acme.com", "console:#oncall", "/admin workspace create --user bob@acme.com --scope incidents")
        .await;
    assert!(text.contains("shared memory scope of agent ops-oncall"), "{text}");
    let text = t
        .refused("dan@acme.com", "console:#oncall", "/admin workspace create --user bob@acme.com --scope alice-lab")
        .await;
    assert!(text.contains("already exists (owner alice@acme.com)"), "{text}");
    let text = t
        .refused("dan@acme.com", "console:#oncall", "/admin workspace create --user nobody@acme.com --scope x-lab")
        .await;
    assert!(text.contains("not in the org"), "{text}");
    let text = t
        .refused("bob@acme.com", "console:#oncall", "/admin workspace create --user bob@acme.com --scope bob-lab")
        .await;
    assert!(text.starts_with("Only admins"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn deleting_a_workspace_returns_its_people_to_shared() {
    let t = with_alice_lab().await;
    t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    let list = t.say1("dan@acme.com", "console:#oncall", "/admin workspace list").await;
    assert!(
        list.starts_with("1 workspace:") && list.contains("alice-lab") && list.contains("owner alice@acme.com"),
        "{list}"
    );
    t.say1("dan@acme.com", "console:#oncall", "/admin workspace delete alice-lab").await;
    let none = t.say1("dan@acme.com", "console:#oncall", "/admin workspace list").await;
    assert!(none.starts_with("No workspaces yet."), "{none}");
    let hers = t.say1("dan@acme.com", "console:#oncall", "/admin workspace list alice@acme.com").await;
    assert_eq!(hers, "alice@acme.com owns no workspace.");
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace").await;
    assert!(text.starts_with("You are in the shared workspace"), "{text}");
    let r = t.say("alice@acme.com", "console:#oncall", "/ask canary").await;
    assert_eq!(r[0].kind, ReplyKind::Answer);
    assert!(!r[0].text.contains("alice-lab:"), "{r:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_queued_ask_is_answered_from_memory_found_at_ingest_and_written_in_one_go() {
    use pincer::router::QueuedOutcome;
    use pincer::store::routing;

    let t = with_alice_lab().await;
    t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    let agent = t.app.config.agents.values().find(|a| a.name.as_str() == "ops-oncall").unwrap();
    let question = "tell me about the canary deploy experiment";
    let worker = t.app.handoff.worker.clone();
    let lease = std::time::Duration::from_secs(60);
    let (tr, w, pool) = (&t, &worker, &t.app.store.pool);
    let ingest = |key: &'static str| {
        let ev = tr.event("console:#oncall", "alice@acme.com", Some("alice@acme.com"), "local", question, key);
        async move {
            let search = routing::Prefetch { question, scopes: &agent.memory_scopes };
            let stored = routing::enqueue_with_facts(pool, &ev, w, lease, Some("ops-oncall"), Some(search))
                .await
                .unwrap()
                .unwrap();
            (ev, stored)
        }
    };
    // The memory is searched as the event is stored, in the scopes alice may
    // read now: the agent's and her workspace.
    let (ev, (job_id, facts)) = ingest("k-ws-1").await;
    assert_eq!(facts.conversation, None, "a new thread");
    let found = facts.found.clone().unwrap();
    assert_eq!(found.scopes, ["incidents", "postmortems", "alice-lab"]);
    assert!(found.passages.iter().any(|p| p.scope == "alice-lab" && p.body.contains("canary")), "{found:?}");
    // Found in other scopes than the ask may read, it is not used.
    let mut wrong = facts.clone();
    wrong.found.as_mut().unwrap().scopes = vec!["incidents".into()];
    let QueuedOutcome::Deferred(d) = t.router.handle_queued(&ev, job_id, &worker, Some(wrong)).await.unwrap() else {
        panic!("an ask to an agent without tools waits for its answer to be written");
    };
    assert!(d.answer.ask.prefetched.is_none());
    // Routed with its facts: nothing is written until the answer is.
    let QueuedOutcome::Deferred(d) = t.router.handle_queued(&ev, job_id, &worker, Some(facts)).await.unwrap() else {
        panic!("an ask to an agent without tools waits for its answer to be written");
    };
    assert_eq!(d.answer.ask.prefetched.as_deref(), Some(found.passages.as_slice()));
    assert!(d.answer.ask.new_thread);
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap() };
    assert_eq!(count("SELECT count(*) FROM conversations").await, 0);
    assert_eq!(count("SELECT count(*) FROM audit_log WHERE action = 'ask'").await, 0);
    pincer::handlers::ask::answer_deferred(&t.app, *d, &worker).await.unwrap();
    // One write: the event's job done, the question then the answer, the
    // audit row, the usage, the reply.
    assert_eq!(count("SELECT count(*) FROM jobs").await, 0);
    let said: Vec<(String, String)> =
        sqlx::query_as("SELECT author, body FROM messages ORDER BY id").fetch_all(&t.app.store.pool).await.unwrap();
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!((said[0].0.as_str(), said[0].1.as_str()), ("user", question));
    assert_eq!(said[1].0, "assistant");
    assert!(said[1].1.contains("canary deploy step"), "{said:?}");
    let scopes: serde_json::Value = sqlx::query_scalar("SELECT metadata->'scopes' FROM audit_log WHERE action = 'ask'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(scopes, serde_json::json!(["incidents", "postmortems", "alice-lab"]));
    assert_eq!(count("SELECT count(*) FROM usage WHERE user_email = 'alice@acme.com'").await, 1);
    let reply: String =
        sqlx::query_scalar("SELECT reply->>'text' FROM outbox").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(reply, said[1].1);
    // The thread's next ask finds its conversation as it is stored.
    let (_, (_, facts)) = ingest("k-ws-2").await;
    let conversation: i64 =
        sqlx::query_scalar("SELECT id FROM conversations").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(facts.conversation, Some(conversation));
    t.cleanup().await;
}
