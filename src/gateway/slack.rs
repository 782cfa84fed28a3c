//! `POST /slack/events`, `/slack/commands`, `/slack/interactive`.
//!
//! Forged, stale, future-dated or tampered requests get 401 and have no
//! effect; malformed ones get 400; a body over the limit gets 413 before it
//! is read. A verified event is stored (deduplicated on Slack's `event_id`,
//! `trigger_id`) before the 200 goes back, so Slack's retries are answered
//! exactly once, by whichever replica got there first. One that cannot be
//! stored gets 500, so Slack retries it — except a slash command, which
//! Slack never retries: its sender is told, privately, to run it again.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pincer_adapters::ChannelEvent;
use pincer_adapters::slack::{self, Pushed, inbound};

use crate::app::{App, Metrics, Slack};
use crate::ingest;

/// The Slack routes.
pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/slack/events", post(events))
        .route("/slack/commands", post(commands))
        .route("/slack/interactive", post(interactive))
}

/// A refusal: the status and a short body.
type Refusal = (StatusCode, &'static str);

/// Checks the signature; the error is the response to send.
fn verified<'a>(app: &'a App, headers: &HeaderMap, body: &[u8]) -> Result<&'a Slack, Refusal> {
    let Some(slack_rt) = app.slack.as_ref() else {
        return Err((StatusCode::NOT_FOUND, "Slack is not configured on this Pincer\n"));
    };
    let Some(secret) = slack_rt.config.signing_secret.as_ref() else {
        return Err((StatusCode::NOT_FOUND, "Slack HTTP endpoints need a signing secret\n"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match slack::verify(&secret.expose(), header(slack::SIGNATURE_HEADER), header(slack::TIMESTAMP_HEADER), body) {
        Ok(()) => Ok(slack_rt),
        Err(error) => {
            Metrics::inc(&app.metrics.bad_signatures);
            tracing::warn!(%error, "refused a Slack request");
            Err((StatusCode::UNAUTHORIZED, "invalid request signature\n"))
        }
    }
}

fn malformed(error: inbound::InboundError) -> Response {
    tracing::warn!(%error, "malformed Slack request");
    (StatusCode::BAD_REQUEST, "malformed payload\n").into_response()
}

/// What a request that could not be stored is answered.
#[derive(Clone, Copy)]
enum NotStored {
    /// 500: Slack retries an event (and marks a clicked button as failed).
    Retry,
    /// 200 with a sentence only the sender sees: Slack never retries a
    /// slash command, and would show its sender only an error code.
    Tell,
}

/// Stores an event and acknowledges it; if it could not be stored, answers
/// as `not_stored` says.
async fn store(app: &Arc<App>, mut ev: ChannelEvent, not_stored: NotStored) -> Response {
    // In its own task: if Slack hangs up mid-request, the insert and the
    // hand-over to the worker still finish together. The same task then
    // runs the event's job, if this process took it.
    crate::worker::enrich_from_cache(app, &mut ev);
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(ingest::enqueue_then_run(app.clone(), ev, tx));
    let stored = rx.await.unwrap_or_else(|_| {
        Err(crate::store::StoreError::Corrupt("the event's ingest ended without an outcome".into()))
    });
    match stored {
        Ok(_) => StatusCode::OK.into_response(),
        Err(error) => {
            Metrics::inc(&app.metrics.errors);
            match not_stored {
                NotStored::Retry => {
                    tracing::error!(%error, "could not store a Slack event; Slack will retry");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
                NotStored::Tell => {
                    tracing::error!(%error, "could not store a Slack command; its sender is told to run it again");
                    let body = serde_json::json!({"response_type": "ephemeral", "text": slack::COMMAND_NOT_STORED});
                    axum::Json(body).into_response()
                }
            }
        }
    }
}

async fn events(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let slack_rt = match verified(&app, &headers, &body) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    match inbound::parse_push(&body, &slack_rt.bot()) {
        Err(e) => malformed(e),
        Ok(Pushed::Challenge(c)) => ([(axum::http::header::CONTENT_TYPE, "text/plain")], c).into_response(),
        Ok(Pushed::Ignored(why)) => {
            tracing::debug!(why, "slack event ignored");
            StatusCode::OK.into_response()
        }
        Ok(Pushed::Event(ev)) => store(&app, *ev, NotStored::Retry).await,
    }
}

async fn commands(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = verified(&app, &headers, &body) {
        return r.into_response();
    }
    // Slack checks the URL's certificate with a signed `ssl_check=1` post.
    if inbound::is_ssl_check(&body) {
        return StatusCode::OK.into_response();
    }
    match inbound::parse_command(&body) {
        Err(e) => malformed(e),
        Ok(ev) => store(&app, ev, NotStored::Tell).await,
    }
}

async fn interactive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = verified(&app, &headers, &body) {
        return r.into_response();
    }
    match inbound::parse_interaction(&body) {
        Err(e) => malformed(e),
        Ok(None) => StatusCode::OK.into_response(),
        Ok(Some(ev)) => store(&app, ev, NotStored::Retry).await,
    }
}
