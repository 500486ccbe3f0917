//! A PostgreSQL protocol connection driven by hand, for tests that send what no driver
//! sends (malformed or oversized messages, pipelines with one Sync) and read every reply.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::error::{HarnessError, Result};
use crate::user::User;

/// How long a read waits before the test is told the peer said nothing.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// One message from the server (or the proxy): its tag and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendMessage {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl BackendMessage {
    /// A field of an ErrorResponse or NoticeResponse (`b'C'` SQLSTATE, `b'M'` message,
    /// `b'S'` severity).
    pub fn field(&self, code: u8) -> Option<String> {
        if self.tag != b'E' && self.tag != b'N' {
            return None;
        }
        self.body
            .split(|&b| b == 0)
            .find(|field| field.first() == Some(&code))
            .map(|field| String::from_utf8_lossy(&field[1..]).into_owned())
    }

    /// The SQLSTATE of an ErrorResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// The tag as a character, for readable assertions.
    pub fn kind(&self) -> char {
        self.tag as char
    }
}

/// A plain TCP connection speaking the protocol one message at a time.
pub struct RawConnection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConnection {
    /// Opens a TCP connection; nothing is sent yet.
    pub async fn connect(addr: SocketAddr) -> Result<RawConnection> {
        let stream = timeout(crate::client::CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io_error(&format!("connect to {addr}"), timed_out()))?
            .map_err(|source| io_error(&format!("connect to {addr}"), source))?;
        let _ = stream.set_nodelay(true);
        Ok(RawConnection {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects and logs in as `user`, answering whichever password request comes
    /// (cleartext, md5 or SCRAM-SHA-256), and reads up to the first ReadyForQuery.
    /// Returns the connection and the messages that came after authentication
    /// (ParameterStatus, BackendKeyData, ReadyForQuery).
    pub async fn login(
        addr: SocketAddr,
        user: &User,
    ) -> Result<(RawConnection, Vec<BackendMessage>)> {
        let mut conn = RawConnection::connect(addr).await?;
        conn.send_bytes(&startup_packet(&[
            ("user", &user.name),
            ("database", &user.database),
        ]))
        .await?;
        conn.authenticate(user).await?;
        let greeting = conn.read_until_ready().await?;
        if let Some(error) = greeting.iter().find(|m| m.tag == b'E') {
            return Err(server_error("log in", error));
        }
        Ok((conn, greeting))
    }

    /// Answers the authentication requests that follow a startup packet, up to
    /// AuthenticationOk.
    pub async fn authenticate(&mut self, user: &User) -> Result<()> {
        let mut scram: Option<ScramSha256> = None;
        loop {
            let message = self.expect_message().await?;
            match message.tag {
                b'R' => {}
                b'E' => return Err(server_error("authenticate", &message)),
                other => {
                    return Err(io_error(
                        "authenticate",
                        io::Error::other(format!("unexpected message {:?}", other as char)),
                    ))
                }
            }
            if message.body.len() < 4 {
                return Err(io_error(
                    "authenticate",
                    io::Error::other("authentication request without a code"),
                ));
            }
            let (code, data) = message.body.split_at(4);
            let code = i32::from_be_bytes([code[0], code[1], code[2], code[3]]);
            match code {
                0 => return Ok(()),
                3 => {
                    self.send(b'p', &cstring(&user.password)).await?;
                }
                5 => {
                    let salt: [u8; 4] = data.try_into().unwrap_or_default();
                    let hash = md5_hash(user.name.as_bytes(), user.password.as_bytes(), salt);
                    self.send(b'p', &cstring(&hash)).await?;
                }
                10 => {
                    let exchange =
                        ScramSha256::new(user.password.as_bytes(), ChannelBinding::unsupported());
                    let mut body = cstring(SCRAM_SHA_256);
                    body.extend_from_slice(&(exchange.message().len() as i32).to_be_bytes());
                    body.extend_from_slice(exchange.message());
                    self.send(b'p', &body).await?;
                    scram = Some(exchange);
                }
                11 => {
                    let exchange = scram.as_mut().ok_or_else(|| {
                        io_error("authenticate", io::Error::other("SASLContinue before SASL"))
                    })?;
                    exchange
                        .update(data)
                        .map_err(|source| io_error("SCRAM server-first", source))?;
                    let reply = exchange.message().to_vec();
                    self.send(b'p', &reply).await?;
                }
                12 => {
                    let exchange = scram.as_mut().ok_or_else(|| {
                        io_error("authenticate", io::Error::other("SASLFinal before SASL"))
                    })?;
                    exchange
                        .finish(data)
                        .map_err(|source| io_error("SCRAM server-final", source))?;
                }
                other => {
                    return Err(io_error(
                        "authenticate",
                        io::Error::other(format!("unsupported authentication request {other}")),
                    ))
                }
            }
        }
    }

    /// Writes raw bytes and flushes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|source| io_error("write", source))
    }

    /// Writes one regular message.
    pub async fn send(&mut self, tag: u8, body: &[u8]) -> Result<()> {
        self.send_bytes(&message(tag, body)).await
    }

    /// Closes the writing half: the peer sees the end of the stream.
    pub async fn shutdown_write(&mut self) -> Result<()> {
        self.stream
            .shutdown()
            .await
            .map_err(|source| io_error("shut down writing", source))
    }

    /// Reads one byte (the answer to an SSLRequest or GSSENCRequest).
    pub async fn read_byte(&mut self) -> Result<u8> {
        if !self.buf.is_empty() {
            return Ok(self.buf.remove(0));
        }
        let mut byte = [0u8; 1];
        match timeout(READ_TIMEOUT, self.stream.read_exact(&mut byte)).await {
            Ok(Ok(_)) => Ok(byte[0]),
            Ok(Err(source)) => Err(io_error("read a byte", source)),
            Err(_) => Err(io_error("read a byte", timed_out())),
        }
    }

    /// The next message, or `None` when the peer closed the connection (also by a reset)
    /// between messages.
    pub async fn read_message(&mut self) -> Result<Option<BackendMessage>> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len >= 4)
                    .ok_or_else(|| {
                        io_error("read", io::Error::other(format!("bad length {len}")))
                    })?;
                if self.buf.len() > len {
                    let rest = self.buf.split_off(len + 1);
                    let whole = std::mem::replace(&mut self.buf, rest);
                    return Ok(Some(BackendMessage {
                        tag: whole[0],
                        body: whole[5..].to_vec(),
                    }));
                }
            }
            let mut chunk = [0u8; 8192];
            let read = match timeout(READ_TIMEOUT, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) => n,
                Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionReset => 0,
                Ok(Err(source)) => return Err(io_error("read", source)),
                Err(_) => return Err(io_error("read", timed_out())),
            };
            if read == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io_error(
                    "read",
                    io::Error::other("connection closed inside a message"),
                ));
            }
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }

    /// The next message; the end of the stream is an error.
    pub async fn expect_message(&mut self) -> Result<BackendMessage> {
        self.read_message().await?.ok_or_else(|| {
            io_error(
                "read",
                io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
            )
        })
    }

    /// Every message up to and including the next ReadyForQuery; also stops after a FATAL
    /// error or at the end of the stream.
    pub async fn read_until_ready(&mut self) -> Result<Vec<BackendMessage>> {
        let mut messages = Vec::new();
        while let Some(message) = self.read_message().await? {
            let fatal = message.tag == b'E' && message.field(b'S').as_deref() == Some("FATAL");
            let ready = message.tag == b'Z';
            messages.push(message);
            if ready || fatal {
                break;
            }
        }
        Ok(messages)
    }

    /// Reads until the peer closes the connection and returns what came before.
    pub async fn read_until_closed(&mut self) -> Result<Vec<BackendMessage>> {
        let mut messages = Vec::new();
        while let Some(message) = self.read_message().await? {
            messages.push(message);
        }
        Ok(messages)
    }
}

/// A regular message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A protocol 3.0 StartupMessage with `params`.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (name, value) in params {
        body.extend_from_slice(&cstring(name));
        body.extend_from_slice(&cstring(value));
    }
    body.push(0);
    untagged(&body)
}

/// An SSLRequest.
pub fn ssl_request() -> Vec<u8> {
    untagged(&SSL_REQUEST.to_be_bytes())
}

/// A GSSENCRequest.
pub fn gssenc_request() -> Vec<u8> {
    untagged(&GSSENC_REQUEST.to_be_bytes())
}

/// A CancelRequest for the given BackendKeyData.
pub fn cancel_request(pid: i32, key: i32) -> Vec<u8> {
    let mut body = CANCEL_REQUEST.to_be_bytes().to_vec();
    body.extend_from_slice(&pid.to_be_bytes());
    body.extend_from_slice(&key.to_be_bytes());
    untagged(&body)
}

/// A simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstring(sql))
}

/// A Parse of `sql` into statement `name`, parameter types left to the server.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstring(name);
    body.extend_from_slice(&cstring(sql));
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'P', &body)
}

/// A Bind of statement `name` to the unnamed portal, with text parameters (`None` is
/// NULL) and text results.
pub fn bind(name: &str, params: &[Option<&str>]) -> Vec<u8> {
    let mut body = cstring("");
    body.extend_from_slice(&cstring(name));
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for param in params {
        match param {
            Some(value) => {
                body.extend_from_slice(&(value.len() as i32).to_be_bytes());
                body.extend_from_slice(value.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &body)
}

/// An Execute of the unnamed portal, all rows.
pub fn execute() -> Vec<u8> {
    let mut body = cstring("");
    body.extend_from_slice(&0i32.to_be_bytes());
    message(b'E', &body)
}

/// A Sync.
pub fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// A Terminate.
pub fn terminate() -> Vec<u8> {
    message(b'X', &[])
}

/// The text of a DataRow's columns (`None` for NULL).
pub fn data_row(message: &BackendMessage) -> Vec<Option<String>> {
    let body = &message.body;
    let mut columns = Vec::new();
    if message.tag != b'D' || body.len() < 2 {
        return columns;
    }
    let count = i16::from_be_bytes([body[0], body[1]]);
    let mut at = 2;
    for _ in 0..count {
        let Some(len) = body.get(at..at + 4) else {
            break;
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len < 0 {
            columns.push(None);
            continue;
        }
        let end = (at + len as usize).min(body.len());
        columns.push(Some(String::from_utf8_lossy(&body[at..end]).into_owned()));
        at = end;
    }
    columns
}

fn untagged(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32 + 4).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn cstring(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("nothing within {READ_TIMEOUT:?}"),
    )
}

fn io_error(action: &str, source: io::Error) -> HarnessError {
    HarnessError::Io {
        action: format!("raw connection: {action}"),
        source,
    }
}

fn server_error(action: &str, error: &BackendMessage) -> HarnessError {
    io_error(
        action,
        io::Error::other(format!(
            "{} {}: {}",
            error.field(b'S').unwrap_or_default(),
            error.sqlstate().unwrap_or_default(),
            error.field(b'M').unwrap_or_default()
        )),
    )
}
