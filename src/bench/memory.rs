//! `pincer bench memory`: memory search latency over a large memory.
//!
//! Fills a fresh database with `items` synthetic passages spread over
//! `scopes` scopes (30 words each from a 5,000-word vocabulary with a
//! Zipf-like skew, so some words are common and most are rare, as in real
//! notes), then times `queries` searches of three words over three scopes —
//! an agent's two shared scopes plus a workspace — and reports p50/p95/p99.

use std::time::{Duration, Instant};

use pincer_commands::ScopeName;

use super::router::with_database;
use crate::store::{Store, memory};

/// Runs the memory benchmark.
pub async fn run(url: &str, items: u64, scopes: u32, queries: usize) -> anyhow::Result<std::process::ExitCode> {
    let db = format!("pincer_bench_memory_{}", std::process::id());
    let store = Store::connect(&with_database(url, &db), 4).await?;
    store.migrate().await?;
    let result = measure(&store, items, scopes, queries).await;
    store.pool.close().await;
    super::drop_database(url, &db).await?;
    result
}

async fn measure(store: &Store, items: u64, scopes: u32, queries: usize) -> anyhow::Result<std::process::ExitCode> {
    let started = Instant::now();
    // Each scope its own partition, as the first write to it would make.
    for i in 0..scopes {
        sqlx::query("SELECT pincer_memory_partition($1)").bind(format!("s{i}")).execute(&store.pool).await?;
    }
    // Word k has weight ~1/k: floor(5000^u) for uniform u in [0,1).
    sqlx::query(
        "INSERT INTO memory_items (scope, source, locator, author, body)
         SELECT 's' || (i % $2), 'bench/' || i, '', 'bench',
                (SELECT string_agg('w' || floor(power(5000, random()))::int, ' ') FROM generate_series(1, 30) WHERE i IS NOT NULL)
         FROM generate_series(1, $1) AS i",
    )
    .bind(items as i64)
    .bind(scopes as i64)
    .execute(&store.pool)
    .await?;
    sqlx::query("ANALYZE memory_items").execute(&store.pool).await?;
    let loaded = started.elapsed();

    let scope_set: Vec<ScopeName> = ["s1", "s2", "s3"].iter().map(|s| ScopeName::parse(s)).collect::<Result<_, _>>()?;
    let mut conn = store.pool.acquire().await?;
    let mut times: Vec<Duration> = Vec::with_capacity(queries);
    let mut hits = 0usize;
    for q in 0..queries {
        // Three words: one common, one middling, one rare.
        let words = format!("w{} w{} w{}", 1 + q % 7, 20 + (q * 13) % 200, 500 + (q * 97) % 4500);
        let t = Instant::now();
        hits += memory::search(&mut conn, &scope_set, &words, 5).await?.len();
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let pct =
        |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1].as_secs_f64() * 1000.0;
    println!(
        "Memory search: {items} passages in {scopes} scopes (loaded in {:.0} s); {queries} searches of 3 words over 3 scopes.",
        loaded.as_secs_f64()
    );
    println!();
    println!("| passages | scopes | searches | p50 ms | p95 ms | p99 ms | passages returned |");
    println!("|---|---|---|---|---|---|---|");
    println!("| {items} | {scopes} | {queries} | {:.2} | {:.2} | {:.2} | {hits} |", pct(0.50), pct(0.95), pct(0.99));
    Ok(std::process::ExitCode::SUCCESS)
}
