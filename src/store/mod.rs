//! Postgres storage: one [`Store`] (a connection pool) and one module per
//! table family. Functions take a `&mut PgConnection` so the router can run
//! several of them — the dedupe insert, the command's effect and its audit
//! row — in one transaction.
//!
//! SQL lives next to the function that runs it as a named constant; every
//! module lists its constants in `QUERIES`, and a test prepares each one
//! against the migrated schema, so a query that no longer fits the schema
//! fails the build's tests rather than a person's command.
//!
//! Row-level "not found" and "already exists" are domain answers
//! (`Option`, `bool`, [`StoreError::Conflict`]); only the unexpected is
//! [`StoreError::Database`].

pub mod agents;
pub mod approvals;
pub mod audit;
pub mod conversations;
pub mod events;
pub mod jobs;
pub mod leases;
pub mod memory;
pub mod outbox;
pub mod pool;
pub mod routing;
pub mod usage;
pub mod users;
pub mod workspaces;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

pub use pool::{Conn, Pool, Tx};

/// Where Pincer's database lives when nothing else says.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/pincer";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row that should be unique already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored value no longer parses (edited by hand?).
    #[error("stored value is not valid: {0}")]
    Corrupt(String),
    /// Anything else from Postgres.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A job's lease passed to another worker before this one finished; the
    /// transaction was rolled back and the other worker owns the job.
    #[error("job {0} was taken over by another worker")]
    LeaseLost(i64),
    /// Migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The connection pool and nothing else: shared state lives in Postgres.
#[derive(Clone, Debug)]
pub struct Store {
    /// The pool every query runs on.
    pub pool: Pool,
}

impl Store {
    /// Connects to `url`, creating the database first if it does not exist.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let options = connect_options(url)?;
        create_database_if_missing(&options).await?;
        let pool = Pool::new(options, max_connections, Duration::from_secs(10));
        // Fail now, not at the first event, if the database cannot be reached.
        pool.acquire().await?.release();
        Ok(Store { pool })
    }

    /// Applies pending migrations. Safe to run from several processes at once
    /// (sqlx takes an advisory lock).
    /// Returns how many it applied.
    pub async fn migrate(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let applied = async |conn: &mut PgConnection| -> Result<i64, StoreError> {
            let table: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
            if !table {
                return Ok(0);
            }
            Ok(sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(conn).await?)
        };
        let before = applied(&mut conn).await?;
        MIGRATOR.run(&mut *conn).await?;
        let after = applied(&mut conn).await?;
        conn.release();
        Ok(after.saturating_sub(before).max(0) as u64)
    }

    /// A connection of its own that listens for notifications (it reconnects
    /// by itself when the database restarts).
    pub async fn listener(&self) -> Result<PgListener, StoreError> {
        let pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(self.pool.options().clone());
        Ok(PgListener::connect_with(&pool).await?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// How Pincer connects to the database at `url`: statements logged at
/// trace level, and no TLS to a database on this machine unless the URL
/// asks for it (it protects nothing there and costs a handshake per
/// connection and CPU per query).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let mut options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace);
    if is_loopback(url) && !url.contains("sslmode=") {
        options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
    }
    Ok(options)
}

/// One connection of its own to `url` (made as [`connect_options`] says),
/// outside any pool.
pub async fn connect_one(url: &str) -> Result<PgConnection, StoreError> {
    Ok(PgConnection::connect_with(&connect_options(url)?).await?)
}

/// Whether a Postgres URL points at this machine (or a Unix socket).
fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else { return false };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map(|(h, _)| h)
        .unwrap_or_else(|| host.split(':').next().unwrap_or_default());
    host.is_empty() || host == "localhost" || host == "::1" || host.starts_with("127.")
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name = options.get_database().unwrap_or("postgres").to_string();
    if options.connect().await.is_ok() {
        return Ok(());
    }
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"))).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Every named query, for the schema check.
pub fn all_queries() -> Vec<(&'static str, &'static str)> {
    [
        agents::QUERIES,
        approvals::QUERIES,
        audit::QUERIES,
        conversations::QUERIES,
        events::QUERIES,
        jobs::QUERIES,
        leases::QUERIES,
        memory::QUERIES,
        outbox::QUERIES,
        routing::QUERIES,
        usage::QUERIES,
        users::QUERIES,
        workspaces::QUERIES,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_urls_are_recognised() {
        for u in [
            "postgres://postgres@127.0.0.1:5432/pincer",
            "postgres://u:p@localhost/x",
            "postgres://[::1]:5432/x",
            "postgres:///pincer",
        ] {
            assert!(is_loopback(u), "{u}");
        }
        for u in ["postgres://db.internal:5432/pincer", "postgres://u@10.0.0.5/x", "postgres://postgres:5432/pincer"] {
            assert!(!is_loopback(u), "{u}");
        }
    }
}
