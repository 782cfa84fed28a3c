//! The router end to end: dedupe, identity, authorization, audit, commands.

use pincer_adapters::ReplyKind;

use crate::helpers::{TestApp, config_from};

#[tokio::test]
async fn an_ask_in_a_bound_channel_is_answered_from_that_agents_memory() {
    let t = TestApp::spawn().await;
    t.import_examples().await;
    let replies = t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].kind, ReplyKind::Answer);
    let text = &replies[0].text;
    assert!(text.contains("14 October"), "{text}");
    assert!(text.contains("postmortems:") || text.contains("incidents:"), "{text}");
    // ops-oncall does not read the product scope.
    assert!(!text.contains("product:"), "{text}");
    // Free text in a bound channel is an ask too.
    let text = t.say1("bob@acme.com", "console:#product-bot", "when does billing v2 ship?").await;
    assert!(text.contains("November"), "{text}");
    let actions = t.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "ask").count(), 2, "{actions:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_repeated_event_is_acknowledged_and_never_answered_twice() {
    let t = TestApp::spawn().await;
    let ev = t.event("console:#oncall", "bob@acme.com", Some("bob@acme.com"), "local", "/workspace", "evt-1");
    assert_eq!(t.router.handle(ev.clone()).await.len(), 1);
    assert!(t.router.handle(ev.clone()).await.is_empty());
    // Concurrent copies on two routers (as two replicas would be) over one database.
    let other = pincer::router::Router::new(t.app.clone());
    let ev2 = t.event("console:#oncall", "bob@acme.com", Some("bob@acme.com"), "local", "/workspace", "evt-2");
    let (a, b) = tokio::join!(t.router.handle(ev2.clone()), other.handle(ev2));
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'workspace'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn text_in_an_unbound_channel_is_ignored_and_audited_with_no_reply() {
    let t = TestApp::spawn().await;
    assert!(t.say("bob@acme.com", "console:#random", "hello there").await.is_empty());
    assert_eq!(t.audit_actions().await.last().unwrap(), "event.ignored");
    // An explicit /ask there says where the agents are.
    let text = t.refused("bob@acme.com", "console:#random", "/ask anything").await;
    assert!(text.contains("No agent answers in #random"), "{text}");
    assert!(text.contains("#oncall (ops-oncall)") && text.contains("#product-bot (product-assistant)"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_posted_message_is_a_question_or_chatter_never_a_broken_command() {
    let t = TestApp::spawn().await;
    t.import_examples().await;
    // A message posted in a channel (it has a thread), as chat platforms send them.
    let posted = |channel: &str, text: &str, key: &str| {
        let sender = pincer_adapters::Sender {
            platform_user_id: "bob@acme.com".into(),
            display_name: None,
            verified_email: Some(pincer_commands::Email::parse("bob@acme.com").unwrap()),
            is_bot: false,
        };
        let thread = Some("1700000000.000100".to_string());
        pincer_adapters::ChannelEvent::new("local", channel.parse().unwrap(), thread, sender, text, key.into())
    };
    // In a channel with no agent: no reply, whatever the message parses as.
    let long = format!("here is the log: {}", "x".repeat(4100));
    for (i, text) in ["/etc/hosts is wrong again", long.as_str(), "/workspace Alice"].into_iter().enumerate() {
        let replies = t.router.handle(posted("console:#random", text, &format!("k-chatter-{i}"))).await;
        assert!(replies.is_empty(), "{replies:?}");
        assert_eq!(t.audit_actions().await.last().unwrap(), "event.ignored");
    }
    // In a bound channel, a `/word` that is not a command is a question.
    let replies =
        t.router.handle(posted("console:#oncall", "/var/log is fine, so why did the deploy fail?", "k-q")).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].kind, ReplyKind::Answer, "{replies:?}");
    assert!(replies[0].text.contains("14 October"), "{}", replies[0].text);
    // A mistake in a real command there still gets its usage.
    let replies = t.router.handle(posted("console:#oncall", "/workspace Alice", "k-bad")).await;
    assert!(replies[0].text.contains("Usage: /workspace NAME"), "{replies:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn an_observer_is_refused_every_mutation_with_a_clear_sentence() {
    let t = TestApp::spawn().await;
    let text = t.refused("olivia@acme.com", "console:#oncall", "/admin user add eve@acme.com member").await;
    assert!(text.starts_with("Observers can read answers and the audit log but cannot change anything"), "{text}");
    t.refused("olivia@acme.com", "console:#oncall", "/ask what happened?").await;
    t.refused("olivia@acme.com", "console:#oncall", "/admin agent disable ops-oncall because").await;
    // Reading the audit log is allowed.
    let text = t.say1("olivia@acme.com", "console:#oncall", "/admin audit verify").await;
    assert!(text.starts_with("Audit chain intact"), "{text}");
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'command.denied' AND metadata->>'reason' = 'observer_read_only'",
    )
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(denied, 3);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'eve@acme.com'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn members_cannot_administer_and_admins_can() {
    let t = TestApp::spawn().await;
    let text = t.refused("bob@acme.com", "console:#oncall", "/admin user list").await;
    assert_eq!(text, "Only admins can run /admin user list.");
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin user add Eve@Acme.com observer").await;
    assert!(text.starts_with("Added eve@acme.com as observer"), "{text}");
    let text = t.refused("dan@acme.com", "console:#oncall", "/admin user add eve@acme.com").await;
    assert!(text.contains("already in the org as observer"), "{text}");
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin user role eve@acme.com member").await;
    assert_eq!(text, "eve@acme.com is now member (was observer).");
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin user role eve@acme.com member").await;
    assert_eq!(text, "eve@acme.com is already member.");
    let text = t.say1("eve@acme.com", "console:#oncall", "/admin whoami").await;
    assert!(text.contains("eve@acme.com (member)"), "{text}");
    t.say1("dan@acme.com", "console:#oncall", "/admin user remove eve@acme.com").await;
    let text = t.refused("eve@acme.com", "console:#oncall", "/workspace").await;
    assert!(text.contains("not a member of this Pincer org"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn someone_made_an_observer_leaves_their_workspace() {
    let t = TestApp::spawn().await;
    t.say1("dan@acme.com", "console:#oncall", "/admin workspace create --user alice@acme.com --scope alice-lab").await;
    t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    t.say1("dan@acme.com", "console:#oncall", "/admin user role alice@acme.com observer").await;
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace").await;
    assert!(text.contains("shared workspace"), "{text}");
    // Made a member again, she is in shared and may switch back herself.
    t.say1("dan@acme.com", "console:#oncall", "/admin user role alice@acme.com member").await;
    let text = t.say1("alice@acme.com", "console:#oncall", "/workspace alice-lab").await;
    assert!(text.contains("alice-lab"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn removing_an_agents_owner_says_the_agent_needs_a_new_one() {
    let t = TestApp::spawn().await;
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin user remove alice@acme.com").await;
    assert!(text.starts_with("Removed alice@acme.com."), "{text}");
    assert!(text.contains("They owned agent product-assistant: give it a new owner in the config"), "{text}");
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin user remove bob@acme.com").await;
    assert!(!text.contains("owned"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn the_last_admin_can_be_neither_demoted_nor_removed() {
    let t = TestApp::spawn().await;
    let text = t.refused("dan@acme.com", "console:#oncall", "/admin user role dan@acme.com member").await;
    assert!(text.contains("last admin"), "{text}");
    t.refused("dan@acme.com", "console:#oncall", "/admin user remove dan@acme.com").await;
    t.say1("dan@acme.com", "console:#oncall", "/admin user role alice@acme.com admin").await;
    t.say1("dan@acme.com", "console:#oncall", "/admin user role dan@acme.com member").await;
    t.cleanup().await;
}

#[tokio::test]
async fn unknown_people_get_a_sentence_and_nothing_else() {
    let t = TestApp::spawn().await;
    let ev = t.event("slack:#oncall", "U999", None, "T1", "/ask hi", "k1");
    let replies = t.router.handle(ev).await;
    assert_eq!(replies.len(), 1);
    assert!(replies[0].text.contains("can't tell who you are"), "{replies:?}");
    let ev = t.event("slack:#oncall", "U998", Some("mallory@evil.com"), "T1", "/ask hi", "k2");
    assert!(t.router.handle(ev).await[0].text.contains("not a member"));
    let actions = t.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "event.denied").count(), 2, "{actions:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_platform_identity_links_by_verified_email_once_and_is_remembered() {
    let t = TestApp::spawn().await;
    let ev = t.event("slack:#oncall", "U1", Some("bob@acme.com"), "T1", "/admin whoami", "k1");
    assert!(t.router.handle(ev).await[0].text.contains("bob@acme.com (member)"));
    // Later events carry no e-mail; the link answers.
    let ev = t.event("slack:#oncall", "U1", None, "T1", "/admin whoami", "k2");
    assert!(t.router.handle(ev).await[0].text.contains("bob@acme.com (member)"));
    assert_eq!(t.audit_actions().await.iter().filter(|a| *a == "identity.link").count(), 1);
    t.cleanup().await;
}

const TRUSTED: &str = "\
org:
  name: Acme
  default_role: member
  trusted_tenants: [\"slack:T0ACME\"]
  users:
    - { email: dan@acme.com, role: admin }
agents:
  ops-oncall:
    owner: dan@acme.com
    prompt: prompts/ops-oncall.md
    channels: [\"slack:#oncall\"]
    memory_scopes: [incidents]
";

#[tokio::test]
async fn a_teammate_from_a_trusted_workspace_joins_with_the_default_role_and_a_removed_one_stays_out() {
    let (config, _dir) = config_from(TRUSTED);
    let t = TestApp::with_config(config).await;
    let ev = t.event("slack:#oncall", "U7", Some("carol@acme.com"), "T0ACME", "/admin whoami", "k1");
    assert!(t.router.handle(ev).await[0].text.contains("carol@acme.com (member)"));
    assert!(t.audit_actions().await.contains(&"user.join".to_string()));
    // Another Slack team is not trusted.
    let ev = t.event("slack:#oncall", "U8", Some("frank@acme.com"), "T0OTHER", "/admin whoami", "k2");
    assert!(t.router.handle(ev).await[0].text.contains("not a member"));
    // Removed: the trusted workspace does not bring them back.
    t.router
        .handle(t.event(
            "slack:#oncall",
            "UD",
            Some("dan@acme.com"),
            "T0ACME",
            "/admin user remove carol@acme.com",
            "k3",
        ))
        .await;
    let ev = t.event("slack:#oncall", "U7", Some("carol@acme.com"), "T0ACME", "/admin whoami", "k4");
    assert!(t.router.handle(ev).await[0].text.contains("not a member"));
    t.cleanup().await;
}

#[tokio::test]
async fn with_rbac_off_strangers_act_as_members_but_never_as_admins() {
    let (config, _dir) = config_from(&TRUSTED.replacen("org:\n", "rbac: false\norg:\n", 1));
    assert!(!config.rbac);
    let t = TestApp::with_config(config).await;
    let ev = t.event("slack:#oncall", "U5", Some("dev@local.test"), "TLOCAL", "/ask anything", "k1");
    assert_eq!(t.router.handle(ev).await[0].kind, ReplyKind::Answer);
    let ev = t.event("slack:#oncall", "U5", None, "TLOCAL", "/admin user add x@y.zz admin", "k2");
    let r = t.router.handle(ev).await;
    assert_eq!(r[0].text, "Only admins can run /admin user add.");
    t.cleanup().await;
}

#[tokio::test]
async fn a_disabled_agent_refuses_asks_until_enabled() {
    let t = TestApp::spawn().await;
    let text = t.refused("dan@acme.com", "console:#oncall", "/admin agent disable ops-oncall").await;
    assert!(text.contains("Say why"), "{text}");
    let text = t.say1("dan@acme.com", "console:#oncall", "/admin agent disable ops-oncall paging loop").await;
    assert!(text.starts_with("Disabled ops-oncall"), "{text}");
    let text = t.refused("bob@acme.com", "console:#oncall", "/ask what now?").await;
    assert_eq!(text, "The agent ops-oncall is disabled by dan@acme.com (paging loop), so it cannot answer now.");
    // Other agents are unaffected.
    assert_eq!(t.say("bob@acme.com", "console:#product-bot", "/ask roadmap").await[0].kind, ReplyKind::Answer);
    let list = t.say1("dan@acme.com", "console:#oncall", "/admin agent list").await;
    assert!(list.contains("ops-oncall — DISABLED by dan@acme.com (paging loop)"), "{list}");
    assert!(list.contains("owner dan@acme.com"), "{list}");
    t.say1("dan@acme.com", "console:#oncall", "/admin agent enable ops-oncall fixed").await;
    assert_eq!(t.say("bob@acme.com", "console:#oncall", "/ask what now?").await[0].kind, ReplyKind::Answer);
    let text = t.refused("dan@acme.com", "console:#oncall", "/admin agent disable nosuch x").await;
    assert!(text.contains("There is no agent nosuch"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_malformed_command_gets_its_usage_and_is_audited() {
    let t = TestApp::spawn().await;
    let text = t.refused("bob@acme.com", "console:#oncall", "/workspace Alice-Lab").await;
    assert!(text.contains("uppercase letter 'A'") && text.contains("Usage: /workspace NAME"), "{text}");
    let text = t.refused("bob@acme.com", "console:#oncall", "/deploy prod").await;
    assert!(text.contains("not a Pincer command"), "{text}");
    let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'command.invalid'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(invalid, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn every_handled_event_leaves_exactly_one_command_audit_row() {
    let t = TestApp::spawn().await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&t.app.store.pool).await.unwrap();
    for line in ["/help", "/workspace", "/admin whoami", "/ask x", "/admin user list", "/nope"] {
        t.say("bob@acme.com", "console:#oncall", line).await;
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&t.app.store.pool).await.unwrap();
    // Plus one identity.link for bob's first event on the console.
    assert_eq!(after - before, 7);
    t.cleanup().await;
}

#[tokio::test]
async fn a_newcomers_two_first_messages_at_once_both_get_through() {
    let (config, _dir) = config_from(TRUSTED);
    let t = TestApp::with_config(config).await;
    let a = t.event("slack:#oncall", "U42", Some("gina@acme.com"), "T0ACME", "/admin whoami", "j1");
    let b = t.event("slack:#oncall", "U42", Some("gina@acme.com"), "T0ACME", "/workspace", "j2");
    let (ra, rb) = tokio::join!(t.router.handle(a), t.router.handle(b));
    assert!(ra[0].text.contains("gina@acme.com (member)"), "{ra:?}");
    assert_ne!(rb[0].kind, ReplyKind::Error, "{rb:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_terminal_ask_whose_process_died_is_answered_at_the_next_chat_and_never_sent_to_a_platform() {
    use pincer::handlers::ask::{AnswerJob, AskJob};
    use pincer::store::{conversations, jobs, users};
    let t = TestApp::spawn().await;
    t.import_examples().await;
    // The state a `pincer chat` killed mid-answer leaves: the question
    // stored and its answer job held by a process that is gone.
    let mut conn = t.conn().await;
    let bob =
        users::by_email(&mut conn, &pincer_commands::Email::parse("bob@acme.com").unwrap()).await.unwrap().unwrap();
    let question = "why did the deploy fail?";
    let key = conversations::ThreadKey {
        platform: "console",
        tenant: "local",
        channel: "#oncall",
        thread: None,
        asker: "bob@acme.com",
    };
    let (conversation_id, _) =
        conversations::open_with_message(&mut conn, key, "ops-oncall", bob.id, None, question).await.unwrap();
    let ask = AskJob {
        agent: pincer_commands::AgentName::parse("ops-oncall").unwrap(),
        user_email: "bob@acme.com".into(),
        user_id: bob.id,
        question: question.into(),
        scopes: vec![
            pincer_commands::ScopeName::parse("incidents").unwrap(),
            pincer_commands::ScopeName::parse("postmortems").unwrap(),
        ],
        workspace: None,
        conversation_id,
        new_thread: false,
        prefetched: None,
    };
    let event = t.event("console:#oncall", "bob@acme.com", Some("bob@acme.com"), "local", question, "k-dead");
    let job = AnswerJob { ask, event, progress_id: None, run: None };
    let payload = serde_json::to_value(&job).unwrap();
    jobs::enqueue_claimed(&mut conn, jobs::JobKind::Answer, &payload, "worker-gone", std::time::Duration::ZERO)
        .await
        .unwrap();
    // Platform dispatchers leave terminal replies alone.
    let waiting = pincer_adapters::Reply::info("for whoever opens #oncall next");
    let row = pincer::router::outbound(&job.event, &waiting, false, None, std::time::Duration::ZERO);
    pincer::store::outbox::insert(&mut conn, &row).await.unwrap();
    drop(conn);
    let claimed =
        pincer::store::outbox::claim(&t.app.store.pool, std::time::Duration::from_secs(30), 10, &[]).await.unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let missed = pincer::handlers::ask::catch_up(&t.app, "bob@acme.com", "#oncall").await.unwrap();
    assert_eq!(missed.len(), 2, "{missed:?}");
    assert_eq!(missed[0].text, "for whoever opens #oncall next");
    assert!(missed[1].text.starts_with("From memory"), "{missed:?}");
    assert!(pincer::handlers::ask::catch_up(&t.app, "bob@acme.com", "#oncall").await.unwrap().is_empty(), "shown once");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(left, 0);
    // And a live terminal ask is a job while it runs, completed with its answer.
    let r = t.say("bob@acme.com", "console:#oncall", "/ask why did the deploy fail?").await;
    assert!(r[0].text.starts_with("From memory"), "{r:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(left, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn facts_read_at_ingest_are_used_only_while_fresh_and_for_the_same_agent() {
    use std::time::{Duration, Instant};

    use pincer::router::QueuedOutcome;
    use pincer::store::agents::{self, AgentState};
    use pincer::store::{routing, users};

    let t = TestApp::spawn().await;
    let mut conn = t.conn().await;
    let bob =
        users::by_email(&mut conn, &pincer_commands::Email::parse("bob@acme.com").unwrap()).await.unwrap().unwrap();
    let agent = pincer_commands::AgentName::parse("ops-oncall").unwrap();
    // Break-glass: the agent is off in the database...
    assert!(agents::disable(&mut conn, &agent, "dan@acme.com", "incident").await.unwrap());
    drop(conn);
    // ...while facts read earlier say it was on.
    let enabled = |read_at: Instant, for_agent: &str| routing::Facts {
        for_agent: Some(for_agent.into()),
        read_at,
        earlier_in_thread: false,
        user: Some(bob.clone()),
        agent: Some(AgentState {
            name: "ops-oncall".into(),
            disabled_at: None,
            disabled_by: None,
            disabled_reason: None,
        }),
        conversation: None,
        found: None,
    };
    let route = |key: &'static str, facts: routing::Facts| {
        let t = &t;
        async move {
            let ev = t.event("console:#oncall", "bob@acme.com", Some("bob@acme.com"), "local", "why did it fail?", key);
            let worker = t.app.handoff.worker.clone();
            let lease = Duration::from_secs(60);
            let agent = Some("ops-oncall");
            let (id, _) = routing::enqueue_with_facts(&t.app.store.pool, &ev, &worker, lease, agent, None)
                .await
                .unwrap()
                .unwrap();
            t.router.handle_queued(&ev, id, &worker, Some(facts)).await.unwrap()
        }
    };
    // Fresh facts for the bound agent are taken as read: the ask goes through
    // (which is what shows the router used them rather than the database),
    // to be answered before anything is written.
    let fresh = route("k-fresh", enabled(Instant::now(), "ops-oncall")).await;
    assert!(matches!(fresh, QueuedOutcome::Deferred(_)), "{fresh:?}");
    // (Its event's job, still held, would hold the thread's later asks back.)
    sqlx::query("DELETE FROM jobs").execute(&t.app.store.pool).await.unwrap();
    // Stale ones, or ones read for another agent, are read again: refused.
    let stale = route("k-stale", enabled(Instant::now() - Duration::from_secs(1), "ops-oncall")).await;
    assert!(matches!(stale, QueuedOutcome::Routed(None)), "{stale:?}");
    let other = route("k-other", enabled(Instant::now(), "product-assistant")).await;
    assert!(matches!(other, QueuedOutcome::Routed(None)), "{other:?}");
    let denied: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'command.denied'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(denied, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn commands_and_other_peoples_asks_do_not_wait_behind_an_earlier_ask_but_its_conversations_do() {
    use std::time::Duration;

    use pincer::router::QueuedOutcome;
    use pincer::store::routing;

    let t = TestApp::spawn().await;
    let worker = t.app.handoff.worker.clone();
    let lease = Duration::from_secs(60);
    let queue = |ev: pincer_adapters::ChannelEvent| {
        let (t, worker) = (&t, worker.clone());
        async move {
            let (id, facts) =
                routing::enqueue_with_facts(&t.app.store.pool, &ev, &worker, lease, Some("ops-oncall"), None)
                    .await
                    .unwrap()
                    .unwrap();
            (ev, id, facts)
        }
    };
    // An ask still being answered (or paused for an approval) in #oncall:
    // its job is held.
    let bob =
        |text: &str, key: &str| t.event("console:#oncall", "bob@acme.com", Some("bob@acme.com"), "local", text, key);
    let (_, _, first) = queue(bob("why did the deploy fail?", "k-held")).await;
    assert!(!first.earlier_in_thread);
    // A later ask in the same place waits for it...
    let (_, _, later) = queue(bob("/ask and the rollback?", "k-later")).await;
    assert!(later.earlier_in_thread);
    // ...but another person's ask at the top of the channel is in a
    // conversation of its own, and does not wait.
    let alice =
        t.event("console:#oncall", "alice@acme.com", Some("alice@acme.com"), "local", "/ask status?", "k-alice");
    let (_, _, other) = queue(alice).await;
    assert!(!other.earlier_in_thread);
    // ...but a command does not: break-glass goes through at once.
    let disable = t.event(
        "console:#oncall",
        "dan@acme.com",
        Some("dan@acme.com"),
        "local",
        "/admin agent disable ops-oncall incident",
        "k-admin",
    );
    let (ev, id, facts) = queue(disable).await;
    assert!(!facts.earlier_in_thread);
    let out = t.router.handle_queued(&ev, id, &worker, Some(facts)).await.unwrap();
    assert!(matches!(out, QueuedOutcome::Routed(None)), "{out:?}");
    let disabled: bool = sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM agents WHERE name = 'ops-oncall'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert!(disabled);
    let (_, _, help) = queue(bob("/help", "k-help")).await;
    assert!(!help.earlier_in_thread);
    t.cleanup().await;
}
