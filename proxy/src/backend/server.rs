//! One logged-in connection to a PostgreSQL server.

use std::collections::HashMap;
use std::time::Duration;

use tokio::net::TcpStream;

use super::authenticate::{authenticate, rejected};
use super::error::ServerError;
use super::prepared::ServerStatements;
use crate::net::messages::tag;
use crate::net::startup::startup_packet;
use crate::net::{Connection, Frame, MaybeTls, ServerStream, WireError};
use crate::registry::{Registration, ServerInfo};
use pgshard_failover::NodeTls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the proxy's own housekeeping queries (settings replay, DISCARD ALL) may take.
pub const HOUSEKEEPING_TIMEOUT: Duration = Duration::from_secs(10);

/// One pool: the client-facing user it serves, and where and as whom its server
/// connections log in. Each (user, database) has a pool of its own, sized by that user,
/// even when several users log in to the servers as the same server user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerTarget {
    /// `host:port`
    pub addr: String,
    /// The `[[users]]` name clients log in with.
    pub pool_user: String,
    /// The user server connections log in as.
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

/// A server connection with the state the proxy tracks to share it between clients safely:
/// the server's reported parameters, which client settings are applied, which prepared
/// statements exist on it, and whether it is still usable.
pub struct ServerConnection {
    pub conn: Connection<ServerStream>,
    pub addr: String,
    pub pid: i32,
    pub secret_key: i32,
    /// ParameterStatus values the server reported, latest first.
    pub params: HashMap<String, String>,
    /// Fingerprint of the client session settings last applied here (None: server defaults).
    pub applied_settings: Option<u64>,
    pub statements: ServerStatements,
    /// Set when the connection must not be reused (I/O error, protocol desync, abandoned).
    pub broken: bool,
    /// Transaction status of the last ReadyForQuery.
    pub status: u8,
    /// The Parse that made the unnamed statement this server holds, as far as the proxy
    /// knows (`None`: none, or not known), so a client's unnamed statement is made again
    /// only where another one is in its place.
    pub unnamed: Option<Frame>,
    /// The unnamed statement this server holds was made by a Parse streamed past the
    /// proxy (never kept), with this number.
    pub streamed_unnamed: Option<u64>,
    /// Its entry in `SHOW SERVERS`, for a pooled connection.
    pub registration: Option<Registration<ServerInfo>>,
    /// Its pool's `RECONNECT` generation when it was opened.
    pub generation: u64,
}

impl ServerConnection {
    pub async fn connect(
        target: &ServerTarget,
        timeout: Duration,
        max_message_size: usize,
        statements_limit: usize,
        tls: Option<&NodeTls>,
    ) -> Result<ServerConnection, ServerError> {
        match tokio::time::timeout(
            timeout,
            Self::connect_inner(target, max_message_size, statements_limit, tls),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(ServerError::ConnectTimeout(target.addr.clone())),
        }
    }

    async fn connect_inner(
        target: &ServerTarget,
        max_message_size: usize,
        statements_limit: usize,
        tls: Option<&NodeTls>,
    ) -> Result<ServerConnection, ServerError> {
        let addr = target.addr.clone();
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| ServerError::Connect {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let stream = match tls {
            Some(tls) => encrypt(stream, &addr, tls).await?,
            None => MaybeTls::Plain(stream),
        };
        let mut conn = Connection::new(stream, max_message_size);
        let wire = |source| ServerError::Wire {
            addr: target.addr.clone(),
            source,
        };
        let packet = startup_packet(&[
            ("user", &target.user),
            ("database", &target.database),
            ("application_name", "pgshard"),
        ]);
        conn.write_bytes(&packet).await.map_err(wire)?;
        conn.flush().await.map_err(wire)?;
        authenticate(
            &mut conn,
            &target.addr,
            &target.user,
            target.password.as_deref(),
        )
        .await?;
        let mut server = ServerConnection {
            conn,
            addr: target.addr.clone(),
            pid: 0,
            secret_key: 0,
            params: HashMap::new(),
            applied_settings: None,
            statements: ServerStatements::new(statements_limit),
            broken: false,
            status: b'I',
            unnamed: None,
            streamed_unnamed: None,
            registration: None,
            generation: 0,
        };
        loop {
            let frame = server.conn.read_frame().await.map_err(wire)?;
            match frame.tag() {
                tag::PARAMETER_STATUS => server.note_parameter(&frame),
                tag::BACKEND_KEY_DATA => {
                    let mut r = frame.reader();
                    server.pid = r.i32().map_err(wire)?;
                    server.secret_key = r.i32().map_err(wire)?;
                }
                tag::READY_FOR_QUERY => return Ok(server),
                tag::ERROR_RESPONSE => return Err(rejected(&target.addr, &frame)),
                tag::NOTICE_RESPONSE => {}
                other => return Err(wire(WireError::Unexpected(other))),
            }
        }
    }

    /// Records a ParameterStatus message the server sent.
    pub fn note_parameter(&mut self, frame: &Frame) {
        let mut r = frame.reader();
        if let (Ok(name), Ok(value)) = (r.cstr_utf8(), r.cstr_utf8()) {
            self.params.insert(name.to_string(), value.to_string());
        }
    }

    /// Reads one message; any failure marks the connection broken.
    pub async fn read(&mut self) -> Result<Frame, WireError> {
        let result = self.conn.read_frame().await;
        match &result {
            Ok(frame) if frame.tag() == tag::READY_FOR_QUERY => {
                self.status = frame.body().first().copied().unwrap_or(b'I');
            }
            Ok(frame) if frame.tag() == tag::PARAMETER_STATUS => self.note_parameter(frame),
            // A failed Parse leaves no unnamed statement; without knowing which message
            // failed, assume none.
            Ok(frame) if frame.tag() == tag::ERROR_RESPONSE => {
                self.unnamed = None;
                self.streamed_unnamed = None;
            }
            Ok(_) => {}
            Err(_) => self.broken = true,
        }
        result
    }

    /// Writes one message (buffered); failure marks the connection broken.
    pub async fn write(&mut self, frame: &Frame) -> Result<(), WireError> {
        match frame.tag() {
            // PostgreSQL drops the unnamed statement at a simple Query and at its Close.
            tag::QUERY => self.forget_unnamed(),
            tag::PARSE if frame.body().first() == Some(&0) => {
                self.unnamed = Some(frame.clone());
                self.streamed_unnamed = None;
            }
            tag::CLOSE if frame.body().get(..2) == Some(b"S\0") => self.forget_unnamed(),
            _ => {}
        }
        let result = self.conn.write_frame(frame).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Marks the connection checked out (or back in its pool) in `SHOW SERVERS`.
    pub fn set_active(&self, active: bool) {
        if let Some(registration) = &self.registration {
            registration.entry().active.set(active);
        }
    }

    /// The server holds no unnamed statement the proxy knows of.
    pub fn forget_unnamed(&mut self) {
        self.unnamed = None;
        self.streamed_unnamed = None;
    }

    /// Writes raw bytes of a message streamed past the proxy (buffered); failure marks
    /// the connection broken.
    pub async fn write_streamed(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let result = self.conn.write_bytes(bytes).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    pub async fn flush(&mut self) -> Result<(), WireError> {
        let result = self.conn.flush().await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Sends a simple query and drops its results, up to ReadyForQuery; returns the first
    /// error the server reported, if any. For the proxy's own housekeeping queries, which
    /// are quick: a server that does not answer within [`HOUSEKEEPING_TIMEOUT`] is taken
    /// for gone (the connection is marked broken), so no client waits on it forever.
    pub async fn run_quietly(&mut self, sql: &str) -> Result<Option<Frame>, WireError> {
        match tokio::time::timeout(HOUSEKEEPING_TIMEOUT, self.run_quietly_inner(sql)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                self.broken = true;
                Err(e)
            }
            Err(_) => {
                self.broken = true;
                Err(WireError::Io(format!(
                    "no answer from {} within {HOUSEKEEPING_TIMEOUT:?}",
                    self.addr
                )))
            }
        }
    }

    async fn run_quietly_inner(&mut self, sql: &str) -> Result<Option<Frame>, WireError> {
        self.write(&crate::net::messages::query(sql)).await?;
        self.flush().await?;
        let mut error = None;
        loop {
            let frame = self.read().await?;
            match frame.tag() {
                tag::READY_FOR_QUERY => return Ok(error),
                tag::ERROR_RESPONSE if error.is_none() => error = Some(frame),
                tag::COPY_IN_RESPONSE => {
                    // Housekeeping never copies; refuse it so the server returns to idle.
                    self.write(&Frame::new(
                        crate::net::messages::tag::COPY_FAIL,
                        b"not expected\0",
                    ))
                    .await?;
                    self.flush().await?;
                }
                _ => {}
            }
        }
    }

    /// Runs a simple query of the proxy's own and returns the first column of its first
    /// row (`None` for no row or NULL); an error reply is an error.
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, WireError> {
        let run = async {
            self.write(&crate::net::messages::query(sql)).await?;
            self.flush().await?;
            let mut value = None;
            let mut failed = false;
            loop {
                let frame = self.read().await?;
                match frame.tag() {
                    tag::READY_FOR_QUERY if failed => {
                        return Err(WireError::Malformed("the server refused a proxy query"))
                    }
                    tag::READY_FOR_QUERY => return Ok(value),
                    tag::ERROR_RESPONSE => failed = true,
                    tag::DATA_ROW if value.is_none() => {
                        let mut r = frame.reader();
                        if r.i16()? > 0 {
                            let len = r.i32()?;
                            if len >= 0 {
                                let bytes = r.take(len as usize)?;
                                value = Some(String::from_utf8_lossy(bytes).into_owned());
                            }
                        }
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(HOUSEKEEPING_TIMEOUT, run).await {
            Ok(result) => {
                if result.is_err() {
                    self.broken = true;
                }
                result
            }
            Err(_) => {
                self.broken = true;
                Err(WireError::Io(format!(
                    "no answer from {} within {HOUSEKEEPING_TIMEOUT:?}",
                    self.addr
                )))
            }
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.status != b'I'
    }
}

/// SSLRequest code (PostgreSQL's `1234.5679`).
const SSL_REQUEST: i32 = 80_877_103;

/// Asks the server at `addr` for TLS and runs the handshake when it agrees; a server that
/// declines is used in plaintext unless TLS is required.
async fn encrypt(
    mut stream: TcpStream,
    addr: &str,
    tls: &NodeTls,
) -> Result<ServerStream, ServerError> {
    let failed = |reason: String| ServerError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let mut request = Vec::with_capacity(8);
    request.extend_from_slice(&8i32.to_be_bytes());
    request.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    stream
        .write_all(&request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let answer = stream.read_u8().await.map_err(|e| failed(e.to_string()))?;
    match answer {
        b'S' => {
            let (host, _) = pgshard_failover::control::split_addr(addr);
            let name = NodeTls::server_name(host).map_err(failed)?;
            let encrypted = tls
                .connector()
                .connect(name, stream)
                .await
                .map_err(|e| failed(format!("TLS handshake: {e}")))?;
            Ok(MaybeTls::Tls(Box::new(encrypted)))
        }
        b'N' if !tls.required() => Ok(MaybeTls::Plain(stream)),
        b'N' => Err(failed(
            "the server does not accept TLS, which server_tls_mode requires".to_string(),
        )),
        other => Err(failed(format!(
            "unexpected answer {:?} to an SSLRequest",
            other as char
        ))),
    }
}
