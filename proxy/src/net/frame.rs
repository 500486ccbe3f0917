//! One PostgreSQL protocol message, kept as the raw bytes it arrived in.

use bytes::{Buf, Bytes, BytesMut};

use super::error::WireError;

/// A complete regular message (`tag`, `i32` length, body) as raw bytes.
///
/// Frames are forwarded untouched; only the few messages that routing and state tracking
/// need are looked into, so a DataRow is never decoded and re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

/// Length of the tag byte plus the length word.
pub const HEADER_LEN: usize = 5;

impl Frame {
    /// Checks whether `buf` holds a whole message and, if so, splits it off.
    ///
    /// Check-then-parse: nothing is consumed while the message is incomplete. A declared
    /// length below 4 or above `max_len` is an error before any body is buffered, and
    /// nothing is reserved for the rest of the body: the buffer grows as its bytes arrive
    /// (see [`Connection`](super::Connection)), never by a peer's declared length alone.
    pub fn parse(buf: &mut BytesMut, max_len: usize) -> Result<Frame, WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Incomplete);
        }
        let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if declared < 4 {
            return Err(WireError::BadLength(declared));
        }
        let len = declared as usize;
        if len > max_len {
            return Err(WireError::TooLarge { len, max: max_len });
        }
        if buf.len() < len + 1 {
            return Err(WireError::Incomplete);
        }
        Ok(Frame {
            bytes: buf.split_to(len + 1).freeze(),
        })
    }

    /// The whole length (tag included) of the message whose header starts `buf`, once the
    /// header is there and its length is sane.
    pub fn declared_len(buf: &[u8]) -> Option<usize> {
        let header = buf.get(..HEADER_LEN)?;
        let declared = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        usize::try_from(declared)
            .ok()
            .filter(|&len| len >= 4)
            .map(|len| len + 1)
    }

    /// Builds a frame from a tag and a body.
    pub fn new(tag: u8, body: &[u8]) -> Frame {
        let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
        b.extend_from_slice(&[tag]);
        b.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        b.extend_from_slice(body);
        Frame { bytes: b.freeze() }
    }

    /// Wraps bytes already known to be one whole message.
    pub fn from_bytes(bytes: Bytes) -> Frame {
        Frame { bytes }
    }

    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The message body, after the tag and length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The whole message as shared bytes (no copy).
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The whole message, as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A reader over the body, for the messages that are inspected.
    pub fn reader(&self) -> BodyReader<'_> {
        BodyReader { buf: self.body() }
    }
}

/// Reads the fields of a message body; every read checks bounds, so a malformed
/// message is an error and never a panic.
pub struct BodyReader<'a> {
    buf: &'a [u8],
}

impl<'a> BodyReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BodyReader { buf }
    }

    /// A NUL-terminated string, without the NUL.
    pub fn cstr(&mut self) -> Result<&'a [u8], WireError> {
        let end =
            memchr::memchr(0, self.buf).ok_or(WireError::Malformed("missing string terminator"))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub fn cstr_utf8(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.cstr()?).map_err(|_| WireError::NotUtf8)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        if self.buf.is_empty() {
            return Err(WireError::Malformed("message too short"));
        }
        let v = self.buf[0];
        self.buf.advance(1);
        Ok(v)
    }

    pub fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Malformed("message too short"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

/// `bytes` as text, with U+FFFD for invalid UTF-8; valid text (nearly all) is checked
/// by the standard library's faster validation and borrowed.
pub fn lossy_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_until_whole() {
        let whole = Frame::new(b'Q', b"select 1\0");
        let bytes = whole.as_bytes();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(Frame::parse(&mut buf, 1 << 20), Err(WireError::Incomplete));
            assert_eq!(buf.len(), cut, "nothing consumed while incomplete");
        }
        let mut buf = BytesMut::from(bytes);
        buf.extend_from_slice(b"Z");
        assert_eq!(Frame::parse(&mut buf, 1 << 20).unwrap(), whole);
        assert_eq!(&buf[..], b"Z");
    }

    #[test]
    fn bad_and_huge_lengths() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert_eq!(Frame::parse(&mut buf, 100), Err(WireError::BadLength(3)));
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            Frame::parse(&mut buf, 100),
            Err(WireError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            Frame::parse(&mut buf, 100),
            Err(WireError::BadLength(_))
        ));
    }

    /// A header alone reserves nothing: the buffer grows as the body's bytes arrive.
    #[test]
    fn a_declared_length_reserves_nothing() {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"Q");
        buf.extend_from_slice(&(60i32 << 20).to_be_bytes());
        buf.extend_from_slice(b"SELECT");
        assert_eq!(Frame::parse(&mut buf, 64 << 20), Err(WireError::Incomplete));
        assert!(
            buf.capacity() < 1024,
            "a 60 MB header made the buffer {} bytes",
            buf.capacity()
        );
    }

    #[test]
    fn reader_never_panics() {
        let mut r = BodyReader::new(b"ab");
        assert!(r.cstr().is_err());
        assert!(r.i32().is_err());
        let mut r = BodyReader::new(b"ab\0\x00\x01");
        assert_eq!(r.cstr().unwrap(), b"ab");
        assert_eq!(r.i16().unwrap(), 1);
        assert!(r.u8().is_err());
    }
}
