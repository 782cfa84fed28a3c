//! The one typed struct of shared state, built once at start-up: the store,
//! the validated config, the LLM providers and the metrics counters.
//! Everything per-request is derived from this and the event; nothing is
//! kept in a type map or a global.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use std::time::Duration;

use pincer_adapters::delivery::DeliveryError;
use pincer_adapters::slack::{BotIdentity, SlackApi};
use tokio::sync::Notify;

use crate::config::{Config, SlackConfig};
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
    /// Platform requests refused for a bad signature.
    pub bad_signatures: AtomicU64,
    /// Replies delivered to platforms.
    pub delivered: AtomicU64,
    /// Deliveries the platform rate-limited.
    pub rate_limited: AtomicU64,
    /// Replies dead-lettered.
    pub dead_letters: AtomicU64,
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
            ("pincer_events_duplicate_total", "Events dropped as duplicates.", &self.duplicates),
            ("pincer_events_ignored_total", "Events from channels with no agent.", &self.ignored),
            ("pincer_commands_denied_total", "Commands refused by policy or identity.", &self.denied),
            ("pincer_answers_total", "Asks answered.", &self.answers),
            ("pincer_provider_failures_total", "Asks the model provider failed to answer.", &self.provider_failures),
            ("pincer_errors_total", "Unexpected errors.", &self.errors),
            ("pincer_bad_signatures_total", "Platform requests refused for a bad signature.", &self.bad_signatures),
            ("pincer_delivered_total", "Replies delivered to platforms.", &self.delivered),
            ("pincer_rate_limited_total", "Deliveries the platform rate-limited.", &self.rate_limited),
            ("pincer_dead_letters_total", "Replies dead-lettered.", &self.dead_letters),
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

/// Wake-ups for the worker and the dispatcher of this process. Other
/// processes are woken by Postgres NOTIFY; both are only hints — the loops
/// also poll.
#[derive(Debug, Default)]
pub struct Wake {
    /// A job was queued.
    pub jobs: Notify,
    /// A reply was stored.
    pub outbox: Notify,
    /// Asks waiting for an earlier ask of their conversation to end.
    pub turns: crate::worker::Turns,
}

/// Hands jobs this process queued straight to its own worker, already
/// claimed, saving the worker a round trip to find them. If the process
/// dies, the claim's lease runs out and any worker takes the job.
#[derive(Debug)]
pub struct Handoff {
    /// This process's worker id (the `locked_by` of its claims).
    pub worker: Arc<str>,
    /// The local worker, once it runs: a job handed to it runs at once in
    /// a task of its own, if one of its slots is free.
    pub local: std::sync::OnceLock<crate::worker::Local>,
    /// The local dispatcher's pacing, once it runs: with it, an answer
    /// delivers its own reply when nothing else waits in the channel.
    pub pacer: std::sync::OnceLock<Arc<crate::dispatcher::Pacer>>,
    /// The local dispatcher's delivery recorder, once it runs.
    pub recorder: std::sync::OnceLock<crate::dispatcher::Recorder>,
}

impl Default for Handoff {
    fn default() -> Self {
        Self {
            worker: format!("worker-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()).into(),
            local: std::sync::OnceLock::new(),
            pacer: std::sync::OnceLock::new(),
            recorder: std::sync::OnceLock::new(),
        }
    }
}

/// Slack, when configured: the Web API client, the signing secret, and who
/// the bot is (learnt from `auth.test` when serving).
#[derive(Debug)]
pub struct Slack {
    /// The Web API.
    pub api: SlackApi,
    /// The settings it was built from.
    pub config: SlackConfig,
    bot: RwLock<BotIdentity>,
}

impl Slack {
    /// Who the bot is (empty until `auth.test` answered).
    pub fn bot(&self) -> BotIdentity {
        self.bot.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Asks Slack who the bot is (`auth.test`) and remembers it. Slack being
    /// unreachable or busy at start-up is waited out, for up to
    /// [`IDENTIFY_PATIENCE`]; a refused token is an error at once.
    pub async fn identify(&self) -> anyhow::Result<BotIdentity> {
        let started = std::time::Instant::now();
        let mut attempt = 0i32;
        let me = loop {
            let answer = tokio::time::timeout(IDENTIFY_CALL, self.api.auth_test()).await.unwrap_or_else(|_| {
                Err(DeliveryError::Transient(format!("no answer within {} s", IDENTIFY_CALL.as_secs())))
            });
            let wait = match answer {
                Ok(me) => break me,
                // (A 404 or a proxy's 403: the URL, not the token.)
                Err(DeliveryError::Permanent(code)) if code.starts_with("HTTP ") => anyhow::bail!(
                    "Slack's API at {} answered auth.test with {code}: is SLACK_API_URL (or slack.api_url) right?",
                    self.config.api_url
                ),
                Err(DeliveryError::Permanent(code)) => anyhow::bail!(
                    "Slack refused the bot token ({code}) at {}: check SLACK_BOT_TOKEN (the app's Bot User OAuth \
                     Token, xoxb-…)",
                    self.config.api_url
                ),
                Err(DeliveryError::RateLimited(wait)) => wait,
                Err(DeliveryError::Transient(error)) => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "could not reach Slack to identify the bot; trying again");
                    crate::backoff::backoff(attempt, Duration::from_millis(500), Duration::from_secs(10))
                }
            };
            if started.elapsed() + wait > IDENTIFY_PATIENCE {
                anyhow::bail!(
                    "could not reach Slack at {} for {} s (auth.test); is the network or SLACK_API_URL right?",
                    self.config.api_url,
                    IDENTIFY_PATIENCE.as_secs()
                );
            }
            tokio::time::sleep(wait).await;
        };
        if let Ok(mut b) = self.bot.write() {
            *b = me.clone();
        }
        Ok(me)
    }
}

/// Who was told, in a channel, that they cannot ask there: chat they go
/// on posting is not met with the same refusal each time (one process's
/// memory; each replica tells once).
#[derive(Debug, Default)]
pub struct Told(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl Told {
    /// How long one telling lasts.
    pub const FOR: Duration = Duration::from_secs(24 * 3600);

    /// Takes the telling of `key`: `false` if it was told (or is being
    /// told) within [`Told::FOR`]; otherwise remembers it as told now and
    /// returns `true`. Two events of one person at once: one tells.
    pub fn claim(&self, key: &str) -> bool {
        let Ok(mut told) = self.0.lock() else { return true };
        let now = std::time::Instant::now();
        if told.get(key).is_some_and(|at| now.duration_since(*at) < Self::FOR) {
            return false;
        }
        if told.len() > 50_000 {
            told.retain(|_, at| now.duration_since(*at) < Self::FOR);
        }
        told.insert(key.to_string(), now);
        true
    }

    /// Gives a claimed telling back: it was not stored, so the person is
    /// told when the event is tried again (or at their next message).
    pub fn forget(&self, key: &str) {
        if let Ok(mut told) = self.0.lock() {
            told.remove(key);
        }
    }
}

/// How long start-up waits for Slack to answer `auth.test`.
pub const IDENTIFY_PATIENCE: Duration = Duration::from_secs(60);
/// How long one `auth.test` call may take.
const IDENTIFY_CALL: Duration = Duration::from_secs(10);

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
    /// Slack, if configured.
    pub slack: Option<Slack>,
    /// Wake-ups for the background loops.
    pub wake: Wake,
    /// The local worker's inbox.
    pub handoff: Handoff,
    /// Who was told they cannot ask where they chat.
    pub told: Told,
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
        let slack = match &config.slack {
            Some(sc) => Some(Slack {
                api: SlackApi::new(&sc.api_url, &sc.bot_token.expose())?,
                config: sc.clone(),
                bot: RwLock::new(BotIdentity::default()),
            }),
            None => None,
        };
        Ok(Arc::new(App {
            store,
            config,
            providers,
            metrics: Metrics::default(),
            slack,
            wake: Wake::default(),
            handoff: Handoff::default(),
            told: Told::default(),
        }))
    }
}

/// Re-reads the config file — every secret reference resolved afresh,
/// Vault included — and rotates the running process's secrets in place:
/// provider keys, the Slack signing secret, the audit sink's token. Returns
/// what changed. An invalid config (or an unreachable Vault) changes
/// nothing: the errors come back and the old values stay.
///
/// Slack's bot and app tokens and the audit signing key are not rotated
/// live (the Slack client and old checkpoints hold them): a change is
/// reported as needing a restart.
pub fn reload_secrets(app: &App) -> Result<Vec<String>, crate::config::ConfigErrors> {
    let new = Config::load_with(&app.config.path, crate::config::Secrets::Required, app.config.database_url_from)?;
    let mut changed = Vec::new();
    let rotate = |changed: &mut Vec<String>,
                  what: String,
                  old: Option<&crate::secret::Secret>,
                  new: Option<&crate::secret::Secret>| {
        if let (Some(o), Some(n)) = (old, new)
            && o.rotate(n)
        {
            changed.push(what);
        }
    };
    for (name, p) in &app.config.providers {
        rotate(
            &mut changed,
            format!("providers.{name}.api_key"),
            p.api_key.as_ref(),
            new.providers.get(name).and_then(|n| n.api_key.as_ref()),
        );
    }
    if let (Some(old), Some(new)) = (&app.config.slack, &new.slack) {
        rotate(&mut changed, "slack.signing_secret".into(), old.signing_secret.as_ref(), new.signing_secret.as_ref());
        if old.bot_token != new.bot_token || old.app_token != new.app_token {
            changed.push("slack tokens (restart to use them)".into());
        }
    }
    if let (
        Some(crate::config::AuditSink::Http { token: old, .. }),
        Some(crate::config::AuditSink::Http { token: new, .. }),
    ) = (&app.config.audit.sink, &new.audit.sink)
    {
        rotate(&mut changed, "audit.sink.token".into(), old.as_ref(), new.as_ref());
    }
    if app.config.audit.signing_key != new.audit.signing_key {
        changed.push("audit.signing_key (restart to use it)".into());
    }
    Ok(changed)
}

/// Adds the config's people (if missing) and writes agent snapshots.
pub async fn sync_config(store: &Store, config: &Config) -> Result<(u64, u64), StoreError> {
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
    Ok((added, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_telling_is_claimed_once_given_back_if_not_stored_and_only_for_its_key() {
        let told = Told::default();
        let key = "slack:T1:C1:U1:observer";
        assert!(told.claim(key), "the first event tells");
        assert!(!told.claim(key), "the next one, even at once, does not");
        assert!(told.claim("slack:T1:C2:U1:observer"), "another channel is another telling");
        // Not stored: given back, and the next event tells.
        told.forget(key);
        assert!(told.claim(key));
    }
}
