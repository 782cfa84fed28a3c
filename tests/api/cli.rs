//! The real `pincer` binary: config check, migrate, memory import, chat with
//! piped input, admin, and audit verify's exit status.

use crate::helpers::{TestApp, db_url, drop_db, pincer};

fn env(db: &str) -> Vec<(&'static str, String)> {
    vec![("DATABASE_URL", db_url(db)), ("PINCER_CONFIG", "examples/pincer.yaml".into())]
}

fn run(args: &[&str], db: &str, stdin: Option<&str>) -> (i32, String, String) {
    let e = env(db);
    let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pincer(args, &e, stdin)
}

#[test]
fn config_check_accepts_the_example_and_points_at_errors() {
    let (code, out, _) = pincer(&["config", "check", "--config", "examples/pincer.yaml"], &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK — org Acme, 4 people (1 admin), 2 agents"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml"))
        .unwrap()
        .replace("owner: dan@acme.com", "owner: carol@acme.com");
    std::fs::write(&bad, text).unwrap();
    std::fs::create_dir(dir.path().join("prompts")).unwrap();
    for p in ["product-assistant.md", "ops-oncall.md"] {
        std::fs::copy(crate::helpers::root().join("examples/prompts").join(p), dir.path().join("prompts").join(p))
            .unwrap();
    }
    let (code, _, err) = pincer(&["config", "check", "--config", bad.to_str().unwrap()], &[], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.yaml:45:5: agents.ops-oncall.owner: carol@acme.com is not declared under org.users"),
        "{err}"
    );
    assert!(err.contains("hint: every agent needs an owner"), "{err}");
    // A bad config never starts anything.
    let (code, _, err) =
        pincer(&["--config", bad.to_str().unwrap(), "migrate"], &[("DATABASE_URL", "postgres://127.0.0.1:1/x")], None);
    assert_eq!(code, 1);
    assert!(err.contains("The config has errors"), "{err}");
}

#[tokio::test]
async fn the_demo_flow_works_through_the_binary() {
    let db = format!("pincer_cli_{}", uuid::Uuid::new_v4().simple());
    let (code, out, err) = run(&["migrate"], &db, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Applied ") && out.contains("Added 4 people from the config."), "{out}");
    let (code, out, err) = run(&["migrate"], &db, None);
    assert_eq!((code, out.as_str()), (0, "Database is up to date.\n"), "{err}");
    let (code, out, err) = run(
        &["memory", "import", "--scope", "incidents", "examples/memory/incidents/2026-10-14-deploy-failure.md"],
        &db,
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Imported 2 passages"), "{out}");
    let (code, out, err) =
        run(&["admin", "workspace", "create", "--user", "alice@acme.com", "--scope", "alice-lab"], &db, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Created workspace alice-lab"), "{out}");
    // An observer could never enter one; refusals name the shell's commands.
    let (code, _, err) =
        run(&["admin", "workspace", "create", "--user", "olivia@acme.com", "--scope", "olab"], &db, None);
    assert_eq!(code, 1);
    assert!(err.contains("olivia@acme.com is an observer") && err.contains("pincer admin user role"), "{err}");
    let script = "/ask why did the deploy fail?\n/workspace alice-lab\n/workspace\n:as olivia@acme.com\n/admin user add eve@acme.com\n";
    let (code, out, err) =
        run(&["chat", "--user", "alice@acme.com", "--channel", "console:#oncall"], &db, Some(script));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Every deploy failed for two hours on 14 October."), "{out}");
    assert!(out.contains("Switched to workspace alice-lab"), "{out}");
    assert!(out.contains("You are in workspace alice-lab"), "{out}");
    assert!(out.contains("! Observers can read answers and the audit log but cannot change anything"), "{out}");
    let (code, out, _) = run(&["admin", "audit", "verify"], &db, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Audit chain intact"), "{out}");
    // Members cannot use the admin shell as themselves.
    let (code, _, err) = run(&["admin", "--as", "bob@acme.com", "user", "list"], &db, None);
    assert_eq!(code, 1);
    assert!(err.contains("Only admins"), "{err}");
    // Tamper with one row: verify fails, naming it.
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db_url(&db)).await.unwrap();
        sqlx::raw_sql(
            "SET session_replication_role = replica; UPDATE audit_log SET action = 'nothing.happened' WHERE seq = 3;",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    let (code, _, err) = run(&["admin", "audit", "verify"], &db, None);
    assert_eq!(code, 1);
    assert!(err.contains("Audit chain BROKEN at seq 3"), "{err}");
    // Break glass from the shell.
    let (code, out, err) = run(&["admin", "disable-agent", "ops-oncall", "--reason", "drill"], &db, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Disabled ops-oncall"), "{out}");
    drop_db(&db).await;
}

#[tokio::test]
async fn admin_commands_from_the_shell_are_audited_like_chat() {
    let t = TestApp::spawn().await;
    let (code, out, err) = run(&["admin", "user", "add", "eve@acme.com", "observer"], &t.db, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Added eve@acme.com as observer"), "{out}");
    let row: (Option<String>, serde_json::Value) =
        sqlx::query_as("SELECT user_email, metadata FROM audit_log WHERE action = 'admin.user.add'")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(row.0.as_deref(), Some("dan@acme.com"));
    assert_eq!(row.1["platform"], "cli");
    t.cleanup().await;
}

#[tokio::test]
async fn admin_commands_go_on_without_secrets_they_do_not_use_and_commands_that_use_them_do_not() {
    let t = TestApp::spawn().await;
    // The example with a model whose key is in a variable this shell lacks.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pincer.yaml");
    let text = std::fs::read_to_string(crate::helpers::root().join("examples/pincer.yaml")).unwrap();
    let provider = "providers:\n  default:\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    api_key: env://PINCER_TEST_UNSET_MODEL_KEY\n";
    std::fs::write(&config, format!("{provider}{text}")).unwrap();
    std::fs::create_dir(dir.path().join("prompts")).unwrap();
    for p in ["product-assistant.md", "ops-oncall.md"] {
        std::fs::copy(crate::helpers::root().join("examples/prompts").join(p), dir.path().join("prompts").join(p))
            .unwrap();
    }
    let env = [("DATABASE_URL", db_url(&t.db)), ("PINCER_CONFIG", config.display().to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = pincer(&["admin", "user", "add", "eve@acme.com", "observer"], &env, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Added eve@acme.com as observer"), "{out}");
    assert!(
        err.contains("providers.default.api_key:")
            && err.contains("PINCER_TEST_UNSET_MODEL_KEY")
            && err.contains("left unset"),
        "{err}"
    );
    // A command that would call the model still needs its key, and the
    // checks of the audit log and the set-up need every secret.
    for args in [&["chat", "--user", "dan@acme.com"][..], &["admin", "audit", "verify"], &["admin", "doctor"]] {
        let (code, _, err) = pincer(args, &env, Some("/ask why?\n"));
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains("PINCER_TEST_UNSET_MODEL_KEY") && err.contains("The config has errors"),
            "{args:?}: {err}"
        );
    }
    // A config's database URL that cannot be read is not needed when one
    // is given on the command line or in the environment.
    std::fs::write(&config, format!("database_url: env://PINCER_TEST_UNSET_DB_URL\n{provider}{text}")).unwrap();
    let (code, out, err) = pincer(&["admin", "user", "add", "fay@acme.com", "observer"], &env, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Added fay@acme.com as observer"), "{out}");
    assert!(
        err.contains("database_url:") && err.contains("PINCER_TEST_UNSET_DB_URL") && err.contains("used instead"),
        "{err}"
    );
    let (code, _, err) = pincer(&["admin", "user", "add", "gus@acme.com", "observer"], &env[1..], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("PINCER_TEST_UNSET_DB_URL") && err.contains("The config has errors"), "{err}");
    // And `config check` says the same.
    std::fs::write(&config, format!("database_url: env://PINCER_TEST_UNSET_DB_URL\n{text}")).unwrap();
    let (code, out, _) = pincer(&["config", "check"], &env, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning:") && out.contains("used instead") && out.contains("OK"), "{out}");
    let (code, out, err) = pincer(&["config", "check"], &env[1..], None);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("PINCER_TEST_UNSET_DB_URL"), "{out} {err}");
    t.cleanup().await;
}

/// Runs `pincer` with `env` whose stdout reader has gone before anything is
/// written (`pincer … | head -0`); asserts it exits 0 and says nothing.
fn with_stdout_closed(args: &[&str], env: &[(&str, String)]) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pincer"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("OPENAI_API_KEY")
        .current_dir(crate::helpers::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{args:?}: {:?} {err}", out.status);
}

#[tokio::test]
async fn an_export_cut_short_by_its_reader_is_still_audited() {
    let t = TestApp::spawn().await;
    t.say1("dan@acme.com", "console:#oncall", "/admin whoami").await;
    with_stdout_closed(&["admin", "audit", "export"], &env(&t.db));
    let meta: serde_json::Value =
        sqlx::query_scalar("SELECT metadata FROM audit_log WHERE action = 'admin.audit.export'")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(meta["complete"], false, "{meta}");
    t.cleanup().await;
}

#[test]
fn output_to_a_reader_that_has_gone_ends_quietly() {
    with_stdout_closed(&["slack", "manifest", "--url", "https://pincer.acme.com"], &[]);
}

#[test]
fn the_slack_manifest_needs_a_public_https_url_or_socket_mode() {
    let (code, out, err) = pincer(&["slack", "manifest", "--url", "https://pincer.acme.com/"], &[], None);
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["settings"]["event_subscriptions"]["request_url"], "https://pincer.acme.com/slack/events");
    for bad in ["http://pincer.acme.com", "pincer.acme.com", "https://"] {
        let (code, out, err) = pincer(&["slack", "manifest", "--url", bad], &[], None);
        assert_ne!(code, 0, "{bad}: {out}");
        assert!(out.is_empty(), "{bad}: {out}");
        assert!(err.contains("--url"), "{bad}: {err}");
    }
    let (_, _, err) = pincer(&["slack", "manifest", "--url", "http://pincer.acme.com"], &[], None);
    assert!(err.contains("only to an https:// address"), "{err}");
    let (code, _, err) = pincer(&["slack", "manifest", "--url", "https://pincer.acme.com/?team=1"], &[], None);
    assert_ne!(code, 0);
    assert!(err.contains("takes no ?query"), "{err}");
    let (code, out, err) = pincer(&["slack", "manifest", "--socket-mode"], &[], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"socket_mode_enabled\": true"), "{out}");
}
