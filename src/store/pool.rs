//! The connection pool: up to `max` open connections, handed out and taken
//! back without a round trip of the pool's own.
//!
//! sqlx's pool pings a connection when it is returned (in a spawned task)
//! and, by default, again before handing it out: two extra round trips and
//! a task for every query. On the hot path — a dozen short statements per
//! chat message — those pings were a third of the gateway's round trips.
//! This pool instead relies on what a sqlx connection already does at the
//! start of every operation: it finishes whatever an earlier, interrupted
//! operation left (a queued `ROLLBACK`, unread results) before it sends its
//! own statement. A connection whose statement failed for any reason but a
//! database error (a broken socket, a protocol error) is closed instead of
//! being returned; one that broke while idle fails its next statement once
//! and is closed then.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use either::Either;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;
use sqlx::postgres::{
    PgConnectOptions, PgDatabaseError, PgQueryResult, PgRow, PgSeverity, PgStatement, PgTransactionManager, PgTypeInfo,
};
use sqlx::{ConnectOptions, Connection, Error, Execute, Executor, PgConnection, Postgres};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool of Postgres connections. Cheap to clone.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

struct Inner {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    closed: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle()).field("closed", &self.is_closed()).finish()
    }
}

impl Pool {
    /// A pool of at most `max` connections made with `options`; none is
    /// opened until one is needed.
    pub fn new(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        Pool(Arc::new(Inner {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            acquire_timeout,
            closed: AtomicBool::new(false),
        }))
    }

    /// The options connections are made with.
    pub fn options(&self) -> &PgConnectOptions {
        &self.0.options
    }

    /// A connection of the pool's, waiting up to the acquire timeout for one
    /// to be free.
    pub async fn acquire(&self) -> Result<Conn, Error> {
        let inner = &self.0;
        let deadline = tokio::time::Instant::now() + inner.acquire_timeout;
        let permit = match tokio::time::timeout_at(deadline, inner.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Error::PoolClosed),
            Err(_) => return Err(Error::PoolTimedOut),
        };
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        let idle = lock(&inner.idle).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => match tokio::time::timeout_at(deadline, inner.options.connect()).await {
                Ok(conn) => conn?,
                Err(_) => return Err(Error::PoolTimedOut),
            },
        };
        Ok(Conn { conn: Some(conn), broken: false, pool: self.0.clone(), _permit: permit })
    }

    /// A connection with a transaction begun on it.
    pub async fn begin(&self) -> Result<Tx, Error> {
        let mut tx = self.lazy().await?;
        tx.write().await?;
        Ok(tx)
    }

    /// A connection that begins a transaction only when asked to write
    /// ([`Tx::write`]): work that turns out to only read costs no
    /// `BEGIN`/`COMMIT` round trips.
    pub async fn lazy(&self) -> Result<Tx, Error> {
        Ok(Tx { conn: self.acquire().await?, begun: false })
    }

    /// Closes idle connections and refuses new checkouts; connections in
    /// use are closed when they come back.
    pub async fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.permits.close();
        let idle = std::mem::take(&mut *lock(&self.0.idle));
        for conn in idle {
            let _ = conn.close().await;
        }
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Connections open and not in use.
    pub fn idle(&self) -> usize {
        lock(&self.0.idle).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a connection is still good after `error`: yes after an error
/// the database reported for a statement (a constraint, a bad value) or
/// one decoding its result; no after a broken socket, a protocol error, or
/// a fatal error (the server ending the session, e.g. at shutdown).
pub fn keeps_connection(error: &Error) -> bool {
    match error {
        Error::Database(e) => e
            .try_downcast_ref::<PgDatabaseError>()
            .is_none_or(|pg| !matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        Error::RowNotFound
        | Error::ColumnDecode { .. }
        | Error::Decode(_)
        | Error::TypeNotFound { .. }
        | Error::ColumnNotFound(_)
        | Error::ColumnIndexOutOfBounds { .. } => true,
        _ => false,
    }
}

/// A checked-out connection; back to the pool when dropped (closed
/// instead, if an error may have left it unusable).
pub struct Conn {
    /// Always `Some` while the `Conn` lives: only `Drop` takes it.
    conn: Option<PgConnection>,
    broken: bool,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Marks the connection to be closed instead of returned, after an
    /// error that may have left it unusable (anything but an error the
    /// database reported in answer to a statement).
    fn settle(&mut self, error: &Error) {
        if !keeps_connection(error) {
            self.broken = true;
        }
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

// Panics: never — `conn` is taken only by `Drop`, after which nothing can
// dereference the `Conn`.
impl std::ops::Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a pooled connection is present until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.broken
            && !self.pool.closed.load(Ordering::Acquire)
        {
            lock(&self.pool.idle).push(conn);
        }
    }
}

/// A pooled connection for a unit of work that may or may not write: it
/// reads outside a transaction, and begins one at the first
/// [`Tx::write`] (or at once, from [`Pool::begin`]). Dropped without
/// [`Tx::commit`], a begun transaction is rolled back (the `ROLLBACK` goes
/// out with the connection's next statement, or when it closes).
pub struct Tx {
    conn: Conn,
    begun: bool,
}

impl Tx {
    /// The connection, for reading (inside the transaction if one began).
    pub fn read(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The connection inside the transaction, begun now if it was not.
    pub async fn write(&mut self) -> Result<&mut PgConnection, Error> {
        if !self.begun {
            if let Err(e) = PgTransactionManager::begin(&mut self.conn, None).await {
                self.conn.settle(&e);
                return Err(e);
            }
            self.begun = true;
        }
        Ok(&mut self.conn)
    }

    /// Whether a transaction was begun (something may have been written).
    pub fn begun(&self) -> bool {
        self.begun
    }

    /// Commits the transaction, if one was begun.
    pub async fn commit(mut self) -> Result<(), Error> {
        if !self.begun {
            return Ok(());
        }
        let result = PgTransactionManager::commit(&mut self.conn).await;
        if let Err(e) = &result {
            self.conn.settle(e);
        }
        result
    }

    /// Rolls the transaction back, if one was begun.
    pub async fn rollback(mut self) -> Result<(), Error> {
        if !self.begun {
            return Ok(());
        }
        let result = PgTransactionManager::rollback(&mut self.conn).await;
        if let Err(e) = &result {
            self.conn.settle(e);
        }
        result
    }
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx").field("begun", &self.begun).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Still inside a transaction (not committed, or a commit that
        // failed): roll it back with the connection's next statement.
        if !self.conn.broken && PgTransactionManager::get_transaction_depth(&self.conn) > 0 {
            PgTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

/// One statement on a connection checked out for it.
impl<'p> Executor<'p> for &'_ Pool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        let all = async move {
            let mut conn = pool.acquire().await?;
            let items: Result<Vec<_>, Error> = conn.fetch_many(query).try_collect().await;
            if let Err(e) = &items {
                conn.settle(e);
            }
            items
        };
        Box::pin(
            futures_util::stream::once(all)
                .map_ok(|items| futures_util::stream::iter(items.into_iter().map(Ok)))
                .try_flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let row = conn.fetch_optional(query).await;
            if let Err(e) = &row {
                conn.settle(e);
            }
            row
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let statement = conn.prepare_with(sql, parameters).await;
            if let Err(e) = &statement {
                conn.settle(e);
            }
            statement
        })
    }

    fn describe<'e>(self, sql: sqlx::SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}
