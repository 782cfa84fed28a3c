//! Leases: a row per singleton job naming its holder until a deadline, so
//! one replica among many does the daemon's work and another takes over
//! when it dies. No cluster protocol: Postgres is the coordination point.

use std::time::Duration;

use super::{Pool, StoreError};

const ACQUIRE: &str = "INSERT INTO leases (name, holder, expires_at)
     VALUES ($1, $2, now() + make_interval(secs => $3))
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
     WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
     RETURNING holder";

pub(crate) const QUERIES: &[(&str, &str)] = &[("leases.acquire", ACQUIRE)];

/// Takes or renews the lease `name` for `holder`. Returns whether it is held.
pub async fn acquire(pool: &Pool, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
    let row: Option<String> =
        sqlx::query_scalar(ACQUIRE).bind(name).bind(holder).bind(ttl.as_secs_f64()).fetch_optional(pool).await?;
    Ok(row.is_some())
}
