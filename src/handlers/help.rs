//! `/help [admin]`: the commands this person may run, from the command table.

use pincer_commands::help_text;
use serde_json::json;

use super::{Ctx, Outcome};

/// Shows help for the sender's role.
pub fn run(ctx: &Ctx<'_>, admin: bool) -> Outcome {
    let help = crate::messages::help_command(ctx.event.platform());
    let mut text = help_text(ctx.user.role, admin, help);
    if let Some(agent) = ctx.agent {
        text.push_str(&format!("\nHere, {} answers.", agent.name));
    }
    Outcome::done(text, json!({"topic": if admin { "admin" } else { "" }}))
}
