//! Builders for the messages the proxy itself sends, to clients and to servers.

use bytes::BytesMut;
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::Message;

use super::frame::Frame;

/// Tags of the messages the proxy looks at.
pub mod tag {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const TERMINATE: u8 = b'X';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const PASSWORD: u8 = b'p';

    pub const AUTHENTICATION: u8 = b'R';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const DATA_ROW: u8 = b'D';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const NO_DATA: u8 = b'n';
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// How bad an error the proxy reports is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// An ErrorResponse worded and coded the way PostgreSQL would word it.
pub fn error_response(severity: Severity, sqlstate: &str, message: &str) -> Frame {
    error_response_with_detail(severity, sqlstate, message, None)
}

/// An ErrorResponse with PostgreSQL's DETAIL line, if any.
pub fn error_response_with_detail(
    severity: Severity,
    sqlstate: &str,
    message: &str,
    detail: Option<&str>,
) -> Frame {
    let s = severity.as_str().to_string();
    let mut fields = vec![
        (b'S', s.clone()),
        (b'V', s),
        (b'C', sqlstate.to_string()),
        (b'M', message.to_string()),
    ];
    if let Some(detail) = detail {
        fields.push((b'D', detail.to_string()));
    }
    let err = ErrorResponse::new(fields);
    let mut buf = BytesMut::with_capacity(64 + message.len());
    match err.encode(&mut buf) {
        Ok(()) => Frame::from_bytes(buf.freeze()),
        // Only an over-long message fails to encode; say so without the text.
        Err(_) => Frame::new(
            tag::ERROR_RESPONSE,
            b"SERROR\0VERROR\0CXX000\0Merror message too long\0\0",
        ),
    }
}

/// The SQLSTATE and message of a server's ErrorResponse, for logs and decisions.
pub fn error_fields(frame: &Frame) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut r = super::frame::BodyReader::new(frame.body());
    while let Ok(field) = r.u8() {
        if field == 0 {
            break;
        }
        let Ok(value) = r.cstr() else { break };
        let value = String::from_utf8_lossy(value).into_owned();
        match field {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    (code, message)
}

pub fn authentication(code: i32, data: &[u8]) -> Frame {
    let mut body = Vec::with_capacity(4 + data.len());
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(data);
    Frame::new(tag::AUTHENTICATION, &body)
}

/// NegotiateProtocolVersion: the newest protocol version the proxy speaks for the major
/// version asked for, and the protocol options asked for that it does not know.
/// PostgreSQL sends the whole version number (3.0 is 196608), and libpq reads it so.
pub fn negotiate_protocol_version(newest: i32, unrecognized: &[String]) -> Frame {
    let mut body = newest.to_be_bytes().to_vec();
    body.extend_from_slice(&(unrecognized.len() as i32).to_be_bytes());
    for option in unrecognized {
        body.extend_from_slice(option.as_bytes());
        body.push(0);
    }
    Frame::new(tag::NEGOTIATE_PROTOCOL_VERSION, &body)
}

pub fn parameter_status(name: &str, value: &str) -> Frame {
    Frame::new(tag::PARAMETER_STATUS, &cstrs(&[name, value]))
}

pub fn backend_key_data(pid: i32, key: i32) -> Frame {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&pid.to_be_bytes());
    body[4..].copy_from_slice(&key.to_be_bytes());
    Frame::new(tag::BACKEND_KEY_DATA, &body)
}

pub fn ready_for_query(status: u8) -> Frame {
    Frame::new(tag::READY_FOR_QUERY, &[status])
}

pub fn command_complete(command_tag: &str) -> Frame {
    Frame::new(tag::COMMAND_COMPLETE, &cstrs(&[command_tag]))
}

/// RowDescription of one text column, as for `SHOW name`.
pub fn text_row_description(column: &str) -> Frame {
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(column.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i32.to_be_bytes()); // not a table column
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&25i32.to_be_bytes()); // text
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes()); // text format
    Frame::new(tag::ROW_DESCRIPTION, &body)
}

/// A NoticeResponse, e.g. PostgreSQL's WARNING for a BEGIN inside a transaction.
pub fn notice_response(severity: &str, sqlstate: &str, message: &str) -> Frame {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    Frame::new(tag::NOTICE_RESPONSE, &body)
}

/// DataRow of one text value.
pub fn text_data_row(value: &str) -> Frame {
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value.as_bytes());
    Frame::new(tag::DATA_ROW, &body)
}

pub fn query(sql: &str) -> Frame {
    Frame::new(tag::QUERY, &cstrs(&[sql]))
}

pub fn parse(name: &str, sql: &[u8], param_types: &[u8]) -> Frame {
    let mut body = Vec::with_capacity(name.len() + sql.len() + param_types.len() + 2);
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(sql);
    body.push(0);
    body.extend_from_slice(param_types);
    Frame::new(tag::PARSE, &body)
}

/// Close of a prepared statement ('S') or portal ('P').
pub fn close(kind: u8, name: &str) -> Frame {
    let mut body = vec![kind];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    Frame::new(tag::CLOSE, &body)
}

pub fn terminate() -> Frame {
    Frame::new(tag::TERMINATE, &[])
}

pub fn password(data: &[u8]) -> Frame {
    Frame::new(tag::PASSWORD, data)
}

fn cstrs(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_round_trip() {
        let f = error_response(Severity::Fatal, "28P01", "password authentication failed");
        assert_eq!(f.tag(), b'E');
        assert_eq!(
            error_fields(&f),
            (
                "28P01".to_string(),
                "password authentication failed".to_string()
            )
        );
    }
}
