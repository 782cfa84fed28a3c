//! Slack: the Events API, slash commands and interactivity over HTTP or
//! Socket Mode, and the Web API for replies.
//!
//! - [`verify`] — the v0 request signature (HMAC-SHA256, constant-time,
//!   five minutes either side of now);
//! - [`inbound`] — Slack payloads → [`crate::ChannelEvent`];
//! - [`client`] — the Web API (`SLACK_API_URL` configurable);
//! - [`socket`] — Socket Mode, for teams without a public URL;
//! - [`manifest`] — the app manifest `pincer slack manifest` prints.

pub mod client;
pub mod inbound;
pub mod manifest;
pub mod socket;

use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::{SlackEventSignatureVerifier, SlackEventSignatureVerifierError};

pub use client::SlackApi;
pub use inbound::{BotIdentity, InboundError, Pushed};

/// Shown to the sender of a slash command that could not be stored (Slack
/// never sends a slash command again, and would show only an error code).
pub const COMMAND_NOT_STORED: &str = "Pincer could not confirm that it took your command: its database did not answer. If nothing comes back within a minute, please run it again.";

/// Slack's request signature header.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// Slack's request timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// The header Slack sets on Events API retries.
pub const RETRY_HEADER: &str = "x-slack-retry-num";

/// Why a request's signature was refused. Every variant means HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The body is not UTF-8 (Slack's bodies always are).
    #[error("body is not UTF-8")]
    NotUtf8,
    /// The signature does not match the body and timestamp.
    #[error("signature does not match")]
    Mismatch,
    /// The timestamp is more than five minutes from now, either way.
    #[error("timestamp outside the five-minute window")]
    Stale,
}

/// Checks a request's v0 signature. slack-morphism compares in constant
/// time and refuses timestamps more than 300 s in the past or the future.
pub fn verify(
    secret: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let body = std::str::from_utf8(body).map_err(|_| SignatureError::NotUtf8)?;
    let verifier = SlackEventSignatureVerifier::new(&SlackSigningSecret::new(secret.to_string()));
    verifier.verify(signature, body, timestamp).map_err(|e| match e {
        SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_) => SignatureError::Stale,
        _ => SignatureError::Mismatch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs like Slack does, with an HMAC implementation independent of
    /// the verifier's.
    fn sign(secret: &str, ts: i64, body: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn a_correct_signature_passes() {
        let body = "token=x&text=hi";
        let ts = now();
        assert_eq!(verify("s3cret", Some(&sign("s3cret", ts, body)), Some(&ts.to_string()), body.as_bytes()), Ok(()));
    }

    #[test]
    fn forged_tampered_stale_and_future_requests_fail() {
        let body = "token=x&text=hi";
        let ts = now();
        let sig = sign("s3cret", ts, body);
        assert_eq!(verify("other", Some(&sig), Some(&ts.to_string()), body.as_bytes()), Err(SignatureError::Mismatch));
        assert_eq!(
            verify("s3cret", Some(&sig), Some(&ts.to_string()), b"token=x&text=HI"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", Some(&sig), Some(&(ts + 1).to_string()), body.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        for skew in [-305, 305, -3600, 86_400] {
            let t = ts + skew;
            assert_eq!(
                verify("s3cret", Some(&sign("s3cret", t, body)), Some(&t.to_string()), body.as_bytes()),
                Err(SignatureError::Stale),
                "{skew}"
            );
        }
        let t = ts - 290;
        assert_eq!(verify("s3cret", Some(&sign("s3cret", t, body)), Some(&t.to_string()), body.as_bytes()), Ok(()));
        assert_eq!(
            verify("s3cret", None, Some(&ts.to_string()), body.as_bytes()),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(verify("s3cret", Some(&sig), None, body.as_bytes()), Err(SignatureError::Missing(TIMESTAMP_HEADER)));
        assert_eq!(verify("s3cret", Some(&sig), Some(&ts.to_string()), &[0xff, 0xfe]), Err(SignatureError::NotUtf8));
    }
}
