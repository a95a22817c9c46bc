//! Text for a terminal, shared by the renderers. Strings that came from
//! outside (process names, command lines, anything read from a snapshot
//! file) can carry terminal escape sequences: nothing of it reaches a
//! terminal unescaped — control characters become visible escapes, and so do
//! the bidirectional overrides that make text read differently from what it
//! is (a name that shows as `nigol` but is `login`). Then word wrapping and
//! cutting that measure what a terminal shows — display columns, as
//! `unicode-width` counts them (a CJK character takes two, a combining mark
//! none; comfy-table pads by the same count), colour sequences none — counts
//! with their noun, sparklines and rates as a person reads them.

use std::borrow::Cow;
use std::io::{self, Write};
use unicode_width::UnicodeWidthChar;

/// Columns one character takes on a terminal; a control character (escaped
/// before it gets here), none.
fn columns(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Escapes control characters (C0, DEL, C1) as `\n`, `\t`, `\r`, `\e`, `\xNN`
/// and bidirectional controls as `\u{NNNN}`; everything else, backslashes
/// included, passes as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if (c as u32) < 0x100 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || is_bidi_control(c) => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The marks, embeddings, overrides and isolates of the Unicode bidirectional algorithm.
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Columns `text` takes on a terminal: its characters' display widths, less
/// our own SGR colour sequences (`ESC [ ... m`). Untrusted text never holds
/// an ESC here: it is escaped before it is laid out.
pub fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += columns(c);
        }
    }
    width
}

/// Writes `text` word-wrapped to `width` columns, the first line after
/// `first`, the others after `rest`.
pub fn wrap(
    out: &mut impl Write,
    text: &str,
    first: &str,
    rest: &str,
    width: usize,
) -> io::Result<()> {
    let mut line = first.to_string();
    let mut line_len = visible_width(first);
    let mut empty = true;
    for word in text.split_whitespace() {
        let len = visible_width(word);
        if !empty && line_len + 1 + len > width {
            writeln!(out, "{line}")?;
            line = rest.to_string();
            line_len = visible_width(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
            line_len += 1;
        }
        line.push_str(word);
        line_len += len;
        empty = false;
    }
    writeln!(out, "{line}")
}

/// A line fitted to `width` terminal columns: cut at the last space before
/// the edge, never inside a word or a number, with `…` where it was cut
/// (only `…` when its first word does not fit); colour sequences kept whole,
/// and closed if the cut fell inside a coloured span.
pub fn clip(line: &str, width: usize) -> Cow<'_, str> {
    if visible_width(line) <= width {
        return Cow::Borrowed(line);
    }
    let room = width.saturating_sub(1);
    let (mut out, mut used, mut coloured, mut word_end) = (String::new(), 0, false, 0);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            coloured = true;
            out.push(c);
            for c in chars.by_ref() {
                out.push(c);
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        if c == ' ' {
            word_end = out.len();
        }
        used += columns(c);
        if used > room {
            break;
        }
        out.push(c);
    }
    out.truncate(word_end);
    out.push('…');
    if coloured {
        out.push_str("\x1b[0m");
    }
    Cow::Owned(out)
}

/// `text` cut to `width` columns, with `…` where it was cut: for a name in a
/// table cell, where part of the name says more than none.
pub fn truncate(text: &str, width: usize) -> String {
    if visible_width(text) <= width {
        return text.to_string();
    }
    let mut used = 0;
    let mut cut: String = text
        .chars()
        .take_while(|&c| {
            used += columns(c);
            used < width
        })
        .collect();
    cut.push('…');
    cut
}

/// The counts as a line of block characters, lowest to highest: `▁▃▅█`.
pub fn sparkline(counts: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (min, max) = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    let span = (max - min).max(1);
    counts
        .iter()
        .map(|&c| {
            let step = ((c - min) * 7 + span / 2) / span;
            BARS[usize::try_from(step).unwrap_or(7).min(7)]
        })
        .collect()
}

/// A change per second as a signed rate per minute: `+12/min`, `-0.5/min`, `±0/min`.
pub fn per_minute(per_s: f64) -> String {
    let m = per_s * 60.0;
    if m.abs() < 0.05 {
        "±0/min".to_string()
    } else if m.abs() >= 10.0 {
        format!("{m:+.0}/min")
    } else {
        format!("{m:+.1}/min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_width_with_indent() {
        let mut out = Vec::new();
        let text = "one two three four five six seven eight nine ten";
        assert!(wrap(&mut out, text, "  - ", "    ", 20).is_ok());
        let s = String::from_utf8(out).unwrap_or_default();
        assert_eq!(
            s,
            "  - one two three\n    four five six\n    seven eight nine\n    ten\n"
        );
        assert!(s.lines().all(|l| l.chars().count() <= 20));
    }

    #[test]
    fn colour_takes_no_room() {
        assert_eq!(visible_width("\x1b[1;33mWARNING\x1b[0m x"), 9);
        let mut out = Vec::new();
        let text = "\x1b[1;33mWARNING\x1b[0m one two three";
        assert!(wrap(&mut out, text, "", "", 21).is_ok());
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(truncate("postgres-writer", 8), "postgre…");
        assert_eq!(truncate("java", 8), "java");
    }

    /// Regression: width was counted in characters, so a CJK name (two
    /// columns a character) overflowed what it was fitted to.
    #[test]
    fn width_is_display_columns() {
        assert_eq!(visible_width("数据库"), 6);
        assert_eq!(visible_width("\x1b[1m数据\x1b[0m x"), 6);
        assert_eq!(visible_width("e\u{301}"), 1);
        assert_eq!(truncate("数据库连接池", 7), "数据库…");
        assert_eq!(visible_width(&truncate("数据库连接池", 8)), 7);
        let mut out = Vec::new();
        assert!(wrap(&mut out, "数据库 连接池 服务", "", "", 10).is_ok());
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "数据库\n连接池\n服务\n"
        );
    }

    /// Regression: the live view cut lines at the screen's edge, mid-word
    /// and mid-number (`12345` shown as `123`).
    #[test]
    fn lines_are_cut_between_words() {
        assert_eq!(clip("fits", 4), "fits");
        assert_eq!(clip("holds 12345 sockets", 10), "holds…");
        assert_eq!(clip("holds 12345 sockets", 11), "holds…");
        assert_eq!(clip("holds 12345 sockets", 12), "holds 12345…");
        assert_eq!(clip("unbreakable", 6), "…");
        assert_eq!(clip("数据库 连接池", 8), "数据库…");
        assert_eq!(
            clip("\x1b[31mWARNING\x1b[0m 12345 x", 12),
            "\x1b[31mWARNING\x1b[0m…\x1b[0m"
        );
        for line in ["a bb ccc dddd", "数据库 连接池 服务"] {
            for width in 1..16 {
                assert!(visible_width(&clip(line, width)) <= width.max(1));
            }
        }
    }

    #[test]
    fn sparklines_and_rates() {
        assert_eq!(sparkline(&[0, 5, 10, 15]), "▁▃▆█");
        assert_eq!(sparkline(&[4, 4, 4]), "▁▁▁");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(per_minute(0.2), "+12/min");
        assert_eq!(per_minute(-0.01), "-0.6/min");
        assert_eq!(per_minute(0.0), "±0/min");
    }

    #[test]
    fn control_characters_never_pass() {
        assert_eq!(escape("nginx"), "nginx");
        assert_eq!(escape("a\\b"), "a\\b");
        assert_eq!(escape("\x1b]0;pwned\x07x"), "\\e]0;pwned\\x07x");
        assert_eq!(escape("two\nlines\\"), "two\\nlines\\");
        assert_eq!(escape("c1\u{9b}31m"), "c1\\x9b31m");
        assert_eq!(escape("\u{7f}"), "\\x7f");
        assert!(!escape("x\u{85}y\0z").chars().any(char::is_control));
        assert_eq!(escape("a\u{202e}nigol"), "a\\u{202e}nigol");
        assert_eq!(escape("caf\u{e9} \u{4e2d}"), "caf\u{e9} \u{4e2d}");
    }
}
