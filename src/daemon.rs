//! The daemon role: singleton housekeeping, run by whichever replica holds
//! the `housekeeping` lease (see [`crate::store::leases`]). It forgets
//! inbound-event dedupe keys older than a week — platforms stop retrying
//! within hours — and delivered replies older than 30 days that nobody
//! voted on, so neither table grows for ever.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::store::{events, leases, outbox};

/// Dedupe keys older than this many days are forgotten.
pub const DEDUPE_RETENTION_DAYS: i32 = 7;
/// Delivered replies older than this many days are forgotten (unless voted on).
pub const OUTBOX_RETENTION_DAYS: i32 = 30;

/// One housekeeping pass, if this process holds the lease. Returns the rows
/// pruned, or `None` when another process holds the lease.
pub async fn tick(app: &App, holder: &str, ttl: Duration) -> anyhow::Result<Option<u64>> {
    if !leases::acquire(&app.store.pool, "housekeeping", holder, ttl).await? {
        return Ok(None);
    }
    let mut conn = app.store.pool.acquire().await?;
    let pruned = events::prune(&mut conn, DEDUPE_RETENTION_DAYS).await?;
    let replies = outbox::prune(&mut conn, OUTBOX_RETENTION_DAYS).await?;
    if pruned + replies > 0 {
        tracing::info!(pruned, replies, "forgot old inbound event keys and delivered replies");
    }
    Ok(Some(pruned))
}

/// Runs housekeeping every `every` until `shutdown` flips to true.
pub async fn run(app: Arc<App>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let holder = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4());
    loop {
        if let Err(error) = tick(&app, &holder, every * 3).await {
            tracing::warn!(%error, "housekeeping failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
