//! Test set-up: a fresh database per test, the real `App` and `Router`
//! built from a config, and a way to speak as a person in a channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pincer::app::App;
use pincer::config::Config;
use pincer::router::Router;
use pincer::store::Store;
use pincer_adapters::console::ConsoleSession;
use pincer_adapters::{ChannelEvent, ChannelRef, Reply, ReplyKind, Sender};
use pincer_commands::{Email, ScopeName};

/// The server tests use: `PINCER_TEST_DATABASE_URL`, else local Postgres.
pub fn server_url() -> String {
    std::env::var("PINCER_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of a database named `name` on the test server.
pub fn db_url(name: &str) -> String {
    let base = server_url();
    let i = base.rfind('/').expect("a database URL has a path");
    format!("{}/{name}", &base[..i])
}

/// The repo root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example config.
pub fn example_config() -> Config {
    Config::load(&root().join("examples/pincer.yaml")).expect("the example config is valid")
}

/// A config from YAML text, with the example prompts beside it.
pub fn config_from(yaml: &str) -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    for p in ["product-assistant.md", "ops-oncall.md"] {
        std::fs::copy(root().join("examples/prompts").join(p), dir.path().join("prompts").join(p)).unwrap();
    }
    let path = dir.path().join("pincer.yaml");
    std::fs::write(&path, yaml).unwrap();
    (Config::load(&path).unwrap_or_else(|e| panic!("{e}")), dir)
}

/// A running Pincer over its own database.
pub struct TestApp {
    pub app: Arc<App>,
    pub router: Router,
    pub db: String,
}

impl TestApp {
    /// Pincer with the example config.
    pub async fn spawn() -> TestApp {
        Self::with_config(example_config()).await
    }

    /// Pincer with a given config, in a fresh database.
    pub async fn with_config(config: Config) -> TestApp {
        pincer::init_crypto();
        let db = format!("pincer_test_{}", uuid::Uuid::new_v4().simple());
        let url = db_url(&db);
        let store = Store::connect(&url, 8).await.expect("connect to test Postgres");
        let app = App::start(config, store).await.expect("app starts");
        TestApp { router: Router::new(app.clone()), app, db }
    }

    /// A session of `email` in `channel` (e.g. `console:#oncall`).
    pub fn session(&self, email: &str, channel: &str) -> ConsoleSession {
        ConsoleSession { user: Email::parse(email).unwrap(), channel: channel.parse().unwrap() }
    }

    /// `email` says `line` in `channel`; returns the replies.
    pub async fn say(&self, email: &str, channel: &str, line: &str) -> Vec<Reply> {
        self.router.handle(self.session(email, channel).event(line)).await
    }

    /// Like [`say`], returning the single reply's text.
    pub async fn say1(&self, email: &str, channel: &str, line: &str) -> String {
        let replies = self.say(email, channel, line).await;
        assert_eq!(replies.len(), 1, "{line}: {replies:?}");
        replies[0].text.clone()
    }

    /// Like [`say1`], asserting the reply is an error.
    pub async fn refused(&self, email: &str, channel: &str, line: &str) -> String {
        let replies = self.say(email, channel, line).await;
        assert_eq!(replies.len(), 1, "{line}: {replies:?}");
        assert_eq!(replies[0].kind, ReplyKind::Error, "{line}: {replies:?}");
        replies[0].text.clone()
    }

    /// An event from an arbitrary platform sender.
    pub fn event(
        &self,
        channel: &str,
        puid: &str,
        email: Option<&str>,
        tenant: &str,
        text: &str,
        key: &str,
    ) -> ChannelEvent {
        let ch: ChannelRef = channel.parse().unwrap();
        let sender = Sender {
            platform_user_id: puid.into(),
            display_name: None,
            verified_email: email.map(|e| Email::parse(e).unwrap()),
            is_bot: false,
        };
        ChannelEvent::new(tenant, ch, None, sender, text, key.into())
    }

    /// Imports the example memory for a scope.
    pub async fn import(&self, scope: &str, dir: &str) {
        let scope = ScopeName::parse(scope).unwrap();
        for entry in std::fs::read_dir(root().join("examples/memory").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            pincer::memory::import_file(&self.app.store, &scope, &path, "test").await.unwrap();
        }
    }

    /// Imports all example memory.
    pub async fn import_examples(&self) {
        for s in ["product", "incidents", "postmortems"] {
            self.import(s, s).await;
        }
    }

    /// A plain connection for direct SQL.
    pub async fn conn(&self) -> pincer::store::Conn {
        self.app.store.pool.acquire().await.unwrap()
    }

    /// Audit rows with `action`, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(&self.app.store.pool).await.unwrap()
    }

    /// Drops the database.
    pub async fn cleanup(self) {
        self.app.store.pool.close().await;
        drop_db(&self.db).await;
    }
}

/// Drops a test database (best effort).
pub async fn drop_db(name: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(&server_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&mut c)
            .await;
    }
}

/// Runs the real `pincer` binary.
pub fn pincer(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pincer"));
    cmd.args(args).current_dir(root()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("DATABASE_URL").env_remove("PINCER_CONFIG").env_remove("OPENAI_API_KEY").env_remove("PINCER_RBAC");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("pincer runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Whether `path` exists under the repo root.
pub fn exists(path: &str) -> bool {
    Path::new(&root().join(path)).exists()
}
