//! Logging: `tracing` to stderr, filtered by `RUST_LOG`. Servers log at
//! info; interactive commands only warn, so a chat stays readable. Every
//! line passes through the redactor ([`crate::redact`]) on its way out.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(quiet: bool) {
    let default = if quiet { "warn" } else { "info,sqlx=warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::redact::ScrubbedStderr)
        .with_target(false)
        .try_init();
}
