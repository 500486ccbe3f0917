//! The untagged first message of a client connection.

use bytes::BytesMut;

use super::error::WireError;
use super::frame::BodyReader;

const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;
/// Protocol 3.0, the version the proxy speaks.
pub const PROTOCOL_3_0: i32 = 196608;

/// Startup parameters under this prefix are protocol options, not settings.
const PROTOCOL_OPTION_PREFIX: &str = "_pq_.";

/// What a client may send before it is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest {
    Ssl,
    GssEnc,
    Cancel {
        pid: i32,
        key: i32,
    },
    /// Protocol 3.x startup with its parameters (user, database, options, …) in order.
    Startup {
        params: Vec<(String, String)>,
        /// The minor protocol version asked for; the session speaks 3.0 whatever it is.
        minor: u16,
        /// Names of the protocol options (`_pq_.*` parameters) asked for; none is
        /// known, so none is applied.
        protocol_options: Vec<String>,
    },
}

impl StartupRequest {
    /// Check-then-parse, like `Frame::parse`, for the untagged startup packet: a declared
    /// length below 8 or above `max_len` is an error before the packet is buffered.
    pub fn parse(buf: &mut BytesMut, max_len: usize) -> Result<StartupRequest, WireError> {
        if buf.len() < 4 {
            return Err(WireError::Incomplete);
        }
        let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let len = usize::try_from(declared)
            .ok()
            .filter(|&len| len >= 8)
            .ok_or(WireError::BadLength(declared))?;
        if len > max_len {
            return Err(WireError::TooLarge { len, max: max_len });
        }
        if buf.len() < len {
            return Err(WireError::Incomplete);
        }
        let packet = buf.split_to(len);
        let mut r = BodyReader::new(&packet[4..]);
        let code = r.i32()?;
        match code {
            SSL_REQUEST => Ok(StartupRequest::Ssl),
            GSSENC_REQUEST => Ok(StartupRequest::GssEnc),
            CANCEL_REQUEST => Ok(StartupRequest::Cancel {
                pid: r.i32()?,
                key: r.i32()?,
            }),
            version if version >> 16 == PROTOCOL_3_0 >> 16 => {
                let mut params = Vec::new();
                let mut protocol_options = Vec::new();
                loop {
                    let name = r.cstr_utf8()?;
                    if name.is_empty() {
                        break;
                    }
                    let value = r.cstr_utf8()?;
                    if name.starts_with(PROTOCOL_OPTION_PREFIX) {
                        protocol_options.push(name.to_string());
                    } else {
                        params.push((name.to_string(), value.to_string()));
                    }
                }
                Ok(StartupRequest::Startup {
                    params,
                    minor: (version & 0xffff) as u16,
                    protocol_options,
                })
            }
            other => Err(WireError::UnsupportedProtocol(other)),
        }
    }
}

/// Encodes a startup packet towards a server.
pub fn startup_packet(params: &[(&str, &str)]) -> BytesMut {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Encodes a CancelRequest towards a server.
pub fn cancel_packet(pid: i32, key: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16i32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&key.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's own limit on startup packets.
    const LIMIT: usize = 10_000;

    #[test]
    fn round_trip_startup() {
        let mut buf = startup_packet(&[("user", "app"), ("database", "db")]);
        let req = StartupRequest::parse(&mut buf, LIMIT).unwrap();
        assert_eq!(
            req,
            StartupRequest::Startup {
                params: vec![
                    ("user".into(), "app".into()),
                    ("database".into(), "db".into())
                ],
                minor: 0,
                protocol_options: Vec::new(),
            }
        );
        assert!(buf.is_empty());
    }

    /// A newer 3.x minor version and protocol options are read, for the proxy to answer
    /// NegotiateProtocolVersion; the options are not taken for settings.
    #[test]
    fn newer_minor_versions_and_protocol_options() {
        let mut buf = startup_packet(&[("user", "app"), ("_pq_.compression", "on")]);
        buf[4..8].copy_from_slice(&0x0003_0002i32.to_be_bytes());
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT).unwrap(),
            StartupRequest::Startup {
                params: vec![("user".into(), "app".into())],
                minor: 2,
                protocol_options: vec!["_pq_.compression".into()],
            }
        );
        let mut buf = startup_packet(&[("user", "app")]);
        buf[4..8].copy_from_slice(&0x0004_0000i32.to_be_bytes());
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT),
            Err(WireError::UnsupportedProtocol(0x0004_0000))
        );
    }

    #[test]
    fn cancel_and_ssl() {
        let mut buf = BytesMut::from(&cancel_packet(7, 9)[..]);
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT).unwrap(),
            StartupRequest::Cancel { pid: 7, key: 9 }
        );
        let mut buf = BytesMut::from(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f][..]);
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT).unwrap(),
            StartupRequest::Ssl
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert!(StartupRequest::parse(&mut buf, LIMIT).is_err());
        let mut buf = BytesMut::from(&[0, 0, 0, 12, 0, 3, 0, 0, b'u', b's', 0, 0][..]);
        assert!(StartupRequest::parse(&mut buf, LIMIT).is_err());
        let mut buf = BytesMut::from(&[0, 0, 0, 8, 0, 2, 0, 0][..]);
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT),
            Err(WireError::UnsupportedProtocol(0x20000))
        );
    }

    #[test]
    fn lengths_outside_the_limits() {
        let mut buf = BytesMut::from(&[0, 0, 0, 7, 0, 3, 0, 0][..]);
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT),
            Err(WireError::BadLength(7))
        );
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            StartupRequest::parse(&mut buf, LIMIT),
            Err(WireError::BadLength(-1))
        );
        let mut buf = startup_packet(&[("user", &"u".repeat(LIMIT))]);
        assert!(matches!(
            StartupRequest::parse(&mut buf, LIMIT),
            Err(WireError::TooLarge { max: LIMIT, .. })
        ));
        let mut buf = startup_packet(&[("user", &"u".repeat(LIMIT))]);
        assert!(StartupRequest::parse(&mut buf, 2 * LIMIT).is_ok());
    }
}
