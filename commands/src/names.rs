//! Validated names that cross a trust boundary: workspaces, memory scopes,
//! agents, e-mail addresses and org roles.
//!
//! Every name a person or a config file gives Pincer is parsed here once and
//! carried as a newtype afterwards, so nothing deeper ever handles a raw
//! string. One strict rule for workspace, scope and agent names: 1–40
//! characters of lowercase ASCII letters, digits and `-`, starting with a
//! letter or digit. Look-alike Unicode (a Cyrillic `а`), control characters,
//! spaces, slashes, dots and quotes are all refused with a sentence that says
//! which character was wrong, so path and SQL tricks never get further.
//!
//! This module must not do I/O.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest workspace, scope or agent name.
pub const MAX_NAME_LEN: usize = 40;
/// The longest e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Why a name was refused. Each variant renders as a full sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("the {kind} name is empty: use 1–40 lowercase letters, digits or '-' (for example {example})")]
    Empty { kind: &'static str, example: &'static str },
    /// The name was longer than [`MAX_NAME_LEN`].
    #[error("the {kind} name is {len} characters long; the limit is 40")]
    TooLong { kind: &'static str, len: usize },
    /// A character outside the allowed set.
    #[error(
        "the {kind} name '{shown}' contains {bad}, which is not allowed: use lowercase letters a–z, digits or '-' (for example {example})"
    )]
    BadChar { kind: &'static str, shown: String, bad: String, example: &'static str },
    /// The name started with `-`.
    #[error("the {kind} name '{shown}' starts with '-': start it with a letter or digit")]
    LeadingDash { kind: &'static str, shown: String },
    /// The name is reserved for Pincer's own use.
    #[error("'{name}' is reserved and cannot be used as a {kind} name")]
    Reserved { kind: &'static str, name: String },
    /// The e-mail address is not of the form `local@domain.tld`.
    #[error("'{shown}' is not an e-mail address Pincer accepts ({why})")]
    BadEmail { shown: String, why: &'static str },
    /// The role is not one of admin, member, observer.
    #[error("'{shown}' is not a role: use admin, member or observer")]
    BadRole { shown: String },
}

/// Shows untrusted input safely inside an error sentence: control and
/// non-ASCII characters become `U+XXXX`, and long input is cut.
pub fn shown(input: &str) -> String {
    let mut out = String::new();
    for (i, c) in input.chars().enumerate() {
        if i >= 60 {
            out.push('…');
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.push_str(&format!("U+{:04X}", c as u32));
        }
    }
    out
}

/// Describes one refused character for an error sentence.
fn describe_char(c: char) -> String {
    if c.is_ascii_uppercase() {
        format!("the uppercase letter '{c}'")
    } else if c == ' ' {
        "a space".to_string()
    } else if c.is_ascii_graphic() {
        format!("'{c}'")
    } else if c.is_control() {
        format!("the control character U+{:04X}", c as u32)
    } else {
        format!("'{c}' (U+{:04X}, not an ASCII letter)", c as u32)
    }
}

/// Checks the one strict name rule and returns the name unchanged.
fn check_name(kind: &'static str, example: &'static str, input: &str) -> Result<String, NameError> {
    if input.is_empty() {
        return Err(NameError::Empty { kind, example });
    }
    if let Some(bad) = input.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::BadChar { kind, shown: shown(input), bad: describe_char(bad), example });
    }
    if input.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { kind, len: input.len() });
    }
    if input.starts_with('-') {
        return Err(NameError::LeadingDash { kind, shown: shown(input) });
    }
    Ok(input.to_string())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $example:literal, reserved: [$($reserved:literal),*]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a name under the strict rule; see the module docs.
            pub fn parse(input: &str) -> Result<Self, NameError> {
                let name = check_name($kind, $example, input)?;
                if [$($reserved),*].contains(&name.as_str()) {
                    return Err(NameError::Reserved { kind: $kind, name });
                }
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A personal workspace: a memory scope its owner can switch into.
    /// `shared` is reserved: `/workspace shared` returns to the agent's scopes.
    WorkspaceName, "workspace", "alice-lab", reserved: ["shared"]
);
name_type!(
    /// A memory scope: a namespace prefix on memory rows.
    ScopeName, "scope", "incidents", reserved: ["shared"]
);
name_type!(
    /// An agent's name, as declared in the config.
    AgentName, "agent", "ops-oncall", reserved: []
);

impl From<WorkspaceName> for ScopeName {
    fn from(w: WorkspaceName) -> Self {
        // Both follow the same rule and reserve the same words.
        ScopeName(w.0)
    }
}

/// A normalised (lowercased) e-mail address: the org-wide identity of a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses `local@domain.tld`. ASCII only, so look-alike domains are refused.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let bad = |why| NameError::BadEmail { shown: shown(input), why };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.len() > MAX_EMAIL_LEN {
            return Err(bad("it is longer than 254 characters"));
        }
        if !trimmed.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad("only ASCII letters, digits and punctuation are allowed, with no spaces"));
        }
        let Some((local, domain)) = trimmed.split_once('@') else {
            return Err(bad("it has no '@'"));
        };
        if local.is_empty() || domain.contains('@') {
            return Err(bad("it needs exactly one '@' with a name before it"));
        }
        if local.contains(['"', '\'', '`', '\\', '<', '>', ',', ';', '(', ')', '[', ']']) {
            return Err(bad("quotes, brackets and separators are not allowed"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty() || l.starts_with('-') || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err(bad("the part after '@' must be a domain such as acme.com"));
        }
        Ok(Self(trimmed.to_ascii_lowercase()))
    }

    /// The address as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An org role. Ordered: an admin can do all a member can, a member all an
/// observer can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: reads answers and the audit log, mutates nothing.
    Observer,
    /// Uses agents; cannot manage the org.
    Member,
    /// Manages users, agents, workspaces and the audit log.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Observer, Role::Member, Role::Admin];

    /// Parses `admin`, `member` or `observer` (any case).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        match input.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "observer" => Ok(Role::Observer),
            _ => Err(NameError::BadRole { shown: shown(input) }),
        }
    }

    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Observer => "observer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_are_accepted() {
        for n in ["alice-lab", "a", "incidents", "x1", "0day", &"a".repeat(40)] {
            assert_eq!(WorkspaceName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn look_alike_unicode_is_refused_and_named() {
        // Cyrillic 'а' (U+0430) instead of Latin 'a'.
        let err = WorkspaceName::parse("\u{0430}lice-lab").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("U+0430"), "{text}");
        assert!(text.contains("not an ASCII letter"), "{text}");
    }

    #[test]
    fn control_characters_are_shown_escaped_never_raw() {
        let err = ScopeName::parse("inc\u{1b}[31m").unwrap_err().to_string();
        assert!(err.contains("U+001B"), "{err}");
        assert!(!err.contains('\u{1b}'));
    }

    #[test]
    fn path_and_sql_tricks_are_refused() {
        for n in ["../etc", "a/b", "a.b", "x'; drop table users; --", "Alice", "a b", "-rf", "", "shared"] {
            assert!(WorkspaceName::parse(n).is_err(), "{n:?} should be refused");
        }
        assert!(WorkspaceName::parse(&"a".repeat(41)).is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("Dan@Acme.COM").unwrap().as_str(), "dan@acme.com");
        for bad in [
            "dan",
            "@acme.com",
            "dan@",
            "dan@acme",
            "dan@@acme.com",
            "d an@acme.com",
            "dan@\u{0430}cme.com",
            "dan@-acme.com",
            "\"x\"@acme.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn roles_parse_in_any_case_and_order_by_power() {
        assert_eq!(Role::parse("ADMIN").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
        assert!(Role::Admin > Role::Member && Role::Member > Role::Observer);
    }
}
