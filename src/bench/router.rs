//! `pincer bench router`: router throughput against the Postgres floor.
//!
//! In a fresh database on the configured server it measures, with the same
//! pool and concurrency:
//! 1. the floor — single-row `INSERT`s, each its own committed transaction
//!    (what one durable write costs here);
//! 2. `/workspace` events through the full router (dedupe, identity,
//!    policy, audit, command);
//! 3. `/ask` events through the full router, answered by the extractive
//!    provider from a synthetic memory.
//!
//! Each event is one durable transaction of several writes, so the floor is
//! the number to compare with. The database is dropped afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_adapters::console::ConsoleSession;
use pincer_adapters::{ChannelRef, Platform, ReplyKind};
use pincer_commands::{Role, ScopeName};

use crate::app::App;
use crate::config::Config;
use crate::router::Router;
use crate::store::Store;
use crate::store::memory::{NewItem, replace_source};

/// Latency summary of one phase.
struct Phase {
    name: &'static str,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i].as_secs_f64() * 1000.0
    }
    fn row(&self) -> String {
        format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} |",
            self.name,
            self.count,
            self.rate(),
            self.pct(0.50),
            self.pct(0.99)
        )
    }
}

/// Replaces the database name in a Postgres URL.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, format!("?{q}"))).unwrap_or((url, String::new()));
    let prefix = match base.rfind('/') {
        Some(i) if i > base.find("//").map(|j| j + 1).unwrap_or(0) => &base[..i],
        _ => base,
    };
    format!("{prefix}/{name}{query}")
}

async fn timed<F, Fut>(name: &'static str, total: usize, workers: usize, f: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            while i < total {
                let t = Instant::now();
                f(i).await?;
                lat.push(t.elapsed());
                i += workers;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Phase { name, count: total, elapsed: start.elapsed(), latencies })
}

/// Runs the router benchmark.
pub async fn run(
    config: Config,
    url: &str,
    events: usize,
    concurrency: usize,
    memory: usize,
    realistic: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let db = format!("pincer_bench_{}", std::process::id());
    let bench_url = with_database(url, &db);
    let store = Store::connect(&bench_url, concurrency as u32 + 2).await?;
    let result = router_bench(config, store.clone(), events, concurrency, memory, realistic).await;
    store.pool.close().await;
    super::drop_database(url, &db).await?;
    result
}

async fn router_bench(
    config: Config,
    store: Store,
    events: usize,
    concurrency: usize,
    memory: usize,
    realistic: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let (agent, channel) = config
        .agents
        .values()
        .find_map(|a| a.channels.iter().find(|c| c.platform == Platform::Console).map(|c| (a.clone(), c.clone())))
        .ok_or_else(|| anyhow::anyhow!("the config binds no agent to a console: channel; the benchmark needs one"))?;
    let user = config
        .users
        .iter()
        .find(|u| u.role == Role::Member)
        .or_else(|| config.users.first())
        .ok_or_else(|| anyhow::anyhow!("the config declares no people"))?
        .email
        .clone();
    let app = App::start(config, store.clone()).await?;

    // Synthetic memory in the agent's scopes.
    let words = [
        "deploy",
        "database",
        "latency",
        "rollback",
        "migration",
        "alert",
        "queue",
        "cache",
        "disk",
        "certificate",
        "dns",
        "timeout",
    ];
    let scopes: Vec<ScopeName> =
        if agent.memory_scopes.is_empty() { vec![ScopeName::parse("bench")?] } else { agent.memory_scopes.clone() };
    if realistic {
        // Words from a 5,000-word vocabulary with a Zipf-like skew, over 20
        // scopes of which the agent reads its own.
        let mut all: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let others = 20usize.saturating_sub(all.len());
        all.extend((0..others).map(|k| format!("other-{k}")));
        for scope in &all {
            sqlx::query("SELECT pincer_memory_partition($1)").bind(scope).execute(&store.pool).await?;
        }
        sqlx::query(
            "INSERT INTO memory_items (scope, source, locator, author, body)
             SELECT $2[1 + i % array_length($2, 1)], 'bench/' || i, '', 'bench',
                    (SELECT string_agg('w' || floor(power(5000, random()))::int, ' ') FROM generate_series(1, 30) WHERE i IS NOT NULL)
             FROM generate_series(1, $1) AS i",
        )
        .bind(memory as i64)
        .bind(&all)
        .execute(&store.pool)
        .await?;
        sqlx::query("ANALYZE memory_items").execute(&store.pool).await?;
    }
    let mut tx = store.pool.begin().await?;
    for (s, scope) in scopes.iter().enumerate().filter(|_| !realistic) {
        let items: Vec<NewItem> = (0..memory / scopes.len())
            .map(|i| NewItem {
                locator: format!("item {i}"),
                body: format!(
                    "Incident {i}: the {} failed after the {} change; we fixed the {} and added an alert on {}.",
                    words[i % 12],
                    words[(i / 12 + s) % 12],
                    words[(i / 7) % 12],
                    words[(i / 3) % 12]
                ),
            })
            .collect();
        replace_source(&mut tx, scope, "bench", "bench", &items).await?;
    }
    tx.commit().await?;

    sqlx::query(
        "CREATE TABLE bench_insert (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&store.pool)
    .await?;
    let pool = store.pool.clone();
    let floor = timed("Postgres single-row INSERT (1 commit each)", events, concurrency, move |i| {
        let pool = pool.clone();
        async move {
            sqlx::query("INSERT INTO bench_insert (k) VALUES ($1)").bind(format!("k{i}")).execute(&pool).await?;
            Ok(())
        }
    })
    .await?;

    let router = Router::new(app.clone());
    let email = pincer_commands::Email::parse(user.as_str())?;
    let session = ConsoleSession { user: email, channel: channel.clone() };
    let mk = |line: &'static str, name: &'static str| {
        let router = router.clone();
        let session = session.clone();
        move || {
            timed(name, events, concurrency, move |i| {
                let router = router.clone();
                let session = session.clone();
                async move {
                    let replies = router.handle(session.event(line)).await;
                    anyhow::ensure!(
                        replies.len() == 1 && replies[0].kind != ReplyKind::Error,
                        "event {i} was not answered as expected: {replies:?}"
                    );
                    Ok(())
                }
            })
        }
    };
    let workspace = mk("/workspace", "router: /workspace (dedupe+identity+policy+audit+command)")().await?;
    let question = if realistic {
        "/ask why did w3 and w45 fail after w1234?"
    } else {
        "/ask why did the deploy fail after the migration?"
    };
    let ask = mk(question, "router: /ask, extractive answer over memory")().await?;

    let ch: &ChannelRef = &channel;
    println!(
        "Router benchmark: {events} per phase, {concurrency} concurrent, {memory} memory passages, agent {} in {ch}",
        agent.name
    );
    println!();
    println!("| phase | count | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for p in [&floor, &workspace, &ask] {
        println!("{}", p.row());
    }
    println!();
    println!(
        "Router /workspace events reach {:.0}% of the single-row insert rate; /ask events {:.0}%.",
        100.0 * workspace.rate() / floor.rate(),
        100.0 * ask.rate() / floor.rate()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(with_database("postgres://u@h:5432/pincer", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h:5432/pincer?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}
