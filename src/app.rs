//! The one typed struct of shared state, built once at start-up: the store,
//! the validated config, the LLM providers and the metrics counters.
//! Everything per-request is derived from this and the event; nothing is
//! kept in a type map or a global.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Config;
use crate::llm::Providers;
use crate::store::{Store, StoreError, agents, users};

/// Counters exported on `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events handled (all outcomes).
    pub events: AtomicU64,
    /// Events dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Events ignored (no agent bound, no reply).
    pub ignored: AtomicU64,
    /// Commands refused by policy or identity.
    pub denied: AtomicU64,
    /// Asks answered.
    pub answers: AtomicU64,
    /// Asks the provider failed to answer.
    pub provider_failures: AtomicU64,
    /// Unexpected errors.
    pub errors: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format.
    pub fn render(&self) -> String {
        let rows = [
            ("pincer_events_total", "Events handled.", &self.events),
            (
                "pincer_events_duplicate_total",
                "Events dropped as duplicates.",
                &self.duplicates,
            ),
            (
                "pincer_events_ignored_total",
                "Events from channels with no agent.",
                &self.ignored,
            ),
            (
                "pincer_commands_denied_total",
                "Commands refused by policy or identity.",
                &self.denied,
            ),
            ("pincer_answers_total", "Asks answered.", &self.answers),
            (
                "pincer_provider_failures_total",
                "Asks the model provider failed to answer.",
                &self.provider_failures,
            ),
            ("pincer_errors_total", "Unexpected errors.", &self.errors),
        ];
        let mut out = String::new();
        for (name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Shared state for the router, the server and the CLI.
#[derive(Debug)]
pub struct App {
    /// The database.
    pub store: Store,
    /// The validated config.
    pub config: Config,
    /// LLM providers.
    pub providers: Providers,
    /// Counters.
    pub metrics: Metrics,
}

impl App {
    /// Builds the state and brings the database in line with the config:
    /// migrations applied, declared people added if missing, agent policy
    /// snapshots written.
    pub async fn start(config: Config, store: Store) -> anyhow::Result<Arc<App>> {
        store.migrate().await?;
        sync_config(&store, &config).await?;
        if !config.rbac {
            tracing::warn!(
                "RBAC is OFF (PINCER_RBAC=0 or rbac: false): anyone the platforms deliver acts as a member. \
                 This is for local development only; /admin still needs an admin and observers still change nothing."
            );
        }
        let providers = Providers::from_config(&config)?;
        Ok(Arc::new(App {
            store,
            config,
            providers,
            metrics: Metrics::default(),
        }))
    }
}

/// Adds the config's people (if missing) and writes agent snapshots.
pub async fn sync_config(store: &Store, config: &Config) -> Result<(), StoreError> {
    let mut tx = store.pool.begin().await?;
    let added = users::seed(&mut tx, &config.users).await?;
    let changed = agents::sync(&mut tx, config.agents.values()).await?;
    if added > 0 || changed > 0 {
        crate::store::audit::append(
            &mut tx,
            vec![crate::store::audit::AuditEntry::new(
                None,
                "config.sync",
                serde_json::json!({"config": config.path.display().to_string(), "users_added": added, "agents_changed": changed}),
            )],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
