//! `/help [admin]`: the commands this person may run, from the command table.

use pincer_adapters::Platform;
use pincer_commands::{Role, help_text};
use serde_json::json;

use super::{Ctx, Outcome};

/// Shows help for the sender's role.
pub fn run(ctx: &Ctx<'_>, admin: bool) -> Outcome {
    let platform = ctx.event.platform();
    let help = crate::messages::help_command(platform);
    let mut text = help_text(ctx.user.role, admin, help);
    if platform == Platform::Slack {
        text = code_block(&text);
    }
    match ctx.agent {
        Some(agent) if ctx.user.role >= Role::Member => text.push_str(&format!("\nHere, {} answers.", agent.name)),
        Some(agent) => text.push_str(&format!("\nHere, {} answers members' questions.", agent.name)),
        None => {}
    }
    Outcome::done(text, json!({"topic": if admin { "admin" } else { "" }}))
}

/// The help's table (its indented lines) in a code block, so Slack's
/// proportional font does not undo its columns.
fn code_block(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let row = line.strip_prefix("  ");
        if row.is_some() != in_table {
            out.push("```".to_string());
            in_table = row.is_some();
        }
        out.push(row.unwrap_or(line).to_string());
    }
    if in_table {
        out.push("```".to_string());
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_help_keeps_its_columns_in_a_code_block() {
        let text = code_block("Pincer commands:\n  /ask Q    Ask.\n  /help     Help.\nIn a channel, just write.");
        assert_eq!(text, "Pincer commands:\n```\n/ask Q    Ask.\n/help     Help.\n```\nIn a channel, just write.");
        assert_eq!(code_block("Admin commands:\n  /admin x  X."), "Admin commands:\n```\n/admin x  X.\n```");
    }
}
