//! The Slack Web API, as Pincer uses it: `auth.test` at start, `users.info`
//! and `conversations.info` (cached) to resolve people and channel names,
//! and delivery — `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
//! or a slash command's `response_url`. The base URL is configurable
//! (`SLACK_API_URL`), so a proxy or a local mock can stand in for Slack.
//!
//! Every posted message carries its outbox id in Slack message metadata
//! (`event_type` [`METADATA_EVENT`]). A reply an earlier attempt may have
//! posted is first looked for by that id (`conversations.replies` in its
//! thread, `conversations.history` in its channel), so it is never posted
//! twice.
//!
//! slack-morphism's own retries and throttling are left off: the outbox
//! dispatcher owns pacing, `Retry-After` and backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::inbound::BotIdentity;
use crate::delivery::{Delivered, DeliveryError, OutboundMessage};
use crate::event::{AskedBy, Reply, ReplyKind};

/// How long a looked-up e-mail or channel name is trusted.
const CACHE_TTL: Duration = Duration::from_secs(600);

/// The metadata `event_type` of the messages Pincer posts; its
/// `event_payload` holds the reply's `outbox_id`.
pub const METADATA_EVENT: &str = "pincer_reply";

/// Pages of a thread or channel read when looking for a reply (200 each).
const LOOKUP_PAGES: usize = 10;

/// Slack's clocks and ours may disagree: look this far before the reply was stored.
const LOOKUP_SKEW_SECS: i64 = 120;

/// A page of `conversations.replies` / `conversations.history`, only what
/// the lookup reads.
#[derive(serde::Deserialize)]
struct HistoryPage {
    #[serde(default)]
    messages: Vec<HistoryItem>,
    response_metadata: Option<NextCursor>,
}

#[derive(serde::Deserialize)]
struct HistoryItem {
    ts: String,
    bot_id: Option<String>,
    metadata: Option<ItemMetadata>,
}

#[derive(serde::Deserialize)]
struct ItemMetadata {
    event_type: String,
    #[serde(default)]
    event_payload: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct NextCursor {
    next_cursor: Option<String>,
}

/// The metadata a posted reply carries: its outbox id.
fn reply_metadata(outbox_id: i64) -> SlackMessageMetadata {
    SlackMessageMetadata {
        event_type: METADATA_EVENT.to_string(),
        event_payload: Some(HashMap::from([("outbox_id".to_string(), outbox_id.to_string())])),
    }
}

impl HistoryItem {
    /// Whether this is the message posted for outbox row `id` (by the bot
    /// `ours`, when it is known: another app's message is never ours).
    fn is_reply(&self, id: i64, ours: Option<&str>) -> bool {
        let by_us = match (ours, self.bot_id.as_deref()) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        by_us
            && self.metadata.as_ref().is_some_and(|m| {
                m.event_type == METADATA_EVENT
                    && match &m.event_payload["outbox_id"] {
                        serde_json::Value::String(s) => s.parse() == Ok(id),
                        v => v.as_i64() == Some(id),
                    }
            })
    }
}

/// How long a `users.info` or `conversations.info` lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack errors that mean the app itself is set up wrong (token, scopes).
const SETUP_ERRORS: &[&str] = &[
    "missing_scope",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
];

/// Slack error codes that will never succeed on retry.
const PERMANENT: &[&str] = &[
    "channel_not_found",
    "user_not_found",
    "user_not_visible",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_authed",
    "msg_too_long",
    "invalid_blocks",
    "invalid_arguments",
    "user_not_in_channel",
    "restricted_action",
    "no_text",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "team_access_not_granted",
    "ekm_access_denied",
    "too_many_attachments",
    "metadata_too_large",
    "cannot_reply_to_message",
    "thread_not_found",
    // A `response_url` used five times or older than 30 minutes.
    "expired_url",
    "used_url",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "invalid_blocks_format",
    "invalid_attachments",
    // The request itself, the token's kind, or the workspace's rules: the
    // same request gets the same answer.
    "not_allowed_token_type",
    "access_denied",
    "invalid_charset",
    "invalid_form_data",
    "invalid_json",
    "json_not_object",
    "messages_tab_disabled",
    "method_deprecated",
    "deprecated_endpoint",
    "as_user_not_supported",
    "enterprise_is_restricted",
    "two_factor_setup_required",
    "org_login_required",
    "upgrade_required",
];

/// Whether a Slack error code will fail the same way every time: the
/// listed ones, and the `restricted_action*` family (a channel's or
/// workspace's rule). (Not every `invalid_*`: a history lookup's
/// `invalid_cursor` is worth another try.)
fn permanent(code: &str) -> bool {
    PERMANENT.contains(&code) || code.starts_with("restricted_action")
}

type Cache = Mutex<HashMap<String, (Option<String>, Instant)>>;

/// A Slack Web API client with the bot's token.
pub struct SlackApi {
    client: Arc<SlackHyperClient>,
    token: SlackApiToken,
    emails: Cache,
    channels: Cache,
    /// `team:user` keys `users.info` said are bots or apps.
    bots: Mutex<std::collections::HashSet<String>>,
    /// The bot's id, once `auth.test` has said it.
    bot_id: std::sync::RwLock<Option<String>>,
    /// `chat.postMessage`'s URL, built once (slack-morphism would format and
    /// parse it for every post).
    post_message_url: url::Url,
}

/// What Pincer reads of `chat.postMessage`'s answer: the message's `ts`,
/// not the whole message Slack echoes back (slack-morphism's response type
/// reads it all, through flattened structs that serde buffers).
#[derive(serde::Deserialize)]
struct Posted {
    ts: String,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi").finish_non_exhaustive()
    }
}

/// Builds a hyper client that speaks http and https, to `api_url`.
pub fn hyper_client(api_url: &str) -> std::io::Result<Arc<SlackHyperClient>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
    let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url.trim_end_matches('/'));
    Ok(Arc::new(SlackClient::new(connector)))
}

fn classify(e: SlackClientError) -> DeliveryError {
    match e {
        SlackClientError::RateLimitError(r) => {
            DeliveryError::RateLimited(r.retry_after.unwrap_or(Duration::from_secs(1)))
        }
        // (`ratelimited` is the Web API's word; `chat.postMessage` also
        // documents `rate_limited`.)
        SlackClientError::ApiError(a) if a.code == "ratelimited" || a.code == "rate_limited" => {
            DeliveryError::RateLimited(Duration::from_secs(1))
        }
        SlackClientError::ApiError(a) if permanent(&a.code) => DeliveryError::Permanent(a.code),
        SlackClientError::ApiError(a) => DeliveryError::Transient(a.code),
        SlackClientError::HttpError(h) if h.status_code.is_client_error() && h.status_code.as_u16() != 408 => {
            DeliveryError::Permanent(format!("HTTP {}", h.status_code))
        }
        other => DeliveryError::Transient(other.to_string()),
    }
}

/// Longest question shown above an answer, in characters.
const ASKED_SHOWN: usize = 300;

/// `<@U1> asked: _why did the deploy fail?_` — the question on one line,
/// escaped, cut at [`ASKED_SHOWN`] characters.
fn asked_line(asked: &AskedBy) -> String {
    let one_line = asked.question.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown: String = one_line.chars().take(ASKED_SHOWN).collect();
    if one_line.chars().count() > ASKED_SHOWN {
        shown.push('…');
    }
    // (An id is letters and digits; anything else is not written as a mention.)
    let who = if !asked.user.is_empty() && asked.user.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("<@{}>", asked.user)
    } else {
        "Someone".to_string()
    };
    format!("{who} asked: _{}_", escape(&shown))
}

/// Slack's limit on one section block's text.
const SECTION_LIMIT: usize = 3000;

/// Escapes text for Slack: `&`, `<` and `>` only, so model output or echoed
/// input cannot ping `<!channel>` or a person.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Cuts escaped text into pieces of at most `limit` characters, at line
/// breaks where it can. A line longer than `limit` is cut, but never inside
/// an entity (`&amp;`, `&lt;`, `&gt;`); a code block cut in two is closed at
/// the end of its first piece and opened again at the start of the next, so
/// each section shows it as code.
fn pieces(text: &str, limit: usize) -> Vec<String> {
    // Room for the fences a piece may get.
    let limit = limit.saturating_sub(2 * FENCE.len() + 2).max(1);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line;
        while line.chars().count() > limit {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            let at = cut_at(line, limit);
            out.push(line[..at].to_string());
            line = &line[at..];
        }
        if current.chars().count() + line.chars().count() > limit {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    let mut open = false;
    for piece in &mut out {
        let opened_before = open;
        open ^= piece.matches(FENCE).count() % 2 == 1;
        if opened_before {
            piece.insert_str(0, "```\n");
        }
        if open {
            if !piece.ends_with('\n') {
                piece.push('\n');
            }
            piece.push_str(FENCE);
        }
    }
    out
}

/// Slack's code block fence.
const FENCE: &str = "```";

/// Where to cut `line` (longer than `limit` characters), as a byte index:
/// after `limit` characters, or before an entity that would be cut.
fn cut_at(line: &str, limit: usize) -> usize {
    let mut at = line.char_indices().nth(limit).map_or(line.len(), |(i, _)| i);
    // Nor inside a code fence.
    while at > 0 && line[..at].ends_with('`') && line[at..].starts_with('`') {
        at -= 1;
    }
    let head = &line[..at];
    // (Every `&` in escaped text begins an entity.)
    match head.rfind('&') {
        Some(amp) if amp > 0 && !head[amp..].contains(';') => amp,
        _ => at,
    }
}

/// The Block Kit for a reply: its text (escaped, in sections within Slack's
/// size limit), and its buttons as an actions block.
fn content(reply: &Reply) -> SlackMessageContent {
    let mut text = match reply.kind {
        ReplyKind::Error => format!(":warning: {}", escape(&reply.text)),
        _ => escape(&reply.text),
    };
    if let Some(asked) = &reply.asked {
        text = format!("{}\n\n{text}", asked_line(asked));
    }
    // Past Slack's advised length for a message's text, the text goes in
    // sections too, so all of it shows (Slack cuts a long `text`); it
    // stays as the notification's fallback, cut short there.
    let long = text.chars().count() > TEXT_LIMIT;
    if reply.buttons.is_empty() && !long {
        return SlackMessageContent::new().with_text(text);
    }
    let mut sections = pieces(&text, SECTION_LIMIT);
    if sections.len() > MAX_SECTIONS {
        sections.truncate(MAX_SECTIONS);
        sections.push("_… (cut here: the rest is longer than one Slack message can hold)_".into());
    }
    let mut blocks: Vec<SlackBlock> = sections
        .into_iter()
        .map(|p| SlackSectionBlock::new().with_text(SlackBlockText::MarkDown(SlackBlockMarkDownText::new(p))).into())
        .collect();
    if !reply.buttons.is_empty() {
        let buttons: Vec<SlackActionBlockElement> = reply
            .buttons
            .iter()
            .map(|b| {
                SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(b.label.as_str()))
                    .with_action_id(SlackActionId::new(b.action_id.clone()))
                    .with_value(b.value.clone())
                    .into()
            })
            .collect();
        blocks.push(SlackActionsBlock::new(buttons).into());
    }
    if long {
        let at = cut_at(&text, TEXT_LIMIT - 1);
        text = format!("{}…", &text[..at]);
    }
    SlackMessageContent::new().with_text(text).with_blocks(blocks)
}

/// Slack's advised length for a message's `text` (it cuts past 40,000).
const TEXT_LIMIT: usize = 4000;
/// Sections in one message: Slack allows 50 blocks, one of them the
/// buttons' and one the note that the rest was cut.
const MAX_SECTIONS: usize = 48;

impl SlackApi {
    /// A client for `api_url` (e.g. `https://slack.com/api`) with the bot token.
    pub fn new(api_url: &str, bot_token: &str) -> std::io::Result<SlackApi> {
        let client = hyper_client(api_url)?;
        let post_message_url = client.http_api.connector.create_method_uri_path("chat.postMessage").map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("Slack API URL {api_url}: {e}"))
        })?;
        Ok(SlackApi {
            client,
            post_message_url,
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.to_string())),
            emails: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            bots: Mutex::new(std::collections::HashSet::new()),
            bot_id: std::sync::RwLock::new(None),
        })
    }

    /// Whether `users.info` said `user` (of `team`) is a bot or an app, in
    /// an answer [`SlackApi::user_email`] has read.
    pub fn is_bot(&self, user: &str, team: &str) -> bool {
        self.bots.lock().is_ok_and(|bots| bots.contains(&format!("{team}:{user}")))
    }

    /// The underlying client (Socket Mode shares it).
    pub fn client(&self) -> Arc<SlackHyperClient> {
        self.client.clone()
    }

    /// Who the bot is.
    pub async fn auth_test(&self) -> Result<BotIdentity, DeliveryError> {
        let me = self.client.open_session(&self.token).auth_test().await.map_err(classify)?;
        if let Ok(mut bot) = self.bot_id.write() {
            *bot = me.bot_id.as_ref().map(|b| b.to_string());
        }
        Ok(BotIdentity { user_id: Some(me.user_id.to_string()), bot_id: me.bot_id.map(|b| b.to_string()) })
    }

    fn cached(cache: &Cache, key: &str) -> Option<Option<String>> {
        let map = cache.lock().ok()?;
        map.get(key).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(v, _)| v.clone())
    }

    fn remember(cache: &Cache, key: &str, value: Option<String>) {
        if let Ok(mut map) = cache.lock() {
            if map.len() > 50_000 {
                map.clear();
            }
            map.insert(key.to_string(), (value, Instant::now()));
        }
    }

    /// A cached lookup: a hit answers at once; otherwise `fetch` asks Slack.
    /// "Not found" (any permanent error) is an answer too — `None`, cached —
    /// while a transient failure is returned so the caller can retry.
    async fn lookup<F>(cache: &Cache, key: &str, fetch: F) -> Result<Option<String>, DeliveryError>
    where
        F: std::future::Future<Output = Result<Option<String>, SlackClientError>>,
    {
        if let Some(hit) = Self::cached(cache, key) {
            return Ok(hit);
        }
        // (slack-morphism's client sets no timeout of its own.)
        let fetched = match tokio::time::timeout(LOOKUP_TIMEOUT, fetch).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(DeliveryError::Transient(format!("Slack did not answer within {LOOKUP_TIMEOUT:?}"))),
        };
        let value = match fetched {
            Ok(v) => v,
            Err(DeliveryError::Permanent(code)) => {
                if SETUP_ERRORS.contains(&code.as_str()) {
                    // The app's set-up, not this person: say what to fix
                    // where an admin will look.
                    tracing::warn!(
                        code,
                        key,
                        "Slack refused a lookup: check the app's token and scopes (users:read, users:read.email, \
                         channels:read; `pincer slack manifest` lists them all)"
                    );
                }
                None
            }
            Err(e) => return Err(e),
        };
        Self::remember(cache, key, value.clone());
        Ok(value)
    }

    /// A user's profile e-mail (`users.info`, cached), vouched for only when
    /// the user belongs to `team` itself: `None` for users Slack does not
    /// show the bot, for people from another organisation in a shared
    /// channel (`is_stranger`, or another `team_id`), and for bots and
    /// deactivated accounts.
    pub async fn user_email(&self, user: &str, team: &str) -> Result<Option<String>, DeliveryError> {
        let session = self.client.open_session(&self.token);
        let request = SlackApiUsersInfoRequest::new(SlackUserId::new(user.to_string()));
        let key = format!("{team}:{user}");
        Self::lookup(&self.emails, &key, async {
            let u = session.users_info(&request).await?.user;
            let own_team = u.team_id.as_ref().is_none_or(|t| t.as_ref() == team);
            let f = &u.flags;
            let bot = f.is_bot == Some(true) || f.is_app_user == Some(true);
            if bot && let Ok(mut bots) = self.bots.lock() {
                if bots.len() > 50_000 {
                    bots.clear();
                }
                bots.insert(key.clone());
            }
            let outsider = f.is_stranger == Some(true) || bot || u.deleted == Some(true);
            if !own_team || outsider {
                return Ok(None);
            }
            let email = u.profile.as_ref().and_then(|p| p.email.as_ref()).map(|e| e.to_string());
            if email.is_none() {
                tracing::warn!(
                    user,
                    "Slack shows no e-mail for a member of this workspace: the app needs the users:read.email \
                     scope to tell who people are"
                );
            }
            Ok(email)
        })
        .await
    }

    /// A channel's name (`conversations.info`, cached); `None` for a channel
    /// the bot cannot see (it can still be bound by id).
    pub async fn channel_name(&self, channel: &str) -> Result<Option<String>, DeliveryError> {
        let session = self.client.open_session(&self.token);
        let request = SlackApiConversationsInfoRequest::new(SlackChannelId::new(channel.to_string()));
        Self::lookup(&self.channels, channel, async { Ok(session.conversations_info(&request).await?.channel.name) })
            .await
    }

    /// A channel's name if it is in the cache (no call to Slack).
    pub fn cached_channel_name(&self, channel: &str) -> Option<Option<String>> {
        Self::cached(&self.channels, channel)
    }

    /// Delivers one stored reply.
    pub async fn deliver(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let content = content(msg.reply);
        let session = self.client.open_session(&self.token);
        let channel = SlackChannelId::new(msg.channel.to_string());
        if let Some(user) = msg.recipient {
            if let Some(url) = msg.response_url.and_then(|u| url::Url::parse(u).ok()) {
                // A new message, never in place of the one whose button
                // was clicked.
                let req = SlackApiPostWebhookMessageRequest::new(content.clone()).with_replace_original(false);
                match self.client.respond_to_event(&SlackResponseUrl(url), &req).await.map_err(classify) {
                    Ok(_) => return Ok(Delivered { message_id: None }),
                    // A response_url lasts 30 minutes and five uses; past
                    // that, the reply goes the way a message's would.
                    Err(DeliveryError::Permanent(code)) => {
                        tracing::info!(outbox_id = msg.id, code, "response_url refused; sending the reply ephemerally");
                    }
                    Err(e) => return Err(e),
                }
            }
            let mut req = SlackApiChatPostEphemeralRequest::new(channel, SlackUserId::new(user.to_string()), content);
            if let Some(t) = msg.thread {
                req = req.with_thread_ts(SlackTs::new(t.to_string()));
            }
            session.chat_post_ephemeral(&req).await.map_err(classify)?;
            return Ok(Delivered { message_id: None });
        }
        if let Some(ts) = msg.update {
            // Slack keeps a message's blocks through an update that names
            // none: a reply without buttons clears them (a decided
            // approval request loses its Approve and Deny).
            let mut updated = content.clone();
            updated.blocks.get_or_insert_with(Vec::new);
            let req = SlackApiChatUpdateRequest::new(channel.clone(), updated, SlackTs::new(ts.to_string()));
            match session.chat_update(&req).await.map_err(classify) {
                Ok(_) => return Ok(Delivered { message_id: Some(ts.to_string()) }),
                // The message cannot be edited (deleted, or too old to):
                // post the reply as a new message.
                Err(DeliveryError::Permanent(code))
                    if code == "message_not_found" || code == "cant_update_message" || code == "edit_window_closed" => {
                }
                Err(e) => return Err(e),
            }
        }
        if msg.maybe_sent
            && let Some(ts) = self.find_posted(msg).await?
        {
            tracing::info!(outbox_id = msg.id, ts, "reply found already posted; not posting it again");
            return Ok(Delivered { message_id: Some(ts) });
        }
        let mut req = SlackApiChatPostMessageRequest::new(channel, content.with_metadata(reply_metadata(msg.id)));
        if let Some(t) = msg.thread {
            req = req.with_thread_ts(SlackTs::new(t.to_string()));
        }
        let posted = session.http_session_api.http_post_uri::<_, Posted>(
            self.post_message_url.clone(),
            &req,
            Some(&slack_morphism::api::CHAT_POST_MESSAGE_SPECIAL_LIMIT_RATE_CTL),
        );
        match posted.await.map_err(classify) {
            Ok(posted) => Ok(Delivered { message_id: Some(posted.ts) }),
            // The bot is not in the channel (or cannot see it), but a slash
            // command's response_url can still post there for everyone.
            Err(DeliveryError::Permanent(code)) if code == "not_in_channel" || code == "channel_not_found" => {
                match msg.response_url.and_then(|u| url::Url::parse(u).ok()) {
                    // A placeholder posted this way could never be replaced
                    // (a response_url post has no `ts` to update): the asker
                    // alone sees it, and the channel only the answer. A
                    // failure note (public only to replace a public
                    // placeholder, which a bot outside the channel never
                    // posted) goes to the asker alone too.
                    Some(url) if msg.is_progress || msg.reply.kind == ReplyKind::Error => {
                        let mut content = req.content;
                        content.metadata = None;
                        let private = SlackApiPostWebhookMessageRequest::new(content).with_replace_original(false);
                        self.client.respond_to_event(&SlackResponseUrl(url), &private).await.map_err(classify)?;
                        Ok(Delivered { message_id: None })
                    }
                    Some(url) => {
                        // (Slack does not say which message it posted, so
                        // a feedback click could not find its answer.)
                        let mut reply = msg.reply.clone();
                        reply.buttons.retain(|b| b.action_id != crate::event::FEEDBACK_ACTION);
                        self.respond_in_channel(url, &self::content(&reply)).await
                    }
                    None => Err(DeliveryError::Permanent(code)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The `ts` of the message an earlier attempt posted for `msg`, found
    /// by its outbox id in the message metadata: in its thread
    /// (`conversations.replies`) or, for a reply to the channel itself,
    /// in the channel (`conversations.history`), from just before the reply
    /// was stored. A lookup Slack refuses for good (no `*:history` scope,
    /// a channel the bot cannot read) finds nothing: posting again is then
    /// better than never posting.
    async fn find_posted(&self, msg: &OutboundMessage<'_>) -> Result<Option<String>, DeliveryError> {
        let session = self.client.open_session(&self.token);
        let oldest = format!("{}.000000", msg.stored_at.timestamp() - LOOKUP_SKEW_SECS);
        let method = if msg.thread.is_some() { "conversations.replies" } else { "conversations.history" };
        let mut cursor: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let params = vec![
                ("channel", Some(msg.channel)),
                ("ts", msg.thread),
                ("oldest", Some(oldest.as_str())),
                ("include_all_metadata", Some("true")),
                ("limit", Some("200")),
                ("cursor", cursor.as_deref()),
            ];
            let page: HistoryPage =
                match session.http_session_api.http_get(method, &params, None).await.map_err(classify) {
                    Ok(page) => page,
                    Err(DeliveryError::Permanent(code)) => {
                        tracing::warn!(outbox_id = msg.id, method, code, "could not look for an earlier post; posting");
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
            let ours = self.bot_id.read().ok().and_then(|b| b.clone());
            if let Some(found) = page.messages.iter().find(|m| m.is_reply(msg.id, ours.as_deref())) {
                return Ok(Some(found.ts.clone()));
            }
            cursor = page.response_metadata.and_then(|r| r.next_cursor).filter(|c| !c.is_empty());
            if cursor.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// Posts through a `response_url` visibly to the whole channel.
    async fn respond_in_channel(
        &self,
        url: url::Url,
        content: &SlackMessageContent,
    ) -> Result<Delivered, DeliveryError> {
        #[derive(serde::Serialize)]
        struct InChannel<'a> {
            #[serde(flatten)]
            content: &'a SlackMessageContent,
            response_type: &'static str,
            replace_original: bool,
        }
        let span = tracing::Span::current();
        let context = SlackClientApiCallContext {
            rate_control_params: None,
            token: None,
            tracing_span: &span,
            is_sensitive_url: true,
        };
        let body = InChannel { content, response_type: "in_channel", replace_original: false };
        let _: SlackApiPostWebhookMessageResponse =
            self.client.http_api.connector.http_post_uri(url, &body, context).await.map_err(classify)?;
        Ok(Delivered { message_id: None })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::event::Button;

    #[test]
    fn text_is_escaped_and_long_answers_split_within_the_section_limit() {
        assert_eq!(escape("<!channel> a & b > c"), "&lt;!channel&gt; a &amp; b &gt; c");
        let mut reply = Reply::answer(format!("{}\n{}", "a".repeat(2500), "b".repeat(4000)));
        reply.buttons = vec![Button { label: "x".into(), action_id: "y".into(), value: "z".into() }];
        let json = serde_json::to_value(content(&reply)).unwrap();
        let blocks = json["blocks"].as_array().unwrap();
        let sections: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "section").collect();
        assert!(sections.iter().all(|b| b["text"]["text"].as_str().unwrap().chars().count() <= 3000));
        let joined: String = sections.iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
        assert_eq!(joined.chars().count(), 6501);
        assert_eq!(blocks.last().unwrap()["type"], "actions");
    }

    #[test]
    fn long_lines_are_cut_outside_entities_and_code_blocks_stay_code() {
        // An entity across the cut moves whole to the next piece.
        let line = format!("{}{}", "a".repeat(8), escape("<b>"));
        let cut = pieces(&line, 10 + 2 * FENCE.len() + 2);
        assert_eq!(cut, ["aaaaaaaa", "&lt;b&gt;"]);
        assert_eq!(cut.concat(), line);
        // So does a fence.
        let line = format!("{}```code```", "a".repeat(9));
        let cut = pieces(&line, 10 + 2 * FENCE.len() + 2);
        assert_eq!(cut[0], "aaaaaaaaa", "{cut:?}");
        // A code block split over two sections is closed and opened again.
        let text = format!("see:\n```\n{}\n{}\n```\ndone", "x".repeat(30), "y".repeat(30));
        let cut = pieces(&text, 40 + 2 * FENCE.len() + 2);
        assert!(cut.len() >= 2, "{cut:?}");
        for p in &cut {
            assert_eq!(p.matches(FENCE).count() % 2, 0, "{p:?} in {cut:?}");
            assert!(p.chars().count() <= 40 + 2 * FENCE.len() + 2, "{p:?}");
        }
        assert!(cut.iter().any(|p| p.starts_with("```\n")), "{cut:?}");
        assert!(cut.concat().contains(&"y".repeat(30)));
    }

    #[test]
    fn a_long_reply_without_buttons_shows_in_sections_and_an_overlong_one_says_where_it_was_cut() {
        // Short and without buttons: text only.
        let json = serde_json::to_value(content(&Reply::answer("short"))).unwrap();
        assert!(json.get("blocks").is_none(), "{json}");
        // Long: every character in sections, the fallback text cut short.
        let body = format!("{}\n{}", "a".repeat(2500), "b".repeat(4000));
        let json = serde_json::to_value(content(&Reply::answer(body))).unwrap();
        let sections = json["blocks"].as_array().unwrap();
        let joined: String = sections.iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
        assert_eq!(joined.chars().count(), 6501);
        assert!(json["text"].as_str().unwrap().chars().count() <= TEXT_LIMIT);
        // Too long for one message: 48 sections and a note.
        let huge = "x\n".repeat(80_000);
        let json = serde_json::to_value(content(&Reply::answer(huge))).unwrap();
        let blocks = json["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_SECTIONS + 1);
        assert!(blocks.last().unwrap()["text"]["text"].as_str().unwrap().contains("cut here"));
        assert!(blocks.iter().all(|b| b["text"]["text"].as_str().unwrap().chars().count() <= SECTION_LIMIT));
    }

    #[test]
    fn a_posted_reply_is_recognised_by_the_outbox_id_in_its_metadata() {
        let item = |v: Value| serde_json::from_value::<HistoryItem>(v).unwrap();
        let ours = item(
            serde_json::json!({"ts": "1.2", "metadata": {"event_type": "pincer_reply", "event_payload": {"outbox_id": "42"}}}),
        );
        assert!(ours.is_reply(42, None));
        assert!(!ours.is_reply(4, None));
        let numeric = item(
            serde_json::json!({"ts": "1.3", "metadata": {"event_type": "pincer_reply", "event_payload": {"outbox_id": 42}}}),
        );
        assert!(numeric.is_reply(42, None));
        let other_app = item(
            serde_json::json!({"ts": "1.4", "metadata": {"event_type": "deploy", "event_payload": {"outbox_id": "42"}}}),
        );
        assert!(!other_app.is_reply(42, None));
        assert!(!item(serde_json::json!({"ts": "1.5", "text": "hi"})).is_reply(42, None));
        // Another bot's message with the same id is not ours.
        let mut theirs = item(
            serde_json::json!({"ts": "1.7", "bot_id": "BOTHER", "metadata": {"event_type": "pincer_reply", "event_payload": {"outbox_id": "42"}}}),
        );
        assert!(!theirs.is_reply(42, Some("BPINCER")));
        theirs.bot_id = Some("BPINCER".into());
        assert!(theirs.is_reply(42, Some("BPINCER")));
        // What chat.postMessage sends carries it.
        let sent = serde_json::to_value(content(&Reply::answer("x")).with_metadata(reply_metadata(42))).unwrap();
        assert!(item(serde_json::json!({"ts": "1.6", "metadata": sent["metadata"]})).is_reply(42, None));
    }

    #[test]
    fn slack_errors_are_classified_by_whether_trying_again_can_help() {
        let api = |code: &str| {
            classify(SlackClientError::ApiError(slack_morphism::errors::SlackClientApiError::new(code.to_string())))
        };
        for code in ["ratelimited", "rate_limited"] {
            assert!(matches!(api(code), DeliveryError::RateLimited(_)), "{code}");
        }
        for code in [
            "channel_not_found",
            "expired_url",
            "used_url",
            "invalid_metadata_format",
            "invalid_blocks",
            "restricted_action_read_only_channel",
            "restricted_action",
            "metadata_too_large",
            "invalid_json",
            "not_allowed_token_type",
            "messages_tab_disabled",
        ] {
            assert!(matches!(api(code), DeliveryError::Permanent(_)), "{code}");
        }
        for code in ["internal_error", "fatal_error", "service_unavailable", "request_timeout", "invalid_cursor"] {
            assert!(matches!(api(code), DeliveryError::Transient(_)), "{code}");
        }
    }

    #[test]
    fn an_answer_to_a_slash_command_shows_who_asked_what() {
        let mut reply = Reply::answer("It failed on the migration.");
        reply.asked = Some(AskedBy { user: "U123".into(), question: "why did the\n deploy <fail>?".into() });
        let c = content(&reply);
        assert_eq!(
            c.text.as_deref(),
            Some("<@U123> asked: _why did the deploy &lt;fail&gt;?_\n\nIt failed on the migration.")
        );
        reply.asked = Some(AskedBy { user: "U1>|x".into(), question: "q".repeat(400) });
        let text = content(&reply).text.unwrap_or_default();
        assert!(text.starts_with(&format!("Someone asked: _{}…_", "q".repeat(300))), "{text}");
    }

    #[test]
    fn buttons_become_an_actions_block() {
        let mut reply = Reply::answer("hello");
        reply.buttons = vec![Button { label: "👍".into(), action_id: "pincer.feedback".into(), value: "up".into() }];
        let json = serde_json::to_value(content(&reply)).unwrap();
        assert_eq!(json["text"], "hello");
        assert_eq!(json["blocks"][1]["type"], "actions");
        assert_eq!(json["blocks"][1]["elements"][0]["action_id"], "pincer.feedback");
        assert_eq!(json["blocks"][1]["elements"][0]["value"], "up");
        assert!(serde_json::to_value(content(&Reply::info("x"))).unwrap().get("blocks").is_none());
    }
}
