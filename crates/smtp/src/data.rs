//! Reading a message body: `DATA` (dot-stuffed, ended by `<CRLF>.<CRLF>`) and `BDAT`
//! chunks (a byte count). Sizes are counted while reading, and no more than the maximum
//! (plus one byte of the end marker) is ever held.

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, DummyDataReceiver};

use crate::conn::{Closed, Conn};

/// How a `DATA` body ended.
#[derive(Debug)]
pub(crate) enum DataEnd {
    /// The message, dot-unstuffed, with its final CRLF.
    Complete(Vec<u8>),
    /// Larger than the maximum; nothing was kept.
    TooBig,
    /// A line ended in a bare LF (RFC 5321 2.3.8; the SMTP-smuggling vector).
    BareLf,
}

/// A `DataReceiver` that knows the body starts at the beginning of a line.
///
/// smtp-proto 0.2.5 starts a `DataReceiver` as if in the middle of a line, so a first line
/// `.` (an empty message) would not end the data and a leading `..` would not be
/// unstuffed. Feeding it the CRLF that ended the `DATA` command puts it at a line start.
fn data_receiver() -> DataReceiver {
    let mut receiver = DataReceiver::new();
    let mut crlf = Vec::with_capacity(2);
    receiver.ingest(&mut b"\r\n".iter(), &mut crlf);
    receiver
}

/// Reads a `DATA` body up to and including `<CRLF>.<CRLF>`.
pub(crate) async fn read_data(conn: &mut Conn, max: usize) -> Result<DataEnd, Closed> {
    let mut receiver = data_receiver();
    let mut body = Vec::new();
    // While the end marker `<CRLF>.<CR>` waits for its `<LF>`, the receiver holds the `<CR>`.
    let limit = max.saturating_add(1);
    let mut too_big = false;
    let mut bare_lf = false;
    // The byte before the first body byte is the command's LF: a leading LF is bare.
    let mut previous = 0u8;
    loop {
        let pending = conn.pending();
        if pending.is_empty() {
            conn.fill(None).await?;
            continue;
        }
        let keep = !(too_big || bare_lf);
        // Never let the receiver push the buffer beyond `limit + 1` bytes.
        let room = if keep { (limit - body.len()).saturating_add(1) } else { usize::MAX };
        let fed = &pending[..pending.len().min(room)];
        let mut bytes = fed.iter();
        let done = receiver.ingest(&mut bytes, &mut body);
        let used = fed.len() - bytes.len();
        for &byte in &fed[..used] {
            if byte == b'\n' && previous != b'\r' {
                bare_lf = true;
            }
            previous = byte;
        }
        conn.consume(used);
        if body.len() > limit || (done && body.len() > max) {
            too_big = true;
        }
        if too_big || bare_lf {
            body = Vec::new();
        }
        if done {
            return Ok(if bare_lf {
                DataEnd::BareLf
            } else if too_big {
                DataEnd::TooBig
            } else {
                DataEnd::Complete(body)
            });
        }
    }
}

/// Reads one `BDAT` chunk of `size` bytes, appending it to `body`.
pub(crate) async fn read_chunk(conn: &mut Conn, size: usize, body: &mut Vec<u8>) -> Result<(), Closed> {
    let mut receiver = BdatReceiver::new(size, false);
    if size == 0 {
        return Ok(());
    }
    body.reserve(size.min(64 * 1024));
    loop {
        let pending = conn.pending();
        if pending.is_empty() {
            conn.fill(None).await?;
            continue;
        }
        let mut bytes = pending.iter();
        let done = receiver.ingest(&mut bytes, body);
        let used = pending.len() - bytes.len();
        conn.consume(used);
        if done {
            return Ok(());
        }
    }
}

/// Reads and throws away one `BDAT` chunk of `size` bytes, so that its content is never
/// taken for commands.
pub(crate) async fn discard_chunk(conn: &mut Conn, size: usize) -> Result<(), Closed> {
    let mut receiver = DummyDataReceiver::new_bdat(size);
    if size == 0 {
        return Ok(());
    }
    loop {
        let pending = conn.pending();
        if pending.is_empty() {
            conn.fill(None).await?;
            continue;
        }
        let mut bytes = pending.iter();
        let done = receiver.ingest(&mut bytes);
        let used = pending.len() - bytes.len();
        conn.consume(used);
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::data_receiver;

    fn receive(chunks: &[&[u8]]) -> Option<Vec<u8>> {
        let mut receiver = data_receiver();
        let mut body = Vec::new();
        for chunk in chunks {
            if receiver.ingest(&mut chunk.iter(), &mut body) {
                return Some(body);
            }
        }
        None
    }

    #[test]
    fn data_starts_at_a_line_start() {
        assert_eq!(receive(&[b".\r\n"]), Some(Vec::new()));
        assert_eq!(receive(&[b"..x\r\n.\r\n"]), Some(b".x\r\n".to_vec()));
        assert_eq!(receive(&[b".", b".", b"\r", b"\n.", b"\r\n"]), Some(b".\r\n".to_vec()));
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        assert_eq!(receive(&[b"a\n.\r\nb\r.\r\nc\r\n.\n"]), None);
        assert_eq!(receive(&[b"a\n.\nb\r\n", b".\r", b"\n"]), Some(b"a\n.\nb\r\n".to_vec()));
    }
}
