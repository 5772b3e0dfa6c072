//! Making text from peers safe for a terminal: worker names, error messages relayed from
//! workers or servers, and target names are printed with their control characters escaped, so
//! a name such as `"\x1b[2J"` or `"w1\nverdict: PASS"` cannot clear the screen, recolour it or
//! forge a line of the report.

use std::borrow::Cow;

/// `text` with every control character (newlines included) escaped as Rust does (`\n`,
/// `\u{1b}`); borrowed unchanged when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A multi-line text whose lines are ours: control characters other than the line breaks are
/// escaped (a second line of defence behind [`printable`] on each peer field).
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(text);
    }
    let lines: Vec<_> = text.split('\n').map(printable).collect();
    Cow::Owned(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_only() {
        assert!(matches!(printable("w-1 ünïcode"), Cow::Borrowed(_)));
        assert_eq!(printable("\u{1b}[2Jevil"), "\\u{1b}[2Jevil");
        assert_eq!(printable("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m", "C1 CSI too");
        assert_eq!(printable_lines("ok\n\u{7}bell\n"), "ok\n\\u{7}bell\n");
    }
}
