//! Authorization: may this person run this command here? Pure functions, no
//! I/O, so every cell of the role × command × agent × channel table is a unit
//! test.
//!
//! The rules, deny by default:
//! - a command needs at least its spec's `min_role`;
//! - observers never run a command that mutates state;
//! - a command that runs an agent (`/ask`, free text) needs a channel bound to
//!   an agent, and that agent enabled;
//! - with RBAC off (local development only) the role floor for non-admin
//!   commands drops to member, but `/admin` still needs an admin and an
//!   observer still mutates nothing.
//!
//! Also here: [`ToolGrant`] (what an agent's `allowed_tools` grants) and
//! [`read_scopes`]/[`write_scope`] (which memory an ask may touch).

use std::fmt;

use pincer_commands::{CommandSpec, Role, ScopeName, WorkspaceName};
use serde::{Deserialize, Deserializer, Serialize};

/// The agent situation of the channel an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAgent {
    /// No agent is bound to the channel.
    Unbound,
    /// An agent is bound and enabled.
    Enabled,
    /// An agent is bound but an admin disabled it.
    Disabled,
}

/// Why a command was refused. The router turns each into a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The person's role is below the command's floor.
    RoleTooLow { needed: Role, have: Role },
    /// An observer tried to change something.
    ObserverMutation,
    /// The command runs an agent and none is bound here.
    NoAgentHere,
    /// The channel's agent is disabled.
    AgentDisabled,
}

impl Denial {
    /// A short machine-readable reason for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::RoleTooLow { .. } => "role_too_low",
            Denial::ObserverMutation => "observer_read_only",
            Denial::NoAgentHere => "no_agent_bound",
            Denial::AgentDisabled => "agent_disabled",
        }
    }
}

/// The verdict on one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with the reason.
    Deny(Denial),
}

/// Decides whether `role` may run the command `spec` in a channel whose
/// agent situation is `channel`.
pub fn authorize(role: Role, spec: &CommandSpec, channel: ChannelAgent, rbac: bool) -> Decision {
    let is_admin_command = spec.path.starts_with("admin");
    let floor = if rbac || is_admin_command { spec.min_role } else { spec.min_role.min(Role::Member) };
    if role == Role::Observer && spec.mutates {
        return Decision::Deny(Denial::ObserverMutation);
    }
    if role < floor {
        return Decision::Deny(Denial::RoleTooLow { needed: floor, have: role });
    }
    if spec.needs_agent {
        match channel {
            ChannelAgent::Unbound => return Decision::Deny(Denial::NoAgentHere),
            ChannelAgent::Disabled => return Decision::Deny(Denial::AgentDisabled),
            ChannelAgent::Enabled => {}
        }
    }
    Decision::Allow
}

/// One entry of an agent's `allowed_tools`: `github` grants reading,
/// `github:write` grants writing too. Writes are never implied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct ToolGrant {
    /// The tool's name.
    pub tool: String,
    /// Whether writes are granted.
    pub write: bool,
}

impl ToolGrant {
    /// Parses `name` or `name:write`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (tool, write) = match raw.split_once(':') {
            Some((t, "write")) => (t, true),
            Some(_) => {
                return Err(format!(
                    "'{}' is not a tool grant: the only qualifier is ':write'",
                    pincer_commands::names::shown(raw)
                ));
            }
            None => (raw, false),
        };
        let ok = !tool.is_empty()
            && tool.len() <= 40
            && tool.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "'{}' is not a tool name: use lowercase letters, digits, '_' or '-'",
                pincer_commands::names::shown(tool)
            ));
        }
        Ok(Self { tool: tool.to_string(), write })
    }

    /// Whether this grant permits calling `tool`, writing if `write`.
    pub fn permits(&self, tool: &str, write: bool) -> bool {
        self.tool == tool && (self.write || !write)
    }
}

impl fmt::Display for ToolGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.write { write!(f, "{}:write", self.tool) } else { f.write_str(&self.tool) }
    }
}

impl From<ToolGrant> for String {
    fn from(g: ToolGrant) -> String {
        g.to_string()
    }
}

impl<'de> Deserialize<'de> for ToolGrant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ToolGrant::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Whether any of `grants` permits the call. Deny by default.
pub fn tool_permitted(grants: &[ToolGrant], tool: &str, write: bool) -> bool {
    grants.iter().any(|g| g.permits(tool, write))
}

/// The scopes an ask may read: the agent's shared scopes, plus the asker's
/// active workspace when they are in one.
pub fn read_scopes(agent_scopes: &[ScopeName], workspace: Option<&WorkspaceName>) -> Vec<ScopeName> {
    let mut scopes = agent_scopes.to_vec();
    if let Some(w) = workspace {
        let w = ScopeName::from(w.clone());
        if !scopes.contains(&w) {
            scopes.push(w);
        }
    }
    scopes
}

/// The one scope an ask may write to: the asker's workspace when they are
/// in one, else the agent's first shared scope (none if it reads none).
pub fn write_scope(agent_scopes: &[ScopeName], workspace: Option<&WorkspaceName>) -> Option<ScopeName> {
    match workspace {
        Some(w) => Some(ScopeName::from(w.clone())),
        None => agent_scopes.first().cloned(),
    }
}

#[cfg(test)]
mod tests {
    use pincer_commands::SPECS;
    use pincer_commands::spec::spec_for;

    use super::*;

    /// The whole table, written out by hand rather than derived from the
    /// rules: for each command, the outcome for observer / member / admin in
    /// a channel whose agent is enabled (E), disabled (D), or unbound (U).
    /// `A` allow, `r` role too low, `o` observer read-only, `n` no agent,
    /// `d` agent disabled.
    #[rustfmt::skip]
    const TABLE: &[(&str, &str, &str, &str)] = &[
        //                          E       D       U      (observer member admin)
        ("help",                   "AAA", "AAA", "AAA"),
        ("ask",                    "oAA", "odd", "onn"),
        ("workspace",              "AAA", "AAA", "AAA"),
        ("workspace switch",       "oAA", "oAA", "oAA"),
        ("workspace shared",       "oAA", "oAA", "oAA"),
        ("link",                   "oAA", "oAA", "oAA"),
        ("admin whoami",           "AAA", "AAA", "AAA"),
        ("admin user add",         "orA", "orA", "orA"),
        ("admin user role",        "orA", "orA", "orA"),
        ("admin user remove",      "orA", "orA", "orA"),
        ("admin user list",        "rrA", "rrA", "rrA"),
        ("admin agent list",       "rrA", "rrA", "rrA"),
        ("admin agent disable",    "orA", "orA", "orA"),
        ("admin agent enable",     "orA", "orA", "orA"),
        ("admin workspace create", "orA", "orA", "orA"),
        ("admin workspace list",   "rrA", "rrA", "rrA"),
        ("admin workspace delete", "orA", "orA", "orA"),
        ("admin memory list",      "rrA", "rrA", "rrA"),
        ("admin memory search",    "rrA", "rrA", "rrA"),
        ("admin memory forget",    "orA", "orA", "orA"),
        ("admin usage",            "rrA", "rrA", "rrA"),
        ("admin outbox",           "rrA", "rrA", "rrA"),
        ("admin outbox retry",     "orA", "orA", "orA"),
        ("admin audit tail",       "AAA", "AAA", "AAA"),
        ("admin audit verify",     "AAA", "AAA", "AAA"),
        ("admin identity list",    "rrA", "rrA", "rrA"),
        ("admin identity unlink",  "orA", "orA", "orA"),
        ("admin doctor",           "orA", "orA", "orA"),
    ];

    fn code(d: Decision) -> char {
        match d {
            Decision::Allow => 'A',
            Decision::Deny(Denial::RoleTooLow { .. }) => 'r',
            Decision::Deny(Denial::ObserverMutation) => 'o',
            Decision::Deny(Denial::NoAgentHere) => 'n',
            Decision::Deny(Denial::AgentDisabled) => 'd',
        }
    }

    #[test]
    fn every_cell_of_the_policy_table_holds() {
        assert_eq!(TABLE.len(), SPECS.len(), "the table covers every command");
        for (path, enabled, disabled, unbound) in TABLE {
            let spec = spec_for(path);
            assert_eq!(spec.path, *path);
            for (channel, row) in
                [(ChannelAgent::Enabled, enabled), (ChannelAgent::Disabled, disabled), (ChannelAgent::Unbound, unbound)]
            {
                let got: String = Role::ALL.iter().map(|r| code(authorize(*r, spec, channel, true))).collect();
                assert_eq!(&got, row, "{path} in a channel {channel:?}");
            }
        }
    }

    #[test]
    fn rbac_off_never_grants_admin_nor_lets_observers_mutate() {
        for spec in SPECS {
            for channel in [ChannelAgent::Enabled, ChannelAgent::Disabled, ChannelAgent::Unbound] {
                for role in Role::ALL {
                    let off = authorize(role, spec, channel, false);
                    let on = authorize(role, spec, channel, true);
                    if spec.path.starts_with("admin") {
                        assert_eq!(off, on, "{} as {role}", spec.path);
                    }
                    if role == Role::Observer && spec.mutates {
                        assert_eq!(off, Decision::Deny(Denial::ObserverMutation));
                    }
                    if on == Decision::Allow {
                        assert_eq!(off, Decision::Allow, "RBAC off never takes anything away");
                    }
                }
            }
        }
    }

    /// Agent ACLs: every set of grants over two tool families × every call
    /// (read or write), against the rule stated independently — a write
    /// needs `family:write`; a read needs `family` or `family:write`.
    #[test]
    fn every_agent_acl_cell_holds() {
        let all = ["memory", "memory:write", "web", "web:write"];
        let mut cells = 0;
        for mask in 0u32..(1 << all.len()) {
            let granted: Vec<&str> =
                all.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, g)| *g).collect();
            let grants: Vec<ToolGrant> = granted.iter().map(|g| ToolGrant::parse(g).unwrap()).collect();
            for family in ["memory", "web", "shell"] {
                for write in [false, true] {
                    let has = |g: String| granted.contains(&g.as_str());
                    let expected = has(format!("{family}:write")) || (!write && has(family.to_string()));
                    assert_eq!(tool_permitted(&grants, family, write), expected, "{granted:?} {family} write={write}");
                    cells += 1;
                }
            }
        }
        assert_eq!(cells, 16 * 3 * 2);
    }

    #[test]
    fn write_is_never_implied_by_read() {
        let grants = vec![ToolGrant::parse("github").unwrap(), ToolGrant::parse("pagerduty:write").unwrap()];
        assert!(tool_permitted(&grants, "github", false));
        assert!(!tool_permitted(&grants, "github", true));
        assert!(tool_permitted(&grants, "pagerduty", true));
        assert!(tool_permitted(&grants, "pagerduty", false));
        assert!(!tool_permitted(&grants, "shell", false));
        assert!(ToolGrant::parse("github:admin").is_err());
        assert!(ToolGrant::parse("Git Hub").is_err());
    }

    #[test]
    fn workspaces_add_a_read_scope_and_take_the_writes() {
        let shared = vec![ScopeName::parse("incidents").unwrap(), ScopeName::parse("postmortems").unwrap()];
        let lab = WorkspaceName::parse("alice-lab").unwrap();
        let read = read_scopes(&shared, Some(&lab));
        assert_eq!(read.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["incidents", "postmortems", "alice-lab"]);
        assert_eq!(write_scope(&shared, Some(&lab)).unwrap().as_str(), "alice-lab");
        assert_eq!(write_scope(&shared, None).unwrap().as_str(), "incidents");
        assert_eq!(read_scopes(&shared, None), shared);
    }
}
