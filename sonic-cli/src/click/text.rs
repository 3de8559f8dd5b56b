//! Python text helpers that click's messages depend on: `repr()` of a string, `textwrap` filling,
//! click's `make_default_short_help` and difflib's `get_close_matches`.
//!
//! Each reproduces the Python behaviour for the inputs a command line can produce; the few
//! simplifications are named on the function.

/// Python's `repr(str)`, used by click in `No such command 'x'.` and `'foo' is not one of ...`.
///
/// Quotes with `'` unless the text holds `'` and no `"`. Non-printable characters are escaped as
/// Python does for the C0/C1 control ranges, DEL, NBSP and the soft hyphen; other non-ASCII
/// characters are printed as they are (Python consults the full Unicode database for that choice).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `textwrap.TextWrapper(width, initial_indent, subsequent_indent,
/// replace_whitespace=False).fill(text)` as click calls it.
///
/// Chunks are runs of whitespace and runs of non-whitespace, the latter split after the hyphens
/// of hyphenated words as Python's `wordsep_re` does (`<feature-` / `name>`); its em-dash rule
/// (`--` between words) is not reproduced.
pub fn fill(text: &str, width: usize, initial_indent: &str, subsequent_indent: &str) -> String {
    let text = expand_tabs(text);
    let mut chunks: Vec<String> = Vec::new();
    let mut current: Vec<char> = Vec::new();
    let mut current_is_space = None;
    for c in text.chars() {
        let is_space = c.is_whitespace();
        if current_is_space.is_some_and(|s| s != is_space) {
            push_chunks(&mut chunks, &std::mem::take(&mut current));
        }
        current.push(c);
        current_is_space = Some(is_space);
    }
    push_chunks(&mut chunks, &current);
    chunks.reverse();

    let len = |s: &str| s.chars().count();
    let mut lines: Vec<String> = Vec::new();
    while !chunks.is_empty() {
        let mut cur_line: Vec<String> = Vec::new();
        let mut cur_len = 0usize;
        let indent = if lines.is_empty() {
            initial_indent
        } else {
            subsequent_indent
        };
        let line_width = width.saturating_sub(len(indent));
        if !lines.is_empty() && chunks.last().is_some_and(|c| c.trim().is_empty()) {
            chunks.pop();
        }
        while let Some(chunk) = chunks.last() {
            let l = len(chunk);
            if cur_len + l <= line_width {
                cur_len += l;
                if let Some(chunk) = chunks.pop() {
                    cur_line.push(chunk);
                }
            } else {
                break;
            }
        }
        if let Some(chunk) = chunks.last_mut()
            && len(chunk) > line_width
        {
            // textwrap._handle_long_word with break_long_words=True and (Python 3.10 and
            // later) break_on_hyphens: after the last hyphen that fits, if a non-hyphen
            // precedes it.
            let space_left = if line_width < 1 {
                1
            } else {
                line_width - cur_len
            };
            let chars: Vec<char> = chunk.chars().collect();
            let mut end = space_left;
            if chars.len() > space_left
                && let Some(hyphen) = chars[..space_left].iter().rposition(|c| *c == '-')
                && hyphen > 0
                && chars[..hyphen].iter().any(|c| *c != '-')
            {
                end = hyphen + 1;
            }
            let head: String = chars[..end.min(chars.len())].iter().collect();
            let tail: String = chars[end.min(chars.len())..].iter().collect();
            cur_line.push(head);
            *chunk = tail;
            if chunk.is_empty() {
                chunks.pop();
            }
        }
        if cur_line.last().is_some_and(|c| c.trim().is_empty()) {
            cur_line.pop();
        }
        if !cur_line.is_empty() {
            lines.push(format!("{indent}{}", cur_line.concat()));
        }
    }
    lines.join("\n")
}

/// textwrap's `[^\d\W]`: a word character that is not a digit.
fn is_letter(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphabetic() || *c == '_')
}

/// Pushes `run` (all whitespace or all non-whitespace) as chunks: a non-whitespace run is split
/// after each hyphen that has two letters (or `letter-letter`) before it and `letter`,
/// optionally `-`, `letter` after it, textwrap's hyphenated-word rule.
fn push_chunks(chunks: &mut Vec<String>, run: &[char]) {
    if run.is_empty() {
        return;
    }
    let at = |i: usize, back: usize| i.checked_sub(back).and_then(|j| run.get(j));
    let mut start = 0;
    for (i, c) in run.iter().enumerate() {
        if *c != '-' || i == start {
            continue;
        }
        let before = (is_letter(at(i, 2)) && is_letter(at(i, 1)))
            || (is_letter(at(i, 3)) && at(i, 2) == Some(&'-') && is_letter(at(i, 1)));
        let after = is_letter(run.get(i + 1))
            && (is_letter(run.get(i + 2))
                || (run.get(i + 2) == Some(&'-') && is_letter(run.get(i + 3))));
        if before && after {
            chunks.push(run[start..=i].iter().collect());
            start = i + 1;
        }
    }
    chunks.push(run[start..].iter().collect());
}

/// click's `wrap_text(..., preserve_paragraphs=True)`: paragraphs are separated by blank lines,
/// the lines of a paragraph are joined with one space, each paragraph is filled.
pub fn fill_paragraphs(text: &str, width: usize, indent: &str) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut buf: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            if !buf.is_empty() {
                paragraphs.push(buf.join(" "));
                buf.clear();
            }
        } else {
            buf.push(line.trim_start());
        }
    }
    if !buf.is_empty() {
        paragraphs.push(buf.join(" "));
    }
    paragraphs
        .iter()
        .map(|p| fill(p, width, indent, indent))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn expand_tabs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut column = 0usize;
    for c in text.chars() {
        match c {
            '\t' => {
                let n = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', n));
                column += n;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            c => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

/// click 8.1 `make_default_short_help(help, max_length)`: the first sentence of the first
/// paragraph, cut at a word boundary with `...` when longer than `max_length`.
pub fn make_default_short_help(help: &str, max_length: usize) -> String {
    let first = help.split("\n\n").next().unwrap_or_default();
    let mut words: Vec<&str> = first.split_whitespace().collect();
    if words.first() == Some(&"\u{8}") {
        words.remove(0);
    }
    if words.is_empty() {
        return String::new();
    }
    let last_index = words.len() - 1;
    let mut total_length = 0usize;
    let mut cut = None;
    for (i, word) in words.iter().enumerate() {
        total_length += word.chars().count() + usize::from(i > 0);
        if total_length > max_length {
            cut = Some(i);
            break;
        }
        if word.ends_with('.') {
            return words[..=i].join(" ");
        }
        if total_length == max_length && i != last_index {
            cut = Some(i);
            break;
        }
    }
    let Some(mut i) = cut else {
        return words.join(" ");
    };
    total_length += 3;
    while i > 0 {
        total_length -= words[i].chars().count() + usize::from(i > 0);
        if total_length <= max_length {
            break;
        }
        i -= 1;
    }
    format!("{}...", words[..i].join(" "))
}

/// difflib's `get_close_matches(word, possibilities)` with `n=3, cutoff=0.6`: best first, ties by
/// the larger string as Python's `heapq.nlargest` on `(score, text)` does.
pub fn close_matches(word: &str, possibilities: &[&str]) -> Vec<String> {
    let w: Vec<char> = word.chars().collect();
    let mut scored: Vec<(f64, &str)> = possibilities
        .iter()
        .filter_map(|p| {
            let x: Vec<char> = p.chars().collect();
            let total = x.len() + w.len();
            if total == 0 {
                return Some((1.0, *p));
            }
            let ratio = 2.0 * matching_chars(&x, &w) as f64 / total as f64;
            (ratio >= 0.6).then_some((ratio, *p))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, p)| p.to_string())
        .collect()
}

/// Number of characters in difflib's matching blocks of `a` and `b` (no junk heuristic: it only
/// applies to sequences of 200 items or more).
fn matching_chars(a: &[char], b: &[char]) -> usize {
    let (i, j, k) = longest_match(a, b);
    if k == 0 {
        return 0;
    }
    k + matching_chars(&a[..i], &b[..j]) + matching_chars(&a[i + k..], &b[j + k..])
}

/// difflib's `find_longest_match`: the longest common block, earliest in `a`, then in `b`.
fn longest_match(a: &[char], b: &[char]) -> (usize, usize, usize) {
    let (mut best_i, mut best_j, mut best_k) = (0, 0, 0);
    let mut prev = vec![0usize; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            if ca == cb {
                let k = prev[j] + 1;
                cur[j + 1] = k;
                if k > best_k {
                    best_i = i + 1 - k;
                    best_j = j + 1 - k;
                    best_k = k;
                }
            }
        }
        prev = cur;
    }
    (best_i, best_j, best_k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(py_repr("foo"), "'foo'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("tab\there\n"), "'tab\\there\\n'");
        assert_eq!(py_repr("\u{1b}x"), "'\\x1bx'");
        assert_eq!(py_repr(""), "''");
    }

    #[test]
    fn fill_wraps_greedily_and_indents_continuations() {
        assert_eq!(
            fill("a bb ccc dddd", 8, "> ", "  "),
            "> a bb\n  ccc\n  dddd"
        );
        assert_eq!(fill("abcdefghij", 4, "", ""), "abcd\nefgh\nij");
        assert_eq!(fill("short", 78, "  ", "  "), "  short");
    }

    #[test]
    fn fill_breaks_hyphenated_words_after_the_hyphen_like_textwrap() {
        // Checked with Python 3.11 textwrap.fill.
        assert_eq!(
            fill("[OPTIONS] <feature-name> [REQUIRED_SERVICE]...", 20, "", ""),
            "[OPTIONS] <feature-\nname> [REQUIRED_SERV\nICE]..."
        );
        assert_eq!(fill("a kube-only thing", 12, "", ""), "a kube-only\nthing");
        assert_eq!(fill("a kube-only thing", 8, "", ""), "a kube-\nonly\nthing");
        assert_eq!(fill("x a-b-c y", 6, "", ""), "x\na-b-c\ny");
        assert_eq!(fill("ab-cd-ef", 4, "", ""), "ab-\ncd-\nef");
        // Long words break after a hyphen that fits; the dropped "whitespace" is the empty
        // head of `ab-1c`, so `34 ` keeps its space, as in Python.
        assert_eq!(fill("12-34 ab-1c", 3, "", ""), "12-\n34 \nab-\n1c");
        assert_eq!(fill("abcd-efgh", 6, "", ""), "abcd-\nefgh");
        assert_eq!(fill("--abcdefg", 4, "", ""), "--ab\ncdef\ng");
    }

    #[test]
    fn short_help_cuts_at_sentence_or_word() {
        assert_eq!(
            make_default_short_help("Show kube configuration", 45),
            "Show kube configuration"
        );
        assert_eq!(
            make_default_short_help("First sentence. Second one", 45),
            "First sentence."
        );
        assert_eq!(make_default_short_help("aaa bbb ccc ddd", 9), "aaa...");
        assert_eq!(make_default_short_help("", 45), "");
    }

    #[test]
    fn close_matches_follow_difflib() {
        assert_eq!(
            close_matches("--hel", &["--block", "--help"]),
            vec!["--help"]
        );
        assert_eq!(
            close_matches("--xyz", &["--block", "--help"]),
            Vec::<String>::new()
        );
        assert_eq!(
            close_matches("--blok", &["--block", "--help"]),
            vec!["--block"]
        );
    }
}
