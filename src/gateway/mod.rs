//! The platform endpoints of `pincer serve`: one module per platform. Each
//! verifies the request before reading it, normalises it through its
//! adapter, stores it ([`crate::ingest`]) and only then acknowledges.
//! Routing and answering happen in the worker, off the request path.

pub mod slack;

use std::sync::Arc;

use crate::app::App;

/// The largest request body a platform endpoint reads; larger ones get 413
/// before any parsing. Slack's own payloads stay well under this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// All platform routes.
pub fn routes() -> axum::Router<Arc<App>> {
    slack::routes().layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}
