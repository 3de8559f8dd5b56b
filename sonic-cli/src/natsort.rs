//! `natsort.natsorted` with default options, the order upstream lists features in.
//!
//! A name is split into runs of digits (compared as integers) and runs of other characters
//! (compared as plain strings, so uppercase sorts before lowercase). natsort puts an empty string
//! in front of a name that starts with a digit so text always meets text. Names with equal keys
//! (`a01`, `a1`) keep upstream's unspecified order in Python; here they fall back to byte order so
//! the output is deterministic.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk<'a> {
    Text(&'a str),
    // Digits without leading zeros: longer is larger, equal length compares as text.
    Number(usize, &'a str),
}

fn key(s: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    if rest.starts_with(|c: char| c.is_ascii_digit()) {
        out.push(Chunk::Text(""));
    }
    while !rest.is_empty() {
        let digits = rest.starts_with(|c: char| c.is_ascii_digit());
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        if digits {
            let trimmed = run.trim_start_matches('0');
            out.push(Chunk::Number(trimmed.len(), trimmed));
        } else {
            out.push(Chunk::Text(run));
        }
        rest = tail;
    }
    out
}

/// Natural order of two names.
pub fn compare(a: &str, b: &str) -> Ordering {
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// Sorts names in natural order.
pub fn sort<T: AsRef<str>>(names: &mut [T]) {
    names.sort_by(|a, b| compare(a.as_ref(), b.as_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_first_and_numbers_by_value() {
        let mut v = vec!["bgp10", "alpha", "bgp9", "Zeta"];
        sort(&mut v);
        assert_eq!(v, vec!["Zeta", "alpha", "bgp9", "bgp10"]);
    }

    #[test]
    fn leading_digits_sort_before_text() {
        let mut v = vec!["b", "10a", "9a", "a"];
        sort(&mut v);
        assert_eq!(v, vec!["9a", "10a", "a", "b"]);
    }

    #[test]
    fn equal_keys_fall_back_to_byte_order() {
        let mut v = vec!["a1", "a01"];
        sort(&mut v);
        assert_eq!(v, vec!["a01", "a1"]);
    }
}
