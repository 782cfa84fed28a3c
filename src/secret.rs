//! Secrets and secret references.
//!
//! A config value that is a credential may be written literally or as a
//! reference: `env://NAME` (an environment variable), `file:///run/secrets/x`
//! (a file's contents, trailing newline trimmed), or `vault://MOUNT/PATH#KEY`
//! (Vault or OpenBao KV v2, read with vaultrs, token or AppRole auth). A
//! resolved value lives in [`Secret`], whose `Debug` and `Display` print
//! `[redacted]`, and is registered with [`crate::redact`], so neither it nor
//! its encodings reach a log line, an audit row or a chat message.
//!
//! [`Resolver`] resolves references for one config load: each Vault secret
//! (`MOUNT/PATH`) is read once, whatever number of keys the config takes from it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A credential. Read it with [`Secret::expose`], only where it is sent.
/// Clones share one cell, so [`Secret::rotate`] (a reload that re-read
/// Vault) reaches every holder at once.
#[derive(Clone)]
pub struct Secret(std::sync::Arc<std::sync::RwLock<String>>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(value.into())))
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> String {
        self.0.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// Replaces the value for every holder (secret rotation on reload).
    /// Returns whether it changed.
    pub fn rotate(&self, to: &Secret) -> bool {
        let new = to.expose();
        let Ok(mut v) = self.0.write() else { return false };
        if *v == new {
            return false;
        }
        *v = new;
        true
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Written in the config itself (`config check` warns about these).
    Literal(Secret),
    /// `env://NAME`.
    Env(String),
    /// `file://PATH`.
    File(String),
    /// `vault://MOUNT/PATH#KEY`.
    Vault { mount: String, path: String, key: String },
}

/// Why a secret reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `env://NAME` named an unset variable.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// `file://PATH` could not be read.
    #[error("cannot read secret file {path}: {why}")]
    File { path: String, why: String },
    /// The reference is not well formed.
    #[error("'{0}' is not a secret reference: use env://NAME, file:///path or vault://mount/path#key")]
    Malformed(String),
    /// A Vault reference, and no Vault is configured.
    #[error(
        "{0} is a Vault reference, and no Vault is configured: set vault.address (or VAULT_ADDR) and a token or AppRole"
    )]
    VaultNotConfigured(String),
    /// Vault could not be read, or the secret or key is not there.
    #[error("{reference}: {why}")]
    Vault { reference: String, why: String },
}

impl SecretRef {
    /// Parses a config value: a reference if it has a known scheme, else a literal.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        if let Some(name) = raw.strip_prefix("env://") {
            let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if ok {
                Ok(SecretRef::Env(name.to_string()))
            } else {
                Err(SecretError::Malformed(raw.to_string()))
            };
        }
        if let Some(path) = raw.strip_prefix("file://") {
            return if path.is_empty() {
                Err(SecretError::Malformed(raw.to_string()))
            } else {
                Ok(SecretRef::File(path.to_string()))
            };
        }
        if let Some(rest) = raw.strip_prefix("vault://") {
            let (path, key) = rest.split_once('#').ok_or_else(|| SecretError::Malformed(raw.to_string()))?;
            let (mount, path) = path.split_once('/').ok_or_else(|| SecretError::Malformed(raw.to_string()))?;
            if mount.is_empty() || path.is_empty() || key.is_empty() {
                return Err(SecretError::Malformed(raw.to_string()));
            }
            return Ok(SecretRef::Vault { mount: mount.into(), path: path.into(), key: key.into() });
        }
        Ok(SecretRef::Literal(Secret::new(raw)))
    }

    /// Whether the value was written in plain text in the config.
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }

    /// Resolves the reference. Relative `file://` paths are taken from `base`
    /// (the config file's folder).
    pub fn resolve(&self, base: &Path) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Literal(s) => Ok(s.clone()),
            SecretRef::Env(name) => {
                std::env::var(name).map(Secret::new).map_err(|_| SecretError::EnvMissing(name.clone()))
            }
            SecretRef::File(path) => {
                let full = base.join(path);
                std::fs::read_to_string(&full)
                    .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
                    .map_err(|e| SecretError::File { path: full.display().to_string(), why: e.to_string() })
            }
            SecretRef::Vault { .. } => Err(SecretError::VaultNotConfigured(self.to_string())),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Literal(_) => f.write_str("(a literal value)"),
            SecretRef::Env(name) => write!(f, "env://{name}"),
            SecretRef::File(path) => write!(f, "file://{path}"),
            SecretRef::Vault { mount, path, key } => write!(f, "vault://{mount}/{path}#{key}"),
        }
    }
}

/// How Pincer signs in to Vault.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token (`VAULT_TOKEN`).
    Token(Secret),
    /// AppRole: a role id and secret id, exchanged for a token at each read.
    AppRole {
        /// Where AppRole is mounted (`approle`).
        mount: String,
        /// The role id.
        role_id: Secret,
        /// The secret id.
        secret_id: Secret,
    },
}

/// Where Vault is and how to sign in.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `http(s)://host:port`.
    pub address: String,
    /// Token or AppRole.
    pub auth: VaultAuth,
    /// Vault Enterprise / OpenBao namespace, if any.
    pub namespace: Option<String>,
}

/// How long one Vault read may take before start-up gives up on it.
const VAULT_TIMEOUT: Duration = Duration::from_secs(10);

type VaultData = Result<HashMap<String, String>, String>;

/// Resolves references for one config load and registers every value with
/// the redactor.
pub struct Resolver {
    base: PathBuf,
    vault: Option<VaultSettings>,
    read: Mutex<HashMap<(String, String), VaultData>>,
}

impl Resolver {
    /// Relative `file://` paths are taken from `base`; `vault://` needs `vault`.
    pub fn new(base: &Path, vault: Option<VaultSettings>) -> Self {
        Self { base: base.to_path_buf(), vault, read: Mutex::new(HashMap::new()) }
    }

    /// The folder relative paths are taken from.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Resolves one reference.
    pub fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let secret = match r {
            SecretRef::Vault { mount, path, key } => {
                let Some(vault) = &self.vault else { return Err(SecretError::VaultNotConfigured(r.to_string())) };
                let data = {
                    let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
                    read.entry((mount.clone(), path.clone())).or_insert_with(|| read_kv2(vault, mount, path)).clone()
                };
                let fail = |why: String| SecretError::Vault { reference: r.to_string(), why };
                let data = data.map_err(fail)?;
                let value =
                    data.get(key).ok_or_else(|| fail(format!("the secret {mount}/{path} has no key '{key}'")))?;
                Secret::new(value.clone())
            }
            other => other.resolve(&self.base)?,
        };
        crate::redact::register(&secret.expose());
        Ok(secret)
    }
}

/// Reads a KV v2 secret: every key, values as strings. Runs on its own
/// thread and runtime, so config loading stays synchronous wherever it is
/// called from.
fn read_kv2(vault: &VaultSettings, mount: &str, path: &str) -> VaultData {
    use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
    if reqwest::Url::parse(&vault.address).is_err() || !vault.address.starts_with("http") {
        return Err(format!("the Vault address '{}' is not an http(s) URL", vault.address));
    }
    let (vault, mount, path) = (vault.clone(), mount.to_string(), path.to_string());
    let work = move || -> VaultData {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let mut builder = VaultClientSettingsBuilder::default();
            builder.address(&vault.address).timeout(Some(VAULT_TIMEOUT));
            if let Some(ns) = &vault.namespace {
                builder.set_namespace(ns.clone());
            }
            let settings = builder.build().map_err(|e| e.to_string())?;
            let mut client = VaultClient::new(settings).map_err(|e| e.to_string())?;
            let unreachable = |e: vaultrs::error::ClientError| match e {
                vaultrs::error::ClientError::APIError { code: 404, .. } => {
                    format!("there is no secret at {mount}/{path} (KV v2)")
                }
                vaultrs::error::ClientError::APIError { code: 403, .. } => {
                    format!("Vault refused access to {mount}/{path}: check the token's or role's policy")
                }
                other => format!("cannot read Vault at {}: {other}", vault.address),
            };
            match &vault.auth {
                VaultAuth::Token(t) => client.set_token(&t.expose()),
                VaultAuth::AppRole { mount: m, role_id, secret_id } => {
                    let info = vaultrs::auth::approle::login(&client, m, &role_id.expose(), &secret_id.expose())
                        .await
                        .map_err(|e| format!("AppRole login failed: {}", unreachable(e)))?;
                    crate::redact::register(&info.client_token);
                    client.set_token(&info.client_token);
                }
            }
            let data: HashMap<String, serde_json::Value> =
                vaultrs::kv2::read(&client, &mount, &path).await.map_err(unreachable)?;
            Ok(data
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect())
        })
    };
    std::thread::spawn(work).join().unwrap_or_else(|_| Err("the Vault reader thread panicked".into()))
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        SecretRef::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Resolves a value that may itself be a reference — used for `DATABASE_URL`,
/// so a deployment can say `DATABASE_URL=file:///run/secrets/database_url`.
pub fn resolve_value(raw: &str, base: &Path) -> Result<Secret, SecretError> {
    let reference = SecretRef::parse(raw)?;
    let secret = reference.resolve(base)?;
    if !reference.is_literal() {
        crate::redact::register(&secret.expose());
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-canary");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
    }

    #[test]
    fn references_parse() {
        assert_eq!(SecretRef::parse("env://OPENAI_API_KEY").unwrap(), SecretRef::Env("OPENAI_API_KEY".into()));
        assert_eq!(SecretRef::parse("file:///run/secrets/x").unwrap(), SecretRef::File("/run/secrets/x".into()));
        assert!(matches!(SecretRef::parse("vault://secret/data/pincer#slack").unwrap(), SecretRef::Vault { .. }));
        assert!(SecretRef::parse("env://").is_err());
        assert!(SecretRef::parse("vault://nokey").is_err());
        assert!(SecretRef::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn files_resolve_relative_to_the_config_and_trim_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "value\n").unwrap();
        assert_eq!(SecretRef::parse("file://k").unwrap().resolve(dir.path()).unwrap().expose(), "value");
        assert!(matches!(
            SecretRef::parse("file://missing").unwrap().resolve(dir.path()),
            Err(SecretError::File { .. })
        ));
    }

    #[test]
    fn a_missing_env_var_names_itself() {
        let err = SecretRef::parse("env://PINCER_SURELY_UNSET_VAR").unwrap().resolve(Path::new(".")).unwrap_err();
        assert_eq!(err.to_string(), "environment variable PINCER_SURELY_UNSET_VAR is not set");
    }
}
