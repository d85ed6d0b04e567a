//! Text that crosses a trust boundary: what a receiver sends back, what an error says, what
//! a user types. Every store accepts any valid UTF-8 without NUL, so text is made that way
//! once, here, and cut only on character boundaries.

/// The replacement for bytes and characters a store cannot keep (U+FFFD).
pub const REPLACEMENT: char = '\u{FFFD}';

/// At most `max_bytes` of `bytes` as storable text: invalid UTF-8 and NUL become U+FFFD and
/// the result is cut on a character boundary (so it may be a little shorter than asked).
pub fn snippet(bytes: &[u8], max_bytes: usize) -> String {
    let mut text = storable(&String::from_utf8_lossy(bytes));
    truncate(&mut text, max_bytes);
    text
}

/// `text` with every NUL replaced by U+FFFD (PostgreSQL `TEXT` and `jsonb` refuse NUL).
pub fn storable(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', &REPLACEMENT.to_string()) } else { text.to_owned() }
}

/// Cuts `text` to at most `max_bytes`, on a character boundary (never panics).
pub fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// `text` as an HTTP header value: every character outside printable ASCII (CR, LF and
/// other controls, non-ASCII) becomes `?`, so the value can be neither split nor refused.
pub fn header_safe(text: &str) -> String {
    text.chars().map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        let mut s = "é".repeat(200);
        truncate(&mut s, 301);
        assert_eq!(s.len(), 300);
        let mut s = "日本".repeat(100);
        truncate(&mut s, 300);
        assert!(s.len() <= 300 && s.chars().all(|c| c == '日' || c == '本'));
        let mut short = "abc".to_owned();
        truncate(&mut short, 300);
        assert_eq!(short, "abc");
    }

    #[test]
    fn snippets_replace_nul_and_invalid_utf8() {
        assert_eq!(snippet(b"abc\0def", 4096), "abc\u{FFFD}def");
        assert_eq!(snippet(&[0x61, 0xff, 0xfe, 0x62], 4096), "a\u{FFFD}\u{FFFD}b");
        let cut = snippet("é".repeat(10).as_bytes(), 5);
        assert_eq!(cut, "éé");
        assert!(!snippet(&[0u8; 100], 4096).contains('\0'));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_snippets_are_storable_and_bounded(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600), max in 0usize..512) {
            let s = snippet(&bytes, max);
            proptest::prop_assert!(s.len() <= max);
            proptest::prop_assert!(!s.contains('\0'));
        }
    }
}
