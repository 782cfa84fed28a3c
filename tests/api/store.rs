//! The store against the real schema.

use crate::helpers::TestApp;

#[tokio::test]
async fn every_named_query_fits_the_migrated_schema() {
    let t = TestApp::spawn().await;
    let mut conn = t.conn().await;
    for (name, sql) in pincer::store::all_queries() {
        // PREPARE parses, plans and type-checks the query without running it.
        let stmt = format!("PREPARE check_{} AS {sql}", name.replace('.', "_"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("query {name} does not fit the schema: {e}"));
    }
    drop(conn);
    t.cleanup().await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_config_sync_keeps_runtime_changes() {
    let t = TestApp::spawn().await;
    t.say1("dan@acme.com", "console:#oncall", "/admin user role bob@acme.com observer").await;
    t.say1("dan@acme.com", "console:#oncall", "/admin agent disable ops-oncall drill").await;
    t.app.store.migrate().await.unwrap();
    pincer::app::sync_config(&t.app.store, &t.app.config).await.unwrap();
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE email = 'bob@acme.com'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(role, "observer", "a restart does not undo an admin's change");
    let disabled: bool = sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM agents WHERE name = 'ops-oncall'")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert!(disabled, "a restart does not re-enable a disabled agent");
    t.cleanup().await;
}

#[tokio::test]
async fn reimporting_a_file_replaces_its_passages() {
    let t = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.md");
    std::fs::write(&f, "# A\n\nold fact about turbines\n\n# B\n\nsecond\n").unwrap();
    let scope = pincer_commands::ScopeName::parse("incidents").unwrap();
    let r = pincer::memory::import_file(&t.app.store, &scope, &f, "test").await.unwrap();
    assert_eq!((r.passages, r.replaced), (2, 0));
    std::fs::write(&f, "# A\n\nnew fact about turbines\n").unwrap();
    let r = pincer::memory::import_file(&t.app.store, &scope, &f, "test").await.unwrap();
    assert_eq!((r.passages, r.replaced), (1, 2));
    let text = t.say1("bob@acme.com", "console:#oncall", "/ask turbines").await;
    assert!(text.contains("new fact") && !text.contains("old fact"), "{text}");
    let own: bool = sqlx::query_scalar("SELECT to_regclass('memory_s_' || md5('incidents')) IS NOT NULL")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert!(own, "a scope's first write gives it its own partition");
    let stray: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memory_items_default").fetch_one(&t.app.store.pool).await.unwrap();
    assert_eq!(stray, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_passage_is_found_by_the_headings_it_sits_under_but_not_by_a_plain_files_line_number() {
    let t = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("roadmap.md");
    std::fs::write(&md, "# Roadmap, Q4\n\n## Billing v2\n\nInvoices move to usage-based pricing in November.\n")
        .unwrap();
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "Turbines are inspected every spring.\n").unwrap();
    let scope = pincer_commands::ScopeName::parse("product").unwrap();
    for f in [&md, &txt] {
        pincer::memory::import_file(&t.app.store, &scope, f, "test").await.unwrap();
    }
    let found = t.say1("dan@acme.com", "console:#product-bot", "/admin memory search product roadmap").await;
    assert!(found.starts_with("1 passage in product matches:") && found.contains("usage-based"), "{found}");
    let found = t.say1("dan@acme.com", "console:#product-bot", "/admin memory search product billing").await;
    assert!(found.contains("usage-based"), "{found}");
    let answer = t.say1("alice@acme.com", "console:#product-bot", "what is on the roadmap?").await;
    assert!(answer.contains("usage-based"), "{answer}");
    // A plain-text passage's locator ("line 1") is not searchable text.
    let none = t.say1("dan@acme.com", "console:#product-bot", "/admin memory search product line").await;
    assert_eq!(none, "Nothing in product matches that.");
    t.cleanup().await;
}

#[tokio::test]
async fn the_housekeeping_lease_has_one_holder_and_prunes_old_keys() {
    let t = TestApp::spawn().await;
    sqlx::query("INSERT INTO inbound_events (platform, dedupe_key, received_at) VALUES ('slack', 'old', now() - interval '30 days'), ('slack', 'new', now())")
        .execute(&t.app.store.pool)
        .await
        .unwrap();
    let ttl = std::time::Duration::from_secs(60);
    assert_eq!(pincer::daemon::tick(&t.app, "a", ttl).await.unwrap(), Some(1));
    assert_eq!(pincer::daemon::tick(&t.app, "b", ttl).await.unwrap(), None, "b waits while a holds the lease");
    assert_eq!(pincer::daemon::tick(&t.app, "a", ttl).await.unwrap(), Some(0));
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT dedupe_key FROM inbound_events").fetch_all(&t.app.store.pool).await.unwrap();
    assert_eq!(keys, vec!["new".to_string()]);
    t.cleanup().await;
}

#[tokio::test]
async fn admins_can_list_search_and_forget_memory_and_forgetting_is_audited() {
    let t = TestApp::spawn().await;
    t.import_examples().await;
    let list = t.say1("dan@acme.com", "console:#oncall", "/admin memory list incidents 2").await;
    assert!(list.starts_with("The newest 2 passages in incidents:"), "{list}");
    let found = t.say1("dan@acme.com", "console:#oncall", "/admin memory search postmortems lock timeout").await;
    assert!(found.contains("deploy-locks.md"), "{found}");
    // A count agrees with its noun.
    let one = t.say1("dan@acme.com", "console:#oncall", "/admin memory list incidents 1").await;
    assert!(one.starts_with("The newest passage in incidents:"), "{one}");
    let single = t.say1("dan@acme.com", "console:#product-bot", "/admin memory search product billing").await;
    assert!(single.starts_with("1 passage in product matches:"), "{single}");
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM memory_items WHERE scope = 'incidents' AND body LIKE '%14 October%' LIMIT 1",
    )
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    let text = t.say1("dan@acme.com", "console:#oncall", &format!("/admin memory forget {id}")).await;
    assert!(text.starts_with(&format!("Forgot passage #{id} (incidents:")), "{text}");
    t.refused("dan@acme.com", "console:#oncall", &format!("/admin memory forget {id}")).await;
    t.refused("bob@acme.com", "console:#oncall", "/admin memory list incidents").await;
    let meta: serde_json::Value =
        sqlx::query_scalar("SELECT metadata FROM audit_log WHERE action = 'admin.memory.forget' AND (metadata->>'ok')::bool ORDER BY seq LIMIT 1")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(meta["id"], id);
    assert_eq!(meta["scope"], "incidents");
    t.cleanup().await;
}

#[tokio::test]
async fn the_pool_reuses_clean_connections_closes_doubtful_ones_and_replaces_dead_ones() {
    use std::str::FromStr;
    use std::time::Duration;

    use pincer::store::Pool;
    use sqlx::Connection;
    use sqlx::postgres::PgConnectOptions;

    let t = TestApp::spawn().await;
    let options = PgConnectOptions::from_str(&crate::helpers::db_url(&t.db)).unwrap();
    let pool = Pool::new(options, 2, Duration::from_millis(300));
    let pid = || sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&pool);
    let mut admin = sqlx::PgConnection::connect(&crate::helpers::db_url(&t.db)).await.unwrap();
    let kill = async |admin: &mut sqlx::PgConnection, pid: i32| {
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(admin).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // One connection serves statement after statement, and a committed
    // transaction: nothing else opened.
    let first = pid().await.unwrap();
    assert_eq!(pid().await.unwrap(), first);
    let tx = pool.begin().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(pid().await.unwrap(), first);
    assert_eq!(pool.idle(), 1);

    // A database error keeps the connection.
    assert!(sqlx::query("SELECT 1/0").execute(&pool).await.is_err());
    assert_eq!(pid().await.unwrap(), first);

    // A transaction dropped without a commit is rolled back at once — its
    // locks are free the moment it is dropped — and its connection closed.
    {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("CREATE TABLE pool_probe (x int)").execute(&mut *tx).await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(4242)").execute(&mut *tx).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)").fetch_one(&mut admin).await.unwrap();
    assert!(free, "the dropped transaction still holds its lock");
    let kept: bool = sqlx::query_scalar("SELECT to_regclass('pool_probe') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!kept, "the dropped transaction was committed");
    let second = pid().await.unwrap();
    assert_ne!(second, first);

    // A statement given up half-way: its connection is closed, so the next
    // statement neither waits for it nor sees its result.
    let slow = sqlx::query("SELECT pg_sleep(5)").execute(&pool);
    assert!(tokio::time::timeout(Duration::from_millis(30), slow).await.is_err());
    let started = std::time::Instant::now();
    let n: i32 = sqlx::query_scalar("SELECT 41 + 1").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 42);
    assert!(started.elapsed() < Duration::from_secs(2), "waited for the abandoned statement");
    let third = pid().await.unwrap();
    assert_ne!(third, second);

    // A connection used directly comes back after a check (or at once when
    // released as clean).
    let direct = pool.acquire().await.unwrap();
    drop(direct);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.idle(), 1, "the checked connection did not come back");
    pool.acquire().await.unwrap().release();
    assert_eq!(pool.idle(), 1);

    // A connection the server ended while it sat idle fails once, is closed,
    // and the next statement gets a new one...
    kill(&mut admin, third).await;
    assert!(pid().await.is_err(), "a killed connection answered");
    let fourth = pid().await.unwrap();
    assert_ne!(fourth, third);
    // ...unless it sat idle long enough to be checked first: then nothing fails.
    pool.set_idle_check(Duration::from_millis(10));
    kill(&mut admin, fourth).await;
    let fifth = pid().await.unwrap();
    assert_ne!(fifth, fourth);
    pool.set_idle_check(pincer::store::pool::IDLE_CHECK);

    // A transaction whose BEGIN meets a killed connection: an error (not a
    // panic), the connection closed, the next one fine.
    kill(&mut admin, fifth).await;
    assert!(pool.begin().await.is_err(), "BEGIN on a killed connection succeeded");
    let mut tx = pool.begin().await.unwrap();
    let sixth: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_ne!(sixth, fifth);

    // At most two at once: a third waits, then times out.
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolTimedOut)));
    a.release();
    b.release();
    assert_eq!(pool.idle(), 2);

    pool.close().await;
    assert_eq!(pool.idle(), 0);
    assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
    admin.close().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn the_pool_opens_one_connection_at_a_time_and_waiters_take_connections_given_back() {
    use std::str::FromStr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use pincer::store::Pool;
    use sqlx::postgres::PgConnectOptions;

    let t = TestApp::spawn().await;
    let options = PgConnectOptions::from_str(&crate::helpers::db_url(&t.db)).unwrap();
    // A slow way to the database: each connection is forwarded only after
    // 300 ms, as a busy server starts one (with `fail_first`, the first is
    // dropped instead, after the same wait).
    let slow_proxy = async |fail_first: bool| {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = proxy.local_addr().unwrap().port();
        let (host, db_port) = (options.get_host().to_string(), options.get_port());
        let opened = Arc::new(AtomicUsize::new(0));
        let counted = opened.clone();
        let forwarding = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = proxy.accept().await else { return };
                let n = counted.fetch_add(1, Ordering::SeqCst);
                let host = host.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if fail_first && n == 0 {
                        return;
                    }
                    if let Ok(mut server) = tokio::net::TcpStream::connect((host.as_str(), db_port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        (Pool::new(options.clone().port(port), 8, Duration::from_secs(10)), opened, forwarding)
    };
    let pid = |pool: &Pool| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&pool).await }
    };

    // Four statements at once on an empty pool: one caller opens a
    // connection; the others wait and take it as it comes back, and a
    // second is opened only because the first was in use when its open
    // ended — not four connections for four callers.
    let (pool, opened, forwarding) = slow_proxy(false).await;
    let pids: Vec<i32> =
        futures_util::future::join_all((0..4).map(|_| pid(&pool))).await.into_iter().map(Result::unwrap).collect();
    let distinct: std::collections::HashSet<i32> = pids.iter().copied().collect();
    let n = opened.load(Ordering::SeqCst);
    assert!(n <= 2, "{n} connections opened for 4 statements at once");
    assert_eq!(distinct.len(), n);
    pool.close().await;
    forwarding.abort();

    // Connections the pool had no use for during the idle timeout are
    // closed one by one as connections are given back; one always stays.
    let (pool, _, forwarding) = slow_proxy(false).await;
    let held = futures_util::future::join_all((0..3).map(|_| pool.acquire())).await;
    held.into_iter().for_each(|c| c.unwrap().release());
    assert_eq!(pool.idle(), 3);
    pool.set_idle_timeout(Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(200)).await;
    pid(&pool).await.unwrap();
    assert_eq!(pool.idle(), 2);
    for _ in 0..3 {
        pid(&pool).await.unwrap();
    }
    assert_eq!(pool.idle(), 1);
    pool.close().await;
    forwarding.abort();

    // A caller that waited for an open that failed does not wait on: it
    // opens its own.
    let (pool, opened, forwarding) = slow_proxy(true).await;
    let (first, second) = tokio::join!(pid(&pool), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pid(&pool).await
    });
    assert!(first.is_err(), "the dropped open succeeded: {first:?}");
    assert!(second.is_ok(), "the waiting caller failed: {second:?}");
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    pool.close().await;
    forwarding.abort();
    t.cleanup().await;
}

#[tokio::test]
async fn a_reply_taken_over_from_a_lapsed_delivery_or_an_unsure_failure_is_marked_maybe_sent() {
    use std::time::Duration;

    use pincer::store::outbox::{self, NewOutbound};
    let t = TestApp::spawn().await;
    let reply = pincer_adapters::Reply::answer("hi");
    let row = |channel: &'static str| NewOutbound {
        platform: "slack",
        tenant: "T1",
        channel,
        thread: Some("1.1"),
        response_url: None,
        recipient: None,
        reply: &reply,
        is_progress: false,
        progress_of: None,
        delay: Duration::ZERO,
    };
    let mut conn = t.conn().await;
    let lapsed = outbox::insert(&mut conn, &row("CA")).await.unwrap();
    let refused = outbox::insert(&mut conn, &row("CB")).await.unwrap();
    let unsure = outbox::insert(&mut conn, &row("CC")).await.unwrap();
    drop(conn);
    let pool = &t.app.store.pool;
    let first = outbox::claim(pool, Duration::from_millis(200), 10, &[]).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|r| !r.maybe_sent && r.attempts == 1));
    // A 429 says the platform took nothing; a 5xx does not say.
    outbox::retry(pool, refused, 1, Duration::ZERO, "rate limited", false).await.unwrap();
    outbox::retry(pool, unsure, 1, Duration::ZERO, "HTTP 502", true).await.unwrap();
    // `lapsed` stays `sending` until its lease runs out, as if its process died.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut again = outbox::claim(pool, Duration::from_secs(30), 10, &[]).await.unwrap();
    again.sort_by_key(|r| r.id);
    let seen: Vec<(i64, i32, bool)> = again.iter().map(|r| (r.id, r.attempts, r.maybe_sent)).collect();
    assert_eq!(seen, vec![(lapsed, 2, true), (refused, 2, false), (unsure, 2, true)]);
    // Recorded in one batch; a stale claim's record is fenced off.
    let batch = [
        outbox::Delivery { id: lapsed, attempts: 2, platform_ts: Some("9.1".into()) },
        outbox::Delivery { id: refused, attempts: 1, platform_ts: Some("9.2".into()) },
    ];
    outbox::delivered(pool, &batch).await.unwrap();
    let states: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, platform_ts FROM outbox ORDER BY id").fetch_all(pool).await.unwrap();
    assert_eq!(states[0], (lapsed, "delivered".to_string(), Some("9.1".to_string())));
    assert_eq!(states[1], (refused, "sending".to_string(), None));
    // A reply waits behind the one before it in its channel while that one
    // is open — unless the caller knows it delivered (not yet recorded).
    let mut conn = t.conn().await;
    let next = outbox::insert(&mut conn, &row("CC")).await.unwrap();
    drop(conn);
    assert!(outbox::claim(pool, Duration::from_secs(30), 10, &[]).await.unwrap().is_empty());
    let behind = outbox::claim(pool, Duration::from_secs(30), 10, &[unsure]).await.unwrap();
    assert_eq!(behind.iter().map(|r| r.id).collect::<Vec<_>>(), vec![next]);
    t.cleanup().await;
}

#[tokio::test]
async fn a_job_whose_lease_ran_out_is_claimed_again_only_if_this_process_is_not_running_it() {
    use std::time::Duration;

    use pincer::store::StoreError;
    use pincer::store::jobs::{self, JobKind};

    let t = TestApp::spawn().await;
    let pool = &t.app.store.pool;
    let mut conn = t.conn().await;
    let id =
        jobs::enqueue_claimed(&mut conn, JobKind::Answer, &serde_json::json!({}), "w1", Duration::ZERO).await.unwrap();
    drop(conn);
    // Its lease has run out; the process that holds it is still running it.
    assert!(jobs::claim(pool, "w1", Duration::from_secs(60), 10, &[id]).await.unwrap().is_empty());
    // Another process takes it over...
    let taken = jobs::claim(pool, "w2", Duration::from_secs(60), 10, &[]).await.unwrap();
    assert_eq!(taken.iter().map(|j| j.id).collect::<Vec<_>>(), [id]);
    // ...and the first run may no longer start a tool with side effects.
    let lost = jobs::mark_side_effects(pool, id, "w1").await.unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost(j) if j == id), "{lost:?}");
    jobs::mark_side_effects(pool, id, "w2").await.unwrap();
    t.cleanup().await;
}
