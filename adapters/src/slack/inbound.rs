//! Turning what Slack sends (Events API pushes, slash commands, button
//! clicks — over HTTP or Socket Mode) into [`ChannelEvent`]s.
//!
//! Pure functions over slack-morphism's types: signature checking happens
//! before any of this (see [`super::verify`]); nothing here does I/O.

use pincer_commands::clean_text;
use slack_morphism::prelude::*;

use crate::event::{Action, ChannelEvent, ChannelRef, Platform, Sender};

/// Who our bot is on Slack (from `auth.test`), so its own messages and the
/// `<@bot>` prefix of a mention can be recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot user's id (`U…`).
    pub user_id: Option<String>,
    /// The bot's id (`B…`).
    pub bot_id: Option<String>,
}

/// Why a Slack request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// The body is not the JSON or form Slack sends.
    #[error("malformed Slack payload: {0}")]
    Malformed(String),
}

/// What an Events API push means for Pincer.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// `url_verification`: answer with the challenge.
    Challenge(String),
    /// An event to route.
    Event(Box<ChannelEvent>),
    /// Nothing to do (our own message, an edit, an event type we do not use…).
    Ignored(&'static str),
}

fn channel_ref(id: &str) -> Result<ChannelRef, InboundError> {
    ChannelRef::new(Platform::Slack, id).map_err(|e| InboundError::Malformed(e.to_string()))
}

fn sender(user: &str) -> Sender {
    Sender { platform_user_id: user.to_string(), display_name: None, verified_email: None, is_bot: false }
}

/// Drops leading `<@U…>` mentions of the bot.
fn strip_mention(text: &str, bot: &BotIdentity) -> String {
    let mut t = text.trim_start();
    while let Some((id, rest)) = leading_mention(t) {
        if bot.user_id.as_deref().is_some_and(|b| b != id) {
            break;
        }
        t = rest.trim_start();
    }
    t.to_string()
}

/// The user a text begins by mentioning (`<@U1>`, `<@U1|name>`), and the
/// text after that mention.
fn leading_mention(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix("<@")?;
    let end = rest.find('>')?;
    Some((rest[..end].split('|').next().unwrap_or_default(), &rest[end + 1..]))
}

/// Slack's message markup turned back into what the person typed: links
/// (`<https://x|x>`, `<mailto:a@b|a@b>`) become their address, channels
/// (`<#C1|ops>`) `#ops`, special mentions (`<!here>`) `@here`, and the
/// escaped `&amp;`, `&lt;`, `&gt;` their characters; a person's mention
/// (`<@U1>`) stays as Slack wrote it. So `/admin user add gina@acme.com`
/// typed as a message gets the address, not `<mailto:…>`.
pub fn plain_text(text: &str) -> String {
    // (Most messages have no markup at all.)
    if !text.contains(['<', '&']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        match target.chars().next() {
            Some('@') => {
                out.push('<');
                out.push_str(inner);
                out.push('>');
            }
            Some('#') => {
                out.push('#');
                out.push_str(label.unwrap_or(&target[1..]));
            }
            Some('!') => match label {
                Some(l) => out.push_str(l),
                None => {
                    out.push('@');
                    out.push_str(target[1..].split('^').next().unwrap_or_default());
                }
            },
            _ => match target.strip_prefix("mailto:") {
                Some(address) => out.push_str(address),
                None => out.push_str(target),
            },
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Text said to Pincer itself (a mention, a direct message): alone, or
/// `help`, it asks what Pincer does — not a search for the word "help".
fn to_pincer(text: String) -> String {
    let word = text.trim().trim_end_matches(['?', '!', '.']).to_lowercase();
    match word.as_str() {
        "" | "help" => "/help".into(),
        "help admin" => "/help admin".into(),
        _ => text,
    }
}

/// Whether `text` starts by mentioning someone other than the bot: a
/// message addressed to that person, not to Pincer.
fn addressed_to_someone_else(text: &str, bot: &BotIdentity) -> bool {
    leading_mention(text).is_some_and(|(id, _)| bot.user_id.as_deref() != Some(id))
}

/// Whether `text` mentions the user `id`: `<@ID>` or `<@ID|name>` (not a
/// longer id that begins with it).
fn mentions(text: &str, id: &str) -> bool {
    text.match_indices("<@").any(|(at, _)| {
        let rest = &text[at + 2..];
        rest.strip_prefix(id).is_some_and(|after| after.starts_with('>') || after.starts_with('|'))
    })
}

/// Parses an Events API body (already verified).
pub fn parse_push(body: &[u8], bot: &BotIdentity) -> Result<Pushed, InboundError> {
    let malformed = |e: serde_json::Error| InboundError::Malformed(e.to_string());
    // Nearly every body is an event callback, and nearly every callback a
    // mention or a message: a first look reads the body's `type` and its
    // event's (skipping the rest without building anything), then the body
    // is read straight into the envelope with that event type, rather than
    // buffered whole (or the event buffered) to pick an enum's variant.
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        event: Option<EventKind<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct EventKind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        // Set when a bot (an app, a workflow, an integration) posted it.
        #[serde(borrow, default)]
        bot_id: Option<std::borrow::Cow<'a, str>>,
    }
    // (A body this look cannot read goes the general way below, which says
    // what is wrong with it.)
    let kind: Option<Kind<'_>> = serde_json::from_slice(body).ok();
    // An envelope of a type Slack added after this was written is
    // acknowledged and left alone (a 400 would have Slack retry it, and
    // count it against the app).
    if let Some(Some(t)) = kind.as_ref().map(|k| k.kind.as_deref())
        && !matches!(t, "event_callback" | "url_verification" | "app_rate_limited")
    {
        return Ok(Pushed::Ignored("envelope type not used"));
    }
    if let Some(kind) = kind.filter(|k| k.kind.as_deref() == Some("event_callback")) {
        let event = kind.event.as_ref();
        let known = match event.and_then(|e| e.kind.as_deref()) {
            // Another bot mentioning ours is not a person asking: answering
            // it could start two bots talking to each other. (slack-morphism's
            // mention type has no `bot_id`, so it is read here.)
            Some("app_mention") if event.is_some_and(|e| e.bot_id.is_some()) => {
                serde_json::from_slice::<Callback<serde::de::IgnoredAny>>(body)
                    .ok()
                    .map(|_| Ok(Pushed::Ignored("bot mention")))
            }
            Some("app_mention") => serde_json::from_slice::<Callback<SlackAppMentionEvent>>(body)
                .ok()
                .map(|cb| from_mention(&cb.team_id, cb.event_id.to_string(), cb.event, bot)),
            Some("message") => serde_json::from_slice::<Callback<SlackMessageEvent>>(body)
                .ok()
                .map(|cb| from_message(&cb.team_id, cb.event_id.to_string(), cb.event, bot)),
            _ => None,
        };
        // Anything else, or what did not read as its type (the general
        // path tells a malformed envelope from an event it does not use).
        return match known {
            Some(pushed) => pushed,
            None => from_callback(serde_json::from_slice(body).map_err(malformed)?, bot),
        };
    }
    let push: SlackPushEvent = serde_json::from_slice(body).map_err(malformed)?;
    Ok(match push {
        SlackPushEvent::UrlVerification(v) => Pushed::Challenge(v.challenge),
        SlackPushEvent::AppRateLimited(_) => Pushed::Ignored("app_rate_limited"),
        SlackPushEvent::EventCallback(cb) => from_callback(cb, bot)?,
    })
}

/// An event callback whose event is known to be a `T` (the envelope's
/// fields as [`SlackPushEventCallback`] requires them).
#[derive(serde::Deserialize)]
struct Callback<T> {
    team_id: SlackTeamId,
    #[allow(dead_code)]
    api_app_id: SlackAppId,
    event: T,
    event_id: SlackEventId,
    #[allow(dead_code)]
    event_time: SlackDateTime,
}

/// Normalises one event callback (HTTP or Socket Mode).
pub fn from_callback(cb: SlackPushEventCallback, bot: &BotIdentity) -> Result<Pushed, InboundError> {
    let key = cb.event_id.to_string();
    match cb.event {
        SlackEventCallbackBody::AppMention(m) => from_mention(&cb.team_id, key, m, bot),
        SlackEventCallbackBody::Message(m) => from_message(&cb.team_id, key, m, bot),
        _ => Ok(Pushed::Ignored("event type not used")),
    }
}

fn from_mention(
    team: &SlackTeamId,
    key: String,
    m: SlackAppMentionEvent,
    bot: &BotIdentity,
) -> Result<Pushed, InboundError> {
    if bot.user_id.as_deref() == Some(m.user.as_ref()) {
        return Ok(Pushed::Ignored("own message"));
    }
    // Editing a message that mentions the bot makes Slack send the mention
    // again (with `edited`, under a new event id): it was answered already.
    if m.edited.is_some() {
        return Ok(Pushed::Ignored("edited mention"));
    }
    let text = to_pincer(plain_text(&strip_mention(m.content.text.as_deref().unwrap_or_default(), bot)));
    let thread = m.origin.thread_ts.as_ref().unwrap_or(&m.origin.ts).to_string();
    let mut ev = ChannelEvent::new(
        team.as_ref(),
        channel_ref(m.channel.as_ref())?,
        Some(thread),
        sender(m.user.as_ref()),
        &text,
        key,
    );
    ev.addressed = true;
    Ok(Pushed::Event(Box::new(ev)))
}

fn from_message(
    team: &SlackTeamId,
    key: String,
    m: SlackMessageEvent,
    bot: &BotIdentity,
) -> Result<Pushed, InboundError> {
    let from_bot = m.sender.bot_id.is_some()
        || matches!(m.subtype, Some(SlackMessageEventType::BotMessage))
        || m.sender.user.as_ref().map(|u| u.to_string()) == bot.user_id;
    if from_bot {
        return Ok(Pushed::Ignored("bot message"));
    }
    // A question with a file attached, or also sent to the channel, is
    // still a question; edits, deletions, joins and the rest are not.
    let asks = matches!(
        m.subtype,
        None | Some(SlackMessageEventType::FileShare) | Some(SlackMessageEventType::ThreadBroadcast)
    );
    if !asks {
        return Ok(Pushed::Ignored("message subtype"));
    }
    let (Some(user), Some(channel)) = (m.sender.user, m.origin.channel) else {
        return Ok(Pushed::Ignored("message without user or channel"));
    };
    let text = m.content.and_then(|c| c.text).unwrap_or_default();
    // A direct message is said to Pincer, as a mention is — also one that
    // begins by mentioning it (Slack sends no app_mention in a DM).
    let direct = m.origin.channel_type.as_ref().is_some_and(|t| t.0 == "im");
    if !direct {
        if bot.user_id.as_deref().is_some_and(|b| mentions(&text, b)) {
            // Slack sends an app_mention for this message too; that one answers.
            return Ok(Pushed::Ignored("mention handled by app_mention"));
        }
        if addressed_to_someone_else(&text, bot) {
            return Ok(Pushed::Ignored("message addressed to someone else"));
        }
    }
    if clean_text(&text).is_empty() {
        return Ok(Pushed::Ignored("empty message"));
    }
    let text = if direct { to_pincer(plain_text(&strip_mention(&text, bot))) } else { plain_text(&text) };
    let thread = m.origin.thread_ts.as_ref().unwrap_or(&m.origin.ts).to_string();
    let mut ev = ChannelEvent::new(
        team.as_ref(),
        channel_ref(channel.as_ref())?,
        Some(thread),
        sender(user.as_ref()),
        &text,
        key,
    );
    ev.addressed = direct;
    Ok(Pushed::Event(Box::new(ev)))
}

/// Whether a slash command's form body is Slack's certificate check
/// (`ssl_check=1`), which is answered 200 and not run.
pub fn is_ssl_check(body: &[u8]) -> bool {
    url::form_urlencoded::parse(body).any(|(k, v)| k == "ssl_check" && v == "1")
}

/// Parses a slash command's form body (already verified).
pub fn parse_command(body: &[u8]) -> Result<ChannelEvent, InboundError> {
    let cmd: SlackCommandEvent =
        serde_urlencoded::from_bytes(body).map_err(|e| InboundError::Malformed(e.to_string()))?;
    from_command(cmd)
}

/// Normalises one slash command (HTTP or Socket Mode). `/ask x`, `/workspace`,
/// `/admin …` each map to the command of that name; `/pincer ask x` works too.
pub fn from_command(cmd: SlackCommandEvent) -> Result<ChannelEvent, InboundError> {
    let name = cmd.command.to_string();
    let line = format!("/{} {}", name.trim_start_matches('/'), plain_text(cmd.text.as_deref().unwrap_or_default()));
    let mut ev = ChannelEvent::new(
        cmd.team_id.as_ref(),
        channel_ref(cmd.channel_id.as_ref())?,
        None,
        sender(cmd.user_id.as_ref()),
        &line,
        format!("command:{}", cmd.trigger_id),
    );
    ev.channel_name = cmd.channel_name.filter(|n| !n.is_empty() && n != "directmessage" && n != "privategroup");
    ev.reply_to.response_url = Some(cmd.response_url.0.to_string());
    Ok(ev)
}

/// The interactivity form: one field, `payload`, holding JSON.
#[derive(serde::Deserialize)]
struct InteractiveForm {
    payload: String,
}

/// Parses an interactivity form body (already verified). `None` for
/// interactions Pincer does not use.
pub fn parse_interaction(body: &[u8]) -> Result<Option<ChannelEvent>, InboundError> {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    let form: InteractiveForm =
        serde_urlencoded::from_bytes(body).map_err(|e| InboundError::Malformed(e.to_string()))?;
    let kind: Kind = serde_json::from_str(&form.payload).map_err(|e| InboundError::Malformed(e.to_string()))?;
    // Only button clicks are used: any other interaction (a kind this
    // version does not know among them) is acknowledged and left alone.
    if kind.kind != "block_actions" {
        return Ok(None);
    }
    let ev: SlackInteractionEvent =
        serde_json::from_str(&form.payload).map_err(|e| InboundError::Malformed(e.to_string()))?;
    from_interaction(ev)
}

/// Normalises a button click (HTTP or Socket Mode).
pub fn from_interaction(ev: SlackInteractionEvent) -> Result<Option<ChannelEvent>, InboundError> {
    let SlackInteractionEvent::BlockActions(ba) = ev else { return Ok(None) };
    let Some(action) = ba.actions.as_ref().and_then(|a| a.first()) else { return Ok(None) };
    let Some(user) = ba.user.as_ref() else { return Ok(None) };
    let channel = match (&ba.channel, &ba.container) {
        (Some(c), _) => c.id.to_string(),
        (None, SlackInteractionActionContainer::Message(m)) => match &m.channel_id {
            Some(c) => c.to_string(),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let message_ts = ba.message.as_ref().map(|m| m.origin.ts.to_string()).or_else(|| match &ba.container {
        SlackInteractionActionContainer::Message(m) => Some(m.message_ts.to_string()),
        _ => None,
    });
    let thread = ba
        .message
        .as_ref()
        .and_then(|m| m.origin.thread_ts.as_ref())
        .map(|t| t.to_string())
        .or_else(|| message_ts.clone());
    let act =
        Action { action_id: action.action_id.to_string(), value: action.value.clone().unwrap_or_default(), message_ts };
    let mut out = ChannelEvent::action(
        ba.team.id.as_ref(),
        channel_ref(&channel)?,
        thread,
        sender(user.id.as_ref()),
        act,
        format!("action:{}", ba.trigger_id),
    );
    out.reply_to.response_url = ba.response_url.as_ref().map(|u| u.0.to_string());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use pincer_commands::{Command, Input};

    use super::*;
    use crate::event::EventBody;

    fn bot() -> BotIdentity {
        BotIdentity { user_id: Some("UBOT".into()), bot_id: Some("BBOT".into()) }
    }

    fn callback(event: &str) -> Vec<u8> {
        format!(r#"{{"type":"event_callback","team_id":"T1","api_app_id":"A1","event_id":"Ev1","event_time":1700000000,"event":{event}}}"#).into_bytes()
    }

    #[test]
    fn url_verification_returns_the_challenge() {
        let body = br#"{"type":"url_verification","token":"t","challenge":"abc123"}"#;
        assert!(matches!(parse_push(body, &bot()).unwrap(), Pushed::Challenge(c) if c == "abc123"));
    }

    #[test]
    fn a_mention_becomes_an_ask_in_its_thread() {
        let body = callback(
            r#"{"type":"app_mention","user":"U1","channel":"C1","text":"<@UBOT> why did the deploy fail?","ts":"1700000000.000100"}"#,
        );
        let Pushed::Event(ev) = parse_push(&body, &bot()).unwrap() else { panic!() };
        assert_eq!(ev.text, "why did the deploy fail?");
        assert_eq!(ev.thread.as_deref(), Some("1700000000.000100"));
        assert_eq!(ev.tenant, "T1");
        assert_eq!(ev.dedupe_key, "Ev1");
        assert_eq!(ev.channel.to_string(), "slack:C1");
        assert!(matches!(ev.body, EventBody::Message(Ok(Input::Text(_)))));
    }

    #[test]
    fn our_own_and_other_bots_messages_are_dropped() {
        for event in [
            r#"{"type":"message","user":"UBOT","channel":"C1","text":"hi","ts":"1.1"}"#,
            r#"{"type":"message","bot_id":"B9","channel":"C1","text":"hi","ts":"1.1"}"#,
            r#"{"type":"message","subtype":"bot_message","channel":"C1","text":"hi","ts":"1.1"}"#,
            r#"{"type":"message","subtype":"message_changed","channel":"C1","ts":"1.1"}"#,
            r#"{"type":"message","user":"U1","channel":"C1","text":"hey <@UBOT> look","ts":"1.1"}"#,
            // Another app mentioning ours (with its bot user, or without one).
            r#"{"type":"app_mention","user":"U9","bot_id":"B9","channel":"C1","text":"<@UBOT> hi","ts":"1.1"}"#,
            r#"{"type":"app_mention","bot_id":"B9","channel":"C1","text":"<@UBOT> hi","ts":"1.1"}"#,
        ] {
            assert!(matches!(parse_push(&callback(event), &bot()).unwrap(), Pushed::Ignored(_)), "{event}");
        }
        let plain =
            r#"{"type":"message","user":"U1","channel":"C1","text":"plain question","ts":"1.1","thread_ts":"0.9"}"#;
        let Pushed::Event(ev) = parse_push(&callback(plain), &bot()).unwrap() else { panic!() };
        assert_eq!(ev.thread.as_deref(), Some("0.9"));
    }

    #[test]
    fn a_slash_command_carries_its_name_channel_name_and_response_url() {
        let body = b"token=x&team_id=T1&team_domain=acme&channel_id=C1&channel_name=oncall&user_id=U1&user_name=al&command=%2Fworkspace&text=alice-lab&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=123.456";
        let ev = parse_command(body).unwrap();
        assert!(matches!(ev.body, EventBody::Message(Ok(Input::Command(Command::Workspace(_))))));
        assert_eq!(ev.dedupe_key, "command:123.456");
        assert_eq!(ev.channel_refs().iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["slack:C1", "slack:#oncall"]);
        assert_eq!(ev.reply_to.response_url.as_deref(), Some("https://hooks.slack.com/commands/1"));
    }

    #[test]
    fn a_button_click_becomes_an_action() {
        let payload = r#"{"type":"block_actions","team":{"id":"T1"},"user":{"id":"U1"},"api_app_id":"A1","trigger_id":"9.9","container":{"type":"message","message_ts":"5.5","channel_id":"C1"},"channel":{"id":"C1"},"actions":[{"type":"button","action_id":"pincer.feedback","value":"up","block_id":"b"}]}"#;
        let body = format!("payload={}", url::form_urlencoded::byte_serialize(payload.as_bytes()).collect::<String>());
        let ev = parse_interaction(body.as_bytes()).unwrap().unwrap();
        let EventBody::Action(a) = &ev.body else { panic!() };
        assert_eq!(
            (a.action_id.as_str(), a.value.as_str(), a.message_ts.as_deref()),
            ("pincer.feedback", "up", Some("5.5"))
        );
        assert_eq!(ev.dedupe_key, "action:9.9");
    }

    #[test]
    fn a_mention_or_message_read_directly_is_what_the_general_path_makes_of_it() {
        let general = |body: &[u8]| from_callback(serde_json::from_slice(body).unwrap(), &bot());
        for event in [
            r#"{"type":"app_mention","user":"U1","channel":"C1","text":"<@UBOT> hi","ts":"1.1","thread_ts":"0.5","event_ts":"1.1","blocks":[]}"#,
            r#"{"type":"app_mention","user":"UBOT","channel":"C1","text":"hi","ts":"1.1"}"#,
            r#"{"type":"message","user":"U1","channel":"C1","text":"plain question","ts":"1.1","channel_type":"channel"}"#,
            r#"{"type":"message","subtype":"message_changed","channel":"C1","ts":"1.1"}"#,
            // Known types in shapes slack-morphism does not model: not used.
            r#"{"type":"app_mention","channel":"C1","text":"no user","ts":"1.1"}"#,
            r#"{"type":"reaction_added","user":"U1","reaction":"+1"}"#,
            // Keys in any order (Slack's own often begin with `client_msg_id`).
            r#"{"client_msg_id":"m1","user":"U1","type":"app_mention","channel":"C1","text":"<@UBOT> hi","ts":"1.1"}"#,
            r#"{"channel":"C1","user":"U1","type":"message","text":"late type","ts":"1.1"}"#,
        ] {
            let body = callback(event);
            // (Each event gets its own id and arrival time.)
            let shown = |p: Pushed| match p {
                Pushed::Event(mut ev) => {
                    (ev.id, ev.received_at) = (Default::default(), Default::default());
                    format!("{ev:?}")
                }
                other => format!("{other:?}"),
            };
            let (direct, via_enum) = (parse_push(&body, &bot()).unwrap(), general(&body).unwrap());
            assert_eq!(shown(direct), shown(via_enum), "{event}");
        }
        let Pushed::Ignored(why) = parse_push(&callback(r#"{"type":"app_mention","ts":"1.1"}"#), &bot()).unwrap()
        else {
            panic!()
        };
        assert_eq!(why, "event type not used");
    }

    #[test]
    fn slacks_certificate_check_is_told_from_a_command() {
        assert!(is_ssl_check(b"ssl_check=1&token=abc"));
        assert!(is_ssl_check(b"token=abc&ssl_check=1"));
        assert!(!is_ssl_check(b"ssl_check=0&token=abc"));
        assert!(!is_ssl_check(b"command=%2Fask&text=ssl_check%3D1"));
    }

    #[test]
    fn an_edited_mention_is_not_asked_again() {
        let first = r#"{"type":"app_mention","user":"U1","channel":"C1","text":"<@UBOT> why?","ts":"1.1"}"#;
        assert!(matches!(parse_push(&callback(first), &bot()).unwrap(), Pushed::Event(_)));
        let edited = r#"{"type":"app_mention","user":"U1","channel":"C1","text":"<@UBOT> why, really?","ts":"1.1","edited":{"user":"U1","ts":"1.2"}}"#;
        let Pushed::Ignored(why) = parse_push(&callback(edited), &bot()).unwrap() else { panic!() };
        assert_eq!(why, "edited mention");
    }

    #[test]
    fn only_a_message_that_mentions_this_bot_is_left_to_its_app_mention() {
        let msg = |text: &str| {
            callback(&format!(r#"{{"type":"message","user":"U1","channel":"C1","text":"{text}","ts":"1.1"}}"#))
        };
        for text in ["<@UBOT> hi", "hi <@UBOT|pincer>", "cc <@U2> and <@UBOT>"] {
            let Pushed::Ignored(why) = parse_push(&msg(text), &bot()).unwrap() else { panic!("{text}") };
            assert_eq!(why, "mention handled by app_mention", "{text}");
        }
        // Another user whose id begins with the bot's is not the bot: a
        // message that starts by naming them is addressed to them.
        for text in ["<@UBOTX> hi", "<@U2> can you look?", "  <@U2|dan> hi"] {
            let Pushed::Ignored(why) = parse_push(&msg(text), &bot()).unwrap() else { panic!("{text}") };
            assert_eq!(why, "message addressed to someone else", "{text}");
        }
        for text in ["UBOT> hi", "thanks <@U2>", "<@UBOTX hi"] {
            assert!(matches!(parse_push(&msg(text), &bot()).unwrap(), Pushed::Event(_)), "{text}");
        }
        assert!(mentions("<@UBOT>", "UBOT"));
        assert!(!mentions("<@UBOT", "UBOT"));
    }

    #[test]
    fn slack_markup_is_read_as_the_person_typed_it() {
        for (slack, typed) in [
            ("/admin user add <mailto:gina@acme.com|gina@acme.com>", "/admin user add gina@acme.com"),
            ("see <https://acme.com/runbook|acme.com/runbook> now", "see https://acme.com/runbook now"),
            ("<http://x.io>", "http://x.io"),
            ("in <#C123|ops> and <#C9>", "in #ops and #C9"),
            ("<!here> <!channel> <!subteam^S1|@oncall> <!date^1|Jan 1>", "@here @channel @oncall Jan 1"),
            ("ask <@U2> or <@U3|bob>", "ask <@U2> or <@U3|bob>"),
            ("a &lt;b&gt; &amp;amp; c", "a <b> &amp; c"),
            ("unclosed <tag and 1 < 2", "unclosed <tag and 1 < 2"),
            ("", ""),
        ] {
            assert_eq!(plain_text(slack), typed, "{slack}");
        }
        // In a message and in a slash command alike.
        let msg = callback(
            r#"{"type":"message","user":"U1","channel":"C1","text":"/admin user add <mailto:gina@acme.com|gina@acme.com>","ts":"1.1"}"#,
        );
        let Pushed::Event(ev) = parse_push(&msg, &bot()).unwrap() else { panic!() };
        assert_eq!(ev.text, "/admin user add gina@acme.com");
        let cmd = parse_command(b"command=%2Fask&text=a+%26amp%3B+b&user_id=U1&team_id=T1&channel_id=C1&trigger_id=9.9&response_url=https%3A%2F%2Fhooks.slack.com%2Fx&token=t&team_domain=acme&channel_name=ops&user_name=alice&api_app_id=A1").unwrap();
        assert_eq!(cmd.text, "/ask a & b");
    }

    #[test]
    fn a_bare_mention_or_help_asks_for_help_and_mentions_are_addressed() {
        let mention = |text: &str| {
            let body =
                callback(&format!(r#"{{"type":"app_mention","user":"U1","channel":"C1","text":"{text}","ts":"1.1"}}"#));
            let Pushed::Event(ev) = parse_push(&body, &bot()).unwrap() else { panic!("{text}") };
            ev
        };
        for (text, line) in [
            ("<@UBOT>", "/help"),
            ("<@UBOT>  Help?", "/help"),
            ("<@UBOT> help admin", "/help admin"),
            ("<@UBOT> help me read this log", "help me read this log"),
        ] {
            let ev = mention(text);
            assert_eq!(ev.text, line, "{text}");
            assert!(ev.addressed, "{text}");
        }
        let msg = callback(r#"{"type":"message","user":"U1","channel":"C1","text":"why?","ts":"1.1"}"#);
        let Pushed::Event(ev) = parse_push(&msg, &bot()).unwrap() else { panic!() };
        assert!(!ev.addressed);
        // A direct message is said to Pincer, as a mention is.
        // Slack sends no app_mention in a DM: one that mentions Pincer, or
        // begins by mentioning someone else, is still said to Pincer.
        for (text, line) in [
            ("why?", "why?"),
            ("help", "/help"),
            ("<@UBOT> help", "/help"),
            ("<@UBOT> why did <@U2> deploy?", "why did <@U2> deploy?"),
            ("<@U2> broke the deploy, why?", "<@U2> broke the deploy, why?"),
        ] {
            let dm = callback(&format!(
                r#"{{"type":"message","user":"U1","channel":"D1","channel_type":"im","text":"{text}","ts":"1.1"}}"#
            ));
            let Pushed::Event(ev) = parse_push(&dm, &bot()).unwrap() else { panic!() };
            assert!(ev.addressed, "{text}");
            assert_eq!(ev.text, line);
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert!(parse_push(b"{", &bot()).is_err());
        // An event callback missing what Slack always sends, a type nobody
        // knows, a non-object: refused, whichever path reads them.
        assert!(parse_push(br#"{"type":"event_callback","team_id":"T1"}"#, &bot()).is_err());
        // (The event read, the envelope incomplete.)
        let no_id = br#"{"type":"event_callback","team_id":"T1","api_app_id":"A1","event_time":1,"event":{"type":"app_mention","user":"U1","channel":"C1","text":"hi","ts":"1.1"}}"#;
        assert!(parse_push(no_id, &bot()).is_err());
        let bot_no_id = br#"{"type":"event_callback","team_id":"T1","api_app_id":"A1","event_time":1,"event":{"type":"app_mention","bot_id":"B9","channel":"C1","text":"hi","ts":"1.1"}}"#;
        assert!(parse_push(bot_no_id, &bot()).is_err());
        assert!(parse_push(br#"{"type":"event_callback","team_id":"T1","event":"text"}"#, &bot()).is_err());
        assert!(matches!(
            parse_push(br#"{"type":"no_such_type"}"#, &bot()).unwrap(),
            Pushed::Ignored("envelope type not used")
        ));
        assert!(matches!(parse_push(br#"{"type":"event_callback\u0000"}"#, &bot()).unwrap(), Pushed::Ignored(_)));
        assert!(parse_push(br#"{"type":"url_verification"}"#, &bot()).is_err());
        assert!(parse_push(b"[1]", &bot()).is_err());
        assert!(parse_command(b"team_id=T1").is_err());
        assert!(parse_interaction(b"payload=%7B").is_err());
        // An interaction Pincer does not use, of a kind slack-morphism
        // does not know or not: acknowledged, nothing done.
        for kind in ["interactive_message", "view_closed", "some_future_kind"] {
            let payload = format!(r#"{{"type":"{kind}","team":{{"id":"T1"}}}}"#);
            let body =
                format!("payload={}", url::form_urlencoded::byte_serialize(payload.as_bytes()).collect::<String>());
            assert!(parse_interaction(body.as_bytes()).unwrap().is_none(), "{kind}");
        }
    }
}
