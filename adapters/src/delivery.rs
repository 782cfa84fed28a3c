//! What a channel's sender needs to deliver one stored reply, and how a
//! delivery can fail. The dispatcher (in the root crate) decides what to do
//! with each failure; an adapter only classifies it.

use std::time::Duration;

use crate::event::Reply;

/// One stored reply to deliver.
#[derive(Debug, Clone, Copy)]
pub struct OutboundMessage<'a> {
    /// The outbox row id (for logs).
    pub id: i64,
    /// Platform workspace.
    pub tenant: &'a str,
    /// Channel id.
    pub channel: &'a str,
    /// Thread to post in.
    pub thread: Option<&'a str>,
    /// Platform return address (Slack `response_url`).
    pub response_url: Option<&'a str>,
    /// The one person an ephemeral reply is for.
    pub recipient: Option<&'a str>,
    /// What to say.
    pub reply: &'a Reply,
    /// Update this already-posted message instead of posting a new one.
    pub update: Option<&'a str>,
    /// A "working on it…" placeholder, to be replaced by the answer.
    pub is_progress: bool,
    /// An earlier attempt may have reached the platform: look for the
    /// message there before posting it again.
    pub maybe_sent: bool,
    /// When the reply was stored (nothing posted before this is it).
    pub stored_at: chrono::DateTime<chrono::Utc>,
}

/// A successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The platform's id for the message, when it has one (Slack `ts`).
    pub message_id: Option<String>,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The platform asked us to slow down for this long.
    #[error("rate limited; retry after {0:?}")]
    RateLimited(Duration),
    /// Worth trying again (network, 5xx, timeouts).
    #[error("transient failure: {0}")]
    Transient(String),
    /// Will never succeed (channel gone, bot removed, bad token…).
    #[error("permanent failure: {0}")]
    Permanent(String),
}
