//! `pincer bench slack`: the Slack load tool.
//!
//! In this process: a mock LLM (OpenAI-compatible, answers at once), a mock
//! Slack Web API that records every reply with the time it arrived, and a
//! sender that posts signed `app_mention` events at a fixed rate, spread
//! over many channels. Under test, as a separate process so its CPU time and
//! peak RSS can be read from `/proc`: the floor bot, and a real
//! `pincer serve --role gateway` over a fresh database with every durable
//! write in place. Both run side by side, idle but for their turn; the load
//! goes to each in turn, round after round, so a machine that is busier in
//! one minute than the next skews both alike. Reported per target and
//! round: time to ready, ack p50/p99, end-to-end p50/p99 (event sent → reply
//! received by "Slack"), lost and duplicated replies, CPU per event and
//! peak RSS (the process's peak so far); then the median CPU ratio.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::router::with_database;

const SECRET: &str = "bench-signing-secret";
/// Linux reports process CPU time in ticks of 1/100 s (USER_HZ).
const TICKS_PER_SEC: f64 = 100.0;

/// What the mock Slack saw.
#[derive(Default)]
struct Seen {
    /// thread ts → arrival time of each answer posted in it.
    replies: HashMap<String, Vec<Instant>>,
    /// "working on it…" placeholders posted (answers slower than 1.5 s).
    placeholders: usize,
    /// placeholder ts → its thread, so an update counts for that thread.
    placeholder_threads: HashMap<String, String>,
}

type Shared = Arc<Mutex<Seen>>;

async fn post_message(State(seen): State<Shared>, body: String) -> impl IntoResponse {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let thread = v["thread_ts"].as_str().unwrap_or_default().to_string();
    let ts = format!("1900000000.{:06}", rand_u32() % 1_000_000);
    if let Ok(mut s) = seen.lock() {
        if v["text"] == "Working on it…" {
            s.placeholders += 1;
            s.placeholder_threads.insert(ts.clone(), thread);
        } else {
            s.replies.entry(thread).or_default().push(Instant::now());
        }
    }
    let reply = json!({"ok": true, "channel": v["channel"], "ts": ts, "message": {"ts": ts}});
    ([(header::CONTENT_TYPE, "application/json")], reply.to_string())
}

async fn update(State(seen): State<Shared>, body: String) -> impl IntoResponse {
    // An update replaces a placeholder with the answer: it counts as the
    // reply in the placeholder's thread.
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Ok(mut s) = seen.lock() {
        let ts = v["ts"].as_str().unwrap_or_default();
        let thread = s.placeholder_threads.get(ts).cloned().unwrap_or_else(|| format!("update:{ts}"));
        s.replies.entry(thread).or_default().push(Instant::now());
    }
    let reply = json!({"ok": true, "channel": v["channel"], "ts": v["ts"], "message": {}});
    ([(header::CONTENT_TYPE, "application/json")], reply.to_string())
}

fn rand_u32() -> u32 {
    (uuid::Uuid::new_v4().as_u128() & 0xffff_ffff) as u32
}

async fn serve_mocks(seen: Shared) -> anyhow::Result<(String, String)> {
    let slack = axum::Router::new()
        .route(
            "/api/auth.test",
            any(|| async {
                let v = json!({"ok": true, "url": "https://bench.slack.com/", "team": "Bench", "user": "pincer", "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"});
                ([(header::CONTENT_TYPE, "application/json")], v.to_string())
            }),
        )
        .route(
            "/api/users.info",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let user = q.get("user").cloned().unwrap_or_default();
                let v = json!({"ok": true, "user": {"id": user, "profile": {"email": format!("{}@bench.test", user.to_lowercase())}}});
                ([(header::CONTENT_TYPE, "application/json")], v.to_string())
            }),
        )
        .route(
            "/api/conversations.info",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let v = json!({"ok": true, "channel": {"id": q.get("channel"), "name": "oncall", "created": 1600000000}});
                ([(header::CONTENT_TYPE, "application/json")], v.to_string())
            }),
        )
        .route("/api/chat.postMessage", post(post_message))
        .route("/api/chat.update", post(update))
        .with_state(seen);
    let llm = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let v = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The deploy failed because a migration waited on a lock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":12,"total_tokens":62}}"#;
            ([(header::CONTENT_TYPE, "application/json")], v)
        }),
    );
    let sl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ll = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (sa, la) = (sl.local_addr()?, ll.local_addr()?);
    tokio::spawn(async move { axum::serve(sl, slack).await });
    tokio::spawn(async move { axum::serve(ll, llm).await });
    Ok((format!("http://{sa}/api"), format!("http://{la}/v1")))
}

fn write_config(dir: &Path, slack_url: &str, llm_url: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir.join("prompts"))?;
    std::fs::write(dir.join("prompts/oncall.md"), "You help whoever is on call. Answer briefly.\n")?;
    let yaml = format!(
        "org:\n  name: Bench\n  default_role: member\n  trusted_tenants: [\"slack:T1\"]\n  users:\n    - {{ email: admin@bench.test, role: admin }}\n\
         providers:\n  default:\n    kind: openai\n    base_url: {llm_url}\n    model: m\n\
         agents:\n  oncall:\n    owner: admin@bench.test\n    prompt: prompts/oncall.md\n    channels: [\"slack:#oncall\"]\n    memory_scopes: [incidents]\n\
         slack:\n  bot_token: xoxb-bench\n  signing_secret: {SECRET}\n  api_url: {slack_url}\n"
    );
    let path = dir.join("pincer.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    Ok((utime + stime) / TICKS_PER_SEC)
}

/// Peak resident set size in MB.
fn peak_rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(kb / 1024.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Target {
    child: Child,
    url: String,
    ready: Duration,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(name: &'static str, args: &[String], db_url: &str, port: u16) -> anyhow::Result<Target> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let child = Command::new(exe)
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .env_remove("PINCER_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "{name} did not become ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Target { child, url, ready: started.elapsed() })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn mention(i: u64, run: &str, channels: u32) -> (String, String) {
    let ts = format!("{run}.{i:06}");
    let body = json!({
        "token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": format!("Ev{run}{i}"), "event_time": 1700000000,
        "event": {"type": "app_mention", "user": format!("U{}", i % 50), "channel": format!("C{}", i % u64::from(channels)),
                  "text": "<@UBOT> why did the deploy fail?", "ts": ts, "event_ts": ts},
    });
    (body.to_string(), ts)
}

/// What the commit probe saw: every commit's latency, sorted, and the
/// commits over 10 ms (when, from the run's start; how long).
struct Probed {
    all: Vec<Duration>,
    slow: Vec<(Duration, Duration)>,
}

struct Outcome {
    /// When the run started, by the wall clock (to match a stall with the
    /// database's log).
    started: chrono::DateTime<chrono::Utc>,
    sent: usize,
    acks: Vec<Duration>,
    /// The slowest ack: when it was sent (from the run's start) and how long it took.
    slowest_ack: (Duration, Duration),
    /// What the commit probe saw, if it ran.
    probe: Option<Probed>,
    /// The block devices that held I/O during the run (watched with the
    /// commit probe).
    disk: super::disk::Held,
    e2e: Vec<Duration>,
    lost: usize,
    duplicates: usize,
    placeholders: usize,
    cpu_ms_per_event: f64,
    peak_rss_mb: f64,
    /// Write-ahead log the whole database cluster wrote during the run, per
    /// event sent (the commit probe's rows, if it ran, included).
    wal_kb_per_event: f64,
}

/// The database cluster's write-ahead log position, in bytes.
async fn wal_position(conn: &mut sqlx::PgConnection) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").fetch_one(conn).await?)
}

/// How often the commit probe commits.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// The commit probe's connection to `db_url`, with its table made.
async fn probe_connection(db_url: &str) -> anyhow::Result<sqlx::PgConnection> {
    let mut conn = crate::store::connect_one(db_url).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_commit_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())",
    )
    .execute(&mut conn)
    .await?;
    Ok(conn)
}

/// The commit probe: on its own connection ([`probe_connection`]), one
/// single-row `INSERT` (its own transaction, so a WAL flush) every
/// [`PROBE_EVERY`] until `stop`; returns every commit's latency and those
/// over 10 ms with their time from `base`. It shows what the database's
/// disk does during a run, whatever the target under load.
async fn commit_probe(
    mut conn: sqlx::PgConnection,
    base: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Probed> {
    use sqlx::Connection;
    let (mut all, mut slow) = (Vec::new(), Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t0 = Instant::now();
        sqlx::query("INSERT INTO bench_commit_probe DEFAULT VALUES").execute(&mut conn).await?;
        let took = t0.elapsed();
        all.push(took);
        if took > Duration::from_millis(10) {
            slow.push((t0.duration_since(base), took));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    conn.close().await?;
    all.sort_unstable();
    Ok(Probed { all, slow })
}

/// Sends `count` events at `rate` per second; waits for the replies. With
/// `probe`, runs the commit probe alongside. `db_url` is the database's,
/// for the write-ahead log written meanwhile.
#[allow(clippy::too_many_arguments)]
async fn drive(
    target: &Target,
    seen: &Shared,
    run: &str,
    rate: u32,
    count: u64,
    channels: u32,
    db_url: &str,
    probe: bool,
) -> anyhow::Result<Outcome> {
    use sqlx::Connection;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let pid = target.child.id();
    // The load tool's own connections are made before the run starts: a
    // connection costs Postgres a process (and sqlx's default, TLS, a
    // handshake), which on this small machine would land on the run's
    // first events.
    let mut admin = crate::store::connect_one(db_url).await?;
    let probe_conn = if probe { Some(probe_connection(db_url).await?) } else { None };
    let wal_before = wal_position(&mut admin).await?;
    let base = Instant::now();
    let started = chrono::Utc::now();
    let stop_probe = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probing = probe_conn.map(|conn| tokio::spawn(commit_probe(conn, base, stop_probe.clone())));
    let watching = if probe { super::disk::Watcher::start(base) } else { None };
    let cpu_before = cpu_seconds(pid)?;
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let slowest = Arc::new(Mutex::new((Duration::ZERO, Duration::ZERO)));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        tick.tick().await;
        let (body, ts) = mention(i, run, channels);
        let (http, url, sent_at, acks, slowest) =
            (http.clone(), target.url.clone(), sent_at.clone(), acks.clone(), slowest.clone());
        tasks.spawn(async move {
            let now_s =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let sig = sign(now_s, &body);
            let t0 = Instant::now();
            if let Ok(mut m) = sent_at.lock() {
                m.insert(ts, t0);
            }
            let ok = http
                .post(format!("{url}/slack/events"))
                .header("content-type", "application/json")
                .header("x-slack-request-timestamp", now_s.to_string())
                .header("x-slack-signature", sig)
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            let took = t0.elapsed();
            if ok && let Ok(mut a) = acks.lock() {
                a.push(took);
            }
            if ok
                && let Ok(mut s) = slowest.lock()
                && took > s.1
            {
                *s = (t0.duration_since(base), took);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Wait for the replies (at most 15 s after the last send).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = seen.lock().map(|s| s.replies.keys().filter(|k| k.starts_with(run)).count()).unwrap_or(0);
        if got as u64 >= count || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = cpu_seconds(pid)? - cpu_before;
    let wal = wal_position(&mut admin).await? - wal_before;
    admin.close().await?;
    stop_probe.store(true, std::sync::atomic::Ordering::Relaxed);
    let probe = match probing {
        Some(task) => Some(task.await??),
        None => None,
    };
    let disk = watching.map(super::disk::Watcher::stop).unwrap_or_default();
    let slowest_ack = slowest.lock().map(|s| *s).unwrap_or_default();
    let peak = peak_rss_mb(pid)?;
    let sent = sent_at.lock().map(|m| m.clone()).unwrap_or_default();
    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut e2e = Vec::new();
    let mut lost = 0;
    let mut duplicates = 0;
    for (ts, t0) in &sent {
        match seen.replies.get(ts) {
            Some(times) => {
                e2e.push(times[0].duration_since(*t0));
                duplicates += times.len() - 1;
            }
            None => lost += 1,
        }
    }
    let mut acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    acks.sort_unstable();
    e2e.sort_unstable();
    Ok(Outcome {
        started,
        sent: sent.len(),
        acks,
        slowest_ack,
        probe,
        disk,
        e2e,
        lost,
        duplicates,
        placeholders: seen.placeholders,
        cpu_ms_per_event: cpu * 1000.0 / count as f64,
        peak_rss_mb: peak,
        wal_kb_per_event: wal as f64 / 1024.0 / count as f64,
    })
}

fn sign(ts: u64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs the load against the floor bot and against Pincer, in turns, for
/// `rounds` rounds.
pub async fn run(
    url: &str,
    rate: u32,
    seconds: u32,
    channels: u32,
    rounds: u32,
    commit_probe: bool,
) -> anyhow::Result<ExitCode> {
    let seen: Shared = Arc::new(Mutex::new(Seen::default()));
    let (slack_url, llm_url) = serve_mocks(seen.clone()).await?;
    let dir = tempfile_dir()?;
    let config = write_config(&dir, &slack_url, &llm_url)?;
    let db = format!("pincer_bench_slack_{}", std::process::id());
    let db_url = with_database(url, &db);
    let count = u64::from(rate) * u64::from(seconds);
    let rounds = rounds.max(1);

    let port = free_port()?;
    let floor_args: Vec<String> = [
        "bench",
        "floor-bot",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--llm-url",
        &llm_url,
        "--slack-url",
        &slack_url,
        "--secret",
        SECRET,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let floor = spawn("floor bot", &floor_args, &db_url, port).await?;

    let port = free_port()?;
    let args: Vec<String> = [
        "--config",
        &config.display().to_string(),
        "serve",
        "--role",
        "gateway",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A fresh database: migrations run on the first start. The ready time
    // reported is a second start's, over a migrated database.
    drop(spawn("pincer (first start, migrating)", &args, &db_url, port).await?);
    let pincer = spawn("pincer serve", &args, &db_url, port).await?;

    // Each run's events have their own `ts` prefix, so replies are told apart.
    let mut runs = 0u32;
    let mut next_run = || {
        runs += 1;
        format!("18{runs:08}")
    };
    // A warm-up at a low rate for each (connections opened, caches filled).
    drive(&floor, &seen, &next_run(), 20, 100, channels, &db_url, false).await?;
    drive(&pincer, &seen, &next_run(), 20, 100, channels, &db_url, false).await?;
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let f = drive(&floor, &seen, &next_run(), rate, count, channels, &db_url, commit_probe).await?;
        let p = drive(&pincer, &seen, &next_run(), rate, count, channels, &db_url, commit_probe).await?;
        rows.push((round, f, p));
    }
    let ready = (floor.ready, pincer.ready);
    drop(floor);
    drop(pincer);

    if let Err(error) = super::drop_database(url, &db).await {
        eprintln!("warning: could not drop {db}: {error}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "Slack load: {rate} signed app_mention events/s for {seconds} s ({count} events) over {channels} channels, \
         {rounds} round(s) of floor bot then Pincer; mock LLM answers at once."
    );
    println!();
    println!(
        "| round | target | ready ms | ack p50 ms | ack p99 ms | e2e p50 ms | e2e p99 ms | lost | duplicates | CPU ms/event | peak RSS MB | WAL KB/event |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (round, floor_out, pincer_out) in &rows {
        for (name, ready, o) in [("floor bot", ready.0, floor_out), ("pincer serve", ready.1, pincer_out)] {
            println!(
                "| {round} | {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.3} | {:.1} | {:.2} |",
                ready.as_secs_f64() * 1000.0,
                pct(&o.acks, 0.50),
                pct(&o.acks, 0.99),
                pct(&o.e2e, 0.50),
                pct(&o.e2e, 0.99),
                o.lost,
                o.duplicates,
                o.cpu_ms_per_event,
                o.peak_rss_mb,
                o.wal_kb_per_event
            );
            if o.sent as u64 != count || o.placeholders > 0 {
                println!(
                    "  ({name}: {} sent, {} acked, {} slow-answer placeholders)",
                    o.sent,
                    o.acks.len(),
                    o.placeholders
                );
            }
        }
        ratios.push(pincer_out.cpu_ms_per_event / floor_out.cpu_ms_per_event);
    }
    if commit_probe {
        println!();
        println!(
            "Commit probe (another connection: a one-row INSERT, its own transaction, every {} ms), the block devices that held I/O for {} ms or more with none completed (read from /proc/diskstats every {} ms), and each run's slowest ack:",
            PROBE_EVERY.as_millis(),
            super::disk::HELD.as_millis(),
            super::disk::EVERY.as_millis()
        );
        println!();
        println!(
            "| round | target | started (UTC) | probe commits | p50 ms | p99 ms | max ms | probe commits > 10 ms (s into the run: ms) | disk held I/O (s into the run: ms) | slowest ack (s into the run: ms) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for (round, floor_out, pincer_out) in &rows {
            for (name, o) in [("floor bot", floor_out), ("pincer serve", pincer_out)] {
                let Some(Probed { all, slow }) = &o.probe else { continue };
                let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
                let at = |(when, took): &(Duration, Duration)| format!("{:.1}: {:.0}", when.as_secs_f64(), ms(took));
                let slow: Vec<String> = slow.iter().map(at).collect();
                let held: Vec<String> = o
                    .disk
                    .iter()
                    .map(|(device, holds)| format!("{device} {}", holds.iter().map(at).collect::<Vec<_>>().join(", ")))
                    .collect();
                let listed = |items: Vec<String>, sep: &str| {
                    if items.is_empty() { "none".to_string() } else { items.join(sep) }
                };
                println!(
                    "| {round} | {name} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                    o.started.format("%H:%M:%S%.3f"),
                    all.len(),
                    pct(all, 0.50),
                    pct(all, 0.99),
                    all.last().map(ms).unwrap_or(0.0),
                    listed(slow, ", "),
                    listed(held, "; "),
                    at(&o.slowest_ack)
                );
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    // Every round pooled: all of Pincer's CPU time over all of the floor
    // bot's (each round sends the same number of events to each).
    let total = |pick: fn(&(u32, Outcome, Outcome)) -> f64| rows.iter().map(pick).sum::<f64>();
    let pooled = total(|r| r.2.cpu_ms_per_event) / total(|r| r.1.cpu_ms_per_event);
    println!(
        "Pincer's CPU per event is {:.2}x the floor bot's (median of {} round(s): {}; all rounds pooled: {pooled:.2}x).",
        median(&ratios),
        ratios.len(),
        shown.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The median of sorted values (0 for none).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("pincer-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
