//! The extractive provider: answers with the sentences from memory that best
//! match the question, and says where each came from. No model, no key.

use pincer_commands::ScopeName;

use crate::store::memory::Passage;

/// How many passages an answer quotes.
const MAX_PASSAGES: usize = 3;
/// How long one quoted excerpt may be, in characters.
const MAX_EXCERPT: usize = 320;

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "was", "were", "why", "what", "when", "where", "who", "how", "did", "does", "do", "is",
    "of", "to", "in", "on", "a", "an", "it", "its", "be", "we", "our", "you", "your", "with", "that", "this", "from",
    "at", "by", "or", "as", "can", "could", "should", "would", "there", "their", "about", "which", "has", "have",
    "had", "not", "any", "all",
];

/// Lowercase words of three letters or more that are not stopwords, cut to
/// five characters so "failed" and "failure" meet at "fail…".
fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| w.chars().take(5).collect())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Splits text into sentences. Lines of one paragraph are joined (Markdown
/// wraps sentences across lines); blank lines and list items start a new
/// segment; within a segment, `.`, `!` and `?` before a space end a sentence.
fn sentences(text: &str) -> Vec<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        let list_item = t.starts_with("- ")
            || t.starts_with("* ")
            || t.split_once(". ").is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if t.is_empty() || list_item {
            if !current.trim().is_empty() {
                segments.push(std::mem::take(&mut current));
            }
            current.clear();
        }
        if !t.is_empty() {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(t.trim_start_matches(['-', '*', '#']).trim_start());
        }
    }
    if !current.trim().is_empty() {
        segments.push(current);
    }
    let mut out = Vec::new();
    for seg in &segments {
        let bytes = seg.as_bytes();
        let mut start = 0;
        for (i, c) in seg.char_indices() {
            if matches!(c, '.' | '!' | '?') && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace()) {
                let s = seg[start..=i].trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
                start = i + 1;
            }
        }
        let s = seg[start..].trim();
        if !s.is_empty() {
            out.push(s.to_string());
        }
    }
    out
}

/// The sentences of `body` that share the most terms with the question, in
/// their original order, within [`MAX_EXCERPT`] characters.
fn excerpt(body: &str, query: &[String]) -> String {
    let all = sentences(body);
    // Headings and fragments (under four words) only when nothing else is there.
    let sents: Vec<&str> =
        match all.iter().filter(|s| s.split_whitespace().count() >= 4).map(String::as_str).collect::<Vec<_>>() {
            v if v.is_empty() => all.iter().map(String::as_str).collect(),
            v => v,
        };
    let score = |s: &str| terms(s).iter().filter(|t| query.contains(t)).count();
    let mut ranked: Vec<(usize, usize)> = sents.iter().enumerate().map(|(i, s)| (score(s), i)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut chosen: Vec<usize> = Vec::new();
    let mut len = 0;
    for (s, i) in ranked {
        let n = sents[i].chars().count();
        if (s == 0 && !chosen.is_empty()) || (len + n > MAX_EXCERPT && !chosen.is_empty()) {
            continue;
        }
        chosen.push(i);
        len += n + 1;
    }
    // The sentence after a match often finishes its thought ("… It ships in
    // November."): add it where it fits.
    for i in chosen.clone() {
        if i + 1 < sents.len() && !chosen.contains(&(i + 1)) && len + sents[i + 1].chars().count() <= MAX_EXCERPT {
            chosen.push(i + 1);
            len += sents[i + 1].chars().count() + 1;
        }
    }
    chosen.sort_unstable();
    let text = chosen.iter().map(|i| sents[*i]).collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX_EXCERPT {
        format!("{}…", text.chars().take(MAX_EXCERPT).collect::<String>().trim_end())
    } else {
        text
    }
}

/// The answer text for a question, from the passages found.
pub fn compose(question: &str, passages: &[Passage], scopes: &[ScopeName]) -> String {
    let scope_list = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if passages.is_empty() {
        return if scopes.is_empty() {
            "This agent reads no memory scopes, and no model is configured, so I have nothing to answer from."
                .to_string()
        } else {
            format!(
                "I found nothing in memory ({scope_list}) that matches your question. Try other words, or ask an admin to import the relevant notes."
            )
        };
    }
    let query = terms(question);
    let mut out = String::from("From memory (no model configured, so these are the closest passages):");
    for p in passages.iter().take(MAX_PASSAGES) {
        let place = if p.locator.is_empty() { p.source.clone() } else { format!("{} § {}", p.source, p.locator) };
        out.push_str(&format!("\n• {} — {}: {}", excerpt(&p.body, &query), p.scope, place));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(scope: &str, body: &str) -> Passage {
        Passage {
            id: 1,
            scope: scope.into(),
            source: "notes.md".into(),
            locator: "Deploys".into(),
            body: body.into(),
            rank: 1.0,
        }
    }

    #[test]
    fn quotes_the_matching_sentences_and_their_source() {
        let p = passage(
            "incidents",
            "The office moved in May. The deploy failed because the migration locked the users table. We fixed it by noon. Lunch is at noon.",
        );
        let text = compose("why did the deploy fail?", &[p], &[ScopeName::parse("incidents").unwrap()]);
        assert!(
            text.contains("The deploy failed because the migration locked the users table. We fixed it by noon."),
            "{text}"
        );
        assert!(!text.contains("office") && !text.contains("Lunch"), "{text}");
        assert!(text.contains("— incidents: notes.md § Deploys"), "{text}");
    }

    #[test]
    fn says_so_when_nothing_matches() {
        let text = compose("anything", &[], &[ScopeName::parse("incidents").unwrap()]);
        assert!(text.starts_with("I found nothing in memory (incidents)"), "{text}");
    }

    #[test]
    fn long_passages_are_cut() {
        let p = passage("s", &"word ".repeat(400));
        let text = compose("word", &[p], &[]);
        assert!(text.chars().count() < 450, "{}", text.len());
    }

    #[test]
    fn sentences_split_on_terminators_and_lines() {
        assert_eq!(
            sentences("# Title\n\nOne two\nthree. Four v1.2 five?\n- item one\n- item two"),
            vec!["Title", "One two three.", "Four v1.2 five?", "item one", "item two"]
        );
    }
}
