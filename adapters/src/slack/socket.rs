//! Socket Mode: Slack pushes events over a websocket the app opens (with
//! the `xapp-` app token), for teams that cannot expose a public URL. The
//! payloads go through the same normalisation as HTTP ([`super::inbound`]).
//!
//! Each envelope is acknowledged only after the gateway says the event is
//! durably stored: the callback hands the event over with a oneshot and
//! waits for it. If storing fails, the callback errs, the error handler
//! answers 500, the envelope is not acked, and Slack delivers an event
//! again. A slash command Slack never sends again: its envelope is acked
//! with a sentence for its sender saying to run it again.

use std::sync::Arc;

use slack_morphism::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::inbound::{self, BotIdentity, Pushed};
use crate::event::ChannelEvent;

/// An event from Socket Mode, and the way to say it was stored.
pub type Handoff = (ChannelEvent, oneshot::Sender<bool>);

struct SocketState {
    tx: mpsc::Sender<Handoff>,
    bot: BotIdentity,
}

async fn hand_off(
    state: &SlackClientEventsUserState,
    make: impl FnOnce(&BotIdentity) -> Result<Option<ChannelEvent>, inbound::InboundError>,
) -> UserCallbackResult<()> {
    let (tx, event) = {
        let guard = state.read().await;
        let s = guard.get_user_state::<SocketState>().ok_or("socket mode state missing")?;
        (s.tx.clone(), make(&s.bot)?)
    };
    let Some(event) = event else { return Ok(()) };
    let (stored_tx, stored_rx) = oneshot::channel();
    tx.send((event, stored_tx)).await?;
    if stored_rx.await.unwrap_or(false) { Ok(()) } else { Err("the event could not be stored".into()) }
}

async fn on_push(
    ev: SlackPushEventCallback,
    _: Arc<SlackHyperClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    hand_off(&state, |bot| {
        Ok(match inbound::from_callback(ev, bot)? {
            Pushed::Event(e) => Some(*e),
            _ => None,
        })
    })
    .await
}

async fn on_command(
    ev: SlackCommandEvent,
    _: Arc<SlackHyperClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let ev = inbound::from_command(ev)?;
    match hand_off(&state, |_| Ok(Some(ev))).await {
        // An empty acknowledgement: the answer follows through the outbox.
        Ok(()) => Ok(SlackCommandEventResponse::new(SlackMessageContent::new())),
        Err(error) => {
            tracing::warn!(%error, "slack socket mode command not stored; its sender is told to run it again");
            Ok(SlackCommandEventResponse::new(SlackMessageContent::new().with_text(super::COMMAND_NOT_STORED.into())))
        }
    }
}

async fn on_interaction(
    ev: SlackInteractionEvent,
    _: Arc<SlackHyperClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    hand_off(&state, |_| inbound::from_interaction(ev)).await
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _: Arc<SlackHyperClient>,
    _: SlackClientEventsUserState,
) -> HttpStatusCode {
    tracing::warn!(error = %err, "slack socket mode envelope not acknowledged; Slack will redeliver it");
    HttpStatusCode::INTERNAL_SERVER_ERROR
}

/// A running Socket Mode connection.
pub struct SocketMode {
    listener: SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
}

impl SocketMode {
    /// Opens Socket Mode with the app token; events arrive on `tx`.
    pub async fn start(
        client: Arc<SlackHyperClient>,
        app_token: &str,
        bot: BotIdentity,
        tx: mpsc::Sender<Handoff>,
    ) -> Result<SocketMode, slack_morphism::errors::SlackClientError> {
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_push_events(on_push)
            .with_command_events(on_command)
            .with_interaction_events(on_interaction);
        let env = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(SocketState { tx, bot }),
        );
        let config =
            SlackClientSocketModeConfig::new().with_max_connections_count(1).with_reconnect_timeout_in_seconds(2);
        let listener = SlackClientSocketModeListener::new(&config, env, callbacks);
        listener.listen_for(&SlackApiToken::new(SlackApiTokenValue::new(app_token.to_string()))).await?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    /// Closes the connection.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
    }
}
