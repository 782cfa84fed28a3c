//! Parsing a line of chat into a typed [`Input`]: a [`Command`] or free text.
//!
//! The parser never panics and never allocates more than a bounded amount
//! for any input (a property test feeds it arbitrary strings). Errors are
//! sentences a person reads, followed by the command's usage from
//! [`crate::spec::SPECS`].
//!
//! This module must not do I/O.

use crate::names::{AgentName, Email, NameError, Role, ScopeName, WorkspaceName, shown};
use crate::spec::{CommandSpec, spec_for};

/// The longest message Pincer accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Room for a command's name (`/pincer ask `) on top of [`MAX_TEXT_CHARS`]
/// of what follows it.
const COMMAND_NAMES_CHARS: usize = 64;
/// The most audit rows `/admin audit tail` shows.
pub const MAX_AUDIT_TAIL: u32 = 200;

/// What a person typed: a command, or text for the channel's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A `/command`.
    Command(Command),
    /// Free text, e.g. an @mention or a message in a bound channel.
    Text(String),
}

/// A parsed command, ready to authorise and execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/help [admin]`.
    Help { admin: bool },
    /// `/ask QUESTION`.
    Ask { question: String },
    /// `/workspace [NAME|shared]`.
    Workspace(WorkspaceCommand),
    /// `/admin VERB …`.
    Admin(AdminCommand),
    /// `/link` (get a one-time code) or `/link CODE` (use it on another
    /// platform); also `/admin link`.
    Link { code: Option<String> },
}

/// The three forms of `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceCommand {
    /// `/workspace`: show the active workspace.
    Show,
    /// `/workspace NAME`: switch into one's own workspace.
    Switch(WorkspaceName),
    /// `/workspace shared`: back to the agent's shared scopes.
    Shared,
}

/// The `/admin` verbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// `whoami`.
    Whoami,
    /// `user add EMAIL [ROLE]`.
    UserAdd { email: Email, role: Role },
    /// `user role EMAIL ROLE`.
    UserRole { email: Email, role: Role },
    /// `user remove EMAIL`.
    UserRemove { email: Email },
    /// `user list`.
    UserList,
    /// `agent list`.
    AgentList,
    /// `agent disable NAME REASON`.
    AgentDisable { agent: AgentName, reason: String },
    /// `agent enable NAME [REASON]`.
    AgentEnable { agent: AgentName, reason: Option<String> },
    /// `workspace create --user EMAIL --scope NAME`.
    WorkspaceCreate { owner: Email, name: WorkspaceName },
    /// `workspace list [EMAIL]`.
    WorkspaceList { owner: Option<Email> },
    /// `workspace delete NAME`.
    WorkspaceDelete { name: WorkspaceName },
    /// `audit tail [N]`.
    AuditTail { n: u32 },
    /// `audit verify`.
    AuditVerify,
    /// `memory list SCOPE [N]`.
    MemoryList { scope: ScopeName, n: u32 },
    /// `memory search SCOPE WORDS`.
    MemorySearch { scope: ScopeName, query: String },
    /// `memory forget ID`.
    MemoryForget { id: i64 },
    /// `usage [DAYS]`.
    Usage { days: u32 },
    /// `outbox [N]`: dead letters.
    OutboxList { n: u32 },
    /// `outbox retry ID`.
    OutboxRetry { id: i64 },
    /// `identity list [EMAIL]`.
    IdentityList { email: Option<Email> },
    /// `identity unlink EMAIL PLATFORM`.
    IdentityUnlink { email: Email, platform: String },
    /// `doctor`: the governance checklist.
    Doctor,
}

impl Command {
    /// The spec path of this command, e.g. `admin user add`.
    pub fn path(&self) -> &'static str {
        match self {
            Command::Help { .. } => "help",
            Command::Ask { .. } => "ask",
            Command::Workspace(WorkspaceCommand::Show) => "workspace",
            Command::Workspace(WorkspaceCommand::Switch(_)) => "workspace switch",
            Command::Workspace(WorkspaceCommand::Shared) => "workspace shared",
            Command::Link { .. } => "link",
            Command::Admin(a) => match a {
                AdminCommand::Whoami => "admin whoami",
                AdminCommand::UserAdd { .. } => "admin user add",
                AdminCommand::UserRole { .. } => "admin user role",
                AdminCommand::UserRemove { .. } => "admin user remove",
                AdminCommand::UserList => "admin user list",
                AdminCommand::AgentList => "admin agent list",
                AdminCommand::AgentDisable { .. } => "admin agent disable",
                AdminCommand::AgentEnable { .. } => "admin agent enable",
                AdminCommand::WorkspaceCreate { .. } => "admin workspace create",
                AdminCommand::WorkspaceList { .. } => "admin workspace list",
                AdminCommand::WorkspaceDelete { .. } => "admin workspace delete",
                AdminCommand::AuditTail { .. } => "admin audit tail",
                AdminCommand::AuditVerify => "admin audit verify",
                AdminCommand::MemoryList { .. } => "admin memory list",
                AdminCommand::MemorySearch { .. } => "admin memory search",
                AdminCommand::MemoryForget { .. } => "admin memory forget",
                AdminCommand::Usage { .. } => "admin usage",
                AdminCommand::OutboxList { .. } => "admin outbox",
                AdminCommand::OutboxRetry { .. } => "admin outbox retry",
                AdminCommand::IdentityList { .. } => "admin identity list",
                AdminCommand::IdentityUnlink { .. } => "admin identity unlink",
                AdminCommand::Doctor => "admin doctor",
            },
        }
    }

    /// The command's spec: usage, summary and required role.
    pub fn spec(&self) -> &'static CommandSpec {
        spec_for(self.path())
    }
}

/// Why a line could not be parsed. Each renders as a sentence for the chat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `/word` that is not a command.
    #[error("'/{shown}' is not a Pincer command. Try /help to see what you can do.")]
    UnknownCommand { shown: String },
    /// The command is known but written wrongly.
    #[error("{problem}. Usage: {usage}")]
    Usage { problem: String, usage: &'static str },
    /// A name in the command broke the naming rule.
    #[error("{}. Usage: {usage}", sentence(&source.to_string()))]
    BadName { source: NameError, usage: &'static str },
    /// The message was longer than [`MAX_TEXT_CHARS`].
    #[error("That message is {chars} characters long; Pincer takes at most 4000.")]
    TooLong { chars: usize },
}

/// `text` with its first letter capitalised, to start a sentence.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn usage(path: &str, problem: impl Into<String>) -> ParseError {
    ParseError::Usage { problem: problem.into(), usage: spec_for(path).usage }
}

fn bad_name(path: &str) -> impl Fn(NameError) -> ParseError + '_ {
    move |source| ParseError::BadName { source, usage: spec_for(path).usage }
}

/// Removes control characters other than newline and tab, and trims.
/// Platform text passes through here at the edge, so no NUL or terminal
/// escape ever reaches storage or another person's screen.
pub fn clean_text(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect::<String>().trim().to_string()
}

/// Parses one line of chat: `/command args…` or free text.
pub fn parse_line(raw: &str) -> Result<Input, ParseError> {
    // The limit is on what the person wrote: a question, or a command's
    // words after its name (`/pincer ask ` is not counted against `/ask`).
    let chars = raw.chars().count();
    let command = raw.trim_start().starts_with('/');
    if chars > MAX_TEXT_CHARS + if command { COMMAND_NAMES_CHARS } else { 0 } {
        return Err(ParseError::TooLong { chars });
    }
    let line = clean_text(raw);
    match line.strip_prefix('/') {
        Some(rest) => {
            let (name, args) = split_word(rest);
            parse_command(name, args).map(Input::Command)
        }
        None => Ok(Input::Text(line)),
    }
}

/// Parses a command given its name (without `/`) and the rest of the line,
/// as platforms such as Slack deliver slash commands. `pincer` is accepted as
/// a prefix, so one `/pincer ask …` slash command can carry every command.
pub fn parse_command(name: &str, args: &str) -> Result<Command, ParseError> {
    let chars = args.chars().count();
    if chars > MAX_TEXT_CHARS + COMMAND_NAMES_CHARS {
        return Err(ParseError::TooLong { chars });
    }
    let args = clean_text(args);
    match name.to_ascii_lowercase().as_str() {
        "help" => match args.trim() {
            "" => Ok(Command::Help { admin: false }),
            topic if topic.eq_ignore_ascii_case("admin") => Ok(Command::Help { admin: true }),
            topic => Err(usage("help", format!("There is no help on '{}'", shown(topic)))),
        },
        "ask" => {
            let chars = args.chars().count();
            if chars > MAX_TEXT_CHARS {
                Err(ParseError::TooLong { chars })
            } else if args.is_empty() {
                Err(usage("ask", "Ask a question after /ask"))
            } else {
                Ok(Command::Ask { question: args })
            }
        }
        "workspace" => parse_workspace(&args).map(Command::Workspace),
        "admin" => match split_word(&args) {
            (w, rest) if w.eq_ignore_ascii_case("link") => parse_link(rest),
            _ => parse_admin(&args).map(Command::Admin),
        },
        "link" => parse_link(&args),
        "pincer" => {
            let (sub, rest) = split_word(&args);
            // (`/pincer /ask …`: the second slash is not part of the name.)
            let sub = sub.strip_prefix('/').unwrap_or(sub);
            if sub.is_empty() || sub.eq_ignore_ascii_case("pincer") {
                Ok(Command::Help { admin: false })
            } else {
                parse_command(sub, rest)
            }
        }
        _ => Err(ParseError::UnknownCommand { shown: shown(name) }),
    }
}

/// Splits off the first whitespace-separated word.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn parse_workspace(args: &str) -> Result<WorkspaceCommand, ParseError> {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(WorkspaceCommand::Show),
        [w] if w.eq_ignore_ascii_case("shared") => Ok(WorkspaceCommand::Shared),
        [w] => WorkspaceName::parse(w).map(WorkspaceCommand::Switch).map_err(bad_name("workspace switch")),
        _ => Err(usage("workspace switch", "Give one workspace name")),
    }
}

fn parse_admin(args: &str) -> Result<AdminCommand, ParseError> {
    let (noun, rest) = split_word(args);
    let (verb, rest) = split_word(rest);
    let noun = noun.to_ascii_lowercase();
    let verb = verb.to_ascii_lowercase();
    let words: Vec<&str> = rest.split_whitespace().collect();
    match (noun.as_str(), verb.as_str()) {
        ("whoami", "") => Ok(AdminCommand::Whoami),
        ("whoami", _) => Err(usage("admin whoami", NO_ARGS)),
        ("user", "add") => {
            let p = "admin user add";
            match words.as_slice() {
                [email] => {
                    Ok(AdminCommand::UserAdd { email: Email::parse(email).map_err(bad_name(p))?, role: Role::Member })
                }
                [email, role] => Ok(AdminCommand::UserAdd {
                    email: Email::parse(email).map_err(bad_name(p))?,
                    role: Role::parse(role).map_err(bad_name(p))?,
                }),
                _ => Err(usage(p, "Give an e-mail address and, optionally, a role")),
            }
        }
        ("user", "role") => {
            let p = "admin user role";
            match words.as_slice() {
                [email, role] => Ok(AdminCommand::UserRole {
                    email: Email::parse(email).map_err(bad_name(p))?,
                    role: Role::parse(role).map_err(bad_name(p))?,
                }),
                _ => Err(usage(p, "Give an e-mail address and a role")),
            }
        }
        ("user", "remove") => {
            let p = "admin user remove";
            match words.as_slice() {
                [email] => Ok(AdminCommand::UserRemove { email: Email::parse(email).map_err(bad_name(p))? }),
                _ => Err(usage(p, "Give one e-mail address")),
            }
        }
        ("user", "list") => no_args("admin user list", &words, AdminCommand::UserList),
        ("agent", "list") => no_args("admin agent list", &words, AdminCommand::AgentList),
        ("agent", "disable") => {
            let p = "admin agent disable";
            let (name, reason) = split_word(rest);
            if name.is_empty() {
                return Err(usage(p, "Name the agent to disable"));
            }
            let agent = AgentName::parse(name).map_err(bad_name(p))?;
            if reason.is_empty() {
                return Err(usage(p, "Say why you are disabling it, so the audit log explains the break-glass"));
            }
            Ok(AdminCommand::AgentDisable { agent, reason: reason.to_string() })
        }
        ("agent", "enable") => {
            let p = "admin agent enable";
            let (name, reason) = split_word(rest);
            if name.is_empty() {
                return Err(usage(p, "Name the agent to enable"));
            }
            let agent = AgentName::parse(name).map_err(bad_name(p))?;
            Ok(AdminCommand::AgentEnable { agent, reason: (!reason.is_empty()).then(|| reason.to_string()) })
        }
        ("workspace", "create") => parse_workspace_create(&words),
        ("workspace", "list") => {
            let p = "admin workspace list";
            match words.as_slice() {
                [] => Ok(AdminCommand::WorkspaceList { owner: None }),
                [email] => Ok(AdminCommand::WorkspaceList { owner: Some(Email::parse(email).map_err(bad_name(p))?) }),
                _ => Err(usage(p, "Give at most one e-mail address")),
            }
        }
        ("workspace", "delete") => {
            let p = "admin workspace delete";
            match words.as_slice() {
                [name] => Ok(AdminCommand::WorkspaceDelete { name: WorkspaceName::parse(name).map_err(bad_name(p))? }),
                _ => Err(usage(p, "Give one workspace name")),
            }
        }
        ("audit", "tail") => {
            let p = "admin audit tail";
            match words.as_slice() {
                [] => Ok(AdminCommand::AuditTail { n: 20 }),
                [n] => Ok(AdminCommand::AuditTail { n: count(p, n, MAX_AUDIT_TAIL, "a number")? }),
                _ => Err(usage(p, "Give at most one number")),
            }
        }
        ("memory", "list") => {
            let p = "admin memory list";
            match words.as_slice() {
                [scope] => Ok(AdminCommand::MemoryList { scope: ScopeName::parse(scope).map_err(bad_name(p))?, n: 20 }),
                [scope, n] => Ok(AdminCommand::MemoryList {
                    scope: ScopeName::parse(scope).map_err(bad_name(p))?,
                    n: count(p, n, MAX_AUDIT_TAIL, "a number")?,
                }),
                _ => Err(usage(p, "Name one scope and, optionally, how many passages")),
            }
        }
        ("memory", "search") => {
            let p = "admin memory search";
            let (scope, query) = split_word(rest);
            if scope.is_empty() || query.is_empty() {
                return Err(usage(p, "Name a scope and the words to search for"));
            }
            Ok(AdminCommand::MemorySearch {
                scope: ScopeName::parse(scope).map_err(bad_name(p))?,
                query: query.to_string(),
            })
        }
        ("memory", "forget") => {
            let id = one_id(
                "admin memory forget",
                &words,
                "a passage id",
                "Give the id of one passage (see /admin memory list)",
            )?;
            Ok(AdminCommand::MemoryForget { id })
        }
        ("usage", d) => {
            let p = "admin usage";
            if !words.is_empty() {
                return Err(usage(p, "Give at most one number of days"));
            }
            if d.is_empty() {
                return Ok(AdminCommand::Usage { days: 7 });
            }
            Ok(AdminCommand::Usage { days: count(p, d, 366, "a number of days")? })
        }
        ("outbox", "retry") => {
            let id = one_id(
                "admin outbox retry",
                &words,
                "a reply id",
                "Give the id of one undelivered reply (see /admin outbox)",
            )?;
            Ok(AdminCommand::OutboxRetry { id })
        }
        ("outbox", n) => {
            let p = "admin outbox";
            if !words.is_empty() {
                return Err(usage(p, "Give at most one number"));
            }
            if n.is_empty() {
                return Ok(AdminCommand::OutboxList { n: 20 });
            }
            Ok(AdminCommand::OutboxList { n: count(p, n, MAX_AUDIT_TAIL, "a number")? })
        }
        ("audit", "verify") => no_args("admin audit verify", &words, AdminCommand::AuditVerify),
        ("doctor", "") => Ok(AdminCommand::Doctor),
        ("doctor", _) => Err(usage("admin doctor", NO_ARGS)),
        ("identity", "list") => {
            let p = "admin identity list";
            match words.as_slice() {
                [] => Ok(AdminCommand::IdentityList { email: None }),
                [email] => Ok(AdminCommand::IdentityList { email: Some(Email::parse(email).map_err(bad_name(p))?) }),
                _ => Err(usage(p, "Give at most one e-mail address")),
            }
        }
        ("identity", "unlink") => {
            let p = "admin identity unlink";
            match words.as_slice() {
                [email, platform] => {
                    let platform = platform.to_ascii_lowercase();
                    if !platform.chars().all(|c| c.is_ascii_lowercase()) || platform.is_empty() || platform.len() > 20 {
                        return Err(usage(p, format!("'{}' is not a platform name", shown(&platform))));
                    }
                    Ok(AdminCommand::IdentityUnlink { email: Email::parse(email).map_err(bad_name(p))?, platform })
                }
                _ => Err(usage(
                    p,
                    "Give an e-mail address and a platform (console, slack, discord, telegram, whatsapp or cli)",
                )),
            }
        }
        ("", _) => Err(ParseError::Usage {
            problem: match crate::spec::admin_groups().split_last() {
                Some((last, rest)) => format!("Say what to administer: {} or {last}", rest.join(", ")),
                None => "Say what to administer".into(),
            },
            usage: crate::spec::admin_usage(),
        }),
        // A group named without one of its commands: that group's usage.
        (group, "") if let Some((verbs, usage)) = crate::spec::admin_group(group) => {
            Err(ParseError::Usage { problem: format!("Say what to do: /admin {group} {verbs}"), usage })
        }
        _ => Err(ParseError::Usage {
            problem: format!(
                "'{}' is not an admin command",
                format!("/admin {} {}", shown(&noun), shown(&verb)).trim_end()
            ),
            usage: crate::spec::admin_group(&noun).map_or_else(crate::spec::admin_usage, |(_, usage)| usage),
        }),
    }
}

/// `/link [CODE]`: a code is letters and digits (dashes and case ignored).
fn parse_link(args: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(Command::Link { code: None }),
        [code] => {
            let normal: String = code.chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
            if (6..=16).contains(&normal.len()) && normal.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok(Command::Link { code: Some(normal) })
            } else {
                Err(usage("link", format!("'{}' is not a link code", shown(code))))
            }
        }
        _ => Err(usage("link", "Give the one code /link showed you on the other platform")),
    }
}

/// A count from 1 to `max`, e.g. how many rows to show.
fn count(path: &str, raw: &str, max: u32, what: &str) -> Result<u32, ParseError> {
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(usage(path, format!("'{}' is not {what} from 1 to {max}", shown(raw)))),
    }
}

/// Exactly one positive row id.
fn one_id(path: &str, words: &[&str], what: &str, missing: &str) -> Result<i64, ParseError> {
    match words {
        [id] => match id.parse::<i64>() {
            Ok(id) if id > 0 => Ok(id),
            _ => Err(usage(path, format!("'{}' is not {what}", shown(id)))),
        },
        _ => Err(usage(path, missing)),
    }
}

const NO_ARGS: &str = "This command takes no arguments";

fn no_args(path: &str, words: &[&str], cmd: AdminCommand) -> Result<AdminCommand, ParseError> {
    if words.is_empty() { Ok(cmd) } else { Err(usage(path, NO_ARGS)) }
}

/// `workspace create` accepts `--user EMAIL --scope NAME` in any order, or
/// the two positionally as `NAME EMAIL`.
fn parse_workspace_create(words: &[&str]) -> Result<AdminCommand, ParseError> {
    let p = "admin workspace create";
    let mut owner = None;
    let mut name = None;
    let mut positional = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match w.to_ascii_lowercase().as_str() {
            "--user" | "--owner" => {
                let value = *it.next().ok_or_else(|| usage(p, "--user needs an e-mail address"))?;
                if owner.replace(value).is_some() {
                    return Err(usage(p, "Give --user once"));
                }
            }
            "--scope" | "--name" => {
                let value = *it.next().ok_or_else(|| usage(p, "--scope needs a workspace name"))?;
                if name.replace(value).is_some() {
                    return Err(usage(p, "Give --scope once"));
                }
            }
            flag if flag.starts_with("--") => {
                return Err(usage(p, format!("'{}' is not an option here", shown(flag))));
            }
            _ => positional.push(*w),
        }
    }
    for w in positional {
        if name.is_none() && !w.contains('@') {
            name = Some(w);
        } else if owner.is_none() {
            owner = Some(w);
        } else {
            return Err(usage(p, format!("'{}' is one argument too many", shown(w))));
        }
    }
    match (owner, name) {
        (Some(owner), Some(name)) => Ok(AdminCommand::WorkspaceCreate {
            owner: Email::parse(owner).map_err(bad_name(p))?,
            name: WorkspaceName::parse(name).map_err(bad_name(p))?,
        }),
        _ => Err(usage(p, "Give the owner's e-mail address and the workspace name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SPECS;

    fn cmd(line: &str) -> Command {
        match parse_line(line) {
            Ok(Input::Command(c)) => c,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn ask_keeps_the_whole_question() {
        assert_eq!(cmd("/ask why did the deploy fail?"), Command::Ask { question: "why did the deploy fail?".into() });
    }

    #[test]
    fn free_text_is_text() {
        assert_eq!(parse_line("  hello there ").unwrap(), Input::Text("hello there".into()));
    }

    #[test]
    fn workspace_forms() {
        assert_eq!(cmd("/workspace"), Command::Workspace(WorkspaceCommand::Show));
        assert_eq!(cmd("/workspace SHARED"), Command::Workspace(WorkspaceCommand::Shared));
        assert_eq!(
            cmd("/workspace alice-lab"),
            Command::Workspace(WorkspaceCommand::Switch(WorkspaceName::parse("alice-lab").unwrap()))
        );
    }

    #[test]
    fn workspace_create_takes_flags_or_positions() {
        let want = Command::Admin(AdminCommand::WorkspaceCreate {
            owner: Email::parse("alice@acme.com").unwrap(),
            name: WorkspaceName::parse("alice-lab").unwrap(),
        });
        assert_eq!(cmd("/admin workspace create --user alice@acme.com --scope alice-lab"), want);
        assert_eq!(cmd("/admin workspace create --scope alice-lab --user alice@acme.com"), want);
        assert_eq!(cmd("/admin workspace create alice-lab alice@acme.com"), want);
        assert!(parse_line("/admin workspace create --user alice@acme.com").is_err());
        let twice = parse_line("/admin workspace create --user a@acme.com --scope y --scope z").unwrap_err();
        assert!(twice.to_string().starts_with("Give --scope once."), "{twice}");
    }

    #[test]
    fn an_unknown_admin_command_is_quoted_as_typed() {
        let problem = |line: &str| match parse_line(line) {
            Err(ParseError::Usage { problem, .. }) => problem,
            other => panic!("{line:?} parsed as {other:?}"),
        };
        assert_eq!(problem("/admin bogus"), "'/admin bogus' is not an admin command");
        assert_eq!(problem("/admin user fly"), "'/admin user fly' is not an admin command");
        assert_eq!(
            problem("/admin"),
            "Say what to administer: whoami, user, agent, workspace, memory, usage, outbox, audit, identity or doctor"
        );
    }

    #[test]
    fn an_admin_group_without_its_command_gets_that_groups_usage() {
        let err = |line: &str| parse_line(line).expect_err(line).to_string();
        assert_eq!(
            err("/admin user"),
            "Say what to do: /admin user add, role, remove or list. Usage: /admin user add EMAIL [admin|member|observer] \
             | /admin user role EMAIL admin|member|observer | /admin user remove EMAIL | /admin user list"
        );
        assert_eq!(
            err("/admin audit"),
            "Say what to do: /admin audit tail or verify. Usage: /admin audit tail [N] | /admin audit verify"
        );
        // A wrong command in a group gets the group's usage too.
        assert!(err("/admin memory grep x").ends_with(
            "Usage: /admin memory list SCOPE [N] | /admin memory search SCOPE WORDS | /admin memory forget ID"
        ));
        // Words that are commands on their own, and unknown words, are not groups.
        assert!(crate::spec::admin_group("usage").is_none() && crate::spec::admin_group("bogus").is_none());
        assert!(err("/admin bogus").ends_with("(see /help admin)"));
    }

    #[test]
    fn user_add_defaults_to_member() {
        assert_eq!(
            cmd("/admin user add Bob@Acme.com"),
            Command::Admin(AdminCommand::UserAdd { email: Email::parse("bob@acme.com").unwrap(), role: Role::Member })
        );
    }

    #[test]
    fn disable_needs_a_reason() {
        let err = parse_line("/admin agent disable ops-oncall").unwrap_err().to_string();
        assert!(err.contains("Say why"), "{err}");
        assert_eq!(
            cmd("/admin agent disable ops-oncall paging loop at 3am"),
            Command::Admin(AdminCommand::AgentDisable {
                agent: AgentName::parse("ops-oncall").unwrap(),
                reason: "paging loop at 3am".into()
            })
        );
    }

    #[test]
    fn errors_carry_usage() {
        let err = parse_line("/admin user role bob@acme.com").unwrap_err().to_string();
        assert!(err.contains("Usage: /admin user role EMAIL"), "{err}");
        let err = parse_line("/workspace ../../etc").unwrap_err().to_string();
        assert!(err.contains("'.'") && err.contains("Usage: /workspace NAME"), "{err}");
        let err = parse_line("/deploy prod").unwrap_err().to_string();
        assert!(err.contains("/help"), "{err}");
    }

    #[test]
    fn audit_tail_is_bounded() {
        assert_eq!(cmd("/admin audit tail"), Command::Admin(AdminCommand::AuditTail { n: 20 }));
        assert!(parse_line("/admin audit tail 201").is_err());
        assert!(parse_line("/admin audit tail -1").is_err());
    }

    #[test]
    fn extra_words_and_unknown_help_topics_are_named() {
        let err = |line: &str| parse_line(line).unwrap_err().to_string();
        assert_eq!(err("/help foo"), "There is no help on 'foo'. Usage: /help [admin]");
        assert_eq!(cmd("/help ADMIN"), Command::Help { admin: true });
        assert!(err("/admin whoami extra").starts_with("This command takes no arguments. Usage: /admin whoami"));
        assert!(err("/admin doctor now please").starts_with("This command takes no arguments. Usage: /admin doctor"));
        assert!(err(&"x".repeat(4001)).starts_with("That message is 4001 characters long"));
        assert!(err("/workspace Alice-Lab").starts_with("The workspace name"), "{}", err("/workspace Alice-Lab"));
    }

    #[test]
    fn pincer_prefix_carries_every_command() {
        assert_eq!(cmd("/pincer ask hi"), Command::Ask { question: "hi".into() });
        assert_eq!(cmd("/pincer admin whoami"), Command::Admin(AdminCommand::Whoami));
    }

    #[test]
    fn control_characters_never_survive() {
        assert_eq!(cmd("/ask a\u{0}b\u{1b}c"), Command::Ask { question: "abc".into() });
    }

    #[test]
    fn every_parsed_path_has_a_spec() {
        let lines = [
            "/help",
            "/ask x",
            "/workspace",
            "/workspace a",
            "/workspace shared",
            "/admin whoami",
            "/admin user add a@b.co",
            "/admin user role a@b.co admin",
            "/admin user remove a@b.co",
            "/admin user list",
            "/admin agent list",
            "/admin agent disable a r",
            "/admin agent enable a",
            "/admin workspace create a a@b.co",
            "/admin workspace list",
            "/admin workspace delete a",
            "/admin audit tail",
            "/admin audit verify",
            "/admin outbox",
            "/admin outbox retry 7",
            "/admin usage 30",
            "/admin memory list incidents",
            "/admin memory search incidents deploy lock",
            "/admin memory forget 3",
            "/link",
            "/admin identity list",
            "/admin identity unlink a@b.co slack",
            "/admin doctor",
        ];
        for l in lines {
            let c = cmd(l);
            assert_eq!(c.spec().path, c.path(), "{l}");
        }
        assert_eq!(lines.len(), SPECS.len());
    }

    #[test]
    fn link_codes_are_normalised_and_checked() {
        assert_eq!(cmd("/link"), Command::Link { code: None });
        assert_eq!(cmd("/link abcde-23456"), Command::Link { code: Some("ABCDE23456".into()) });
        assert_eq!(cmd("/admin link ABCDE-23456"), Command::Link { code: Some("ABCDE23456".into()) });
        assert!(parse_line("/link abc").is_err());
        assert!(parse_line("/link abc$%^def").is_err());
        assert!(parse_line("/link one two").is_err());
        assert!(parse_line("/admin identity unlink a@b.co sl4ck").is_err());
    }

    #[test]
    fn overlong_input_is_refused() {
        assert!(matches!(parse_line(&"x".repeat(4001)), Err(ParseError::TooLong { chars: 4001 })));
        // A question of exactly the limit is taken however it is asked;
        // one character more is refused, counted as the person wrote it.
        let q = "x".repeat(4000);
        assert_eq!(parse_line(&q), Ok(Input::Text(q.clone())));
        for line in [format!("/ask {q}"), format!("/pincer ask {q}"), format!("/pincer /ask {q}")] {
            assert_eq!(parse_line(&line), Ok(Input::Command(Command::Ask { question: q.clone() })), "{}", &line[..12]);
        }
        assert_eq!(parse_line(&format!("/ask {q}y")), Err(ParseError::TooLong { chars: 4001 }));
        assert_eq!(parse_line(&format!("/pincer ask {q}y")), Err(ParseError::TooLong { chars: 4001 }));
        assert!(matches!(parse_line(&format!("/admin {}", "x".repeat(5000))), Err(ParseError::TooLong { .. })));
    }

    mod property {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn never_panics_on_any_string(s in "\\PC*") {
                let _ = parse_line(&s);
            }

            #[test]
            fn never_panics_on_command_shaped_input(
                head in prop::sample::select(vec!["/ask", "/workspace", "/admin", "/help", "/pincer", "/admin user", "/admin agent disable", "/admin workspace create", "/admin audit tail"]),
                tail in "[ -~\\u{0}-\\u{1f}\\u{430}\\u{202e}]{0,80}",
            ) {
                let _ = parse_line(&format!("{head} {tail}"));
            }

            #[test]
            fn accepted_names_follow_the_rule(s in "\\PC{0,50}") {
                if let Ok(n) = WorkspaceName::parse(&s) {
                    prop_assert!(!n.as_str().is_empty() && n.as_str().len() <= 40);
                    prop_assert!(n.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                }
            }

            #[test]
            fn error_text_never_echoes_control_characters(s in "/[a-z]{0,8} [\\u{0}-\\u{1f}a-z@./]{0,30}") {
                if let Err(e) = parse_line(&s) {
                    let text = e.to_string();
                    prop_assert!(!text.chars().any(|c| c.is_control()), "{:?}", text);
                }
            }
        }
    }
}
