//! Audit shipping and retention, run by the daemon role.
//!
//! **Shipping**: the configured sink (`audit.sink`) receives every audit row
//! as a JSON line ([`audit::json_line`]) soon after it commits — rows commit
//! in seq order, since appends hold the chain head — from whichever replica
//! holds the `audit-sink` lease. Progress is kept in `audit_cursor` after each
//! batch. A file sink is also its own record: on start the last complete line
//! of the file says how far it got (a torn last line, from a crash mid-write,
//! is cut off first), so a crash between writing and recording the cursor
//! neither skips nor repeats a row. An HTTP sink gets each batch as one POST
//! (`application/x-ndjson`); its cursor moves only after a 2xx, so a crash
//! in the instant between the 2xx and the cursor update sends that batch
//! again — every line carries its `seq` for the receiver to drop repeats.
//!
//! **Retention**: rows older than `audit.retention_days` (default 90), and
//! already shipped, are removed behind a signed checkpoint
//! ([`audit::retain`]), at most once an hour.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::app::App;
use crate::config::AuditSink;
use crate::store::{StoreError, audit, leases};

/// Rows per batch.
const BATCH: i64 = 500;
/// Batches per pass: a pass stays well inside the lease.
const MAX_BATCHES: usize = 10;
/// How long the `audit-sink` lease lasts: longer than a pass can take
/// (10 batches, each bounded by the HTTP timeout), so two replicas never
/// ship at once.
const LEASE: Duration = Duration::from_secs(300);
/// How often the sink looks for new rows.
pub const EVERY: Duration = Duration::from_secs(1);
/// How long one POST to an HTTP sink may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Why a batch was not shipped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file could not be written.
    #[error("cannot write the audit sink file {path}: {why}")]
    File { path: String, why: String },
    /// The endpoint refused or could not be reached.
    #[error("the audit sink {url} did not take the batch: {why}")]
    Http { url: String, why: String },
}

/// The seq of the last complete line of a JSON-lines file (0 if none),
/// cutting off a torn last line.
pub fn file_position(path: &Path) -> std::io::Result<i64> {
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let window = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(window as usize);
    f.read_to_end(&mut tail)?;
    if !tail.is_empty() && tail.last() != Some(&b'\n') {
        // A line cut short by a crash: drop it; it is shipped again whole.
        let keep = tail.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
        f.set_len(len - window + keep as u64)?;
        f.sync_all()?;
        tail.truncate(keep);
    }
    let last = tail.split(|b| *b == b'\n').rev().find(|l| !l.is_empty());
    Ok(last
        .and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("seq").and_then(|s| s.as_i64()))
        .unwrap_or(0))
}

/// Ships what is new to `sink`. Returns the rows shipped.
pub async fn ship_once(app: &App, sink: &AuditSink, http: &reqwest::Client) -> Result<usize, ShipError> {
    let name = sink.name();
    let mut conn = app.store.pool.acquire().await.map_err(StoreError::from)?;
    let mut after = audit::cursor(&mut conn, &name).await?;
    if let AuditSink::File(path) = sink {
        let in_file = file_position(path)
            .map_err(|e| ShipError::File { path: path.display().to_string(), why: e.to_string() })?;
        after = after.max(in_file);
    }
    let mut shipped = 0;
    for _ in 0..MAX_BATCHES {
        let rows = audit::page(&mut conn, after, BATCH).await?;
        let Some(last) = rows.last().map(|r| r.seq) else { break };
        let mut body = String::with_capacity(rows.len() * 256);
        for r in &rows {
            body.push_str(&audit::json_line(r));
            body.push('\n');
        }
        match sink {
            AuditSink::File(path) => {
                let write = || -> std::io::Result<()> {
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                    f.write_all(body.as_bytes())?;
                    f.sync_data()
                };
                write().map_err(|e| ShipError::File { path: path.display().to_string(), why: e.to_string() })?;
            }
            AuditSink::Http { url, token } => {
                let mut req = http
                    .post(url)
                    .header("content-type", "application/x-ndjson")
                    .header("idempotency-key", format!("pincer-audit-{}-{last}", rows[0].seq))
                    .body(body);
                if let Some(t) = token {
                    req = req.bearer_auth(t.expose());
                }
                let fail = |why: String| ShipError::Http { url: url.clone(), why };
                let resp = req.send().await.map_err(|e| fail(e.without_url().to_string()))?;
                if !resp.status().is_success() {
                    return Err(fail(format!("HTTP {}", resp.status())));
                }
            }
        }
        audit::set_cursor(&mut conn, &name, last).await?;
        shipped += rows.len();
        after = last;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    Ok(shipped)
}

/// One retention pass, if the config asks for one. `None` when retention is
/// off or cannot run (no signing key: `pincer admin doctor` says so).
pub async fn retain_once(app: &App) -> Result<Option<audit::Retention>, StoreError> {
    let cfg = &app.config.audit;
    let (days, Some(key)) = (cfg.retention_days, cfg.signing_key.as_ref()) else { return Ok(None) };
    if days == 0 {
        return Ok(None);
    }
    let mut conn = app.store.pool.acquire().await?;
    let shipped = match &cfg.sink {
        Some(sink) => Some(audit::cursor(&mut conn, &sink.name()).await?),
        None => None,
    };
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    Ok(Some(audit::retain(&mut conn, cutoff, key.expose().as_bytes(), shipped).await?))
}

/// Ships and retains until `shutdown` flips to true, while this process
/// holds the `audit-sink` lease.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let holder = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4());
    let http = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().unwrap_or_default();
    let mut last_retention: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let mut wait = EVERY;
        match leases::acquire(&app.store.pool, "audit-sink", &holder, LEASE).await {
            Ok(true) => {
                if let Some(sink) = &app.config.audit.sink {
                    match ship_once(&app, sink, &http).await {
                        Ok(n) => {
                            failures = 0;
                            if n > 0 {
                                tracing::debug!(rows = n, sink = %sink.name(), "audit rows shipped");
                            }
                        }
                        Err(error) => {
                            failures += 1;
                            wait = crate::backoff::backoff(failures as i32, EVERY, Duration::from_secs(60));
                            tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "audit shipping failed");
                        }
                    }
                }
                if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                    last_retention = Some(Instant::now());
                    match retain_once(&app).await {
                        Ok(Some(audit::Retention::Removed { up_to, rows })) => {
                            tracing::info!(up_to, rows, "audit retention removed old rows behind a checkpoint")
                        }
                        Ok(Some(audit::Retention::Broken(b))) => {
                            tracing::error!(seq = b.seq, reason = %b.reason, "audit chain broken; retention refused")
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "audit retention failed"),
                    }
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not take the audit-sink lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_says_how_far_it_got_and_loses_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        assert_eq!(file_position(&p).unwrap(), 0);
        std::fs::write(&p, "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"act").unwrap();
        assert_eq!(file_position(&p).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"seq\":1}\n{\"seq\":2}\n");
    }
}
