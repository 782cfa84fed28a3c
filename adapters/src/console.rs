//! The terminal channel: each line typed (or piped) is one event from the
//! `console` platform, handled by exactly the same router as Slack.
//!
//! Lines starting with `:` are console controls, not chat: `:as EMAIL`
//! changes who is typing (the console is a local, trusted tool — whoever can
//! run it can already reach the database), `:channel console:#name` moves to
//! another channel, `:quit` ends. End of input ends the session.

use pincer_commands::Email;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use crate::event::{ChannelEvent, ChannelRef, Dispatch, Platform, Reply, ReplyKind, Sender, Visibility};

/// The tenant every console event carries.
pub const CONSOLE_TENANT: &str = "local";

/// Who is typing, and where.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The person typing, vouched for by whoever started the console.
    pub user: Email,
    /// The channel lines are posted to, e.g. `console:#product-bot`.
    pub channel: ChannelRef,
}

impl ConsoleSession {
    /// Turns one typed line into an event.
    pub fn event(&self, line: &str) -> ChannelEvent {
        let sender = Sender {
            platform_user_id: self.user.to_string(),
            display_name: None,
            verified_email: Some(self.user.clone()),
            is_bot: false,
        };
        ChannelEvent::new(CONSOLE_TENANT, self.channel.clone(), None, sender, line, Uuid::new_v4().to_string())
    }
}

/// Renders a reply for a terminal.
pub fn render(reply: &Reply) -> String {
    let mut text = reply.text.clone();
    if reply.kind == ReplyKind::Error {
        text = format!("! {text}");
    }
    if reply.visibility == Visibility::Ephemeral && reply.kind != ReplyKind::Error {
        text = format!("(only you) {text}");
    }
    text
}

/// Runs a console session until end of input or `:quit`.
pub async fn run<R, W, D>(
    input: R,
    mut out: W,
    mut session: ConsoleSession,
    dispatch: &D,
    interactive: bool,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
    D: Dispatch,
{
    let mut lines = input.lines();
    if interactive {
        out.write_all(
            format!(
                "Pincer console — you are {} in {}. Type /help, a question, or :quit.\n",
                session.user, session.channel
            )
            .as_bytes(),
        )
        .await?;
    }
    loop {
        if interactive {
            out.write_all(format!("{} {}> ", session.user, session.channel.channel).as_bytes()).await?;
            out.flush().await?;
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(control) = line.strip_prefix(':') {
            match control_command(control, &mut session) {
                Control::Quit => break,
                Control::Say(text) => out.write_all(format!("{text}\n").as_bytes()).await?,
            }
            continue;
        }
        for reply in dispatch.dispatch(session.event(line)).await {
            out.write_all(format!("{}\n", render(&reply)).as_bytes()).await?;
        }
        out.flush().await?;
    }
    out.flush().await
}

enum Control {
    Quit,
    Say(String),
}

/// A channel as typed at the console: `console:#ops`, `#ops`, or `ops`
/// (console channels are named with a `#`, as in the config).
pub fn console_channel(typed: &str) -> String {
    match typed {
        t if t.contains(':') => t.to_string(),
        t if t.starts_with('#') => format!("console:{t}"),
        t => format!("console:#{t}"),
    }
}

fn control_command(control: &str, session: &mut ConsoleSession) -> Control {
    let (word, arg) = control.split_once(' ').map(|(w, a)| (w, a.trim())).unwrap_or((control, ""));
    match word.to_ascii_lowercase().as_str() {
        "quit" | "q" | "exit" => Control::Quit,
        "as" => match Email::parse(arg) {
            Ok(user) => {
                session.user = user;
                Control::Say(format!("You are now {}.", session.user))
            }
            Err(e) => Control::Say(format!("! {e}")),
        },
        "channel" => {
            let wanted = console_channel(arg);
            match wanted.parse::<ChannelRef>() {
                Ok(c) if c.platform == Platform::Console => {
                    session.channel = c;
                    Control::Say(format!("You are now in {}.", session.channel))
                }
                Ok(_) => Control::Say("! The console can only post to console: channels.".into()),
                Err(e) => Control::Say(format!("! {e}")),
            }
        }
        _ => Control::Say("Console controls: :as EMAIL, :channel #name, :quit".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_typed_channel_gets_the_consoles_hash() {
        assert_eq!(console_channel("ops"), "console:#ops");
        assert_eq!(console_channel("#ops"), "console:#ops");
        assert_eq!(console_channel("console:#ops"), "console:#ops");
        assert_eq!(console_channel("slack:C1"), "slack:C1");
    }

    struct Echo(Mutex<Vec<ChannelEvent>>);

    impl Dispatch for Echo {
        async fn dispatch(&self, event: ChannelEvent) -> Vec<Reply> {
            let text = format!("{} said {}", event.sender.platform_user_id, event.text);
            self.0.lock().unwrap().push(event);
            vec![Reply::answer(text)]
        }
    }

    #[tokio::test]
    async fn piped_lines_become_events_and_controls_switch_user() {
        let session =
            ConsoleSession { user: Email::parse("alice@acme.com").unwrap(), channel: "console:#x".parse().unwrap() };
        let input = b"hello\n\n:as bob@acme.com\n/ask hi\n:channel #y\n:quit\nnever\n" as &[u8];
        let mut out = Vec::new();
        let echo = Echo(Mutex::new(Vec::new()));
        run(input, &mut out, session, &echo, false).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "alice@acme.com said hello\nYou are now bob@acme.com.\nbob@acme.com said /ask hi\nYou are now in console:#y.\n"
        );
        let events = echo.0.lock().unwrap();
        assert_eq!(events.len(), 2);
        assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
    }
}
