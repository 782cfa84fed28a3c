//! Every sentence a person reads when something is refused or fails, in one
//! place, so the wording stays consistent and no error type ever reaches a
//! chat as a debug string or a stack trace.

use pincer_adapters::{ChannelRef, Platform};
use pincer_commands::Role;

use crate::config::Config;
use crate::policy::Denial;
use crate::store::agents::AgentState;

/// A number and its noun, agreeing: "1 passage", "2 passages", "0 passages".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// For someone Pincer does not know.
pub fn unknown_person(email_known: bool) -> String {
    if email_known {
        "You are not a member of this Pincer org. An admin can add you by your e-mail address; if Pincer knows \
         you on another platform, type /link there and then /link CODE here."
            .into()
    } else {
        "I can't tell who you are on this platform, so I can't let you use Pincer. If Pincer knows you on \
         another platform, type /link there and then /link CODE here; otherwise ask an admin to add you."
            .into()
    }
}

/// For something that failed on Pincer's side.
pub fn internal_error(event_id: &uuid::Uuid) -> String {
    format!(
        "Something went wrong on Pincer's side and nothing was changed. Please try again; if it keeps happening, tell an admin (reference {}).",
        &event_id.to_string()[..8]
    )
}

/// For an ask whose model provider failed.
pub fn provider_unavailable() -> String {
    "The model provider is unavailable right now, so I could not answer. Try again in a few minutes.".into()
}

/// For a person past their daily token allowance.
pub fn person_over_budget(limit: i64) -> String {
    format!(
        "You have used today's allowance of {limit} tokens, so I can't answer until it resets at midnight UTC. An admin can see usage with /admin usage."
    )
}

/// For an agent past its daily token allowance.
pub fn agent_over_budget(agent: &str, limit: i64) -> String {
    format!(
        "The agent {agent} has used today's allowance of {limit} tokens, so it can't answer until it resets at midnight UTC. Tell an admin if this blocks you."
    )
}

/// For a run that stopped after it had started changing things.
pub fn interrupted_after_side_effects() -> String {
    "I was interrupted after I had started making changes for your question, so I won't repeat them on my own. Check what was done, then ask again if you still need it. An admin can see it in the audit log (run.interrupted).".into()
}

/// The placeholder a slow answer shows while it is worked on.
pub fn working_on_it() -> String {
    "Working on it…".into()
}

/// For a run that waits for an approval.
pub fn waiting_for_approval() -> String {
    "This needs a person's approval first; the request is in the thread.".into()
}

/// For a click on a button Pincer does not know.
pub fn unknown_action(platform: Platform) -> String {
    format!("That button no longer does anything. Ask again, or use {}.", help_command(platform))
}

/// How a person on `platform` asks for help: Slack reserves some command
/// names and Pincer's manifest registers no `/help`, so there it is the
/// `/pincer` command's `help`.
pub fn help_command(platform: Platform) -> &'static str {
    match platform {
        Platform::Slack => "/pincer help",
        _ => "/help",
    }
}

/// One of Pincer's own sentences (usage, help, a refusal) as a shell user
/// types the commands: `/admin …` is `pincer admin …`.
pub fn on_shell(text: &str) -> String {
    let text = replace_command(text, "/help admin", "pincer admin help");
    replace_command(&text, "/admin", "pincer admin").replace("Admin commands:", "Admin commands (pincer admin …):")
}

/// `text` with the command `from` written as `to`, where `from` is a whole
/// word (`/help`, not `/helpful`).
fn replace_command(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '-' || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if whole { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// One of Pincer's own sentences (usage, help) as a person on `platform`
/// types its commands: `/help` becomes [`help_command`]'s.
pub fn on_platform(text: String, platform: Platform) -> String {
    match help_command(platform) {
        "/help" => text,
        help => replace_command(&text, "/help", help),
    }
}

/// Channels that have agents, on the same platform as `here`.
fn bound_channels(config: &Config, platform: Platform) -> Vec<String> {
    let mut out: Vec<String> = config
        .agents
        .values()
        .flat_map(|a| {
            a.channels.iter().filter(|c| c.platform == platform).map(move |c| format!("{} ({})", c.channel, a.name))
        })
        .collect();
    out.sort();
    out
}

/// For a refusal by policy.
pub fn denial(
    d: &Denial,
    path: &str,
    config: &Config,
    here: &ChannelRef,
    agent: Option<(&str, Option<&AgentState>)>,
) -> String {
    match d {
        Denial::ObserverMutation => {
            "Observers can read answers and the audit log but cannot change anything or run agents. Ask an admin if you need more access.".into()
        }
        Denial::RoleTooLow { needed: Role::Admin, .. } => format!("Only admins can run /{path}."),
        Denial::RoleTooLow { needed, have } => format!("/{path} needs the {needed} role; you are {have}."),
        Denial::NoAgentHere => {
            let channels = bound_channels(config, here.platform);
            if channels.is_empty() {
                format!("No agent answers in {}, and none is bound to a {} channel yet.", here.channel, here.platform)
            } else {
                format!("No agent answers in {}. Agents are in: {}.", here.channel, channels.join(", "))
            }
        }
        Denial::AgentDisabled => match agent {
            Some((name, Some(state))) => format!(
                "The agent {name} is disabled by {} ({}), so it cannot answer now.",
                state.disabled_by.as_deref().unwrap_or("an admin"),
                state.disabled_reason.as_deref().unwrap_or("no reason given")
            ),
            _ => "This channel's agent is disabled, so it cannot answer now.".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{Platform, count, on_platform};

    #[test]
    fn help_is_named_as_each_platform_types_it() {
        let usage = "/admin whoami|user … (see /help admin)".to_string();
        assert_eq!(on_platform(usage.clone(), Platform::Slack), "/admin whoami|user … (see /pincer help admin)");
        assert_eq!(on_platform(usage.clone(), Platform::Console), usage);
        assert_eq!(on_platform("Try /help.".into(), Platform::Slack), "Try /pincer help.");
        assert_eq!(
            on_platform("There is no help on '/helpful'. Usage: /help [admin]".into(), Platform::Slack),
            "There is no help on '/helpful'. Usage: /pincer help [admin]"
        );
        assert_eq!(super::on_shell("see /administer or /admin"), "see /administer or pincer admin");
        assert_eq!(
            super::on_shell("'/admin frob' is not an admin command. Usage: /admin whoami|user … (see /help admin)"),
            "'pincer admin frob' is not an admin command. Usage: pincer admin whoami|user … (see pincer admin help)"
        );
    }

    #[test]
    fn a_count_agrees_with_its_noun() {
        assert_eq!(count(0u32, "passage", "passages"), "0 passages");
        assert_eq!(count(1u32, "passage", "passages"), "1 passage");
        assert_eq!(count(2u64, "person", "people"), "2 people");
    }
}
