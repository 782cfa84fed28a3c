//! What `pincer serve` runs, by role, around one HTTP server:
//!
//! | role | HTTP | platform webhooks + Socket Mode | worker + dispatcher | daemon |
//! |---|---|---|---|---|
//! | `gateway` | ✓ | ✓ | ✓ | |
//! | `worker` | ✓ (health only) | | ✓ | |
//! | `daemon` | ✓ (health only) | | | ✓ |
//! | `all` | ✓ | ✓ | ✓ | ✓ |
//!
//! Every process is stateless; they coordinate through Postgres only (dedupe
//! keys, `SKIP LOCKED` claims, leases), with LISTEN/NOTIFY as a wake-up hint.

use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use pincer_adapters::slack::socket::{Handoff, SocketMode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::dispatcher::{self, Pacer};
use crate::server::Server;
use crate::store::{jobs, outbox};
use crate::{daemon, ingest, worker};

/// What a `pincer serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServeRole {
    /// Platform webhooks and Socket Mode, plus a worker and dispatcher.
    Gateway,
    /// A worker and dispatcher only (scale them apart from the gateway).
    Worker,
    /// Singleton housekeeping under a lease.
    Daemon,
    /// Everything.
    All,
}

impl ServeRole {
    fn platforms(self) -> bool {
        matches!(self, ServeRole::Gateway | ServeRole::All)
    }
    fn works(self) -> bool {
        !matches!(self, ServeRole::Daemon)
    }
    fn housekeeps(self) -> bool {
        matches!(self, ServeRole::Daemon | ServeRole::All)
    }
}

/// Slack allows about one message a second per channel, with short bursts.
pub fn slack_pacer() -> Pacer {
    Pacer::new(1.0, 3.0)
}

/// Wakes this process's loops when another process queues work.
async fn listen(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let mut listener = match app.store.listener().await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN; relying on polling");
                return;
            }
        };
        if let Err(error) = listener.listen_all([jobs::CHANNEL, outbox::CHANNEL]).await {
            tracing::warn!(%error, "cannot LISTEN; relying on polling");
            return;
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) if n.channel() == jobs::CHANNEL => app.wake.jobs.notify_one(),
                    Ok(_) => app.wake.outbox.notify_one(),
                    Err(error) => {
                        tracing::warn!(%error, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Stores Socket Mode events as they arrive, telling the adapter when each
/// is durable so it can acknowledge.
async fn store_socket_events(app: Arc<App>, mut rx: mpsc::Receiver<Handoff>) {
    while let Some((mut event, stored)) = rx.recv().await {
        crate::worker::enrich_from_cache(&app, &mut event);
        let ok = match ingest::enqueue(&app, event).await {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, "could not store a Socket Mode event; it will not be acknowledged");
                false
            }
        };
        let _ = stored.send(ok);
    }
}

/// Asks Slack who the bot is until it answers or `shutdown` flips.
async fn identify_in_background(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let Some(slack) = app.slack.as_ref() else { return };
    loop {
        tokio::select! {
            identified = slack.identify() => match identified {
                Ok(me) => {
                    tracing::info!(bot_user = ?me.user_id, "connected to Slack");
                    return;
                }
                Err(error) => tracing::warn!(%error, "this worker does not know the Slack bot yet; trying again"),
            },
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs a process's share of Pincer until `shutdown` flips to true.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    role: ServeRole,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    let mut socket = None;
    if let Some(slack) = app.slack.as_ref().filter(|_| role.platforms()) {
        let me = slack.identify().await?;
        tracing::info!(bot_user = ?me.user_id, "connected to Slack");
        if let Some(token) = &slack.config.app_token {
            let (tx, rx) = mpsc::channel(256);
            let consumer = tokio::spawn(store_socket_events(app.clone(), rx));
            socket = Some((
                consumer,
                SocketMode::start(slack.api.client(), &token.expose(), me, tx)
                    .await
                    .map_err(|e| anyhow::anyhow!("Slack Socket Mode: {e}"))?,
            ));
            tracing::info!("Slack Socket Mode started");
        }
    }
    if role.works() && !role.platforms() && app.slack.is_some() {
        // A worker's dispatcher needs the bot's identity too (a reply that
        // may have been posted is looked for among the bot's own messages),
        // but not to start: console and terminal work goes on meanwhile.
        tasks.push(tokio::spawn(identify_in_background(app.clone(), shutdown.clone())));
    }
    if role.works() {
        tasks.push(tokio::spawn(worker::run(app.clone(), shutdown.clone())));
        tasks.push(tokio::spawn(dispatcher::run(app.clone(), Arc::new(slack_pacer()), shutdown.clone())));
        tasks.push(tokio::spawn(listen(app.clone(), shutdown.clone())));
    }
    if role.housekeeps() {
        tasks.push(tokio::spawn(daemon::run(app.clone(), Duration::from_secs(600), shutdown.clone())));
        tasks.push(tokio::spawn(crate::audit_ship::run(app.clone(), shutdown.clone())));
        tasks.push(tokio::spawn(crate::memory::embed_loop(app.clone(), shutdown.clone())));
    }
    let server = Server::build(app.clone(), listener, role.platforms());
    tracing::info!(addr = %server.local_addr()?, ?role, "pincer serving");
    let mut stop = shutdown.clone();
    server
        .run_until_stopped(async move {
            let _ = stop.changed().await;
        })
        .await?;
    if let Some((consumer, s)) = socket {
        s.shutdown().await;
        consumer.abort();
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(())
}
