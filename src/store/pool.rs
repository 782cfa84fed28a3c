//! The connection pool: up to `max` open connections, handed out and taken
//! back without a round trip of the pool's own on the hot path.
//!
//! sqlx's pool pings a connection when it is returned (in a spawned task)
//! and, by default, again before handing it out: two extra round trips and
//! a task for every query. On the hot path — a dozen short statements per
//! chat message — those pings were a third of the gateway's round trips.
//! This pool knows instead how each connection comes back:
//!
//! - **clean** — a statement run through `&Pool` that completed, or a
//!   [`Tx`] that was committed or rolled back: back to the idle list at once;
//! - **broken** — a statement that failed for any reason but an error the
//!   database reported for it (a broken socket, a protocol error, a fatal
//!   error), a `BEGIN` that failed, or a [`Tx`] dropped without a commit or
//!   rollback (an error path, or a cancelled future): closed, so the server
//!   rolls back whatever it held at once and no later caller inherits it;
//! - **unknown** — a [`Conn`] from [`Pool::acquire`] used directly: pinged
//!   in a task of its own (as sqlx does) before it is handed out again.
//!
//! A connection that sat idle for more than [`IDLE_CHECK`] is pinged before
//! it is handed out, so one the server or a proxy dropped meanwhile is
//! replaced instead of failing a statement.
//!
//! Connections opened for a burst are closed again once the pool has had
//! no use for them for [`IDLE_TIMEOUT`]: each time a connection is given
//! back, the one idle longest is closed if it has been idle that long (the
//! idle list is used newest first, so a connection the steady load does
//! not need sinks to its bottom). One idle connection always stays.
//!
//! The pool opens **one connection at a time**. A caller that finds no idle
//! connection opens one only if no other caller is opening one already;
//! otherwise it waits for whichever comes first: a connection given back,
//! or the end of that open (and then looks again). Opening a connection
//! costs Postgres a process and cold caches, several milliseconds of CPU
//! on a small machine. When the database paused for 15 ms under load,
//! the gateway's callers opened one each — 13 within 160 ms — while the
//! connections already open were about to come back.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use either::Either;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;
use sqlx::postgres::{
    PgConnectOptions, PgDatabaseError, PgQueryResult, PgRow, PgSeverity, PgStatement, PgTransactionManager, PgTypeInfo,
};
use sqlx::{ConnectOptions, Connection, Error, Execute, Executor, PgConnection, Postgres};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// A pool of Postgres connections. Cheap to clone.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

/// Idle longer than this, a connection is pinged before it is handed out.
pub const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Idle longer than this, a connection beyond the first is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a check of a connection may wait for its answer before the
/// connection is taken for dead.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

struct Inner {
    options: PgConnectOptions,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    /// Woken when a connection goes back to `idle`, when an open ends, and
    /// on close.
    returned: Notify,
    /// A caller is opening a connection.
    opening: AtomicBool,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    closed: AtomicBool,
    /// [`IDLE_CHECK`], in milliseconds (settable for tests).
    idle_check_ms: std::sync::atomic::AtomicU64,
    /// [`IDLE_TIMEOUT`], in milliseconds (settable for tests).
    idle_timeout_ms: std::sync::atomic::AtomicU64,
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
            returned: Notify::new(),
            opening: AtomicBool::new(false),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            acquire_timeout,
            closed: AtomicBool::new(false),
            idle_check_ms: std::sync::atomic::AtomicU64::new(IDLE_CHECK.as_millis() as u64),
            idle_timeout_ms: std::sync::atomic::AtomicU64::new(IDLE_TIMEOUT.as_millis() as u64),
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
        loop {
            // Registered before looking, so a connection given back between
            // the look and the wait is not missed.
            let returned = inner.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if inner.closed.load(Ordering::Acquire) {
                return Err(Error::PoolClosed);
            }
            let idle = lock(&inner.idle).pop();
            let conn = match idle {
                Some((mut conn, since)) => {
                    let check = Duration::from_millis(inner.idle_check_ms.load(Ordering::Relaxed));
                    if since.elapsed() > check {
                        // (Bounded: a connection a proxy dropped silently
                        // can leave a ping unanswered until TCP gives up.)
                        let until = deadline.min(tokio::time::Instant::now() + PING_TIMEOUT);
                        match tokio::time::timeout_at(until, conn.ping()).await {
                            Ok(Ok(())) => {}
                            // The caller's time is up, whatever the connection's state.
                            Err(_) if tokio::time::Instant::now() >= deadline => return Err(Error::PoolTimedOut),
                            // Dropped by the server or a proxy while idle: try the next.
                            _ => continue,
                        }
                    }
                    conn
                }
                None if !inner.opening.swap(true, Ordering::AcqRel) => {
                    let _opening = Opening(inner);
                    match tokio::time::timeout_at(deadline, inner.options.connect()).await {
                        Ok(conn) => conn?,
                        Err(_) => return Err(Error::PoolTimedOut),
                    }
                }
                // Another caller is opening one: wait for it, or for a
                // connection to come back, then look again.
                None => {
                    if tokio::time::timeout_at(deadline, returned).await.is_err() {
                        return Err(Error::PoolTimedOut);
                    }
                    continue;
                }
            };
            return Ok(Conn { conn: Some(conn), state: State::Unknown, pool: self.0.clone(), permit: Some(permit) });
        }
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
        self.0.returned.notify_waiters();
        let idle = std::mem::take(&mut *lock(&self.0.idle));
        for (conn, _) in idle {
            let _ = conn.close().await;
        }
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Pings connections idle longer than `after` before handing them out
    /// (default [`IDLE_CHECK`]).
    pub fn set_idle_check(&self, after: Duration) {
        self.0.idle_check_ms.store(after.as_millis() as u64, Ordering::Relaxed);
    }

    /// Closes connections beyond the first idle longer than `after`
    /// (default [`IDLE_TIMEOUT`]).
    pub fn set_idle_timeout(&self, after: Duration) {
        self.0.idle_timeout_ms.store(after.as_millis() as u64, Ordering::Relaxed);
    }

    /// Connections open and not in use.
    pub fn idle(&self) -> usize {
        lock(&self.0.idle).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    /// Puts a connection back in the idle list and wakes one waiting
    /// caller; closes the connection idle longest if the pool has had no
    /// use for it for the idle timeout.
    fn give_back(&self, conn: PgConnection) {
        let now = Instant::now();
        let stale = {
            let mut idle = lock(&self.idle);
            idle.push((conn, now));
            let timeout = Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed));
            match idle.first() {
                Some((_, since)) if idle.len() > 1 && now.duration_since(*since) > timeout => Some(idle.remove(0).0),
                _ => None,
            }
        };
        self.returned.notify_one();
        if let Some(conn) = stale
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // Said goodbye to, so the server does not log a lost client.
            rt.spawn(async move {
                let _ = conn.close().await;
            });
        }
    }
}

/// Held while a caller opens a connection; when the open ends (with a
/// connection, an error, or the caller gone), another caller may open the
/// next, and one waiting caller looks again.
struct Opening<'a>(&'a Inner);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.opening.store(false, Ordering::Release);
        self.0.returned.notify_one();
    }
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
        | Error::Encode(_)
        | Error::TypeNotFound { .. }
        | Error::ColumnNotFound(_)
        | Error::ColumnIndexOutOfBounds { .. } => true,
        _ => false,
    }
}

/// How a connection will come back to the pool (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Clean,
    Unknown,
    Broken,
}

/// A checked-out connection; back to the pool when dropped: at once if it
/// is known to be clean, after a ping if not, closed if it may be unusable.
pub struct Conn {
    /// Always `Some` while the `Conn` lives: only `Drop` takes it.
    conn: Option<PgConnection>,
    state: State,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Conn {
    /// Gives the connection back as clean. Call it when every statement run
    /// on it has completed; a `Conn` dropped without it (an early return, a
    /// cancelled future) is pinged before it is used again.
    pub fn release(mut self) {
        self.state = State::Clean;
    }

    /// Records how an operation that ran to its end left the connection:
    /// clean, or — after an error that may have left it unusable (anything
    /// but an error the database reported in answer to a statement) —
    /// broken.
    fn settle<T>(&mut self, outcome: &Result<T, Error>) {
        self.state = match outcome {
            Err(e) if !keeps_connection(e) => State::Broken,
            _ => State::Clean,
        };
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
        let Some(mut conn) = self.conn.take() else { return };
        if self.pool.closed.load(Ordering::Acquire) {
            return;
        }
        match self.state {
            State::Clean => self.pool.give_back(conn),
            // Dropping closes the socket: the server ends the session and
            // rolls back whatever it held.
            State::Broken => {}
            State::Unknown => {
                // Used directly, maybe cut off mid-statement: finish and
                // check it away from the caller (holding its slot).
                let (pool, permit) = (self.pool.clone(), self.permit.take());
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let answered = matches!(tokio::time::timeout(PING_TIMEOUT, conn.ping()).await, Ok(Ok(())));
                        if answered && !pool.closed.load(Ordering::Acquire) {
                            pool.give_back(conn);
                        }
                        drop(permit);
                    });
                }
            }
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
            // Until BEGIN is known to have worked, a drop (a cancelled
            // future) closes the connection: `BEGIN` may already be sent.
            self.begun = true;
            if let Err(e) = PgTransactionManager::begin(&mut self.conn, None).await {
                self.conn.state = State::Broken;
                return Err(e);
            }
        }
        Ok(&mut self.conn)
    }

    /// Whether a transaction was begun (something may have been written).
    pub fn begun(&self) -> bool {
        self.begun
    }

    /// Commits the transaction, if one was begun, and gives the connection
    /// back clean. (Every `Tx` should end here or in [`Tx::rollback`]; one
    /// dropped instead is closed.)
    pub async fn commit(self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Rolls the transaction back, if one was begun.
    pub async fn rollback(self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(mut self, commit: bool) -> Result<(), Error> {
        if !self.begun {
            self.conn.state = State::Clean;
            return Ok(());
        }
        let result = if commit {
            PgTransactionManager::commit(&mut self.conn).await
        } else {
            PgTransactionManager::rollback(&mut self.conn).await
        };
        // A failed COMMIT or ROLLBACK leaves sqlx's transaction depth
        // behind: the connection is closed.
        self.conn.state = if result.is_ok() { State::Clean } else { State::Broken };
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
        // Not committed or rolled back (an error returned early, or the
        // future was dropped): the connection is closed, so the server
        // rolls back now and releases the locks, rather than whenever the
        // connection would next be used.
        if self.conn.state != State::Clean {
            self.conn.state = State::Broken;
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
            conn.state = State::Broken; // until it completes
            let items: Result<Vec<_>, Error> = conn.fetch_many(query).try_collect().await;
            conn.settle(&items);
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
            conn.state = State::Broken; // until it completes
            let row = conn.fetch_optional(query).await;
            conn.settle(&row);
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
            conn.state = State::Broken; // until it completes
            let statement = conn.prepare_with(sql, parameters).await;
            conn.settle(&statement);
            statement
        })
    }

    fn describe<'e>(self, sql: sqlx::SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.state = State::Broken; // until it completes
            let described = conn.describe(sql).await;
            conn.settle(&described);
            described
        })
    }
}
