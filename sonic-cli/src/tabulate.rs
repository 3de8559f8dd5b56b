//! The `tabulate` 0.9.0 "simple" table format, as sonic-utilities prints it.
//!
//! Written by hand rather than with `tabled`: byte-exactness needs four tabulate rules that
//! `tabled` has no notion of — a minimum column width of `len(header) + 2`, a right-strip of every
//! line (which makes empty trailing cells vanish), whitespace-stripping of every cell, and
//! tabulate's number detection, which right-aligns a column (header included) whose cells all
//! parse as numbers when `disable_numparse` is off. Configuring `tabled` for that would take more
//! code than the format itself, and `tabled` measures display width while tabulate (without the
//! optional `wcwidth` package) counts code points.
//!
//! Cells holding a line break are laid out over several lines, as tabulate does.

/// Whether tabulate may parse numbers (`disable_numparse=False`), which only
/// `show feature autorestart` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumParse {
    Disabled,
    Enabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    Int,
    Float,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
    Decimal,
}

/// Renders `rows` under `headers` like `tabulate(rows, headers)` with the "simple" format.
/// The result has no trailing newline (callers `echo` it).
pub fn simple(headers: &[&str], rows: &[Vec<String>], numparse: NumParse) -> String {
    let ncols = headers.len();
    let mut columns: Vec<Vec<String>> = (0..ncols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).cloned().unwrap_or_default())
                .collect()
        })
        .collect();

    let types: Vec<ColumnType> = columns
        .iter()
        .map(|col| match numparse {
            NumParse::Disabled => ColumnType::Text,
            NumParse::Enabled => column_type(col),
        })
        .collect();
    for (col, ty) in columns.iter_mut().zip(&types) {
        if *ty == ColumnType::Float {
            for cell in col.iter_mut() {
                if let Some(v) = parse_py_float(cell) {
                    *cell = format_g(v);
                }
            }
        }
    }
    let aligns: Vec<Align> = types
        .iter()
        .map(|t| match t {
            ColumnType::Int => Align::Right,
            ColumnType::Float => Align::Decimal,
            ColumnType::Text => Align::Left,
        })
        .collect();

    let multiline = headers.iter().any(|h| has_line_break(h))
        || columns.iter().flatten().any(|c| has_line_break(c));
    let width_of = |s: &str| -> usize {
        if multiline {
            split_lines(s)
                .iter()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0)
        } else {
            s.chars().count()
        }
    };

    let min_widths: Vec<usize> = headers.iter().map(|h| width_of(h) + 2).collect();
    let columns: Vec<Vec<String>> = columns
        .into_iter()
        .zip(&aligns)
        .zip(&min_widths)
        .map(|((col, align), minw)| align_column(col, *align, *minw, multiline))
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .zip(&min_widths)
        .map(|(col, minw)| {
            col.iter()
                .map(|c| width_of(c))
                .max()
                .unwrap_or(0)
                .max(*minw)
        })
        .collect();
    let header_cells: Vec<String> = headers
        .iter()
        .zip(&aligns)
        .zip(&widths)
        .map(|((h, align), w)| match align {
            Align::Left => pad_right(h, *w),
            Align::Right | Align::Decimal => pad_left(h, *w),
        })
        .collect();

    let mut lines: Vec<String> = Vec::new();
    push_row(&mut lines, &header_cells, &widths, multiline);
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    lines.push(dashes.join("  ").trim_end().to_string());
    for r in 0..rows.len() {
        let cells: Vec<String> = columns.iter().map(|c| c[r].clone()).collect();
        push_row(&mut lines, &cells, &widths, multiline);
    }
    lines.join("\n")
}

fn push_row(lines: &mut Vec<String>, cells: &[String], widths: &[usize], multiline: bool) {
    if !multiline {
        lines.push(cells.join("  ").trim_end().to_string());
        return;
    }
    let split: Vec<Vec<String>> = cells.iter().map(|c| split_lines(c)).collect();
    let height = split.iter().map(Vec::len).max().unwrap_or(0).max(1);
    for i in 0..height {
        let line: Vec<String> = split
            .iter()
            .zip(widths)
            .map(|(l, w)| l.get(i).cloned().unwrap_or_else(|| " ".repeat(*w)))
            .collect();
        lines.push(line.join("  ").trim_end().to_string());
    }
}

/// tabulate's `_align_column`: cells are stripped, then padded to the column's width.
fn align_column(col: Vec<String>, align: Align, min_width: usize, multiline: bool) -> Vec<String> {
    let col: Vec<String> = col.into_iter().map(|c| c.trim().to_string()).collect();
    let col: Vec<String> = match align {
        Align::Decimal => {
            let decimals: Vec<i64> = col.iter().map(|c| after_point(c)).collect();
            let max_dec = decimals.iter().copied().max().unwrap_or(-1);
            col.iter()
                .zip(decimals)
                .map(|(c, d)| format!("{c}{}", " ".repeat((max_dec - d).max(0) as usize)))
                .collect()
        }
        Align::Left | Align::Right => col,
    };
    let lines_of = |s: &str| {
        if multiline {
            split_lines(s)
        } else {
            vec![s.to_string()]
        }
    };
    let width = col
        .iter()
        .flat_map(|c| lines_of(c))
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(min_width);
    col.iter()
        .map(|c| {
            lines_of(c)
                .iter()
                .map(|l| match align {
                    Align::Left => pad_right(l, width),
                    Align::Right | Align::Decimal => pad_left(l, width),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

fn pad_right(s: &str, width: usize) -> String {
    let n = width.saturating_sub(s.chars().count());
    format!("{s}{}", " ".repeat(n))
}

fn pad_left(s: &str, width: usize) -> String {
    let n = width.saturating_sub(s.chars().count());
    format!("{}{s}", " ".repeat(n))
}

fn has_line_break(s: &str) -> bool {
    s.contains('\n') || s.contains('\r')
}

/// Python's `str.splitlines()`.
fn split_lines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\u{b}' | '\u{c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// tabulate's `_column_type` with numbers allowed: the most generic of the cell types in the
/// order bool < int < float < text, where `True`/`False` are booleans and an empty cell is text.
fn column_type(col: &[String]) -> ColumnType {
    #[derive(PartialEq, PartialOrd)]
    enum Cell {
        Bool,
        Int,
        Float,
        Text,
    }
    let most_generic = col
        .iter()
        .map(|cell| {
            if cell == "True" || cell == "False" {
                Cell::Bool
            } else if parse_py_int(cell).is_some() {
                Cell::Int
            } else if parse_py_float(cell).is_some() {
                Cell::Float
            } else {
                Cell::Text
            }
        })
        .fold(Cell::Bool, |acc, t| if t > acc { t } else { acc });
    match most_generic {
        Cell::Bool | Cell::Text => ColumnType::Text,
        Cell::Int => ColumnType::Int,
        Cell::Float => ColumnType::Float,
    }
}

/// Python's `int(s)` for ASCII input: surrounding whitespace, an optional sign, digits with
/// single underscores between them.
pub fn parse_py_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'+') => (false, &t[1..]),
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let v: i128 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// tabulate's `_isnumber`: Python's `float(s)`, where infinities and NaN count only when spelled
/// `inf`, `-inf` or `nan`.
fn parse_py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("inf") || body.starts_with("nan") {
        return ["inf", "-inf", "nan"]
            .contains(&t.to_ascii_lowercase().as_str())
            .then(|| {
                if lower.contains("nan") {
                    f64::NAN
                } else if lower.starts_with('-') {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            });
    }
    if t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    if !clean
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    clean.parse::<f64>().ok()
}

/// Python's `format(v, "g")`.
fn format_g(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = format!("{:.5e}", v);
    let (mantissa, e) = exp.split_once('e').unwrap_or((&exp, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    if (-4..6).contains(&e) {
        let decimals = (5 - e).max(0) as usize;
        let s = format!("{:.*}", decimals, v);
        strip_zeros(&s)
    } else {
        let m = strip_zeros(mantissa);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", e.abs())
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// tabulate's `_afterpoint`: digits after the decimal point (or exponent), -1 for integers.
fn after_point(s: &str) -> i64 {
    if parse_py_int(s).is_some() || parse_py_float(s).is_none() {
        return -1;
    }
    let pos = s.rfind('.').or_else(|| s.to_ascii_lowercase().rfind('e'));
    match pos {
        Some(p) => (s.chars().count() - s[..p].chars().count() - 1) as i64,
        None => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn width_is_header_plus_two_or_widest_cell() {
        let t = simple(
            &["Feature", "State"],
            &[row(&["bgp", "enabled"])],
            NumParse::Disabled,
        );
        assert_eq!(
            t,
            "Feature    State\n---------  -------\nbgp        enabled"
        );
    }

    #[test]
    fn empty_trailing_cells_vanish_with_the_right_strip() {
        let t = simple(&["a", "b"], &[row(&["x", ""])], NumParse::Disabled);
        assert_eq!(t, "a    b\n---  ---\nx");
    }

    #[test]
    fn empty_body_prints_the_two_header_lines() {
        let t = simple(&["name", "value"], &[], NumParse::Disabled);
        assert_eq!(t, "name    value\n------  -------");
    }

    #[test]
    fn cells_are_stripped_before_measuring() {
        let t = simple(&["a"], &[row(&["  padded  "])], NumParse::Disabled);
        assert_eq!(t, "a\n------\npadded");
    }

    #[test]
    fn numeric_columns_are_right_aligned_only_with_numparse() {
        let rows = [row(&["x", "5"]), row(&["y", "12"])];
        let t = simple(&["Feature", "AutoRestart"], &rows, NumParse::Enabled);
        assert_eq!(
            t,
            "Feature      AutoRestart\n---------  -------------\nx                      5\ny                     12"
        );
        let t = simple(&["Feature", "AutoRestart"], &rows, NumParse::Disabled);
        assert!(t.ends_with("\ny          12"), "{t}");
    }

    #[test]
    fn float_columns_are_reformatted_and_decimal_aligned() {
        let rows = [row(&["1.50"]), row(&["10"])];
        let t = simple(&["v"], &rows, NumParse::Enabled);
        assert_eq!(t, "   v\n----\n 1.5\n10");
    }

    #[test]
    fn booleans_do_not_stop_a_column_from_being_numeric_but_text_does() {
        let rows = [row(&["5"]), row(&["True"])];
        assert_eq!(
            simple(&["v"], &rows, NumParse::Enabled),
            "   v\n----\n   5\nTrue"
        );
        let rows = [row(&["5"]), row(&[""])];
        assert_eq!(simple(&["v"], &rows, NumParse::Enabled), "v\n---\n5\n");
    }

    #[test]
    fn multiline_cells_span_several_lines() {
        let rows = [row(&["a\nbb", "x"])];
        assert_eq!(
            simple(&["h", "i"], &rows, NumParse::Disabled),
            "h    i\n---  ---\na    x\nbb"
        );
    }

    #[test]
    fn python_int_rules() {
        assert_eq!(parse_py_int(" 7_777 "), Some(7777));
        assert_eq!(parse_py_int("07777"), Some(7777));
        assert_eq!(parse_py_int("-1"), Some(-1));
        assert_eq!(parse_py_int("1__0"), None);
        assert_eq!(parse_py_int("0x10"), None);
        assert_eq!(parse_py_int(""), None);
    }

    #[test]
    fn g_format_matches_python() {
        assert_eq!(format_g(1.5), "1.5");
        assert_eq!(format_g(100000.0), "100000");
        assert_eq!(format_g(1e6), "1e+06");
        assert_eq!(format_g(0.0001), "0.0001");
        assert_eq!(format_g(0.00001), "1e-05");
    }
}
