//! The layout of the messages a client sends after login, checked as PostgreSQL reads
//! them: every string terminated, every counted field present, nothing left over. A
//! message that fails is answered by the proxy and never forwarded, so a server never
//! sees it and the proxy's own reading of it (statement names, parameters) never goes
//! wrong.

use super::frame::Frame;
use super::messages::tag;

/// PostgreSQL's words for a message whose layout is wrong (SQLSTATE 08P01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// A string without its terminating NUL.
    Unterminated,
    /// A field that the message ends before.
    Short,
    /// Bytes after the last field.
    Trailing,
}

impl LayoutError {
    /// The message PostgreSQL sends for it.
    pub fn message(self) -> &'static str {
        match self {
            LayoutError::Unterminated => "invalid string in message",
            LayoutError::Short => "insufficient data left in message",
            LayoutError::Trailing => "invalid message format",
        }
    }
}

/// Checks a client message's layout; message types not listed (COPY data, Terminate)
/// carry no structure to check.
pub fn check_client_message(frame: &Frame) -> Result<(), LayoutError> {
    let mut r = Fields(frame.body());
    match frame.tag() {
        tag::QUERY => {
            r.string()?;
        }
        // PostgreSQL reads the reason and nothing after it.
        tag::COPY_FAIL => return r.string(),
        tag::PARSE => {
            r.string()?;
            r.string()?;
            let types = r.int16()?;
            r.skip(usize::try_from(types).unwrap_or(0) * 4)?;
        }
        tag::BIND => {
            r.string()?;
            r.string()?;
            r.formats()?;
            r.values()?;
            r.formats()?;
        }
        tag::DESCRIBE | tag::CLOSE => {
            r.skip(1)?;
            r.string()?;
        }
        tag::EXECUTE => {
            r.string()?;
            r.skip(4)?;
        }
        tag::FUNCTION_CALL => {
            r.skip(4)?;
            r.formats()?;
            r.values()?;
            r.skip(2)?;
        }
        tag::SYNC | tag::FLUSH => {}
        _ => return Ok(()),
    }
    if r.0.is_empty() {
        Ok(())
    } else {
        Err(LayoutError::Trailing)
    }
}

/// The fields left to read.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn skip(&mut self, n: usize) -> Result<(), LayoutError> {
        self.0 = self.0.get(n..).ok_or(LayoutError::Short)?;
        Ok(())
    }

    fn string(&mut self) -> Result<(), LayoutError> {
        let end = memchr::memchr(0, self.0).ok_or(LayoutError::Unterminated)?;
        self.skip(end + 1)
    }

    fn int16(&mut self) -> Result<i16, LayoutError> {
        let b = self.0.get(..2).ok_or(LayoutError::Short)?;
        let v = i16::from_be_bytes([b[0], b[1]]);
        self.skip(2)?;
        Ok(v)
    }

    fn int32(&mut self) -> Result<i32, LayoutError> {
        let b = self.0.get(..4).ok_or(LayoutError::Short)?;
        let v = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.skip(4)?;
        Ok(v)
    }

    /// A count of format codes and the codes.
    fn formats(&mut self) -> Result<(), LayoutError> {
        let n = self.int16()?;
        self.skip(usize::try_from(n).unwrap_or(0) * 2)
    }

    /// A count of values, each a length (-1: NULL) and its bytes.
    fn values(&mut self) -> Result<(), LayoutError> {
        let n = self.int16()?;
        for _ in 0..n.max(0) {
            let len = self.int32()?;
            if len != -1 {
                self.skip(usize::try_from(len).map_err(|_| LayoutError::Short)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::messages;

    fn check(tag: u8, body: &[u8]) -> Result<(), LayoutError> {
        check_client_message(&Frame::new(tag, body))
    }

    #[test]
    fn well_formed_messages_pass() {
        assert_eq!(check_client_message(&messages::query("SELECT 1")), Ok(()));
        let parse = messages::parse("s1", b"SELECT $1", &[0, 1, 0, 0, 0, 23]);
        assert_eq!(check_client_message(&parse), Ok(()));
        // Portal, statement, one format, two values (one NULL), no result formats.
        let mut bind = b"\0s1\0\0\x01\0\0\0\x02\0\0\0\x011\xff\xff\xff\xff\0\0".to_vec();
        assert_eq!(check(tag::BIND, &bind), Ok(()));
        bind.push(0);
        assert_eq!(check(tag::BIND, &bind), Err(LayoutError::Trailing));
        assert_eq!(check(tag::DESCRIBE, b"S\0"), Ok(()));
        assert_eq!(check(tag::EXECUTE, b"\0\0\0\0\0"), Ok(()));
        assert_eq!(check(tag::SYNC, b""), Ok(()));
        assert_eq!(check(tag::COPY_DATA, b"anything"), Ok(()));
    }

    #[test]
    fn broken_layouts_are_named_as_postgres_names_them() {
        assert_eq!(
            check(tag::QUERY, b"SELECT 1"),
            Err(LayoutError::Unterminated)
        );
        assert_eq!(
            check(tag::QUERY, b"SELECT 1\0x"),
            Err(LayoutError::Trailing)
        );
        assert_eq!(
            check(tag::PARSE, b"s1\0SELECT 1"),
            Err(LayoutError::Unterminated)
        );
        assert_eq!(
            check(tag::PARSE, b"s1\0SELECT 1\0"),
            Err(LayoutError::Short)
        );
        assert_eq!(
            check(tag::PARSE, b"\0SELECT $1\0\0\x01\0\0"),
            Err(LayoutError::Short)
        );
        // A value longer than the message, and a negative length other than -1.
        assert_eq!(
            check(tag::BIND, b"\0\0\0\0\0\x01\0\0\0\x09ab\0\0"),
            Err(LayoutError::Short)
        );
        assert_eq!(
            check(tag::BIND, b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0"),
            Err(LayoutError::Short)
        );
        assert_eq!(check(tag::DESCRIBE, b"S"), Err(LayoutError::Unterminated));
        assert_eq!(check(tag::EXECUTE, b"\0\0\0"), Err(LayoutError::Short));
        assert_eq!(check(tag::SYNC, b"x"), Err(LayoutError::Trailing));
        assert_eq!(
            LayoutError::Unterminated.message(),
            "invalid string in message"
        );
    }
}
