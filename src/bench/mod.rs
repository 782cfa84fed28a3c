//! `pincer bench`: the benchmarks whose figures are in `docs/PERFORMANCE.md`.
//!
//! - [`router`] — router throughput against the Postgres single-row insert rate;
//! - [`slack`] — a load tool: signed `app_mention`s at a fixed rate to a real
//!   `pincer serve`, with a mock LLM and a mock Slack, against the floor bot;
//! - [`floor`] — the floor bot: verify, call the model, post; nothing else;
//! - [`memory`] — memory search latency over a large memory.

pub mod disk;
pub mod floor;
pub mod memory;
pub mod router;
pub mod slack;

use clap::Subcommand;

use crate::config::Config;

/// `pincer bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Router throughput and latency versus single-row insert rate.
    Router {
        /// Events (and inserts) per phase.
        #[arg(long, default_value_t = 3000)]
        events: usize,
        /// Concurrent senders (and pool size).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Synthetic memory passages to search.
        #[arg(long, default_value_t = 10_000)]
        memory: usize,
        /// Spread memory over 20 scopes with a 5,000-word Zipf-like vocabulary
        /// (default: a 12-word vocabulary, all in the agent's scopes — every
        /// passage matches, the worst case).
        #[arg(long)]
        realistic_memory: bool,
    },
    /// Slack load: signed app_mentions at a fixed rate to `pincer serve` and to the floor bot.
    Slack {
        /// Events per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 15)]
        seconds: u32,
        /// Distinct channels the events are spread over.
        #[arg(long, default_value_t = 400)]
        channels: u32,
        /// Rounds: the floor bot and Pincer take turns, each round one run
        /// of each, so both see the machine in the same state; the CPU
        /// ratio reported is the median of the rounds'.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Also time, on another connection, a one-row commit every 20 ms
        /// during each run, and report when its slow commits and each
        /// run's slowest ack happened (to tell the disk's stalls from the
        /// gateway's).
        #[arg(long)]
        commit_probe: bool,
    },
    /// Memory search latency over a large synthetic memory.
    Memory {
        /// Passages.
        #[arg(long, default_value_t = 1_000_000)]
        items: u64,
        /// Scopes they are spread over.
        #[arg(long, default_value_t = 20)]
        scopes: u32,
        /// Searches timed.
        #[arg(long, default_value_t = 500)]
        queries: usize,
    },
    /// The floor bot the Slack benchmark compares with (started by `bench slack`).
    #[command(hide = true)]
    FloorBot {
        /// Address to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The OpenAI-compatible base URL.
        #[arg(long)]
        llm_url: String,
        /// The Slack Web API base URL.
        #[arg(long)]
        slack_url: String,
        /// The signing secret.
        #[arg(long)]
        secret: String,
    },
}

/// Drops a benchmark's scratch database (on the server `url` points at).
pub(crate) async fn drop_database(url: &str, db: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&router::with_database(url, "postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// Runs a benchmark.
pub async fn run(config: Option<Config>, url: &str, cmd: BenchCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCmd::Router { events, concurrency, memory, realistic_memory } => {
            let config = config.ok_or_else(|| anyhow::anyhow!("bench router needs --config"))?;
            router::run(config, url, events, concurrency, memory, realistic_memory).await
        }
        BenchCmd::Slack { rate, seconds, channels, rounds, commit_probe } => {
            slack::run(url, rate, seconds, channels, rounds, commit_probe).await
        }
        BenchCmd::Memory { items, scopes, queries } => memory::run(url, items, scopes, queries).await,
        BenchCmd::FloorBot { listen, llm_url, slack_url, secret } => {
            floor::serve(listen, llm_url, slack_url, secret).await
        }
    }
}
