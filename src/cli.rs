//! The `pincer` command line: argument parsing and one function per
//! sub-command. `main.rs` only calls [`run`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pincer_adapters::console::{self, ConsoleSession};
use pincer_adapters::{ChannelEvent, ChannelRef, Platform, ReplyKind, Sender};
use pincer_commands::{Email, Role, ScopeName};
use tokio::io::BufReader;

use crate::app::App;
use crate::config::{Config, DEFAULT_CONFIG_PATH, DatabaseUrl, Secrets};
use crate::router::Router;
use crate::secret::resolve_value;
use crate::service::ServeRole;
use crate::store::{DEFAULT_DATABASE_URL, Store};

/// Pincer: a self-hosted AI agent gateway a whole team shares.
#[derive(Debug, Parser)]
#[command(name = "pincer", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "PINCER_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// The Postgres URL (may be env:// or file://). Overrides the config's database_url.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the gateway and/or the daemon.
    Serve {
        /// Address to listen on (default 0.0.0.0:3000, or HOST and PORT).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Which part of Pincer this process runs.
        #[arg(long, value_enum, default_value_t = ServeRole::All)]
        role: ServeRole,
    },
    /// Chat with the agents in the terminal, through the same router as the platforms.
    Chat {
        /// Who is typing (an e-mail of a person in the org).
        #[arg(long)]
        user: String,
        /// The channel, e.g. console:#product-bot or #product-bot (default: the first console channel of
        /// the agents, taken in order of their names).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Run an admin command (the same verbs as /admin in chat), plus disable-agent / enable-agent.
    Admin {
        /// The admin to act as (default: the config's org.operator, or its only admin).
        #[arg(long = "as", env = "PINCER_ADMIN")]
        as_: Option<String>,
        /// The command, e.g. `user add bob@acme.com member` or `audit verify`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Apply database migrations.
    Migrate,
    /// Check the config file.
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
    /// Manage memory.
    Memory {
        #[command(subcommand)]
        what: MemoryCmd,
    },
    /// Slack set-up help.
    Slack {
        #[command(subcommand)]
        what: SlackCmd,
    },
    /// Measure performance (see docs/PERFORMANCE.md).
    Bench {
        #[command(subcommand)]
        what: crate::bench::BenchCmd,
    },
}

/// `pincer config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the config and print every error with file, line and column.
    Check,
}

/// `pincer slack …`.
#[derive(Debug, Subcommand)]
pub enum SlackCmd {
    /// Print a Slack app manifest to paste into "Create an app → From an app manifest".
    Manifest {
        /// The public base URL of the gateway, e.g. https://pincer.acme.com.
        #[arg(long, required_unless_present = "socket_mode", conflicts_with = "socket_mode")]
        url: Option<String>,
        /// The app's name in Slack.
        #[arg(long, default_value = "Pincer")]
        name: String,
        /// For Socket Mode (no public URL): no request URLs in the manifest.
        #[arg(long)]
        socket_mode: bool,
    },
}

/// `pincer memory …`.
#[derive(Debug, Subcommand)]
pub enum MemoryCmd {
    /// Import Markdown or text files into a scope (re-importing a file replaces it).
    Import {
        /// The scope to import into.
        #[arg(long)]
        scope: String,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the newest passages of a scope (as `/admin memory list`).
    List {
        /// The scope.
        #[arg(long)]
        scope: String,
        /// How many (1 to 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The admin to act as (default: the config's org.operator, or its only admin).
        #[arg(long = "as", env = "PINCER_ADMIN")]
        as_: Option<String>,
    },
    /// Search one scope (as `/admin memory search`).
    Search {
        /// The scope.
        #[arg(long)]
        scope: String,
        /// The words to search for.
        #[arg(required = true)]
        words: Vec<String>,
        /// The admin to act as (default: the config's org.operator, or its only admin).
        #[arg(long = "as", env = "PINCER_ADMIN")]
        as_: Option<String>,
    },
    /// Delete one passage, audited (as `/admin memory forget`).
    Forget {
        /// The passage id (see `pincer memory list`).
        id: i64,
        /// The admin to act as (default: the config's org.operator, or its only admin).
        #[arg(long = "as", env = "PINCER_ADMIN")]
        as_: Option<String>,
    },
}

/// Parses the command line and runs it.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let quiet = !matches!(cli.command, Cmd::Serve { .. });
    crate::telemetry::init(quiet);
    crate::init_crypto();
    match dispatch(cli).await {
        Ok(code) => code,
        // The reader of the output went away (`| head`): nothing to say.
        Err(error) if error.is::<OutputClosed>() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command's output went to a pipe whose reader has gone. (Only writes
/// to stdout become this: a broken pipe to the database is a failure.)
#[derive(Debug, thiserror::Error)]
#[error("the output's reader has gone")]
struct OutputClosed;

/// `error`, from writing to stdout, as [`OutputClosed`] when the reader
/// has gone.
fn stdout_error(error: std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::BrokenPipe => OutputClosed.into(),
        _ => error.into(),
    }
}

/// Set once stdout cannot be written to: later output is dropped, and the
/// command finishes its work and exits with its own status.
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One line of the command line's output (see the `out!` macro). When the
/// reader has gone (`| head`), the rest of the output is dropped quietly;
/// any other failure to write is said once on stderr.
pub fn out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {e}");
        }
    }
}

/// Slack sends events, commands and clicks only to an `https://` address
/// with a host; anything else would be refused when the manifest is pasted.
fn check_public_url(url: &str) -> anyhow::Result<()> {
    let advice =
        "give the gateway's public base URL, e.g. https://pincer.acme.com, or use --socket-mode if it has none";
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("--url {url}: {e}; {advice}"))?;
    anyhow::ensure!(
        parsed.scheme() == "https" && parsed.host().is_some(),
        "--url {url}: Slack sends requests only to an https:// address; {advice}"
    );
    anyhow::ensure!(
        parsed.query().is_none() && parsed.fragment().is_none(),
        "--url {url}: Pincer adds /slack/events, /slack/commands and /slack/interactive to it, so it takes no ?query or #fragment; {advice}"
    );
    Ok(())
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // A database URL given on the command line or in the environment
    // makes the config's unused: it may then be unreadable.
    let db = match cli.database_url.as_deref() {
        Some(u) if !u.is_empty() => DatabaseUrl::GivenElsewhere,
        _ => DatabaseUrl::FromConfig,
    };
    if let Cmd::Config { what: ConfigCmd::Check } = &cli.command {
        return Ok(config_check(&cli.config, db));
    }
    if let Cmd::Slack { what: SlackCmd::Manifest { url, name, socket_mode } } = &cli.command {
        if let Some(url) = url.as_deref().filter(|_| !*socket_mode) {
            check_public_url(url)?;
        }
        let m = pincer_adapters::slack::manifest::manifest(url.as_deref().unwrap_or_default(), name, *socket_mode);
        out!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Bench {
        what:
            what @ (crate::bench::BenchCmd::Slack { .. }
            | crate::bench::BenchCmd::FloorBot { .. }
            | crate::bench::BenchCmd::Memory { .. }),
    } = cli.command
    {
        let url = cli.database_url.clone().unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        return crate::bench::run(None, &url, what).await;
    }
    // Commands that reach no model, Slack or audit sink go on without
    // their secrets (an admin's shell need not hold the model's key) — but
    // not the audit and doctor commands: without the audit signing key
    // they would report a checkpoint they cannot check as tampering.
    let secrets = match &cli.command {
        Cmd::Admin { args, .. } if args.first().is_some_and(|a| a == "audit" || a == "doctor") => Secrets::Required,
        Cmd::Migrate
        | Cmd::Admin { .. }
        | Cmd::Memory { what: MemoryCmd::List { .. } | MemoryCmd::Search { .. } | MemoryCmd::Forget { .. } } => {
            Secrets::Optional
        }
        _ => Secrets::Required,
    };
    let config = load_config(&cli.config, secrets, db)?;
    let url = database_url(cli.database_url.as_deref(), &config)?;
    match cli.command {
        Cmd::Migrate => {
            let store = Store::connect(&url, 2).await?;
            let applied = store.migrate().await?;
            let (added, changed) = crate::app::sync_config(&store, &config).await?;
            let n = crate::messages::count;
            if applied > 0 {
                out!("Applied {}.", n(applied, "migration", "migrations"));
            }
            if added > 0 {
                out!("Added {} from the config.", n(added, "person", "people"));
            }
            if changed > 0 {
                out!("Recorded {} from the config.", n(changed, "agent's settings", "agents' settings"));
            }
            out!("Database is up to date.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve { listen, role } => serve(config, &url, listen, role).await,
        Cmd::Chat { user, channel } => chat(config, &url, &user, channel.as_deref()).await,
        Cmd::Admin { as_, args } => admin(config, &url, as_.as_deref(), &args).await,
        Cmd::Memory { what: MemoryCmd::Import { scope, files } } => import(config, &url, &scope, &files).await,
        Cmd::Memory { what: MemoryCmd::List { scope, limit, as_ } } => {
            admin(config, &url, as_.as_deref(), &["memory".into(), "list".into(), scope, limit.to_string()]).await
        }
        Cmd::Memory { what: MemoryCmd::Search { scope, words, as_ } } => {
            let args: Vec<String> = ["memory".to_string(), "search".into(), scope].into_iter().chain(words).collect();
            admin(config, &url, as_.as_deref(), &args).await
        }
        Cmd::Memory { what: MemoryCmd::Forget { id, as_ } } => {
            admin(config, &url, as_.as_deref(), &["memory".into(), "forget".into(), id.to_string()]).await
        }
        Cmd::Bench { what } => crate::bench::run(Some(config), &url, what).await,
        Cmd::Config { .. } | Cmd::Slack { .. } => unreachable!("handled above"),
    }
}

fn load_config(path: &Path, secrets: Secrets, db: DatabaseUrl) -> anyhow::Result<Config> {
    let config = Config::load_with(path, secrets, db).map_err(|e| {
        // (The caller writes the first "error: ".)
        let listed = e.to_string();
        let listed = listed.strip_prefix("error: ").unwrap_or(&listed).to_string();
        anyhow::anyhow!("{listed}\nThe config has errors; run `pincer config check` for details.")
    })?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(config)
}

/// The database URL: flag or `DATABASE_URL`, else the config's, else the default.
pub fn database_url(flag: Option<&str>, config: &Config) -> anyhow::Result<String> {
    if let Some(raw) = flag.filter(|s| !s.is_empty()) {
        return Ok(resolve_value(raw, config.dir())
            .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?
            .expose()
            .to_string());
    }
    Ok(config.database_url.as_ref().map(|s| s.expose().to_string()).unwrap_or_else(|| DEFAULT_DATABASE_URL.into()))
}

fn config_check(path: &Path, db: DatabaseUrl) -> ExitCode {
    match Config::load_with(path, Secrets::Required, db) {
        Ok(c) => {
            for w in &c.warnings {
                out!("warning: {w}");
            }
            let admins = c.users.iter().filter(|u| u.role == Role::Admin).count();
            let n = |n: usize, one: &str, many: &str| crate::messages::count(n as u64, one, many);
            out!(
                "{}: OK — org {}, {} ({}), {}, {}, RBAC {}.",
                path.display(),
                c.org_name,
                n(c.users.len(), "person", "people"),
                n(admins, "admin", "admins"),
                n(c.agents.len(), "agent", "agents"),
                n(c.providers.len(), "provider", "providers"),
                if c.rbac { "on" } else { "OFF (local development only)" }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}; Pincer will not start with this config.",
                crate::messages::count(errors.0.len() as u64, "error", "errors")
            );
            ExitCode::FAILURE
        }
    }
}

async fn start(config: Config, url: &str, pool: u32) -> anyhow::Result<Arc<App>> {
    let store = Store::connect(url, pool).await.map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    App::start(config, store).await
}

async fn serve(config: Config, url: &str, listen: Option<SocketAddr>, role: ServeRole) -> anyhow::Result<ExitCode> {
    let listen = match listen {
        Some(l) => l,
        None => {
            let host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".into());
            let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
            format!("{host}:{port}").parse()?
        }
    };
    let app = start(config, url, 16).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(app.clone()));
    crate::service::run(app, listener, role, stop_rx).await?;
    tracing::info!("pincer stopped");
    Ok(ExitCode::SUCCESS)
}

/// `kill -HUP`: re-resolve every secret (a fresh Vault read) and rotate them
/// in place.
#[cfg(unix)]
async fn reload_on_hangup(app: Arc<App>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let reloading = app.clone();
        match tokio::task::spawn_blocking(move || crate::app::reload_secrets(&reloading)).await {
            Ok(Ok(changed)) => tracing::info!(?changed, "secrets reloaded"),
            Ok(Err(errors)) => tracing::error!(%errors, "reload refused; the running secrets stay"),
            Err(error) => tracing::error!(%error, "reload failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn chat(config: Config, url: &str, user: &str, channel: Option<&str>) -> anyhow::Result<ExitCode> {
    let user = Email::parse(user)?;
    let channel: ChannelRef = match channel {
        Some(c) => pincer_adapters::console::console_channel(c).parse()?,
        None => config
            .agents
            .values()
            .flat_map(|a| a.channels.iter())
            .find(|c| c.platform == Platform::Console)
            .cloned()
            .unwrap_or_else(|| ChannelRef { platform: Platform::Console, channel: "#general".into() }),
    };
    anyhow::ensure!(channel.platform == Platform::Console, "pincer chat posts to console: channels only");
    let app = start(config, url, 4).await?;
    // What happened while this person was away: answers whose terminal died
    // mid-run, produced now, and replies that were waiting here.
    let missed = crate::handlers::ask::catch_up(&app, user.as_str(), &channel.channel).await?;
    if !missed.is_empty() {
        out!("While you were away, in {}:", channel.channel);
        for r in missed {
            out!("{}", r.text);
        }
    }
    let router = Router::new(app);
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let session = ConsoleSession { user, channel };
    // (Its errors are reading stdin and writing stdout; the router's are
    // replies.)
    console::run(BufReader::new(tokio::io::stdin()), tokio::io::stdout(), session, &router, interactive)
        .await
        .map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

/// Turns `pincer admin` arguments into the `/admin` line they stand for.
pub fn admin_line(args: &[String]) -> anyhow::Result<String> {
    let (first, rest) = args.split_first().ok_or_else(|| {
        anyhow::anyhow!("say what to do, e.g. `pincer admin user list`; `pincer admin help` lists the commands")
    })?;
    let line = match first.as_str() {
        "disable-agent" | "enable-agent" => {
            let verb = if first == "disable-agent" { "disable" } else { "enable" };
            let (name, tail) = rest
                .split_first()
                .ok_or_else(|| anyhow::anyhow!("name the agent: pincer admin {first} NAME --reason WHY"))?;
            let reason: Vec<&str> = tail.iter().map(String::as_str).filter(|a| *a != "--reason").collect();
            format!("agent {verb} {name} {}", reason.join(" "))
        }
        "help" => return Ok("/help admin".into()),
        _ => args.join(" "),
    };
    Ok(format!("/admin {}", line.trim()))
}

fn operator(config: &Config, as_: Option<&str>) -> anyhow::Result<Email> {
    if let Some(e) = as_ {
        return Ok(Email::parse(e)?);
    }
    if let Some(op) = &config.operator {
        return Ok(op.clone());
    }
    let admins: Vec<&Email> = config.users.iter().filter(|u| u.role == Role::Admin).map(|u| &u.email).collect();
    match admins.as_slice() {
        [one] => Ok((*one).clone()),
        _ => anyhow::bail!("name the admin to act as with --as EMAIL (or PINCER_ADMIN, or org.operator in the config)"),
    }
}

async fn admin(config: Config, url: &str, as_: Option<&str>, args: &[String]) -> anyhow::Result<ExitCode> {
    let line = admin_line(args)?;
    let actor = operator(&config, as_)?;
    if let [a, b, rest @ ..] = args
        && a == "audit"
        && (b == "export" || b == "retain")
    {
        let app = start(config, url, 2).await?;
        return shell_audit(&app, &actor, b, rest).await;
    }
    let app = start(config, url, 2).await?;
    let router = Router::new(app);
    let sender = Sender {
        platform_user_id: actor.to_string(),
        display_name: os_user(),
        verified_email: Some(actor),
        is_bot: false,
    };
    let channel = ChannelRef { platform: Platform::Cli, channel: "shell".into() };
    let event = ChannelEvent::new("local", channel, None, sender, &line, uuid::Uuid::new_v4().to_string());
    let mut code = ExitCode::SUCCESS;
    let help = matches!(args, [a] if a == "help");
    for reply in router.handle(event).await {
        if reply.kind == ReplyKind::Error {
            // Usage and refusals, as a shell user types the commands.
            eprintln!("{}", crate::messages::on_shell(&reply.text));
            code = ExitCode::FAILURE;
        } else if help {
            out!("{}", crate::messages::on_shell(&reply.text));
            out!("Only from a shell:");
            for (usage, summary) in SHELL_ONLY {
                out!("  {usage:<58} {summary}");
            }
        } else {
            out!("{}", reply.text);
        }
    }
    Ok(code)
}

/// The admin commands only the shell has, for `pincer admin help`.
const SHELL_ONLY: &[(&str, &str)] = &[
    (
        "pincer admin audit export [--since WHEN] [--after-seq N]",
        "The audit log as JSON lines (audited); --out FILE writes a file.",
    ),
    ("pincer admin audit retain", "Run the audit log's retention now (the daemon runs it hourly)."),
];

/// `pincer admin audit export|retain`: shell-only, since they write files or
/// remove rows; the actor must be an admin, and each run is audited.
async fn shell_audit(app: &App, actor: &Email, verb: &str, rest: &[String]) -> anyhow::Result<ExitCode> {
    use crate::store::audit::{self, AuditEntry};
    let mut conn = app.store.pool.acquire().await?;
    let is_admin = crate::store::users::by_email(&mut conn, actor).await?.is_some_and(|u| u.role == Role::Admin);
    if !is_admin {
        eprintln!("Only admins can run pincer admin audit {verb}; {actor} is not one.");
        return Ok(ExitCode::FAILURE);
    }
    if verb == "retain" {
        let days = app.config.audit.retention_days;
        if app.config.audit.signing_key.is_none() {
            eprintln!(
                "Retention needs audit.signing_key in the config (e.g. env://PINCER_AUDIT_KEY) to sign its checkpoint."
            );
            return Ok(ExitCode::FAILURE);
        }
        return Ok(match crate::audit_ship::retain_once(app).await? {
            None => {
                out!("Retention is off (audit.retention_days: 0); nothing removed.");
                ExitCode::SUCCESS
            }
            Some(audit::Retention::Removed { up_to, rows }) => {
                out!(
                    "Removed {rows} audit rows older than {days} days (up to seq {up_to}) behind a signed checkpoint."
                );
                ExitCode::SUCCESS
            }
            Some(audit::Retention::Nothing) => {
                out!("No audit rows are older than {days} days (and shipped, when a sink is configured).");
                ExitCode::SUCCESS
            }
            Some(audit::Retention::Broken(b)) => {
                eprintln!("The audit chain is broken at seq {} ({}); nothing was removed.", b.seq, b.reason);
                ExitCode::FAILURE
            }
        });
    }
    // export [--since WHEN] [--after-seq N] [--out FILE]
    let mut after = 0i64;
    let mut out: Option<PathBuf> = None;
    let mut since_shown = None;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--since" => {
                let when = parse_since(value)?;
                after = audit::seq_before(&mut conn, when).await?;
                since_shown = Some(when.to_rfc3339());
            }
            "--after-seq" => {
                after = value.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                    anyhow::anyhow!("--after-seq takes an audit row's seq (0 or more), not '{value}'")
                })?;
            }
            "--out" => out = Some(PathBuf::from(value)),
            other => anyhow::bail!("unknown option {other}: use --since WHEN, --after-seq N, --out FILE"),
        }
    }
    let mut sink: Box<dyn std::io::Write> = match &out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = |e: std::io::Error| match &out {
        Some(p) => anyhow::anyhow!("cannot write {}: {e}", p.display()),
        None => stdout_error(e),
    };
    let (first, mut last, mut rows) = (after, after, 0u64);
    // An export cut short (the reader gone, a full disk) is audited too,
    // with how far it got, before its error is returned.
    let mut failed = None;
    'pages: loop {
        let page = audit::page(&mut conn, last, 1000).await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            if let Err(e) = writeln!(sink, "{}", audit::json_line(r)) {
                failed = Some(written(e));
                break 'pages;
            }
            rows += 1;
            last = r.seq;
        }
    }
    if failed.is_none() {
        failed = sink.flush().err().map(written);
    }
    drop(sink);
    let meta = serde_json::json!({"rows": rows, "after_seq": first, "last_seq": last, "since": since_shown,
        "out": out.as_ref().map(|p| p.display().to_string()), "complete": failed.is_none()});
    let mut tx = app.store.pool.begin().await?;
    audit::append(&mut tx, vec![AuditEntry::new(Some(actor.as_str()), "admin.audit.export", meta)]).await?;
    tx.commit().await?;
    if let Some(error) = failed {
        return Err(error);
    }
    match rows {
        0 => eprintln!("No audit rows after seq {first}; nothing exported."),
        _ => eprintln!(
            "Exported {} (seq {} to {last}).",
            crate::messages::count(rows, "audit row", "audit rows"),
            first + 1
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: a date (`2026-11-01`), an RFC 3339 time, or an age (`90d`, `12h`, `30m`).
fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, Utc};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default());
    }
    let (n, unit) = s.split_at(s.char_indices().last().map_or(0, |(i, _)| i));
    let n: i64 = n.parse::<u32>().map(i64::from).map_err(|_| {
        anyhow::anyhow!("--since takes a date (2026-11-01), a time (RFC 3339) or an age (90d, 12h, 30m), not '{s}'")
    })?;
    let age = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => anyhow::bail!("--since takes a date (2026-11-01), a time (RFC 3339) or an age (90d, 12h, 30m), not '{s}'"),
    };
    age.and_then(|age| Utc::now().checked_sub_signed(age))
        .ok_or_else(|| anyhow::anyhow!("--since {s} reaches back further than any date; give a smaller age"))
}

async fn import(config: Config, url: &str, scope: &str, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let scope = ScopeName::parse(scope)?;
    let read_by_agent = config.agent_scopes().any(|s| s == &scope);
    let app = start(config, url, 2).await?;
    let is_workspace = {
        let mut conn = app.store.pool.acquire().await?;
        crate::store::workspaces::get(&mut conn, &pincer_commands::WorkspaceName::parse(scope.as_str())?)
            .await?
            .is_some()
    };
    if !read_by_agent && !is_workspace {
        eprintln!(
            "warning: no agent reads scope {scope} and no workspace has that name; the passages will not be searched until one does"
        );
    }
    let actor = format!("cli:{}", os_user().unwrap_or_else(|| "unknown".into()));
    let mut code = ExitCode::SUCCESS;
    let embed_after = app.config.embeddings.is_some();
    for f in files {
        match crate::memory::import_file(&app.store, &scope, f, &actor).await {
            Ok(r) => out!(
                "Imported {} from {} into {scope}{}.",
                crate::messages::count(r.passages as u64, "passage", "passages"),
                r.source,
                if r.replaced > 0 { format!(" (replacing {})", r.replaced) } else { String::new() }
            ),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    if embed_after {
        match crate::memory::embed_pending(&app).await {
            Ok(n) => out!("Embedded {}.", crate::messages::count(n as u64, "passage", "passages")),
            Err(e) => eprintln!(
                "warning: embedding failed ({e:#}); the passages are searchable by full text, and a running daemon embeds them later"
            ),
        }
    }
    Ok(code)
}

/// Who runs this shell command, for the audit log: `$USER`, else
/// `$LOGNAME`, else the name `/etc/passwd` gives this process's user id (a
/// container or a service manager often sets neither variable).
fn os_user() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    set("USER").or_else(|| set("LOGNAME")).or_else(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.to_owned();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Some(passwd_name(&passwd, &uid).map_or_else(|| format!("uid {uid}"), str::to_owned))
    })
}

/// The user name `/etc/passwd` gives a user id.
fn passwd_name<'a>(passwd: &'a str, uid: &str) -> Option<&'a str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid && !name.is_empty()).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_a_time_or_a_positive_age() {
        assert_eq!(parse_since("2026-11-01").unwrap().to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(parse_since("2026-11-01T12:00:00+01:00").unwrap().to_rfc3339(), "2026-11-01T11:00:00+00:00");
        let age = chrono::Utc::now() - parse_since("90d").unwrap();
        assert!((age.num_days() - 90).abs() <= 1, "{age}");
        let huge = parse_since("4000000000d").unwrap_err().to_string();
        assert!(huge.contains("further than any date"), "{huge}");
        assert!(parse_since("999999999h").is_ok(), "far back, but a date: everything since then");
        for bad in ["-5d", "5w", "5é", "é", "", "d"] {
            let e = parse_since(bad).unwrap_err().to_string();
            assert!(e.starts_with("--since takes a date"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_user_id_is_named_from_the_password_file() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# a comment\n\npostgres:x:105:110::/var/lib/postgresql:/bin/sh\n";
        assert_eq!(passwd_name(passwd, "0"), Some("root"));
        assert_eq!(passwd_name(passwd, "105"), Some("postgres"));
        assert_eq!(passwd_name(passwd, "110"), None, "a group id is not a user id");
        assert_eq!(passwd_name(passwd, "1000"), None);
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn admin_arguments_become_the_admin_line() {
        assert_eq!(
            admin_line(&s(&["user", "add", "bob@acme.com", "member"])).unwrap(),
            "/admin user add bob@acme.com member"
        );
        assert_eq!(
            admin_line(&s(&["disable-agent", "ops-oncall", "--reason", "paging loop"])).unwrap(),
            "/admin agent disable ops-oncall paging loop"
        );
        assert_eq!(admin_line(&s(&["enable-agent", "ops-oncall"])).unwrap(), "/admin agent enable ops-oncall");
        assert_eq!(
            admin_line(&s(&["workspace", "create", "--user", "alice@acme.com", "--scope", "alice-lab"])).unwrap(),
            "/admin workspace create --user alice@acme.com --scope alice-lab"
        );
        assert!(admin_line(&[]).is_err());
    }
}
