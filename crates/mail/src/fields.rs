//! Walking the header section of a raw message field by field (folded lines included),
//! to drop fields without touching any other byte.

/// `raw` with only the header fields for which `keep` (given the field's bytes, first line
/// and folded lines, line ends included) is true; the body is untouched.
pub(crate) fn retain_fields(raw: &[u8], mut keep: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let header_end = header_end(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < header_end {
        let mut end = line_end(raw, i);
        while end < header_end && matches!(raw.get(end), Some(b' ' | b'\t')) {
            end = line_end(raw, end);
        }
        if keep(&raw[i..end]) {
            out.extend_from_slice(&raw[i..end]);
        }
        i = end;
    }
    out.extend_from_slice(&raw[header_end..]);
    out
}

/// Whether `field` (as [`retain_fields`] passes it) is named `name` (any case).
pub(crate) fn is_named(field: &[u8], name: &str) -> bool {
    field
        .iter()
        .position(|&b| b == b':')
        .is_some_and(|colon| field[..colon].trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

/// Where the header section ends: at the empty line (or the end of the input).
fn header_end(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\n' || (raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n')) {
            return i;
        }
        i = line_end(raw, i);
    }
    raw.len()
}

/// The index just past the line starting at `i` (its LF included).
fn line_end(raw: &[u8], i: usize) -> usize {
    raw[i..].iter().position(|&b| b == b'\n').map_or(raw.len(), |p| i + p + 1)
}
