//! Pincer's channel adapters and the normalised types they share.
//!
//! - [`event`] — [`ChannelEvent`] (what every platform's input becomes),
//!   [`Reply`] and [`Outbound`] (what goes back), [`Platform`], [`ChannelRef`].
//! - [`delivery`] — what sending a stored reply needs and how it fails;
//! - [`console`] — the terminal channel used by `pincer chat` and tests
//!   (feature `console`, on by default);
//! - [`slack`] — Slack over HTTP and Socket Mode (feature `slack`, on by default).
//!
//! An adapter verifies and normalises; it never authorises, stores or runs
//! anything. It hands each event to a [`Dispatch`] (the router) and delivers
//! what comes back.

pub mod delivery;
pub mod event;

#[cfg(feature = "console")]
pub mod console;

#[cfg(feature = "slack")]
pub mod slack;

pub use event::{
    Action, AskedBy, Button, ChannelEvent, ChannelRef, ChannelRefError, Dispatch, EventBody, FEEDBACK_ACTION, Outbound,
    Platform, Reply, ReplyKind, ReplyTarget, Sender, Visibility, conversation_thread,
};
