//! Which characters a stored text field may hold. PostgreSQL refuses U+0000 in `TEXT`, and the
//! other C0 control characters are never typed on purpose (terminal escapes, form feeds), so
//! every text that reaches storage is checked here first: one-line fields (names, a make, an
//! email) take none of U+0000–U+001F, multi-line fields (a concern, a chat message) only tab,
//! line feed and carriage return. The web form applies the same rules (`ui/src/lib/intake.ts`).
//!
//! White space around a value is trimmed before it is stored, so the check applies to the
//! trimmed text: a trailing newline after a name is not a problem.

/// The field problem shown for a refused control character.
pub const CONTROL_CHARACTER_MESSAGE: &str = "Please remove the invisible control characters";

/// What kind of text a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Names, a make or model, an email address: no C0 control character at all.
    One,
    /// A concern or a chat message: tab and line breaks, no other C0 control character.
    Many,
}

impl Lines {
    /// Whether a field of this kind may hold `c`.
    pub fn allows_char(self, c: char) -> bool {
        let c0 = c <= '\u{1f}';
        match self {
            Lines::One => !c0,
            Lines::Many => !c0 || matches!(c, '\t' | '\n' | '\r'),
        }
    }

    /// Whether a field of this kind may hold every character of `text`.
    pub fn allows(self, text: &str) -> bool {
        text.chars().all(|c| self.allows_char(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_fields_take_no_control_character() {
        assert!(Lines::One.allows("Dana Driver é \u{7f}\u{85}"));
        for c in (0..=0x1f).filter_map(char::from_u32) {
            assert!(
                !Lines::One.allows(&format!("Dana{c}Driver")),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn multi_line_fields_take_tab_and_line_breaks_only() {
        assert!(Lines::Many.allows("Noise:\r\n\tfront left\n"));
        for c in (0..=0x1f).filter_map(char::from_u32) {
            let allowed = matches!(c, '\t' | '\n' | '\r');
            assert_eq!(
                Lines::Many.allows(&format!("a{c}b")),
                allowed,
                "U+{:04X}",
                c as u32
            );
        }
    }
}
