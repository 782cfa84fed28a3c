//! The redactor: every secret value Pincer resolves is registered here, and
//! everything that leaves the process through a person's eyes or a log —
//! chat replies, log lines, audit metadata, tool results — passes through
//! [`scrub`], which replaces each secret, and its base64 and URL-encoded
//! forms, with `[redacted]`.
//!
//! One registry per process: secrets are process-wide, and a value that is
//! a secret anywhere is a secret everywhere.

use std::borrow::Cow;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

/// Values shorter than this are not registered: scrubbing a three-letter
/// word out of every reply would do more harm than good, and no credential
/// is that short.
pub const MIN_LEN: usize = 8;

static PATTERNS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The forms of a secret that are scrubbed: the value, its base64 (standard
/// and URL-safe, padded or not) and its URL encoding.
fn forms(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut out = vec![
        value.to_string(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        url_encode(value),
    ];
    out.sort();
    out.dedup();
    out
}

fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Registers a secret value. Short values are ignored (see [`MIN_LEN`]).
pub fn register(value: &str) {
    if value.chars().count() < MIN_LEN {
        return;
    }
    let Ok(mut patterns) = PATTERNS.write() else { return };
    for form in forms(value) {
        if !patterns.contains(&form) {
            patterns.push(form);
        }
    }
    // Longest first, so a secret's base64 is not half-scrubbed by a shorter one.
    patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
}

/// Whether `text` holds any registered secret (no copy is made).
pub fn contains_secret(text: &str) -> bool {
    PATTERNS.read().map(|p| dirty(text, &p)).unwrap_or(false)
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Ok(patterns) = PATTERNS.read() else { return Cow::Borrowed(text) };
    if !dirty(text, &patterns) {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for p in patterns.iter() {
        if out.contains(p.as_str()) {
            out = Cow::Owned(out.replace(p.as_str(), MASK));
        }
    }
    out
}

/// Whether `text` holds any registered secret.
fn dirty(text: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| text.contains(p.as_str()))
}

fn json_dirty(v: &serde_json::Value, patterns: &[String]) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => dirty(s, patterns),
        Value::Array(items) => items.iter().any(|i| json_dirty(i, patterns)),
        Value::Object(map) => map.iter().any(|(k, v)| dirty(k, patterns) || json_dirty(v, patterns)),
        _ => false,
    }
}

/// A JSON value with every string (and key) scrubbed. A clean value (the
/// usual case) is returned as it is, without being rebuilt.
pub fn scrub_json(v: serde_json::Value) -> serde_json::Value {
    let clean = match PATTERNS.read() {
        Ok(p) => p.is_empty() || !json_dirty(&v, &p),
        Err(_) => true,
    };
    if clean {
        return v;
    }
    scrub_value(v)
}

fn scrub_value(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(scrub(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub_value).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (scrub(&k).into_owned(), scrub_value(v))).collect())
        }
        other => other,
    }
}

/// A writer that scrubs what passes through it (tracing writes one event
/// per call, so a secret is never split across writes).
#[derive(Debug)]
pub struct Scrubbed<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The log writer: stderr, scrubbed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubbedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbedStderr {
    type Writer = Scrubbed<std::io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        Scrubbed(std::io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_scrubbed() {
        let canary = "canary-Zq9/+x=&y";
        register(canary);
        let b64 = STANDARD.encode(canary);
        let b64url = URL_SAFE_NO_PAD.encode(canary);
        let text = format!("raw {canary} b64 {b64} url {} b64url {b64url}.", url_encode(canary));
        let out = scrub(&text);
        assert!(!out.contains(canary) && !out.contains(&b64) && !out.contains(&b64url), "{out}");
        assert!(!out.contains(&url_encode(canary)), "{out}");
        assert_eq!(out.matches(MASK).count(), 4, "{out}");
        let json = scrub_json(serde_json::json!({"k": [format!("x{canary}x")], canary: 1}));
        assert_eq!(json, serde_json::json!({"k": ["x[redacted]x"], "[redacted]": 1}));
    }

    #[test]
    fn log_lines_are_scrubbed_on_their_way_out() {
        use std::io::Write;
        register("log-canary-4e1d");
        let mut out = Scrubbed(Vec::new());
        writeln!(out, "WARN provider failed key=log-canary-4e1d").unwrap();
        assert_eq!(String::from_utf8(out.0).unwrap(), "WARN provider failed key=[redacted]\n");
    }

    #[test]
    fn short_values_and_clean_text_are_left_alone() {
        register("abc");
        assert!(matches!(scrub("abc is fine"), Cow::Borrowed("abc is fine")));
    }

    #[test]
    fn url_encoding_escapes_reserved_bytes() {
        assert_eq!(url_encode("a b/c"), "a%20b%2Fc");
    }
}
