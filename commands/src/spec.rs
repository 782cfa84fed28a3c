//! The one table every command's usage, help text and required role come
//! from. The parser, `/help`, the policy and the docs all read this table, so
//! a command is described in exactly one place.
//!
//! This module must not do I/O.

use crate::names::Role;

/// How one command is written, what it does, and who may run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The words that select the command, e.g. `admin user add`.
    pub path: &'static str,
    /// How to write it, e.g. `/admin user add EMAIL [ROLE]`.
    pub usage: &'static str,
    /// One sentence saying what it does.
    pub summary: &'static str,
    /// The lowest org role that may run it.
    pub min_role: Role,
    /// Whether it changes state. Observers never run a mutating command.
    pub mutates: bool,
    /// Whether it runs an agent, and so needs a channel bound to one.
    pub needs_agent: bool,
}

const fn spec(
    path: &'static str,
    usage: &'static str,
    summary: &'static str,
    min_role: Role,
    mutates: bool,
) -> CommandSpec {
    CommandSpec { path, usage, summary, min_role, mutates, needs_agent: false }
}

/// Every command Pincer understands, in the order `/help` lists them.
pub static SPECS: &[CommandSpec] = &[
    spec("help", "/help [admin]", "Show what you can ask Pincer to do.", Role::Observer, false),
    CommandSpec {
        path: "ask",
        usage: "/ask QUESTION",
        summary: "Ask the agent bound to this channel; it answers where you asked.",
        min_role: Role::Member,
        mutates: true,
        needs_agent: true,
    },
    spec("workspace", "/workspace", "Show which workspace your asks run in.", Role::Observer, false),
    spec(
        "workspace switch",
        "/workspace NAME",
        "Switch your asks into your own workspace NAME (its memory plus the agent's shared memory).",
        Role::Member,
        true,
    ),
    spec("workspace shared", "/workspace shared", "Return to the agent's shared memory only.", Role::Member, true),
    spec(
        "link",
        "/link [CODE]",
        "Link this chat account to you: /link where Pincer knows you gives a code; /link CODE here uses it.",
        Role::Member,
        true,
    ),
    spec("admin whoami", "/admin whoami", "Show who Pincer thinks you are and your role.", Role::Observer, false),
    spec(
        "admin user add",
        "/admin user add EMAIL [admin|member|observer]",
        "Invite a person with a role (default member).",
        Role::Admin,
        true,
    ),
    spec(
        "admin user role",
        "/admin user role EMAIL admin|member|observer",
        "Change a person's role.",
        Role::Admin,
        true,
    ),
    spec("admin user remove", "/admin user remove EMAIL", "Remove a person; they lose all access.", Role::Admin, true),
    spec("admin user list", "/admin user list", "List people and their roles.", Role::Admin, false),
    spec("admin agent list", "/admin agent list", "List agents, their owners, channels and state.", Role::Admin, false),
    spec(
        "admin agent disable",
        "/admin agent disable NAME REASON",
        "Break glass: stop an agent at once, saying why.",
        Role::Admin,
        true,
    ),
    spec(
        "admin agent enable",
        "/admin agent enable NAME [REASON]",
        "Let a disabled agent run again.",
        Role::Admin,
        true,
    ),
    spec(
        "admin workspace create",
        "/admin workspace create --user EMAIL --scope NAME",
        "Create a personal workspace owned by EMAIL.",
        Role::Admin,
        true,
    ),
    spec(
        "admin workspace list",
        "/admin workspace list [EMAIL]",
        "List workspaces and their owners.",
        Role::Admin,
        false,
    ),
    spec(
        "admin workspace delete",
        "/admin workspace delete NAME",
        "Delete a workspace; people in it return to shared.",
        Role::Admin,
        true,
    ),
    spec(
        "admin memory list",
        "/admin memory list SCOPE [N]",
        "Show the newest N passages of a memory scope.",
        Role::Admin,
        false,
    ),
    spec("admin memory search", "/admin memory search SCOPE WORDS", "Search one memory scope.", Role::Admin, false),
    spec(
        "admin memory forget",
        "/admin memory forget ID",
        "Delete one passage from memory (audited).",
        Role::Admin,
        true,
    ),
    spec(
        "admin usage",
        "/admin usage [DAYS]",
        "Tokens and cost per person and agent over the last DAYS days (default 7).",
        Role::Admin,
        false,
    ),
    spec(
        "admin outbox",
        "/admin outbox [N]",
        "List the newest N replies that could not be delivered.",
        Role::Admin,
        false,
    ),
    spec("admin outbox retry", "/admin outbox retry ID", "Queue an undelivered reply again.", Role::Admin, true),
    spec(
        "admin audit tail",
        "/admin audit tail [N]",
        "Show the last N audit rows (default 20, at most 200).",
        Role::Observer,
        false,
    ),
    spec("admin audit verify", "/admin audit verify", "Check the audit log's hash chain.", Role::Observer, false),
    spec(
        "admin identity list",
        "/admin identity list [EMAIL]",
        "List people's linked chat accounts.",
        Role::Admin,
        false,
    ),
    spec(
        "admin identity unlink",
        "/admin identity unlink EMAIL PLATFORM",
        "Unlink a person's accounts on one platform.",
        Role::Admin,
        true,
    ),
    spec(
        "admin doctor",
        "/admin doctor",
        "Check the governance checklist: RBAC, secrets, audit shipping, retention, owners, break-glass.",
        Role::Admin,
        true,
    ),
];

/// Looks a spec up by its path. Every path the parser produces is in
/// [`SPECS`]; a unit test holds that.
pub fn spec_for(path: &str) -> &'static CommandSpec {
    SPECS.iter().find(|s| s.path == path).unwrap_or(&SPECS[0]) // unreachable for parser output; see tests
}

/// The `/admin` sub-commands' first words (`whoami`, `user`, `agent`, …),
/// in the order [`SPECS`] lists them.
pub fn admin_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for spec in SPECS {
        if let Some(group) = spec.path.strip_prefix("admin ").and_then(|rest| rest.split(' ').next())
            && !groups.contains(&group)
        {
            groups.push(group);
        }
    }
    groups
}

/// One admin group's commands (`/admin user add|role|remove|list`): the
/// verbs, as a sentence ("add, role, remove or list"), and their usages
/// joined with " | ". `None` for a word that is not a group of several
/// commands.
pub fn admin_group(noun: &str) -> Option<(&'static str, &'static str)> {
    static GROUPS: std::sync::LazyLock<Vec<(&'static str, String, String)>> = std::sync::LazyLock::new(|| {
        admin_groups()
            .into_iter()
            .filter_map(|group| {
                let prefix = format!("admin {group} ");
                let members: Vec<&CommandSpec> = SPECS.iter().filter(|s| s.path.starts_with(&prefix)).collect();
                let verbs: Vec<&str> =
                    members.iter().filter_map(|s| s.path[prefix.len()..].split(' ').next()).collect();
                let (last, rest) = verbs.split_last()?;
                if rest.is_empty() {
                    return None;
                }
                let usages: Vec<&str> = members.iter().map(|s| s.usage).collect();
                Some((group, format!("{} or {last}", rest.join(", ")), usages.join(" | ")))
            })
            .collect()
    });
    GROUPS.iter().find(|(group, _, _)| *group == noun).map(|(_, verbs, usage)| (verbs.as_str(), usage.as_str()))
}

/// `/admin`'s usage, for an admin command that names no sub-command or an
/// unknown one.
pub fn admin_usage() -> &'static str {
    static USAGE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("/admin {} … (see /help admin)", admin_groups().join("|")));
    USAGE.as_str()
}

/// The help text for people of `role`: only what they may run, with help
/// itself asked for as `help` (`/help`; Slack's is `/pincer help`), aligned
/// as written.
pub fn help_text(role: Role, admin_topic: bool, help: &str) -> String {
    let mut lines = vec![if admin_topic { "Admin commands:".to_string() } else { "Pincer commands:".to_string() }];
    for s in SPECS.iter().filter(|s| s.min_role <= role && s.path.starts_with("admin") == admin_topic) {
        let usage = match s.usage.strip_prefix("/help") {
            Some(rest) if s.path == "help" => format!("{help}{rest}"),
            _ => s.usage.to_string(),
        };
        lines.push(format!("  {usage:<52} {}", s.summary));
    }
    if !admin_topic && SPECS.iter().any(|s| s.path.starts_with("admin") && s.min_role <= role) {
        lines.push(format!("  {:<52} {}", format!("{help} admin"), "List the /admin commands you may run."));
    }
    // (An observer cannot ask.)
    if !admin_topic && role >= Role::Member {
        lines.push("In a channel with an agent you can also just write your question.".to_string());
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_offers_free_text_only_to_those_who_may_ask() {
        let observer = help_text(Role::Observer, false, "/help");
        assert!(observer.contains("/workspace ") && !observer.contains("/ask"), "{observer}");
        assert!(!observer.contains("write your question") && !observer.ends_with('\n'), "{observer}");
        let member = help_text(Role::Member, false, "/help");
        assert!(member.contains("/ask QUESTION") && member.ends_with("just write your question."), "{member}");
    }
}
