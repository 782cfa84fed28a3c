//! Pincer: a self-hosted AI agent gateway a whole team shares.
//!
//! Events come in from platform adapters (crate `pincer-adapters`), carrying
//! commands parsed by the command language (crate `pincer-commands`), and go
//! through the [`router`]: dedupe → identity → policy → handler → audit, in
//! one Postgres transaction. See `docs/ARCHITECTURE.md` for the walk-through.
//!
//! Module map:
//! - [`app`] — the shared state ([`app::App`]) and metrics;
//! - [`config`] — the YAML config, validated with file:line:column errors;
//! - [`secret`] — `Secret` and `env://` / `file://` / `vault://` references;
//! - [`store`] — Postgres: users, agents, workspaces, memory, dedupe, audit;
//! - [`identity`] — platform user → person;
//! - [`policy`] — who may run what where (pure);
//! - [`router`] — the pipeline every event goes through;
//! - [`handlers`] — one file per command; [`actions`] — buttons;
//! - [`messages`] — every refusal and failure sentence people read;
//! - [`llm`] — providers: extractive (no key), OpenAI-compatible, Anthropic;
//! - [`agent`] — the tool loop with budgets; [`tools`] — the tool registry;
//! - [`memory`] — importing Markdown and text into memory scopes;
//! - [`server`] — the HTTP server (`/healthz`, `/readyz`, `/metrics`);
//! - [`gateway`] — platform webhooks (Slack), verified and stored via [`ingest`];
//! - [`worker`] — runs queued events and answers; [`dispatcher`] — delivers the outbox;
//! - [`service`] — what `pincer serve` runs per role; [`daemon`] — lease-held housekeeping;
//! - [`bench`] — `pincer bench`;
//! - [`cli`] — the `pincer` command line; [`telemetry`] — logging.

/// `println!` for the command line's output: when the reader goes away
/// (`pincer … | head`), the command ends quietly instead of panicking.
macro_rules! out {
    () => { $crate::cli::out(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::out(format_args!($($arg)*)) };
}

pub mod actions;
pub mod agent;
pub mod app;
pub mod approvals;
pub mod audit_ship;
pub mod backoff;
pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dispatcher;
pub mod gateway;
pub mod handlers;
pub mod identity;
pub mod ingest;
pub mod llm;
pub mod memory;
pub mod messages;
pub mod policy;
pub mod redact;
pub mod router;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod worker;

/// Installs rustls' ring provider as the process default (once). Call at
/// start-up and in test set-up: with no provider installed, the first TLS
/// connection panics.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
