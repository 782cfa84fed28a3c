//! The Slack app manifest `pincer slack manifest` prints, to paste into
//! Slack's "Create an app → From an app manifest".
//!
//! One Slack slash command per Pincer command (`/ask`, `/workspace`,
//! `/admin`, `/link`): each shows its own usage hint in Slack's autocomplete.
//! `/pincer` carries them all and help: Slack keeps some command names for
//! itself, so Pincer registers no `/help`, and its sentences tell Slack
//! users to type `/pincer help` instead.

use pincer_commands::SPECS;
use serde_json::{Value, json};

/// The bot scopes Pincer needs, and why.
pub const BOT_SCOPES: &[(&str, &str)] = &[
    ("app_mentions:read", "answer @mentions"),
    (
        "channels:history",
        "answer messages in bound public channels; look in a thread for a reply before sending it again",
    ),
    ("groups:history", "answer messages in bound private channels (and look there before a resend)"),
    ("channels:read", "bind agents to channels by name"),
    ("groups:read", "bind agents to private channels by name"),
    ("chat:write", "post answers and update 'working on it…'"),
    ("commands", "/ask, /workspace, /admin, /link, /pincer"),
    ("users:read", "look people up"),
    ("users:read.email", "match Slack people to org users by e-mail"),
];

/// What `/workspace` does, as Slack's autocomplete shows it (the command
/// has three forms; [`SPECS`] describes each).
const WORKSPACE: &str =
    "Show your workspace; /workspace NAME switches your asks into your own, /workspace shared goes back.";

/// What `/admin` does, as Slack's autocomplete shows it.
const ADMIN: &str = "Run Pincer's admin commands (people, agents, workspaces, memory, the outbox, the audit log); /admin whoami for anyone.";

/// What `/pincer` does, as Slack's autocomplete shows it.
const PINCER: &str = "Pincer's help (/pincer help, /pincer help admin), and every Pincer command in one: /pincer ask QUESTION, /pincer admin whoami…";

/// `/admin`'s usage hint: its sub-commands, as [`SPECS`] lists them.
fn admin_hint() -> String {
    format!("{} …", pincer_commands::spec::admin_groups().join("|"))
}

/// The manifest for an app called `name` reachable at `base_url`
/// (e.g. `https://pincer.acme.com`); with `socket_mode`, no URLs at all.
pub fn manifest(base_url: &str, name: &str, socket_mode: bool) -> Value {
    let base = base_url.trim_end_matches('/');
    let url = |path: &str| (!socket_mode).then(|| format!("{base}{path}"));
    let summary = |path: &str| SPECS.iter().find(|s| s.path == path).map(|s| s.summary).unwrap_or_default();
    let command = |cmd: &str, hint: &str, description: &str| {
        let mut c = json!({"command": cmd, "description": description, "usage_hint": hint, "should_escape": false});
        if let Some(u) = url("/slack/commands") {
            c["url"] = json!(u);
        }
        c
    };
    let mut events = json!({"bot_events": ["app_mention", "message.channels", "message.groups"]});
    let mut interactivity = json!({"is_enabled": true});
    if let Some(u) = url("/slack/events") {
        events["request_url"] = json!(u);
    }
    if let Some(u) = url("/slack/interactive") {
        interactivity["request_url"] = json!(u);
    }
    json!({
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Your team's AI agents, with roles, workspaces and an audit log.",
            "background_color": "#1d1c1d",
        },
        "features": {
            "bot_user": {"display_name": name.to_lowercase(), "always_online": true},
            "slash_commands": [
                command("/ask", "QUESTION", summary("ask")),
                command("/workspace", "[NAME | shared]", WORKSPACE),
                command("/admin", &admin_hint(), ADMIN),
                command("/link", "[CODE]", summary("link")),
                command("/pincer", "help [admin] | ask QUESTION | workspace … | link … | admin …", PINCER),
            ],
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>()}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": false,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_points_every_url_at_the_gateway() {
        let m = manifest("https://pincer.acme.com/", "Pincer", false);
        assert_eq!(m["settings"]["event_subscriptions"]["request_url"], "https://pincer.acme.com/slack/events");
        assert_eq!(m["settings"]["interactivity"]["request_url"], "https://pincer.acme.com/slack/interactive");
        let cmds = m["features"]["slash_commands"].as_array().unwrap();
        let names: Vec<&str> = cmds.iter().map(|c| c["command"].as_str().unwrap()).collect();
        assert_eq!(names, ["/ask", "/workspace", "/admin", "/link", "/pincer"]);
        assert!(cmds.iter().all(|c| !c["description"].as_str().unwrap().is_empty()));
        // /admin's hint names every admin sub-command Pincer has.
        let hint = cmds[2]["usage_hint"].as_str().unwrap();
        for spec in SPECS.iter().filter(|s| s.path.starts_with("admin ")) {
            let group = spec.path.split(' ').nth(1).unwrap();
            assert!(hint.split(['|', ' ']).any(|g| g == group), "{group} missing from {hint}");
        }
        assert!(hint.starts_with("whoami|user|agent|workspace|"), "{hint}");
        // Within the lengths Slack's manifest schema allows.
        let len = |v: &Value| v.as_str().unwrap().chars().count();
        assert!(cmds.iter().all(|c| len(&c["description"]) <= 2000 && len(&c["usage_hint"]) <= 1000));
        assert!(len(&m["display_information"]["description"]) <= 140);
        assert!(len(&m["features"]["bot_user"]["display_name"]) <= 80);
        assert!(cmds.iter().all(|c| c["url"] == "https://pincer.acme.com/slack/commands"));
        assert!(m["oauth_config"]["scopes"]["bot"].as_array().unwrap().contains(&json!("users:read.email")));
    }

    #[test]
    fn socket_mode_needs_no_urls() {
        let m = manifest("", "Pincer", true);
        assert_eq!(m["settings"]["socket_mode_enabled"], true);
        assert!(m["settings"]["event_subscriptions"].get("request_url").is_none());
        assert!(m["features"]["slash_commands"][0].get("url").is_none());
    }
}
