//! The one event model every platform produces, and the replies that go back.
//!
//! An adapter owns turning a platform's payload into a [`ChannelEvent`]:
//! who sent it (platform identity, e-mail when the platform vouches for one),
//! where (tenant, channel, thread), what (clean text, already parsed into a
//! typed [`Input`]), a dedupe key the platform guarantees stable across its
//! retries, and where to reply. Nothing past the adapter sees raw payloads.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use pincer_commands::parse::MAX_TEXT_CHARS;
use pincer_commands::{Email, Input, ParseError, clean_text, parse_line};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A chat platform (or local channel) Pincer talks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// The terminal channel (`pincer chat`).
    Console,
    /// The admin shell (`pincer admin …`).
    Cli,
    /// Slack.
    Slack,
    /// Discord.
    Discord,
    /// Telegram.
    Telegram,
    /// WhatsApp Cloud API.
    Whatsapp,
}

impl Platform {
    /// Platforms an agent may be bound to in config.
    pub const BINDABLE: [Platform; 5] =
        [Platform::Console, Platform::Slack, Platform::Discord, Platform::Telegram, Platform::Whatsapp];

    /// The platform's name as written in config and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Console => "console",
            Platform::Cli => "cli",
            Platform::Slack => "slack",
            Platform::Discord => "discord",
            Platform::Telegram => "telegram",
            Platform::Whatsapp => "whatsapp",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = ChannelRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "console" => Ok(Platform::Console),
            "cli" => Ok(Platform::Cli),
            "slack" => Ok(Platform::Slack),
            "discord" => Ok(Platform::Discord),
            "telegram" => Ok(Platform::Telegram),
            "whatsapp" => Ok(Platform::Whatsapp),
            other => Err(ChannelRefError::UnknownPlatform(pincer_commands::names::shown(other))),
        }
    }
}

/// Why a channel reference such as `slack:#oncall` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRefError {
    /// No `platform:` prefix.
    #[error("'{0}' has no platform: write it as platform:channel, e.g. slack:#oncall")]
    NoPlatform(String),
    /// The platform is not one Pincer knows.
    #[error("'{0}' is not a platform: use console, slack, discord, telegram or whatsapp")]
    UnknownPlatform(String),
    /// The channel part is empty, too long, or has spaces or control characters.
    #[error("'{0}' is not a channel: give a channel name or id of 1–80 visible characters without spaces")]
    BadChannel(String),
}

/// A channel on a platform: `slack:#oncall`, `telegram:+15550100`,
/// `console:#product-bot`. Agents are bound to these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelRef {
    /// The platform.
    pub platform: Platform,
    /// The platform's channel name or id, e.g. `#oncall` or `C0123ABC`.
    pub channel: String,
}

impl ChannelRef {
    /// Builds a reference, checking the channel part.
    pub fn new(platform: Platform, channel: &str) -> Result<Self, ChannelRefError> {
        let ok = !channel.is_empty()
            && channel.chars().count() <= 80
            && channel.chars().all(|c| !c.is_whitespace() && !c.is_control());
        if !ok {
            return Err(ChannelRefError::BadChannel(pincer_commands::names::shown(channel)));
        }
        Ok(Self { platform, channel: channel.to_string() })
    }
}

impl FromStr for ChannelRef {
    type Err = ChannelRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (platform, channel) =
            s.split_once(':').ok_or_else(|| ChannelRefError::NoPlatform(pincer_commands::names::shown(s)))?;
        ChannelRef::new(platform.parse()?, channel)
    }
}

impl<'de> Deserialize<'de> for ChannelRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ChannelRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.channel)
    }
}

/// Who sent an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The platform's user id (Slack `U…`, Telegram numeric id, …).
    pub platform_user_id: String,
    /// A display name, for replies only; never used for identity.
    pub display_name: Option<String>,
    /// An e-mail the platform vouches for (Slack `users.info`, the local
    /// console user), used to link the identity to an org user.
    pub verified_email: Option<Email>,
    /// The platform says this is a bot or an app, not a person (Slack
    /// `users.info`): what it sends is not asked by anyone, and it is not
    /// answered, not even to say it is unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_bot: bool,
}

/// The thread key of a conversation: a thread's own id, or, for what is
/// typed outside any thread (a slash command's answer is posted at the top
/// of the channel, where no thread ties one ask to the next), `user:` and
/// the sender's platform id — so each person's top-level asks in a channel
/// form their own conversation, and one person's question is never context
/// for another's. (No platform's thread id begins with `user:`; the job
/// queue's ordering check computes the same key in SQL, in
/// `store/routing.rs`.)
pub fn conversation_thread<'a>(thread: Option<&'a str>, sender: &str) -> std::borrow::Cow<'a, str> {
    match thread {
        Some(t) => std::borrow::Cow::Borrowed(t),
        None => std::borrow::Cow::Owned(format!("{PERSONAL_THREAD}{sender}")),
    }
}

/// The prefix of a person's top-level conversation key
/// ([`conversation_thread`]).
pub const PERSONAL_THREAD: &str = "user:";

/// Where replies to an event go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTarget {
    /// The channel.
    pub channel: ChannelRef,
    /// The thread to answer in, if the platform has threads.
    pub thread: Option<String>,
    /// A platform-specific return address (e.g. Slack's `response_url`).
    pub response_url: Option<String>,
}

/// A button someone clicked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Which handler it is for (e.g. `pincer.feedback`).
    pub action_id: String,
    /// The value the button carried.
    pub value: String,
    /// The platform id of the message the button was on.
    pub message_ts: Option<String>,
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// Text someone wrote (a slash command or a message), parsed.
    Message(Result<Input, ParseError>),
    /// A button someone clicked.
    Action(Action),
}

/// One normalised inbound event. It serialises to its raw parts (the text,
/// not the parse), so a queued event is parsed again by the same parser
/// when it is taken off the queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "WireEvent")]
pub struct ChannelEvent {
    /// Pincer's id for this event (tracing, audit).
    pub id: Uuid,
    /// The platform workspace it came from: Slack team, Discord guild,
    /// Telegram bot, WhatsApp phone number id, `local` for the console.
    pub tenant: String,
    /// The channel it was posted in (the platform's id for it).
    pub channel: ChannelRef,
    /// The channel's human name (`#oncall`) when the platform's id differs
    /// from it; agents may be bound by either.
    pub channel_name: Option<String>,
    /// The thread it belongs to, if any.
    pub thread: Option<String>,
    /// Who sent it.
    pub sender: Sender,
    /// The text after control characters were removed.
    pub text: String,
    /// The text parsed into a command or free text, or the button clicked.
    pub body: EventBody,
    /// A key the platform keeps stable across its retries (Slack
    /// `event_id`, `trigger_id`; Telegram `update_id`; …).
    pub dedupe_key: String,
    /// Where the answer goes.
    pub reply_to: ReplyTarget,
    /// When the adapter received it.
    pub received_at: DateTime<Utc>,
    /// Whether the person spoke to Pincer by name (a Slack mention): text
    /// that is, in a channel no agent answers in, still gets a sentence
    /// back instead of being taken for people talking among themselves.
    pub addressed: bool,
}

/// What a stored event is read back from; it is written by
/// [`WireEventRef`], field for field.
#[derive(Deserialize)]
struct WireEvent {
    id: Uuid,
    tenant: String,
    channel: ChannelRef,
    channel_name: Option<String>,
    thread: Option<String>,
    sender: Sender,
    text: String,
    action: Option<Action>,
    dedupe_key: String,
    reply_to: ReplyTarget,
    received_at: DateTime<Utc>,
    // (Absent in events stored before it was written.)
    #[serde(default)]
    addressed: bool,
}

impl From<WireEvent> for ChannelEvent {
    fn from(w: WireEvent) -> Self {
        let body = match w.action {
            Some(a) => EventBody::Action(a),
            None => message_body(&w.text, w.thread.is_some()),
        };
        Self {
            id: w.id,
            tenant: w.tenant,
            channel: w.channel,
            channel_name: w.channel_name,
            thread: w.thread,
            sender: w.sender,
            text: w.text,
            body,
            dedupe_key: w.dedupe_key,
            reply_to: w.reply_to,
            received_at: w.received_at,
            addressed: w.addressed,
        }
    }
}

/// [`WireEvent`] borrowed from an event: what it serialises to, field for
/// field (the same names in the same order), without copying the event.
#[derive(Serialize)]
struct WireEventRef<'a> {
    id: &'a Uuid,
    tenant: &'a str,
    channel: &'a ChannelRef,
    channel_name: &'a Option<String>,
    thread: &'a Option<String>,
    sender: &'a Sender,
    text: &'a str,
    action: Option<&'a Action>,
    dedupe_key: &'a str,
    reply_to: &'a ReplyTarget,
    received_at: &'a DateTime<Utc>,
    addressed: bool,
}

impl Serialize for ChannelEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireEventRef {
            id: &self.id,
            tenant: &self.tenant,
            channel: &self.channel,
            channel_name: &self.channel_name,
            thread: &self.thread,
            sender: &self.sender,
            text: &self.text,
            action: match &self.body {
                EventBody::Action(a) => Some(a),
                EventBody::Message(_) => None,
            },
            dedupe_key: &self.dedupe_key,
            reply_to: &self.reply_to,
            received_at: &self.received_at,
            addressed: self.addressed,
        }
        .serialize(s)
    }
}

/// What a message's text asks for. In a posted message — one that has a
/// thread: a chat message or a mention, never a slash command or a
/// terminal line — a `/word` that is not a Pincer command is text ("/var/log
/// is full, why?" is a question, not a mistyped command).
fn message_body(text: &str, posted: bool) -> EventBody {
    match parse_line(text) {
        Err(ParseError::UnknownCommand { .. }) if posted => {
            // (A line that starts with `/` was allowed a command's name on
            // top of the limit; as text, it has none.)
            let text = clean_text(text);
            let chars = text.chars().count();
            EventBody::Message(if chars > MAX_TEXT_CHARS {
                Err(ParseError::TooLong { chars })
            } else {
                Ok(Input::Text(text))
            })
        }
        parsed => EventBody::Message(parsed),
    }
}

impl ChannelEvent {
    /// Builds an event from raw text, cleaning and parsing it at the edge.
    pub fn new(
        tenant: &str,
        channel: ChannelRef,
        thread: Option<String>,
        sender: Sender,
        raw_text: &str,
        dedupe_key: String,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            tenant: tenant.to_string(),
            reply_to: ReplyTarget { channel: channel.clone(), thread: thread.clone(), response_url: None },
            channel,
            channel_name: None,
            body: message_body(raw_text, thread.is_some()),
            thread,
            sender,
            text: clean_text(raw_text),
            dedupe_key,
            received_at: Utc::now(),
            addressed: false,
        }
    }

    /// Builds an event for a clicked button.
    pub fn action(
        tenant: &str,
        channel: ChannelRef,
        thread: Option<String>,
        sender: Sender,
        action: Action,
        dedupe_key: String,
    ) -> Self {
        let mut ev = Self::new(tenant, channel, thread, sender, "", dedupe_key);
        ev.body = EventBody::Action(action);
        ev
    }

    /// Whether, in a channel no agent answers in, this is people talking
    /// among themselves (text, or a posted message that does not parse)
    /// rather than something for Pincer (a slash command, a click, text
    /// addressed to Pincer by name).
    pub fn is_chatter(&self) -> bool {
        !self.addressed
            && match &self.body {
                EventBody::Message(Ok(Input::Text(_))) => true,
                EventBody::Message(Err(_)) => self.is_posted(),
                _ => false,
            }
    }

    /// The platform it came from.
    pub fn platform(&self) -> Platform {
        self.channel.platform
    }

    /// For a message event: whether someone posted it in a channel (it has
    /// a thread: a chat message or a mention) rather than typing it as a
    /// slash command or a terminal line: the rule a message's text is read
    /// by. (A click's event may carry a thread too.)
    pub fn is_posted(&self) -> bool {
        self.thread.is_some()
    }

    /// The thread key of the conversation an ask of this event belongs to:
    /// its thread's, or — typed outside any thread (a slash command, a
    /// terminal line) — the sender's own in this channel
    /// ([`conversation_thread`]).
    pub fn conversation_thread(&self) -> std::borrow::Cow<'_, str> {
        conversation_thread(self.thread.as_deref(), &self.sender.platform_user_id)
    }

    /// The references agents may be bound to this channel by: its id, and
    /// its name when the platform gave one.
    pub fn channel_refs(&self) -> Vec<ChannelRef> {
        let mut refs = vec![self.channel.clone()];
        if let Some(name) = &self.channel_name {
            let name = if name.starts_with('#') { name.clone() } else { format!("#{name}") };
            if let Ok(r) = ChannelRef::new(self.channel.platform, &name) {
                refs.push(r);
            }
        }
        refs
    }
}

/// A button on a reply, rendered by each channel in its own way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// What it says.
    pub label: String,
    /// The action handler it triggers.
    pub action_id: String,
    /// The value it carries back.
    pub value: String,
}

/// The action id of the 👍 / 👎 buttons under an answer. A click finds its
/// answer by the message it was on, so a platform that posts a message
/// without saying which (Slack's `response_url`) leaves these buttons off.
pub const FEEDBACK_ACTION: &str = "pincer.feedback";

/// Who sees a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone in the channel (or thread).
    Channel,
    /// Only the person who asked.
    Ephemeral,
}

/// What a reply is, so channels can render it and the admin shell can pick
/// an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyKind {
    /// An agent's answer.
    Answer,
    /// The result of a command.
    Info,
    /// A refusal or failure, phrased for a person.
    Error,
}

/// One reply to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The text, already phrased for a person.
    pub text: String,
    /// Who sees it.
    pub visibility: Visibility,
    /// What it is.
    pub kind: ReplyKind,
    /// Buttons under it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// For an answer to a question the channel never saw (a Slack slash
    /// command is shown to no one but its sender): who asked what, for the
    /// platform to show above the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<AskedBy>,
}

/// Who asked the question an answer answers, and what they asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskedBy {
    /// The asker's id on the platform.
    pub user: String,
    /// The question as they typed it.
    pub question: String,
}

impl Reply {
    fn new(text: impl Into<String>, visibility: Visibility, kind: ReplyKind) -> Self {
        Self { text: text.into(), visibility, kind, buttons: Vec::new(), asked: None }
    }
    /// An agent's answer, visible in the thread.
    pub fn answer(text: impl Into<String>) -> Self {
        Self::new(text, Visibility::Channel, ReplyKind::Answer)
    }
    /// A command's result, for the person who ran it.
    pub fn info(text: impl Into<String>) -> Self {
        Self::new(text, Visibility::Ephemeral, ReplyKind::Info)
    }
    /// A refusal or failure, for the person who ran it.
    pub fn error(text: impl Into<String>) -> Self {
        Self::new(text, Visibility::Ephemeral, ReplyKind::Error)
    }
}

/// A reply addressed to a place on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Where it goes.
    pub target: ReplyTarget,
    /// What it says.
    pub reply: Reply,
}

/// What an adapter hands events to: the router. It returns the replies to
/// deliver; an empty list means "acknowledged, nothing to say" (a duplicate,
/// or an event from a channel no agent is bound to).
pub trait Dispatch: Send + Sync {
    /// Handles one event end to end.
    fn dispatch(&self, event: ChannelEvent) -> impl Future<Output = Vec<Reply>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_refs_round_trip() {
        let c: ChannelRef = "slack:#oncall".parse().unwrap();
        assert_eq!(c.platform, Platform::Slack);
        assert_eq!(c.channel, "#oncall");
        assert_eq!(c.to_string(), "slack:#oncall");
        assert_eq!("telegram:+15550100".parse::<ChannelRef>().unwrap().channel, "+15550100");
    }

    #[test]
    fn bad_channel_refs_are_refused_with_a_sentence() {
        assert!(matches!("#oncall".parse::<ChannelRef>(), Err(ChannelRefError::NoPlatform(_))));
        assert!(matches!("irc:#x".parse::<ChannelRef>(), Err(ChannelRefError::UnknownPlatform(_))));
        assert!(matches!("slack:".parse::<ChannelRef>(), Err(ChannelRefError::BadChannel(_))));
        assert!(matches!("slack:a b".parse::<ChannelRef>(), Err(ChannelRefError::BadChannel(_))));
    }

    #[test]
    fn events_are_cleaned_and_parsed_at_the_edge() {
        let ch: ChannelRef = "console:#product-bot".parse().unwrap();
        let sender =
            Sender { platform_user_id: "alice".into(), display_name: None, verified_email: None, is_bot: false };
        let ev = ChannelEvent::new("local", ch, None, sender, "/ask hi\u{0}", "k1".into());
        assert_eq!(ev.text, "/ask hi");
        assert!(matches!(ev.body, EventBody::Message(Ok(Input::Command(_)))));
        // Queued events round-trip through JSON and are parsed again.
        let back: ChannelEvent = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        assert_eq!(back.body, ev.body);
        assert_eq!(back.dedupe_key, "k1");
    }

    #[test]
    fn a_slash_word_in_a_posted_message_is_text_unless_it_is_a_command() {
        let ch: ChannelRef = "slack:C1".parse().unwrap();
        let sender = Sender { platform_user_id: "U1".into(), display_name: None, verified_email: None, is_bot: false };
        let at = |thread: Option<&str>, text: &str| {
            ChannelEvent::new("T1", ch.clone(), thread.map(str::to_string), sender.clone(), text, "k".into())
        };
        let question = "/var/log is full, why?";
        let posted = at(Some("1.1"), question);
        assert_eq!(posted.body, EventBody::Message(Ok(Input::Text(question.into()))));
        // Read back from the queue, it is the same.
        let back: ChannelEvent = serde_json::from_str(&serde_json::to_string(&posted).unwrap()).unwrap();
        assert_eq!(back.body, posted.body);
        // A real command in a posted message is still a command, and its
        // mistakes are still mistakes.
        assert!(matches!(at(Some("1.1"), "/workspace alice-lab").body, EventBody::Message(Ok(Input::Command(_)))));
        assert!(matches!(
            at(Some("1.1"), "/workspace Alice").body,
            EventBody::Message(Err(ParseError::BadName { .. }))
        ));
        // A slash command or a terminal line (no thread) names a command.
        let typed = at(None, question);
        assert!(matches!(typed.body, EventBody::Message(Err(ParseError::UnknownCommand { .. }))));
        let back: ChannelEvent = serde_json::from_str(&serde_json::to_string(&typed).unwrap()).unwrap();
        assert_eq!(back.body, typed.body);
    }

    #[test]
    fn a_conversation_is_its_threads_or_outside_a_thread_the_senders_own() {
        let ch: ChannelRef = "slack:C1".parse().unwrap();
        let from = |user: &str, thread: Option<&str>| {
            let sender =
                Sender { platform_user_id: user.into(), display_name: None, verified_email: None, is_bot: false };
            ChannelEvent::new("T1", ch.clone(), thread.map(str::to_string), sender, "/ask why?", "k".into())
        };
        // In a thread, everyone's asks share the thread's conversation.
        assert_eq!(from("U1", Some("1.1")).conversation_thread(), "1.1");
        assert_eq!(from("U2", Some("1.1")).conversation_thread(), "1.1");
        // At the top of the channel, each person has their own.
        assert_eq!(from("U1", None).conversation_thread(), "user:U1");
        assert_eq!(from("U2", None).conversation_thread(), "user:U2");
        assert!(conversation_thread(None, "U1").starts_with(PERSONAL_THREAD));
    }

    #[test]
    fn a_posted_line_that_is_not_a_command_is_held_to_the_text_limit() {
        let ch: ChannelRef = "slack:C1".parse().unwrap();
        let sender = Sender { platform_user_id: "U1".into(), display_name: None, verified_email: None, is_bot: false };
        let line = format!("/var/log {}", "x".repeat(4000));
        let ev = ChannelEvent::new("T1", ch.clone(), Some("1.1".into()), sender.clone(), &line, "k".into());
        assert_eq!(ev.body, EventBody::Message(Err(ParseError::TooLong { chars: 4009 })));
        let ev = ChannelEvent::new("T1", ch, Some("1.1".into()), sender, "/var/log is full", "k".into());
        assert_eq!(ev.body, EventBody::Message(Ok(Input::Text("/var/log is full".into()))));
    }

    #[test]
    fn events_serialise_to_their_wire_fields_in_order() {
        let ch: ChannelRef = "slack:C1".parse().unwrap();
        let sender = Sender { platform_user_id: "U1".into(), display_name: None, verified_email: None, is_bot: false };
        let action = Action { action_id: "pincer.feedback".into(), value: "up".into(), message_ts: Some("1.2".into()) };
        let mut ev = ChannelEvent::action("T1", ch, Some("1.0".into()), sender, action, "k2".into());
        ev.channel_name = Some("#oncall".into());
        ev.received_at = "2026-11-25T01:02:03Z".parse().unwrap();
        let text = serde_json::to_string(&ev).unwrap();
        let id = ev.id;
        assert_eq!(
            text,
            format!(
                "{{\"id\":\"{id}\",\"tenant\":\"T1\",\"channel\":\"slack:C1\",\"channel_name\":\"#oncall\",\
                 \"thread\":\"1.0\",\"sender\":{},\"text\":\"\",\
                 \"action\":{{\"action_id\":\"pincer.feedback\",\"value\":\"up\",\"message_ts\":\"1.2\"}},\
                 \"dedupe_key\":\"k2\",\"reply_to\":{},\"received_at\":\"2026-11-25T01:02:03Z\",\"addressed\":false}}",
                serde_json::to_string(&ev.sender).unwrap(),
                serde_json::to_string(&ev.reply_to).unwrap(),
            )
        );
        let back: ChannelEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.body, ev.body);
        assert_eq!(back.reply_to, ev.reply_to);
        // A message carries no action.
        let msg = ChannelEvent::new("T1", ev.channel.clone(), None, ev.sender.clone(), "hi", "k3".into());
        assert!(serde_json::to_string(&msg).unwrap().contains("\"action\":null"));
        // An event stored before `addressed` was written reads as not addressed.
        let old = text.replace(",\"addressed\":false", "");
        let back: ChannelEvent = serde_json::from_str(&old).unwrap();
        assert!(!back.addressed);
        let mut mention = msg.clone();
        mention.addressed = true;
        let back: ChannelEvent = serde_json::from_str(&serde_json::to_string(&mention).unwrap()).unwrap();
        assert!(back.addressed);
    }
}
