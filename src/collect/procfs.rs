//! Small parsers of `/proc` text shared by the collectors: socket links,
//! fd limits, command lines, and names kept as the process set them. Each
//! takes bytes or text, so tests and the fuzz targets feed them directly.

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The soft and hard `Max open files` of `/proc/PID/limits`; `None` when
/// unlimited or unreadable.
pub fn open_files_limit(limits: &str) -> (Option<u64>, Option<u64>) {
    let Some(rest) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
    else {
        return (None, None);
    };
    let mut values = rest.split_whitespace().map(|v| v.parse().ok());
    (values.next().flatten(), values.next().flatten())
}

pub fn trim_newline(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\n").unwrap_or(b)
}

/// `/proc/PID/cmdline` separates arguments with NUL; show them with spaces.
pub fn cmdline_text(raw: &[u8]) -> Vec<u8> {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect()
}

/// Text as the process set it: valid UTF-8 kept as is (control characters
/// included: renderers escape them), invalid bytes written as `\xNN`.
pub fn lossless_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(b"socket:[4242]"), Some(4242));
        assert_eq!(socket_inode(b"pipe:[4242]"), None);
        assert_eq!(socket_inode(b"socket:[42"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn text_keeps_what_the_process_set() {
        assert_eq!(lossless_text(b"java"), "java");
        assert_eq!(lossless_text(b"a\x1b[31mb"), "a\u{1b}[31mb");
        assert_eq!(lossless_text(b"bad\xff\xfe"), "bad\\xff\\xfe");
        assert_eq!(
            cmdline_text(b"python3\0-m\0http.server\0"),
            b"python3 -m http.server"
        );
    }
}
