//! Inbound event dedupe: the first thing stored for every event. A platform
//! retry or a duplicate delivery finds its key taken and is acknowledged
//! without effect — also when another replica is handling the first copy,
//! because the key's row lock holds the second insert until the first
//! transaction ends.

use sqlx::PgConnection;

use super::StoreError;

const INSERT: &str = "INSERT INTO inbound_events (platform, dedupe_key) VALUES ($1, $2) ON CONFLICT DO NOTHING";
const PRUNE: &str = "DELETE FROM inbound_events WHERE received_at < now() - make_interval(days => $1)";

pub(crate) const QUERIES: &[(&str, &str)] = &[("events.insert", INSERT), ("events.prune", PRUNE)];

/// Records an event key. Returns `false` when it was seen before.
pub async fn record(conn: &mut PgConnection, platform: &str, key: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(INSERT).bind(platform).bind(key).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets keys older than `days` (platforms stop retrying within hours).
pub async fn prune(conn: &mut PgConnection, days: i32) -> Result<u64, StoreError> {
    Ok(sqlx::query(PRUNE).bind(days).execute(conn).await?.rows_affected())
}
