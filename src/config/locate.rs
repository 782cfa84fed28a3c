//! Finds where a key path (`agents.ops-oncall.channels[1]`) sits in a YAML
//! file, so errors found after parsing (an owner who is not a user, a prompt
//! file that is missing) still point at a line and column.
//!
//! It reads block-style YAML line by line — the style Pincer's docs and
//! examples use — and understands `- ` list items and one-line `[a, b]` flow
//! lists. When a path cannot be followed to the end it answers with the
//! deepest part it found, which is still the right neighbourhood.

/// One step in a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A position in a list.
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => write!(f, ".{k}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path as `agents.ops-oncall.channels[1]`.
pub fn path_string(path: &[Seg]) -> String {
    path.iter().map(Seg::to_string).collect::<String>().trim_start_matches('.').to_string()
}

struct Token<'a> {
    line: usize,
    col: usize,
    text: &'a str,
}

fn tokens(src: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    for (n, raw) in src.lines().enumerate() {
        let mut col = raw.len() - raw.trim_start_matches(' ').len();
        let mut text = &raw[col..];
        if text.is_empty() || text.starts_with('#') || text.starts_with("---") {
            continue;
        }
        while let Some(rest) = text.strip_prefix('-').filter(|r| r.is_empty() || r.starts_with(' ')) {
            out.push(Token { line: n + 1, col, text: "-" });
            let skipped = 1 + (rest.len() - rest.trim_start_matches(' ').len());
            col += skipped;
            text = &text[skipped..];
        }
        if !text.is_empty() {
            out.push(Token { line: n + 1, col, text });
        }
    }
    out
}

fn key_matches(text: &str, key: &str) -> bool {
    let unquoted = [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")];
    unquoted.iter().any(|k| text == k || text.starts_with(&format!("{k} ")))
}

/// Returns the 1-based (line, column) of `path` in `src`.
pub fn locate(src: &str, path: &[Seg]) -> (usize, usize) {
    let toks = tokens(src);
    let mut best = (1, 1);
    let (mut start, mut end, mut parent_col): (usize, usize, isize) = (0, toks.len(), -1);
    let mut parent: Option<usize> = None;
    for seg in path {
        let child_col = toks[start..end].iter().map(|t| t.col as isize).filter(|c| *c > parent_col).min();
        let found = child_col.and_then(|cc| {
            let mut children = (start..end).filter(|&i| toks[i].col as isize == cc);
            match seg {
                Seg::Key(k) => children.find(|&i| key_matches(toks[i].text, k)),
                Seg::Index(n) => children.filter(|&i| toks[i].text == "-").nth(*n),
            }
        });
        let Some(i) = found else {
            // A one-line flow list: `channels: ["slack:#a", "slack:#b"]`.
            if let (Seg::Index(n), Some(p)) = (seg, parent) {
                let t = &toks[p];
                if let Some(open) = t.text.find('[') {
                    let mut offset = open + 1;
                    for (k, item) in t.text[open + 1..].split(',').enumerate() {
                        if k == *n {
                            let lead = item.len() - item.trim_start().len();
                            return (t.line, t.col + offset + lead + 1);
                        }
                        offset += item.len() + 1;
                    }
                }
            }
            return best;
        };
        best = (toks[i].line, toks[i].col + 1);
        parent = Some(i);
        parent_col = toks[i].col as isize;
        start = i + 1;
        end = (start..toks.len()).find(|&j| toks[j].col as isize <= parent_col).unwrap_or(toks.len());
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
org:
  users:
    - email: dan@acme.com
      role: admin
    - { email: alice@acme.com, role: member }
agents:
  # the on-call agent
  ops-oncall:
    owner: dan@acme.com
    channels: [\"slack:#oncall\", \"telegram:+1555\"]
    memory_scopes:
      - incidents
      - postmortems
";

    fn k(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    #[test]
    fn finds_nested_keys_list_items_and_flow_items() {
        assert_eq!(locate(SRC, &[k("agents"), k("ops-oncall"), k("owner")]), (9, 5));
        assert_eq!(locate(SRC, &[k("org"), k("users"), Seg::Index(0), k("role")]), (4, 7));
        assert_eq!(locate(SRC, &[k("org"), k("users"), Seg::Index(1)]), (5, 5));
        assert_eq!(locate(SRC, &[k("agents"), k("ops-oncall"), k("memory_scopes"), Seg::Index(1)]), (13, 7));
        assert_eq!(locate(SRC, &[k("agents"), k("ops-oncall"), k("channels"), Seg::Index(1)]), (10, 33));
    }

    #[test]
    fn a_missing_key_answers_with_the_deepest_found() {
        assert_eq!(locate(SRC, &[k("agents"), k("ops-oncall"), k("prompt")]), (8, 3));
        assert_eq!(locate(SRC, &[k("nope")]), (1, 1));
    }

    #[test]
    fn paths_render_like_config_keys() {
        assert_eq!(path_string(&[k("agents"), k("x"), k("channels"), Seg::Index(2)]), "agents.x.channels[2]");
    }
}
