//! Figures for people: nanoseconds, percentages and aligned plain-text tables. Every
//! renderer (terminal tables, report.md, index.html, compare.md) formats through here, so
//! a figure reads the same wherever it is printed.

use std::fmt::Write as _;

/// Nanoseconds with a unit, scaled to ms or µs where large: `25.6 ns`, `1.76 µs`.
pub(crate) fn ns(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.1} ns")
    } else {
        format!("{v:.2} ns")
    }
}

/// Nanoseconds as a bare figure for a column whose header names the unit, with enough
/// digits to compare fast calls: `25.6`, `0.34`, `1760`.
pub(crate) fn ns_figure(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Seconds with a unit, scaled to ms or µs where small: `1.25 s`, `12.3 ms`.
pub(crate) fn seconds(v: f64) -> String {
    if v.abs() >= 1.0 {
        format!("{v:.3} s")
    } else {
        ns(v * 1e9)
    }
}

/// The last `n` lines of `text`, joined again: a failing tool's output, for an error.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Bytes with a binary unit: `512 B`, `7.9 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count with its thousands apart: `60 000`, `19 361 997`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            s.push(' ');
        }
        s.push(d);
    }
    s
}

/// A share (0.25) as a percentage with `decimals` digits: `25%`, `25.0%`.
pub(crate) fn pct(share: f64, decimals: usize) -> String {
    format!("{:.*}%", decimals, share * 100.0)
}

/// A relative change (0.012) as a signed percentage: `+1.2%`.
pub(crate) fn signed_pct(change: f64) -> String {
    format!("{:+.1}%", change * 100.0)
}

/// A function name short enough for a terminal column (`max` characters at most): as it
/// is when it fits; else with the insides of its template arguments and parameter lists
/// elided (`std::sort<…>(…)`); else cut in the middle. Files keep the whole name.
pub(crate) fn short_name(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    let collapsed = collapse_brackets(name).filter(|c| c.chars().count() <= max);
    if let Some(c) = collapsed {
        return c;
    }
    let chars: Vec<char> = name.chars().collect();
    let keep = max.saturating_sub(1);
    let head = keep - keep / 2;
    let tail = keep / 2;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `name` with what is inside each outermost `<...>` and `(...)` replaced by `…`, or None
/// when its brackets do not pair up (`operator<`, `operator->`).
fn collapse_brackets(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut open: Vec<char> = Vec::new();
    for c in name.chars() {
        match c {
            '<' | '(' => {
                if open.is_empty() {
                    out.push(c);
                    out.push('…');
                }
                open.push(c);
            }
            '>' | ')' => {
                let expected = if c == '>' { '<' } else { '(' };
                if open.pop() != Some(expected) {
                    return None;
                }
                if open.is_empty() {
                    out.push(c);
                }
            }
            _ if open.is_empty() => out.push(c),
            _ => {}
        }
    }
    open.is_empty().then_some(out)
}

/// A count per call: whole where it is (`1`, `0`), else to two decimals (`0.25`).
pub(crate) fn per_call_count(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 {
        format!("{:.0}", x.round() + 0.0)
    } else {
        format!("{x:.2}")
    }
}

/// Aligned plain-text table: the first `text_columns` columns left-aligned, the rest
/// (figures) right-aligned, a rule under the header.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], text_columns: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let sep = if i + 1 == cells.len() { "" } else { "  " };
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if i < text_columns {
                let _ = write!(text, "{cell}{pad}{sep}");
            } else {
                let _ = write!(text, "{pad}{cell}{sep}");
            }
        }
        // No line longer than its cells need: a last column left empty adds no spaces.
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut rule.iter().map(String::as_str));
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_for_the_terminal() {
        assert_eq!(short_name("app::query", 20), "app::query");
        let cpp = "std::__unguarded_partition<__gnu_cxx::__normal_iterator<unsigned long*, \
                   std::vector<unsigned long> >, cmp>(unsigned long*, unsigned long*)";
        assert_eq!(short_name(cpp, 60), "std::__unguarded_partition<…>(…)");
        let cut = short_name(&"x".repeat(100), 21);
        assert_eq!(cut.chars().count(), 21);
        assert_eq!(cut, format!("{}…{}", "x".repeat(10), "x".repeat(10)));
        // Brackets that do not pair up are cut, never mangled.
        let op = format!("{}::operator<(int)", "a".repeat(40));
        assert_eq!(short_name(&op, 30).chars().count(), 30);
    }

    #[test]
    fn counts_keep_their_thousands_apart() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(60_000), "60 000");
        assert_eq!(count(19_361_997), "19 361 997");
    }

    #[test]
    fn nanoseconds_scale_and_keep_digits() {
        assert_eq!(ns(0.345), "0.34 ns");
        assert_eq!(ns(25.61), "25.6 ns");
        assert_eq!(ns(1760.0), "1.76 µs");
        assert_eq!(ns(-2_500_000.0), "-2.50 ms");
        assert_eq!(ns_figure(1760.4), "1760");
        assert_eq!(ns_figure(25.61), "25.6");
        assert_eq!(pct(0.256, 0), "26%");
        assert_eq!(signed_pct(-0.012), "-1.2%");
    }

    #[test]
    fn tables_align_text_left_and_figures_right() {
        let t = table(&["a", "n"], &[vec!["xy".into(), "1".into()]], 1);
        assert_eq!(t, "a   n\n--  -\nxy  1\n");
    }
}
