//! Pincer's channel adapters and the normalised types they share.
//!
//! - [`event`] — [`ChannelEvent`] (what every platform's input becomes),
//!   [`Reply`] and [`Outbound`] (what goes back), [`Platform`], [`ChannelRef`].
//! - [`console`] — the terminal channel used by `pincer chat` and tests
//!   (feature `console`, on by default).
//!
//! An adapter verifies and normalises; it never authorises, stores or runs
//! anything. It hands each event to a [`Dispatch`] (the router) and delivers
//! what comes back.

pub mod event;

#[cfg(feature = "console")]
pub mod console;

pub use event::{
    ChannelEvent, ChannelRef, ChannelRefError, Dispatch, Outbound, Platform, Reply, ReplyKind,
    ReplyTarget, Sender, Visibility,
};
