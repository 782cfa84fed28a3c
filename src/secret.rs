//! Secrets and secret references.
//!
//! A config value that is a credential may be written literally or as a
//! reference: `env://NAME` (an environment variable), `file:///run/secrets/x`
//! (a file's contents, trailing newline trimmed), or `vault://MOUNT/PATH#KEY`
//! (Vault KV v2; parsed here, resolved once Vault support lands — until then
//! a clear error names the reference). A resolved value lives in [`Secret`],
//! whose `Debug` and `Display` print `[redacted]`, so it cannot reach a log
//! line or a chat message by accident.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

/// A credential. Read it with [`Secret::expose`], only where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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
    /// Vault references are recognised but this build does not read Vault.
    #[error(
        "{0} is a Vault reference, and this build of Pincer does not read Vault yet: use env:// or file:// for now"
    )]
    VaultUnsupported(String),
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
            SecretRef::Vault { mount, path, key } => {
                Err(SecretError::VaultUnsupported(format!("vault://{mount}/{path}#{key}")))
            }
        }
    }
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
    SecretRef::parse(raw)?.resolve(base)
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
