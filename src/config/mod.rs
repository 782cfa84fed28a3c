//! The YAML config: the org (people and roles), LLM providers and agents.
//!
//! Loading is parse, then validate: serde turns the file into raw types whose
//! fields are already validated newtypes (so a bad name or role is reported
//! at its exact line and column), then [`validate`] checks what spans several
//! places — owners are declared users, prompt files exist, a channel is bound
//! to one agent only, secret references resolve — and points at the line with
//! [`locate`]. A config with any error is never used: the server does not
//! start. Warnings (a plaintext secret) are reported and allowed.

pub mod locate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pincer_adapters::{ChannelRef, Platform};
use pincer_commands::{AgentName, Email, Role, ScopeName};
use serde::Deserialize;

use crate::policy::ToolGrant;
use crate::secret::{Resolver, Secret, SecretRef, VaultAuth, VaultSettings};
use locate::{Seg, locate, path_string};

/// Where the config is read from when neither `--config` nor `PINCER_CONFIG` say.
pub const DEFAULT_CONFIG_PATH: &str = "pincer.yaml";
/// The provider name that means "answer from memory alone".
pub const EXTRACTIVE: &str = "extractive";
/// The provider name agents use unless they name another.
pub const DEFAULT_PROVIDER: &str = "default";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    org: RawOrg,
    #[serde(default)]
    rbac: Option<bool>,
    #[serde(default)]
    database_url: Option<SecretRef>,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    agents: BTreeMap<AgentName, RawAgent>,
    #[serde(default)]
    slack: Option<RawSlack>,
    #[serde(default)]
    budgets: Budgets,
    #[serde(default)]
    egress: RawEgress,
    #[serde(default)]
    approvals: RawApprovals,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    vault: Option<RawVault>,
    #[serde(default)]
    embeddings: Option<RawEmbeddings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmbeddings {
    provider: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    weight: Option<f32>,
}

/// Embeddings for hybrid memory ranking (`embeddings:`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsConfig {
    /// The OpenAI-compatible provider whose `/embeddings` endpoint is used.
    pub provider: String,
    /// The embedding model.
    pub model: String,
    /// How much the embedding similarity counts against full-text rank (0–1, default 0.5).
    pub weight: f32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    approvers: Option<Vec<Approver>>,
    #[serde(default)]
    expire_minutes: Option<u64>,
}

/// Who may approve a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Approver {
    /// The person whose question started the run.
    Asker,
    /// The agent's owner.
    Owner,
    /// Any admin.
    Admins,
}

/// The `approvals:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    /// Tools that pause for approval besides those that always do.
    pub tools: Vec<String>,
    /// Who may approve (default: the agent's owner and admins).
    pub approvers: Vec<Approver>,
    /// How long a request stays open (default 10 minutes).
    pub expire: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    signing_key: Option<SecretRef>,
    #[serde(default)]
    sink: Option<RawSink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    http: Option<String>,
    #[serde(default)]
    token: Option<SecretRef>,
}

/// Where new audit rows are shipped as they commit.
#[derive(Debug, Clone)]
pub enum AuditSink {
    /// Appended to a JSON-lines file.
    File(PathBuf),
    /// POSTed as JSON lines (`application/x-ndjson`).
    Http {
        /// The endpoint.
        url: String,
        /// Sent as `Authorization: Bearer …`, if set.
        token: Option<Secret>,
    },
}

impl AuditSink {
    /// The sink's name in `audit_cursor`.
    pub fn name(&self) -> String {
        match self {
            AuditSink::File(p) => format!("file:{}", p.display()),
            AuditSink::Http { url, .. } => format!("http:{url}"),
        }
    }
}

/// The `audit:` section.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Rows older than this are removed behind a signed checkpoint; 0 keeps
    /// everything. Default 90.
    pub retention_days: u32,
    /// The key checkpoints are signed with (HMAC-SHA256).
    pub signing_key: Option<Secret>,
    /// Where rows are shipped.
    pub sink: Option<AuditSink>,
}

/// Audit rows are kept this many days unless the config says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    token: Option<SecretRef>,
    #[serde(default)]
    role_id: Option<SecretRef>,
    #[serde(default)]
    secret_id: Option<SecretRef>,
    #[serde(default)]
    approle_mount: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    bot_token: SecretRef,
    #[serde(default)]
    signing_secret: Option<SecretRef>,
    #[serde(default)]
    app_token: Option<SecretRef>,
    #[serde(default)]
    api_url: Option<String>,
}

/// Slack's Web API base when nothing else is configured.
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

/// How Pincer reaches Slack.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The bot token (`xoxb-…`).
    pub bot_token: Secret,
    /// The signing secret, for the HTTP endpoints.
    pub signing_secret: Option<Secret>,
    /// The app-level token (`xapp-…`), for Socket Mode.
    pub app_token: Option<Secret>,
    /// The Web API base, e.g. `https://slack.com/api` (no trailing slash).
    pub api_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    name: String,
    #[serde(default = "default_role")]
    default_role: Role,
    #[serde(default)]
    operator: Option<Email>,
    #[serde(default)]
    trusted_tenants: Vec<ChannelRef>,
    #[serde(default)]
    users: Vec<UserSpec>,
}

fn default_role() -> Role {
    Role::Member
}

/// A person declared in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Their e-mail: their identity across platforms.
    pub email: Email,
    /// Their org role.
    pub role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: ProviderKind,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    api_key: Option<SecretRef>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    prices: Option<Prices>,
}

/// What a provider's tokens cost, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per million prompt tokens.
    #[serde(default)]
    pub input_per_mtok: f64,
    /// Per million completion tokens.
    #[serde(default)]
    pub output_per_mtok: f64,
}

impl Prices {
    /// The cost of a call in millionths of a dollar.
    pub fn cost_micros(&self, tokens_in: i64, tokens_out: i64) -> i64 {
        (tokens_in as f64 * self.input_per_mtok + tokens_out as f64 * self.output_per_mtok).round() as i64
    }
}

/// Daily token allowances; a person or agent past theirs gets a sentence
/// instead of an answer until midnight UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Tokens one person may use a day, across agents.
    #[serde(default)]
    pub person_daily_tokens: Option<i64>,
    /// Tokens one agent may use a day, across people.
    #[serde(default)]
    pub agent_daily_tokens: Option<i64>,
}

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions (OpenAI, Azure, Ollama, vLLM, …).
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    /// The API base used when the config gives none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The model used when the config gives none.
    pub fn default_model(self) -> &'static str {
        match self {
            ProviderKind::Openai => "gpt-4o-mini",
            ProviderKind::Anthropic => "claude-3-5-haiku-latest",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    owner: Email,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    fallback: Option<String>,
    prompt: String,
    #[serde(default)]
    allowed_tools: Vec<ToolGrant>,
    #[serde(default)]
    channels: Vec<ChannelRef>,
    #[serde(default)]
    memory_scopes: Vec<ScopeName>,
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The org's name, shown in replies.
    pub org_name: String,
    /// The role a newcomer from a trusted tenant gets.
    pub default_role: Role,
    /// The admin `pincer admin` acts as when `--as` is not given.
    pub operator: Option<Email>,
    /// Platform workspaces whose members may join on first contact.
    pub trusted_tenants: Vec<ChannelRef>,
    /// People declared in the config (added to the database if missing).
    pub users: Vec<UserSpec>,
    /// Whether role checks are on (`PINCER_RBAC` overrides).
    pub rbac: bool,
    /// `database_url` from the config, if given (`DATABASE_URL` overrides).
    pub database_url: Option<Secret>,
    /// Where the database URL came from when the config was read (a reload
    /// reads it the same way).
    pub database_url_from: DatabaseUrl,
    /// LLM providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Agents by name.
    pub agents: BTreeMap<AgentName, AgentConfig>,
    /// Slack, if configured (the `slack:` section, else `SLACK_*` variables).
    pub slack: Option<SlackConfig>,
    /// Daily token allowances.
    pub budgets: Budgets,
    /// Private networks tools may reach anyway (`egress.allow`).
    pub egress_allow: Vec<crate::tools::web::Network>,
    /// Which tool calls wait for a person's approval, and whose.
    pub approvals: Approvals,
    /// Audit shipping and retention.
    pub audit: AuditConfig,
    /// Whether secrets come from Vault (`vault:` or `VAULT_ADDR`).
    pub vault: bool,
    /// Whether any secret is written in plain text in the file.
    pub plaintext_secrets: bool,
    /// Hybrid memory ranking, if configured.
    pub embeddings: Option<EmbeddingsConfig>,
    /// Things worth fixing that do not stop Pincer.
    pub warnings: Vec<ConfigError>,
}

/// A configured LLM provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Its name, as agents refer to it.
    pub name: String,
    /// Its protocol.
    pub kind: ProviderKind,
    /// The API base, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The model id sent with each request.
    pub model: String,
    /// The bearer token, if the endpoint needs one.
    pub api_key: Option<Secret>,
    /// How long one request may take.
    pub timeout: Duration,
    /// The most tokens an answer may use.
    pub max_tokens: u32,
    /// Retries after a 429, 5xx, timeout or connection failure.
    pub max_retries: u32,
    /// What its tokens cost.
    pub prices: Prices,
}

/// A validated agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Its name.
    pub name: AgentName,
    /// The person answerable for it.
    pub owner: Email,
    /// What it is for, shown in `/admin agent list`.
    pub description: Option<String>,
    /// The provider it uses; `None` is the extractive provider.
    pub provider: Option<String>,
    /// The provider to try when its own fails (`extractive` allowed).
    pub fallback: Option<String>,
    /// Its prompt file, as written in the config.
    pub prompt_path: PathBuf,
    /// The prompt file's contents.
    pub prompt: String,
    /// Tools it may call.
    pub allowed_tools: Vec<ToolGrant>,
    /// Channels it is bound to.
    pub channels: Vec<ChannelRef>,
    /// Memory scopes it reads.
    pub memory_scopes: Vec<ScopeName>,
}

/// One problem in a config file, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every error found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors with their locations while validating.
struct Checker<'a> {
    src: &'a str,
    file: &'a Path,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    plaintext: bool,
    secrets: Secrets,
}

impl Checker<'_> {
    fn at(&self, path: &[Seg], message: String, hint: Option<&str>) -> ConfigError {
        let (line, column) = locate(self.src, path);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: format!("{}: {message}", path_string(path)),
            hint: hint.map(str::to_string),
        }
    }
    fn error(&mut self, path: &[Seg], message: String, hint: Option<&str>) {
        let e = self.at(path, message, hint);
        self.errors.push(e);
    }
    fn warn(&mut self, path: &[Seg], message: String, hint: Option<&str>) {
        let e = self.at(path, message, hint);
        self.warnings.push(e);
    }
    /// A secret that cannot be read: an error, or with [`Secrets::Optional`]
    /// a warning (the setting is left unset).
    fn unreadable(&mut self, path: &[Seg], message: String, hint: Option<&str>) {
        match self.secrets {
            Secrets::Required => self.error(path, message, hint),
            Secrets::Optional => {
                self.warn(path, format!("{message} (left unset: this command does not need it)"), hint)
            }
        }
    }
    /// A secret written in the file itself: a warning, and `doctor` fails.
    fn plaintext(&mut self, path: &[Seg], message: String, hint: Option<&str>) {
        self.plaintext = true;
        self.warn(path, message, hint);
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// A YAML reader's message without the names of Pincer's internal types
/// ("expected struct RawOrg" says "expected a mapping (key: value lines)").
fn yaml_sentence(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("struct Raw") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "struct Raw".len()..];
        let end = after.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len());
        out.push_str("a mapping (key: value lines)");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The grants that name tools, for a warning's hint.
fn tool_families_hint() -> String {
    let mut families: Vec<&str> = crate::tools::TOOLS.iter().map(|t| t.family).collect();
    families.sort_unstable();
    families.dedup();
    let tools =
        |f: &str| crate::tools::TOOLS.iter().filter(|t| t.family == f).map(|t| t.name).collect::<Vec<_>>().join(", ");
    let listed: Vec<String> = families.iter().map(|f| format!("{f} ({})", tools(f))).collect();
    format!("the grants with tools today: {}; add ':write' for a tool that writes", listed.join(", "))
}

/// Reads `PINCER_RBAC`: `0`, `false`, `off` or `no` turn role checks off.
fn rbac_from_env() -> Option<bool> {
    let v = std::env::var("PINCER_RBAC").ok()?;
    Some(!matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"))
}

/// What a secret the config names but that cannot be read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// An error: a gateway needs every secret it is given.
    Required,
    /// A warning, the setting left unset: for shell commands that do not
    /// use them (`pincer admin` on a machine without the model's key). The
    /// database URL is needed by every command and stays an error.
    Optional,
}

/// Where a command's database URL comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// The config's `database_url` (or the default): it must be readable.
    FromConfig,
    /// `--database-url` or `DATABASE_URL`: the config's, unused, may be
    /// unreadable (a warning).
    GivenElsewhere,
}

impl Config {
    /// Reads and validates the file at `path`; every secret must be readable.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, Secrets::Required, DatabaseUrl::FromConfig)
    }

    /// Reads and validates the file at `path`, with `secrets` saying what a
    /// secret that cannot be read is and `db` where the database URL comes
    /// from.
    pub fn load_with(path: &Path, secrets: Secrets, db: DatabaseUrl) -> Result<Config, ConfigErrors> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read the config file: {e}"),
                hint: Some("pass --config PATH or set PINCER_CONFIG; examples/pincer.yaml is a starting point".into()),
            }])
        })?;
        Config::parse_with(&src, path, secrets, db)
    }

    /// Validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigErrors> {
        Config::parse_with(src, path, Secrets::Required, DatabaseUrl::FromConfig)
    }

    /// [`Config::parse`], with `secrets` saying what a secret that cannot be
    /// read is and `db` where the database URL comes from.
    pub fn parse_with(src: &str, path: &Path, secrets: Secrets, db: DatabaseUrl) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = serde_yaml::from_str(src).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
            let message = e.to_string().split(" at line ").next().unwrap_or_default().to_string();
            let tab = src.lines().nth(line.saturating_sub(1)).is_some_and(|l| l.contains('\t'));
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                message: yaml_sentence(&message),
                hint: Some(if tab {
                    "YAML indents with spaces, never tabs".into()
                } else {
                    "see examples/pincer.yaml for every key and its shape".into()
                }),
            }])
        })?;
        validate(raw, src, path, secrets, db)
    }

    /// The folder relative paths in the config are taken from.
    pub fn dir(&self) -> &Path {
        self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    /// The agent bound to a channel, if any.
    pub fn agent_for(&self, channel: &ChannelRef) -> Option<&AgentConfig> {
        self.agents.values().find(|a| a.channels.contains(channel))
    }

    /// Every memory scope any agent reads.
    pub fn agent_scopes(&self) -> impl Iterator<Item = &ScopeName> {
        self.agents.values().flat_map(|a| a.memory_scopes.iter())
    }
}

fn validate(raw: RawConfig, src: &str, path: &Path, secrets: Secrets, db: DatabaseUrl) -> Result<Config, ConfigErrors> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let mut c = Checker { src, file: path, errors: Vec::new(), warnings: Vec::new(), plaintext: false, secrets };
    let vault = vault_settings(raw.vault, &dir, &mut c);
    let uses_vault = vault.is_some();
    let resolver = Resolver::new(&dir, vault);

    // People.
    let mut seen: HashMap<&Email, usize> = HashMap::new();
    for (i, u) in raw.org.users.iter().enumerate() {
        if let Some(first) = seen.insert(&u.email, i) {
            c.error(
                &[key("org"), key("users"), Seg::Index(i), key("email")],
                format!("{} is declared twice (first at org.users[{first}])", u.email),
                Some("keep one entry per person"),
            );
        }
    }
    let role_of = |e: &Email| raw.org.users.iter().find(|u| &u.email == e).map(|u| u.role);
    if let Some(op) = &raw.org.operator
        && role_of(op) != Some(Role::Admin)
    {
        c.error(
            &[key("org"), key("operator")],
            format!("{op} is not declared as an admin under org.users"),
            Some("the operator is the admin `pincer admin` acts as; declare them with role: admin"),
        );
    }
    for (i, t) in raw.org.trusted_tenants.iter().enumerate() {
        if t.platform == Platform::Console || t.platform == Platform::Cli {
            c.error(
                &[key("org"), key("trusted_tenants"), Seg::Index(i)],
                format!("{t} is local; only chat platforms' workspaces can be trusted"),
                Some("write it as slack:T0123ABC (a Slack team id), discord:GUILD_ID, …"),
            );
        }
    }

    // Providers.
    let mut providers = BTreeMap::new();
    for (name, p) in raw.providers {
        let at = [key("providers"), key(&name)];
        if name == EXTRACTIVE {
            c.error(&at, "'extractive' is built in and cannot be redefined".into(), Some("pick another provider name"));
            continue;
        }
        let api_key = match p.api_key.as_ref().map(|r| (r.is_literal(), resolver.resolve(r))) {
            None => None,
            Some((literal, Ok(s))) => {
                if literal {
                    c.plaintext(
                        &[key("providers"), key(&name), key("api_key")],
                        "the API key is written in plain text".into(),
                        Some("use env://OPENAI_API_KEY or file:///run/secrets/openai_api_key so the key stays out of the repo"),
                    );
                }
                Some(s)
            }
            Some((_, Err(e))) => {
                c.unreadable(
                    &[key("providers"), key(&name), key("api_key")],
                    e.to_string(),
                    Some("set the variable or create the file, or remove api_key"),
                );
                None
            }
        };
        let base_url = p.base_url.unwrap_or_else(|| p.kind.default_base_url().into());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            c.error(
                &[key("providers"), key(&name), key("base_url")],
                format!("'{base_url}' is not an http(s) URL"),
                None,
            );
        }
        providers.insert(
            name.clone(),
            ProviderConfig {
                name,
                kind: p.kind,
                base_url: base_url.trim_end_matches('/').to_string(),
                model: p.model.unwrap_or_else(|| p.kind.default_model().into()),
                api_key,
                timeout: Duration::from_secs(p.timeout_secs.unwrap_or(60).max(1)),
                max_tokens: p.max_tokens.unwrap_or(800),
                max_retries: p.max_retries.unwrap_or(2).min(10),
                prices: p.prices.unwrap_or_default(),
            },
        );
    }
    if providers.is_empty()
        && let Ok(key) = std::env::var("OPENAI_API_KEY")
        && !key.is_empty()
    {
        let base_url = std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
        providers.insert(
            DEFAULT_PROVIDER.into(),
            ProviderConfig {
                name: DEFAULT_PROVIDER.into(),
                kind: ProviderKind::Openai,
                base_url: base_url.trim_end_matches('/').to_string(),
                model: std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()),
                api_key: Some(Secret::new(key)),
                timeout: Duration::from_secs(60),
                max_tokens: 800,
                max_retries: 2,
                prices: Prices::default(),
            },
        );
    }

    // Agents.
    let mut bound: HashMap<ChannelRef, AgentName> = HashMap::new();
    let mut agents = BTreeMap::new();
    for (name, a) in raw.agents {
        let at = |k: &str| vec![key("agents"), key(name.as_str()), key(k)];
        if role_of(&a.owner).is_none() {
            c.error(
                &at("owner"),
                format!("{} is not declared under org.users", a.owner),
                Some("every agent needs an owner who is a person in the org; add them under org.users"),
            );
        }
        let provider = match a.model.as_deref() {
            Some(EXTRACTIVE) => None,
            None | Some(DEFAULT_PROVIDER) => {
                providers.contains_key(DEFAULT_PROVIDER).then(|| DEFAULT_PROVIDER.to_string())
            }
            Some(other) if providers.contains_key(other) => Some(other.to_string()),
            Some(other) => {
                c.error(
                    &at("model"),
                    format!("'{other}' is not a provider declared under providers"),
                    Some("use default, extractive, or a name under providers"),
                );
                None
            }
        };
        let fallback = match a.fallback.as_deref() {
            None => None,
            Some(f) if f == EXTRACTIVE || providers.contains_key(f) => Some(f.to_string()),
            Some(other) => {
                c.error(
                    &at("fallback"),
                    format!("'{other}' is not a provider declared under providers"),
                    Some("use extractive (answer from memory alone) or a name under providers"),
                );
                None
            }
        };
        let prompt_path = PathBuf::from(&a.prompt);
        let prompt = match std::fs::read_to_string(dir.join(&prompt_path)) {
            Ok(p) => p,
            Err(e) => {
                c.error(
                    &at("prompt"),
                    format!("cannot read prompt file {}: {e}", dir.join(&prompt_path).display()),
                    Some("prompt paths are relative to the config file's folder; prompts live in the repo and are reviewed like code"),
                );
                String::new()
            }
        };
        for (i, ch) in a.channels.iter().enumerate() {
            if ch.platform == Platform::Cli {
                c.error(
                    &[key("agents"), key(name.as_str()), key("channels"), Seg::Index(i)],
                    "cli: is the admin shell, not a channel".into(),
                    None,
                );
            } else if let Some(other) = bound.insert(ch.clone(), name.clone()) {
                c.error(
                    &[key("agents"), key(name.as_str()), key("channels"), Seg::Index(i)],
                    format!("{ch} is already bound to agent {other}"),
                    Some("a channel has one agent, so everyone there knows who answers"),
                );
            }
        }
        // A grant is any well-formed name (so a config can be written ahead
        // of a tool), but one that names no tool grants nothing: said so, so
        // nobody believes an agent may run a shell it cannot.
        for (i, g) in a.allowed_tools.iter().enumerate() {
            if !crate::tools::TOOLS.iter().any(|t| t.family == g.tool) {
                c.warn(
                    &[key("agents"), key(name.as_str()), key("allowed_tools"), Seg::Index(i)],
                    format!(
                        "'{}{}' names no tool this Pincer has, so it grants nothing",
                        g.tool,
                        if g.write { ":write" } else { "" }
                    ),
                    Some(&tool_families_hint()),
                );
            }
        }
        let mut scopes_seen = std::collections::HashSet::new();
        for (i, s) in a.memory_scopes.iter().enumerate() {
            if !scopes_seen.insert(s) {
                c.warn(
                    &[key("agents"), key(name.as_str()), key("memory_scopes"), Seg::Index(i)],
                    format!("scope {s} is listed twice"),
                    None,
                );
            }
        }
        agents.insert(
            name.clone(),
            AgentConfig {
                name,
                owner: a.owner,
                description: a.description,
                provider,
                fallback,
                prompt_path,
                prompt,
                allowed_tools: a.allowed_tools,
                channels: a.channels,
                memory_scopes: a.memory_scopes,
            },
        );
    }

    let database_url = match raw.database_url.as_ref().map(|r| resolver.resolve(r)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) if db == DatabaseUrl::GivenElsewhere => {
            let message = format!("{e} (left unset: --database-url or DATABASE_URL is used instead)");
            c.warn(&[key("database_url")], message, None);
            None
        }
        Some(Err(e)) => {
            c.error(&[key("database_url")], e.to_string(), None);
            None
        }
    };

    let slack = slack_config(raw.slack, &resolver, &mut c);
    let approvals = approvals_config(raw.approvals, &mut c);
    let audit = audit_config(raw.audit, &resolver, &mut c);
    let plaintext_secrets = c.plaintext;
    let embeddings = match raw.embeddings {
        None => None,
        Some(e) => match providers.get(&e.provider) {
            Some(p) if p.kind == ProviderKind::Openai => Some(EmbeddingsConfig {
                provider: e.provider,
                model: e.model.unwrap_or_else(|| "text-embedding-3-small".into()),
                weight: e.weight.unwrap_or(0.5).clamp(0.0, 1.0),
            }),
            Some(_) => {
                c.error(
                    &[key("embeddings"), key("provider")],
                    format!("'{}' speaks Anthropic Messages, which has no embeddings endpoint", e.provider),
                    Some("name an OpenAI-compatible provider (OpenAI, Azure, Ollama, vLLM, LiteLLM, …)"),
                );
                None
            }
            None => {
                c.error(
                    &[key("embeddings"), key("provider")],
                    format!("'{}' is not a provider declared under providers", e.provider),
                    None,
                );
                None
            }
        },
    };
    let mut egress_allow = Vec::new();
    for (i, n) in raw.egress.allow.iter().enumerate() {
        match crate::tools::web::Network::parse(n) {
            Ok(net) => egress_allow.push(net),
            Err(e) => c.error(
                &[key("egress"), key("allow"), Seg::Index(i)],
                e,
                Some("write an address or network, e.g. 10.20.0.0/16"),
            ),
        }
    }

    if !c.errors.is_empty() {
        c.errors.sort_by_key(|e| (e.line, e.column));
        return Err(ConfigErrors(c.errors));
    }
    Ok(Config {
        path: path.to_path_buf(),
        org_name: raw.org.name,
        default_role: raw.org.default_role,
        operator: raw.org.operator,
        trusted_tenants: raw.org.trusted_tenants,
        users: raw.org.users,
        rbac: rbac_from_env().or(raw.rbac).unwrap_or(true),
        database_url,
        database_url_from: db,
        providers,
        agents,
        slack,
        budgets: raw.budgets,
        egress_allow,
        approvals,
        audit,
        vault: uses_vault,
        plaintext_secrets,
        embeddings,
        warnings: c.warnings,
    })
}

/// The `slack:` section, or Slack's conventional variables when there is
/// none: `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`, `SLACK_APP_TOKEN`,
/// `SLACK_API_URL`.
fn slack_config(raw: Option<RawSlack>, resolver: &Resolver, c: &mut Checker<'_>) -> Option<SlackConfig> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let raw = match raw {
        Some(r) => r,
        None => {
            // The variables may hold the value or a reference to it
            // (SLACK_BOT_TOKEN=file:///run/secrets/slack_bot_token).
            let mut from_env = |name: &str| {
                let raw = env(name)?;
                match SecretRef::parse(&raw).and_then(|r| resolver.resolve(&r)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        c.unreadable(&[Seg::Key("slack".into())], format!("{name}: {e}"), None);
                        None
                    }
                }
            };
            let Some(bot_token) = from_env("SLACK_BOT_TOKEN") else {
                // Half a set-up: say so, rather than a silent 404 at /slack/*.
                // (A token set but unreadable was reported just now.)
                if let Some(other) = ["SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"].into_iter().find(|n| env(n).is_some())
                    && env("SLACK_BOT_TOKEN").is_none()
                {
                    c.warn(
                        &[Seg::Key("slack".into())],
                        format!("{other} is set but SLACK_BOT_TOKEN is not: Slack stays off"),
                        Some("set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…)"),
                    );
                }
                return None;
            };
            let (signing_secret, app_token) = (from_env("SLACK_SIGNING_SECRET"), from_env("SLACK_APP_TOKEN"));
            if signing_secret.is_none() && app_token.is_none() {
                // (Enough for a process that only delivers replies.)
                c.warn(
                    &[Seg::Key("slack".into())],
                    "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (HTTP endpoints) nor SLACK_APP_TOKEN \
                     (Socket Mode): Pincer can post to Slack but hears nothing from it"
                        .into(),
                    None,
                );
            }
            return Some(SlackConfig {
                bot_token,
                signing_secret,
                app_token,
                api_url: env("SLACK_API_URL")
                    .unwrap_or_else(|| DEFAULT_SLACK_API_URL.into())
                    .trim_end_matches('/')
                    .to_string(),
            });
        }
    };
    let mut resolve = |key: &str, r: &SecretRef| match resolver.resolve(r) {
        Ok(s) => {
            if r.is_literal() {
                c.plaintext(
                    &[Seg::Key("slack".into()), Seg::Key(key.into())],
                    "the secret is written in plain text".into(),
                    Some("use env://… or file:///run/secrets/… so it stays out of the repo"),
                );
            }
            Some(s)
        }
        Err(e) => {
            c.unreadable(&[Seg::Key("slack".into()), Seg::Key(key.into())], e.to_string(), None);
            None
        }
    };
    let bot_token = resolve("bot_token", &raw.bot_token);
    let signing_secret = raw.signing_secret.as_ref().and_then(|r| resolve("signing_secret", r));
    let app_token = raw.app_token.as_ref().and_then(|r| resolve("app_token", r));
    let api_url = raw.api_url.or_else(|| env("SLACK_API_URL")).unwrap_or_else(|| DEFAULT_SLACK_API_URL.into());
    if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
        c.error(
            &[Seg::Key("slack".into()), Seg::Key("api_url".into())],
            format!("'{api_url}' is not an http(s) URL"),
            None,
        );
    }
    if raw.signing_secret.is_none() && raw.app_token.is_none() {
        c.error(
            &[Seg::Key("slack".into())],
            "Slack needs signing_secret (HTTP endpoints) or app_token (Socket Mode), or both".into(),
            Some("signing_secret: env://SLACK_SIGNING_SECRET"),
        );
    }
    Some(SlackConfig {
        bot_token: bot_token?,
        signing_secret,
        app_token,
        api_url: api_url.trim_end_matches('/').to_string(),
    })
}

/// The `vault:` section, or Vault's conventional variables (`VAULT_ADDR`,
/// `VAULT_TOKEN`, or `VAULT_ROLE_ID` + `VAULT_SECRET_ID` for AppRole). The
/// credentials themselves come from env:// or file://, never from Vault.
fn vault_settings(raw: Option<RawVault>, dir: &Path, c: &mut Checker<'_>) -> Option<VaultSettings> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let raw = raw.unwrap_or_default();
    let address = raw.address.clone().or_else(|| env("VAULT_ADDR"))?;
    let at = |k: &str| [key("vault"), key(k)];
    let mut cred = |k: &str, r: Option<SecretRef>, var: &str| -> Option<Secret> {
        let r = match r {
            Some(r) => r,
            None => SecretRef::Env(env(var).map(|_| var.to_string())?),
        };
        if matches!(r, SecretRef::Vault { .. }) {
            c.error(&at(k), "Vault's own credentials cannot come from Vault".into(), Some("use env://… or file://…"));
            return None;
        }
        if r.is_literal() {
            c.plaintext(
                &at(k),
                format!("the Vault {k} is written in plain text"),
                Some("use env://… or file:///run/secrets/…"),
            );
        }
        match r.resolve(dir) {
            Ok(s) => {
                crate::redact::register(&s.expose());
                Some(s)
            }
            Err(e) => {
                c.unreadable(&at(k), e.to_string(), None);
                None
            }
        }
    };
    let token = cred("token", raw.token, "VAULT_TOKEN");
    let role_id = cred("role_id", raw.role_id, "VAULT_ROLE_ID");
    let secret_id = cred("secret_id", raw.secret_id, "VAULT_SECRET_ID");
    let auth = match (token, role_id, secret_id) {
        (_, Some(role_id), Some(secret_id)) => {
            VaultAuth::AppRole { mount: raw.approle_mount.unwrap_or_else(|| "approle".into()), role_id, secret_id }
        }
        (Some(token), _, _) => VaultAuth::Token(token),
        _ => {
            c.unreadable(
                &[key("vault")],
                format!("Vault at {address} is configured without a way to sign in"),
                Some("set vault.token (or VAULT_TOKEN), or vault.role_id and vault.secret_id (or VAULT_ROLE_ID and VAULT_SECRET_ID)"),
            );
            return None;
        }
    };
    if !(address.starts_with("http://") || address.starts_with("https://")) {
        c.error(&at("address"), format!("'{address}' is not an http(s) URL"), None);
        return None;
    }
    Some(VaultSettings { address: address.trim_end_matches('/').to_string(), auth, namespace: raw.namespace })
}

fn approvals_config(raw: RawApprovals, c: &mut Checker<'_>) -> Approvals {
    for (i, t) in raw.tools.iter().enumerate() {
        if !crate::tools::TOOLS.iter().any(|tool| tool.name == t) {
            let known: Vec<&str> = crate::tools::TOOLS.iter().map(|t| t.name).collect();
            c.error(
                &[key("approvals"), key("tools"), Seg::Index(i)],
                format!("'{}' is not a tool", pincer_commands::names::shown(t)),
                Some(&format!("tools: {}", known.join(", "))),
            );
        }
    }
    let approvers = raw.approvers.unwrap_or_else(|| vec![Approver::Owner, Approver::Admins]);
    if approvers.is_empty() {
        c.error(
            &[key("approvals"), key("approvers")],
            "nobody could approve anything".into(),
            Some("list at least one of asker, owner, admins"),
        );
    }
    Approvals {
        tools: raw.tools,
        approvers,
        expire: Duration::from_secs(60 * raw.expire_minutes.unwrap_or(10).clamp(1, 24 * 60)),
    }
}

fn audit_config(raw: RawAudit, resolver: &Resolver, c: &mut Checker<'_>) -> AuditConfig {
    let signing_key = match raw.signing_key.as_ref().map(|r| (r.is_literal(), resolver.resolve(r))) {
        None => None,
        Some((_, Ok(s))) if s.expose().len() < 32 => {
            c.error(
                &[key("audit"), key("signing_key")],
                format!("the checkpoint signing key is {} bytes long; it needs at least 32", s.expose().len()),
                Some("generate one with `openssl rand -hex 32`"),
            );
            None
        }
        Some((literal, Ok(s))) => {
            if literal {
                c.plaintext(
                    &[key("audit"), key("signing_key")],
                    "the checkpoint signing key is written in plain text".into(),
                    Some("use env://PINCER_AUDIT_KEY or file:///run/secrets/audit_key"),
                );
            }
            Some(s)
        }
        Some((_, Err(e))) => {
            c.unreadable(&[key("audit"), key("signing_key")], e.to_string(), None);
            None
        }
    };
    let sink = match raw.sink {
        None => None,
        Some(RawSink { file: Some(f), http: None, token: None }) => Some(AuditSink::File(resolver_dir(resolver, &f))),
        Some(RawSink { file: None, http: Some(url), token }) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                c.error(&[key("audit"), key("sink"), key("http")], format!("'{url}' is not an http(s) URL"), None);
            }
            let token = token.and_then(|r| match resolver.resolve(&r) {
                Ok(s) => {
                    if r.is_literal() {
                        c.plaintext(
                            &[key("audit"), key("sink"), key("token")],
                            "the sink token is written in plain text".into(),
                            Some("use env://… or file:///run/secrets/…"),
                        );
                    }
                    Some(s)
                }
                Err(e) => {
                    c.unreadable(&[key("audit"), key("sink"), key("token")], e.to_string(), None);
                    None
                }
            });
            Some(AuditSink::Http { url, token })
        }
        Some(_) => {
            c.error(
                &[key("audit"), key("sink")],
                "a sink is either file: PATH or http: URL (with an optional token)".into(),
                Some("sink: {file: /var/log/pincer/audit.jsonl} or sink: {http: http://vector:8080/}"),
            );
            None
        }
    };
    AuditConfig { retention_days: raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS), signing_key, sink }
}

fn resolver_dir(resolver: &Resolver, p: &Path) -> PathBuf {
    resolver.base().join(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_prompt(dir: &Path) {
        std::fs::create_dir_all(dir.join("prompts")).unwrap();
        std::fs::write(dir.join("prompts/ops.md"), "You are on call.").unwrap();
    }

    const GOOD: &str = "\
org:
  name: Acme
  users:
    - email: dan@acme.com
      role: admin
    - email: alice@acme.com
      role: member
agents:
  ops-oncall:
    owner: dan@acme.com
    prompt: prompts/ops.md
    allowed_tools: [memory, web]
    channels: [\"slack:#oncall\", \"console:#oncall\"]
    memory_scopes: [incidents, postmortems]
";

    #[test]
    fn a_good_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        write_prompt(dir.path());
        let cfg = Config::parse(GOOD, &dir.path().join("pincer.yaml")).unwrap();
        let agent = cfg.agent_for(&"console:#oncall".parse().unwrap()).unwrap();
        assert_eq!(agent.prompt, "You are on call.");
        assert_eq!(agent.memory_scopes.len(), 2);
        assert!(agent.provider.is_none(), "no provider configured means extractive");
        assert_eq!(cfg.default_role, Role::Member);
    }

    fn errors_of(src: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        write_prompt(dir.path());
        match Config::parse(src, &dir.path().join("pincer.yaml")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect(),
        }
    }

    #[test]
    fn a_bad_role_points_at_its_line() {
        let errs = errors_of(&GOOD.replace("role: member", "role: owner"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("7:"), "{errs:?}");
        assert!(errs[0].contains("unknown variant `owner`"), "{errs:?}");
    }

    #[test]
    fn a_bad_scope_name_points_at_its_line() {
        let errs = errors_of(&GOOD.replace("incidents", "Incidents"));
        assert!(errs[0].starts_with("14:"), "{errs:?}");
        assert!(errs[0].contains("uppercase letter 'I'"), "{errs:?}");
    }

    #[test]
    fn cross_reference_errors_point_at_the_key() {
        // Both errors are reported, in file order.
        let src =
            GOOD.replace("owner: dan@acme.com", "owner: carol@acme.com").replace("prompts/ops.md", "prompts/gone.md");
        let errs = errors_of(&src);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("10:5 agents.ops-oncall.owner: carol@acme.com is not declared"), "{errs:?}");
        assert!(errs[1].starts_with("11:5 agents.ops-oncall.prompt: cannot read prompt file"), "{errs:?}");
    }

    #[test]
    fn a_channel_bound_twice_is_refused() {
        let src = format!(
            "{GOOD}  other:\n    owner: dan@acme.com\n    prompt: prompts/ops.md\n    channels: [\"slack:#oncall\"]\n"
        );
        let dir = tempfile::tempdir().unwrap();
        write_prompt(dir.path());
        let errs = Config::parse(&src, &dir.path().join("pincer.yaml")).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert!(errs.0[0].message.contains("already bound to agent"), "{errs}");
        assert_eq!((errs.0[0].line, errs.0[0].column), (18, 16));
    }

    #[test]
    fn a_fallback_must_be_extractive_or_a_declared_provider() {
        let errs = errors_of(
            &GOOD.replace("    prompt: prompts/ops.md\n", "    prompt: prompts/ops.md\n    fallback: nowhere\n"),
        );
        assert!(errs.iter().any(|e| e.contains("agents.ops-oncall.fallback: 'nowhere' is not a provider")), "{errs:?}");
        assert!(
            errors_of(
                &GOOD.replace("    prompt: prompts/ops.md\n", "    prompt: prompts/ops.md\n    fallback: extractive\n")
            )
            .is_empty()
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let errs = errors_of(&GOOD.replace("  name: Acme", "  name: Acme\n  nmae: typo"));
        assert!(errs[0].contains("unknown field `nmae`"), "{errs:?}");
    }

    #[test]
    fn yaml_errors_name_shapes_not_internal_types_and_tabs_get_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let errs = Config::parse("org: [1]\n", &dir.path().join("p.yaml")).unwrap_err();
        assert_eq!(errs.0[0].message, "org: invalid type: sequence, expected a mapping (key: value lines)", "{errs}");
        assert_eq!(
            yaml_sentence("invalid type: sequence, expected struct RawOrg"),
            "invalid type: sequence, expected a mapping (key: value lines)"
        );
        let errs = Config::parse("org:\n\tname: Acme\n", &dir.path().join("p.yaml")).unwrap_err();
        assert_eq!(errs.0[0].hint.as_deref(), Some("YAML indents with spaces, never tabs"), "{errs}");
    }

    #[test]
    fn a_grant_that_names_no_tool_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        write_prompt(dir.path());
        let good = Config::parse(GOOD, &dir.path().join("p.yaml")).unwrap();
        assert!(good.warnings.is_empty(), "{:?}", good.warnings);
        let yaml = GOOD.replace("allowed_tools: [memory, web]", "allowed_tools: [memory, shell, \"github:write\"]");
        let cfg = Config::parse(&yaml, &dir.path().join("p.yaml")).unwrap();
        let warned: Vec<&str> = cfg.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            warned,
            [
                "agents.ops-oncall.allowed_tools[1]: 'shell' names no tool this Pincer has, so it grants nothing",
                "agents.ops-oncall.allowed_tools[2]: 'github:write' names no tool this Pincer has, so it grants nothing",
            ]
        );
        let hint = cfg.warnings[0].hint.as_deref().unwrap();
        assert!(hint.contains("memory (memory_search, memory_write), web (web_fetch)"), "{hint}");
    }

    #[test]
    fn plaintext_keys_warn_and_missing_env_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        write_prompt(dir.path());
        let with = |k: &str| format!("{GOOD}providers:\n  default:\n    kind: openai\n    api_key: {k}\n");
        let cfg = Config::parse(&with("sk-plain"), &dir.path().join("p.yaml")).unwrap();
        assert_eq!(cfg.warnings.len(), 1);
        assert!(cfg.warnings[0].message.contains("plain text"));
        assert!(cfg.plaintext_secrets, "doctor fails the plaintext line");
        assert_eq!(cfg.agents.values().next().unwrap().provider.as_deref(), Some("default"));
        let errs = Config::parse(&with("env://PINCER_TEST_UNSET_KEY"), &dir.path().join("p.yaml")).unwrap_err();
        assert!(errs.0[0].message.contains("PINCER_TEST_UNSET_KEY is not set"), "{errs}");
        // For a shell command that needs no key: a warning, the key unset.
        let cfg = Config::parse_with(
            &with("env://PINCER_TEST_UNSET_KEY"),
            &dir.path().join("p.yaml"),
            Secrets::Optional,
            DatabaseUrl::FromConfig,
        )
        .unwrap();
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        let warned = &cfg.warnings[0].message;
        assert!(
            warned.starts_with("providers.default.api_key: ") && warned.contains("PINCER_TEST_UNSET_KEY"),
            "{warned}"
        );
        assert!(warned.ends_with("(left unset: this command does not need it)"), "{warned}");
        assert!(cfg.providers["default"].api_key.is_none());
        // The database URL is needed by every command.
        let yaml = format!("{GOOD}database_url: env://PINCER_TEST_UNSET_DB\n");
        let errs = Config::parse_with(&yaml, &dir.path().join("p.yaml"), Secrets::Optional, DatabaseUrl::FromConfig)
            .unwrap_err();
        assert!(errs.0[0].message.starts_with("database_url: "), "{errs}");
        // Unless the command is given one elsewhere, for every command.
        let cfg = Config::parse_with(&yaml, &dir.path().join("p.yaml"), Secrets::Required, DatabaseUrl::GivenElsewhere)
            .unwrap();
        assert!(cfg.database_url.is_none());
        let warned = &cfg.warnings[0].message;
        assert!(warned.starts_with("database_url: ") && warned.contains("PINCER_TEST_UNSET_DB"), "{warned}");
        assert!(warned.ends_with("(left unset: --database-url or DATABASE_URL is used instead)"), "{warned}");
    }
}
