//! Loading memory from files: Markdown and plain text cut into passages of
//! about a paragraph or a section, each remembering where it came from
//! (the heading path, or the line it starts on).
//!
//! Re-importing a file replaces what came from it before, so notes can be
//! edited and imported again without leaving stale passages behind.
//!
//! With `embeddings:` configured, passages get embeddings after they are
//! stored ([`embed_pending`]): right after an import, and from the daemon
//! for everything else (notes the `memory_write` tool saves, imports by
//! other processes, passages stored while the provider was down).

use std::path::Path;

use pincer_commands::ScopeName;

use crate::store::memory::{NewItem, replace_source};
use crate::store::{Store, StoreError, audit};

/// Passages per embeddings call.
const EMBED_BATCH: i64 = 64;
/// How often the daemon looks for passages without an embedding.
pub const EMBED_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Embeds every passage that has no embedding yet, a batch at a time.
/// Returns how many were embedded (0 when embeddings are not configured).
pub async fn embed_pending(app: &crate::app::App) -> anyhow::Result<usize> {
    let Some(cfg) = &app.config.embeddings else { return Ok(0) };
    let Some(provider) = app.providers.remote(Some(&cfg.provider)) else { return Ok(0) };
    let mut done = 0;
    loop {
        let mut conn = app.store.pool.acquire().await?;
        let rows = crate::store::memory::unembedded(&mut conn, EMBED_BATCH).await?;
        let Some(_) = rows.first() else { break };
        let inputs: Vec<&str> = rows.iter().map(|(_, _, body)| body.as_str()).collect();
        match embed_texts(app, provider, &cfg.model, inputs).await {
            Ok(vectors) => {
                for ((scope, id, _), vector) in rows.iter().zip(&vectors) {
                    crate::store::memory::set_embedding(&mut conn, scope, *id, vector).await?;
                }
            }
            // The provider is down or busy: try again later.
            Err(e) if e.retryable() => return Err(e.into()),
            // The provider refused the batch: one passage may be the cause
            // (too long, say). Each alone; one it refuses is marked with an
            // empty embedding (ranked by full text only), not retried forever.
            Err(_) => {
                for (scope, id, body) in &rows {
                    let vector = match embed_texts(app, provider, &cfg.model, vec![body.as_str()]).await {
                        Ok(mut v) => v.pop().unwrap_or_default(),
                        Err(e) if e.retryable() => return Err(e.into()),
                        Err(e) => {
                            tracing::warn!(error = %e, scope, id, "the provider refused to embed a passage");
                            Vec::new()
                        }
                    };
                    crate::store::memory::set_embedding(&mut conn, scope, *id, &vector).await?;
                }
            }
        }
        done += rows.len();
        if (rows.len() as i64) < EMBED_BATCH {
            break;
        }
    }
    Ok(done)
}

async fn embed_texts(
    app: &crate::app::App,
    provider: &crate::config::ProviderConfig,
    model: &str,
    inputs: Vec<&str>,
) -> Result<Vec<Vec<f32>>, crate::llm::ProviderError> {
    crate::llm::with_retries(provider.max_retries, || {
        crate::llm::openai::embed(provider, app.providers.http(), model, &inputs)
    })
    .await
}

/// Embeds new passages every [`EMBED_EVERY`] while this process holds the
/// `embeddings` lease, until `shutdown` flips to true.
pub async fn embed_loop(app: std::sync::Arc<crate::app::App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if app.config.embeddings.is_none() {
        return;
    }
    let holder = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4());
    let mut failures = 0;
    loop {
        let mut wait = EMBED_EVERY;
        match crate::store::leases::acquire(&app.store.pool, "embeddings", &holder, EMBED_EVERY * 6).await {
            Ok(true) => match embed_pending(&app).await {
                Ok(n) => {
                    failures = 0;
                    if n > 0 {
                        tracing::info!(passages = n, "embedded new memory passages");
                    }
                }
                Err(error) => {
                    failures += 1;
                    wait = crate::backoff::backoff(failures, EMBED_EVERY, std::time::Duration::from_secs(300));
                    tracing::warn!(%error, "embedding memory failed; full-text ranking still works");
                }
            },
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not take the embeddings lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A passage grows to about this many characters before a new one starts.
const TARGET_CHARS: usize = 900;

/// Cuts a document into passages. Markdown headings (`#`…) start a new
/// passage and name it; paragraphs are kept whole where they fit.
pub fn chunk(text: &str, markdown: bool) -> Vec<NewItem> {
    let mut out = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let mut first_line = 0usize;
    let locator = |headings: &[(usize, String)], line: usize| {
        if headings.is_empty() {
            format!("line {line}")
        } else {
            headings.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ")
        }
    };
    let flush = |body: &mut String, headings: &[(usize, String)], first_line: usize, out: &mut Vec<NewItem>| {
        let text = body.trim();
        if !text.is_empty() {
            out.push(NewItem { locator: locator(headings, first_line), body: text.to_string() });
        }
        body.clear();
    };
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if markdown && trimmed.starts_with("```") {
            in_fence = !in_fence;
        }
        let heading_level = if markdown && !in_fence { trimmed.chars().take_while(|c| *c == '#').count() } else { 0 };
        if (1..=6).contains(&heading_level) && trimmed[heading_level..].starts_with(' ') {
            flush(&mut body, &headings, first_line, &mut out);
            let title = trimmed[heading_level..].trim().to_string();
            headings.retain(|(level, _)| *level < heading_level);
            headings.push((heading_level, title.clone()));
            // The heading itself is searchable text of its section.
            body.push_str(&title);
            body.push('\n');
            first_line = n + 1;
            continue;
        }
        if trimmed.is_empty() && body.chars().count() >= TARGET_CHARS {
            flush(&mut body, &headings, first_line, &mut out);
            continue;
        }
        if body.is_empty() {
            first_line = n + 1;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&mut body, &headings, first_line, &mut out);
    // A section that is only its heading says nothing on its own.
    out.retain(|item| item.body.contains('\n') || !markdown);
    out
}

/// What one import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The file (as given).
    pub source: String,
    /// Passages stored.
    pub passages: usize,
    /// Passages from an earlier import of the same file that were replaced.
    pub replaced: u64,
}

/// Errors from importing a file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read (or is not UTF-8 text).
    #[error("cannot read {path}: {why}")]
    Read { path: String, why: String },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports one file into `scope`, audited as `memory.import` by `actor`.
pub async fn import_file(
    store: &Store,
    scope: &ScopeName,
    path: &Path,
    actor: &str,
) -> Result<ImportReport, ImportError> {
    let source = source_name(path);
    let text =
        std::fs::read_to_string(path).map_err(|e| ImportError::Read { path: source.clone(), why: e.to_string() })?;
    let markdown = matches!(path.extension().and_then(|e| e.to_str()), Some("md" | "markdown"));
    let items: Vec<NewItem> =
        chunk(&pincer_commands::clean_text(&text.replace("\r\n", "\n")).replace('\t', "    "), markdown);
    let mut tx = store.pool.begin().await.map_err(StoreError::from)?;
    let mut replaced = replace_source(&mut tx, scope, &source, actor, &items).await?;
    // Imported before sources were named this way (as the path was typed).
    let typed = path.display().to_string();
    if typed != source {
        replaced += crate::store::memory::forget_source(&mut tx, scope, &typed).await?;
    }
    audit::append(
        &mut tx,
        vec![audit::AuditEntry::new(
            None,
            "memory.import",
            serde_json::json!({"scope": scope, "source": source, "passages": items.len(), "replaced": replaced, "actor": actor}),
        )],
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(ImportReport { source, passages: items.len(), replaced })
}

/// How a file is named in memory (and cited in answers): relative to the
/// current folder when it lies inside it, else by its absolute path — so
/// `notes/a.md`, `./notes/a.md` and `/srv/team/notes/a.md` run from
/// `/srv/team` are one source, and importing it again replaces it.
fn source_name(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(here) => relative_to(path, &here),
        Err(_) => path.display().to_string(),
    }
}

/// `path` (absolute, or relative to `here`) named relative to `here` when
/// inside it, else absolute; `.` components dropped, symlinks and `..`
/// left as written. Nothing is inside `/`: a file there keeps its
/// absolute name.
fn relative_to(path: &Path, here: &Path) -> String {
    let full: std::path::PathBuf = here.join(path).components().collect();
    let inside = here
        .parent()
        .and_then(|_| full.strip_prefix(here).ok())
        .filter(|rel| !rel.components().any(|c| c == std::path::Component::ParentDir));
    inside.unwrap_or(&full).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_named_relative_to_the_current_folder_when_inside_it() {
        let here = Path::new("/srv/team");
        for typed in ["/srv/team/notes/a.md", "notes/a.md", "./notes/a.md", "notes/./a.md", "/srv/team/./notes/a.md"] {
            assert_eq!(relative_to(Path::new(typed), here), "notes/a.md", "{typed}");
        }
        assert_eq!(relative_to(Path::new("/srv/other/a.md"), here), "/srv/other/a.md");
        assert_eq!(relative_to(Path::new("/srv/teammates/a.md"), here), "/srv/teammates/a.md");
        assert_eq!(relative_to(Path::new("../other/a.md"), here), "/srv/team/../other/a.md");
        assert_eq!(relative_to(Path::new("data/a.md"), Path::new("/")), "/data/a.md", "nothing is inside /");
    }

    #[test]
    fn markdown_sections_become_passages_named_by_their_headings() {
        let doc = "# Postmortem: db outage\n\nIntro line.\n\n## Root cause\n\nThe disk filled.\nWAL grew.\n\n## Fix\n\nAlerts on disk.\n";
        let items = chunk(doc, true);
        let got: Vec<(&str, &str)> = items.iter().map(|i| (i.locator.as_str(), i.body.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("Postmortem: db outage", "Postmortem: db outage\n\nIntro line."),
                ("Postmortem: db outage > Root cause", "Root cause\n\nThe disk filled.\nWAL grew."),
                ("Postmortem: db outage > Fix", "Fix\n\nAlerts on disk."),
            ]
        );
    }

    #[test]
    fn long_text_splits_at_paragraphs_and_names_lines() {
        let para = "word ".repeat(200);
        let doc = format!("{para}\n\n{para}\n\nlast");
        let items = chunk(&doc, false);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].locator, "line 1");
        assert_eq!(items[1].locator, "line 3");
        assert_eq!(items[2].locator, "line 5");
    }

    #[test]
    fn hashes_inside_code_fences_are_not_headings() {
        let doc = "# Runbook\n\n```sh\n# restart it\nsystemctl restart db\n```\n";
        let items = chunk(doc, true);
        assert_eq!(items.len(), 1);
        assert!(items[0].body.contains("# restart it"));
    }
}
