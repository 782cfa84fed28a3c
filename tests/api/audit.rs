//! The audit chain: intact after real traffic, and every kind of tampering
//! detected and located.

use pincer::store::audit;

use crate::helpers::TestApp;

async fn with_history() -> TestApp {
    let t = TestApp::spawn().await;
    for line in [
        "/workspace",
        "/admin user add eve@acme.com",
        "/admin user role eve@acme.com observer",
        "/admin audit tail 3",
        "/ask x",
    ] {
        t.say("dan@acme.com", "console:#oncall", line).await;
    }
    t
}

async fn verify(t: &TestApp) -> audit::VerifyReport {
    audit::verify(&mut *t.conn().await, None).await.unwrap()
}

/// Runs SQL as someone who bypasses the append-only triggers (a superuser).
async fn tamper(t: &TestApp, sql: &str) {
    let mut c = t.conn().await;
    sqlx::query("SET session_replication_role = replica").execute(&mut *c).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut *c).await.unwrap();
    sqlx::query("SET session_replication_role = origin").execute(&mut *c).await.unwrap();
}

#[tokio::test]
async fn the_chain_is_intact_after_real_traffic() {
    let t = with_history().await;
    let r = verify(&t).await;
    assert_eq!(r.broken, None);
    assert!(r.rows >= 6, "{r:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn the_log_refuses_updates_and_deletes() {
    let t = with_history().await;
    let err =
        sqlx::query("UPDATE audit_log SET action = 'x' WHERE seq = 1").execute(&t.app.store.pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(sqlx::query("DELETE FROM audit_log").execute(&t.app.store.pool).await.is_err());
    assert!(sqlx::query("TRUNCATE audit_log").execute(&t.app.store.pool).await.is_err());
    t.cleanup().await;
}

#[tokio::test]
async fn an_altered_row_is_detected_at_its_seq() {
    let t = with_history().await;
    tamper(&t, "UPDATE audit_log SET metadata = jsonb_set(metadata, '{role}', '\"admin\"') WHERE seq = 3").await;
    let b = verify(&t).await.broken.unwrap();
    assert_eq!(b.seq, 3);
    assert!(b.reason.contains("altered"), "{b:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_deleted_row_is_detected_at_its_seq() {
    let t = with_history().await;
    tamper(&t, "DELETE FROM audit_log WHERE seq = 2").await;
    let b = verify(&t).await.broken.unwrap();
    assert_eq!(b.seq, 2);
    assert!(b.reason.contains("missing"), "{b:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn reordered_rows_are_detected() {
    let t = with_history().await;
    tamper(&t, "UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
    tamper(&t, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    tamper(&t, "UPDATE audit_log SET seq = 3 WHERE seq = -2").await;
    assert_eq!(verify(&t).await.broken.unwrap().seq, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn a_truncated_tail_is_detected() {
    let t = with_history().await;
    let last: i64 = sqlx::query_scalar("SELECT max(seq) FROM audit_log").fetch_one(&t.app.store.pool).await.unwrap();
    tamper(&t, &format!("DELETE FROM audit_log WHERE seq >= {}", last - 1)).await;
    let b = verify(&t).await.broken.unwrap();
    assert_eq!(b.seq, last - 1);
    assert!(b.reason.contains("cut off"), "{b:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_rewritten_chain_is_detected_by_its_head() {
    let t = with_history().await;
    // Rewriting a row and recomputing its hash breaks the link to the next row.
    let row: audit::AuditRow =
        sqlx::query_as("SELECT * FROM audit_log WHERE seq = 2").fetch_one(&t.app.store.pool).await.unwrap();
    let meta = serde_json::json!({"forged": true});
    let hash = audit::row_hash(&row.prev_hash, 2, &row.ts, row.user_email.as_deref(), &row.action, &meta);
    tamper(&t, &format!("UPDATE audit_log SET metadata = '{meta}', row_hash = '{hash}' WHERE seq = 2")).await;
    let b = verify(&t).await.broken.unwrap();
    assert_eq!(b.seq, 3, "{b:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn verify_in_chat_reports_the_first_bad_seq() {
    let t = with_history().await;
    tamper(&t, "UPDATE audit_log SET user_email = 'someone@else.com' WHERE seq = 4").await;
    let text = t.refused("dan@acme.com", "console:#oncall", "/admin audit verify").await;
    assert!(text.starts_with("Audit chain BROKEN at seq 4"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn verify_is_not_fooled_by_rows_appended_while_it_runs() {
    let t = with_history().await;
    let router = t.router.clone();
    let session = t.session("bob@acme.com", "console:#oncall");
    let writer = tokio::spawn(async move {
        for _ in 0..150 {
            router.handle(session.event("/workspace")).await;
        }
    });
    let mut checks = 0;
    while !writer.is_finished() {
        assert_eq!(verify(&t).await.broken, None);
        checks += 1;
    }
    writer.await.unwrap();
    assert!(checks > 0);
    assert_eq!(verify(&t).await.broken, None);
    t.cleanup().await;
}
