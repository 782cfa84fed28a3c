//! The HTTP server of `pincer serve`: health, readiness, metrics, and the
//! platform webhooks of [`crate::gateway`].
//!
//! Build and run are separate ([`Server::build`], [`Server::run_until_stopped`])
//! with an injected listener and shutdown signal, so tests start the real
//! server on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::app::App;

/// A built server, ready to run.
pub struct Server {
    listener: TcpListener,
    routes: axum::Router,
}

impl Server {
    /// Builds the routes over the shared state; with `platforms`, the
    /// platform webhooks too.
    pub fn build(app: Arc<App>, listener: TcpListener, platforms: bool) -> Server {
        let mut routes = axum::Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics));
        if platforms {
            routes = routes.merge(crate::gateway::routes());
        }
        Server { listener, routes: routes.with_state(app) }
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, self.routes).with_graceful_shutdown(shutdown).await
    }
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the database answers.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    if app.store.ping().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
    }
}

/// Counters, and the queue depths, in Prometheus text format.
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    let gauges = [
        (
            "pincer_jobs_pending",
            "Queued events and answers not yet done.",
            crate::store::jobs::pending(&app.store.pool).await,
        ),
        ("pincer_outbox_open", "Replies not yet delivered.", crate::store::outbox::open(&app.store.pool).await),
    ];
    for (name, help, value) in gauges {
        if let Ok(v) = value {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
