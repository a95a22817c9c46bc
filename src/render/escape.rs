//! Text that came from outside (process names, command lines, anything read
//! from a snapshot file) can carry terminal escape sequences. Nothing of it
//! reaches a terminal unescaped: control characters become visible escapes,
//! and so do the bidirectional overrides that make text read differently
//! from what it is (a name that shows as `nigol` but is `login`).

use std::borrow::Cow;

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

#[cfg(test)]
mod tests {
    use super::*;

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
