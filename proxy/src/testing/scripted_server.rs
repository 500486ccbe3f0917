//! A scripted PostgreSQL server for the session engine's fast tests: it speaks the wire
//! protocol as a server does (startup, simple and extended query, per-connection named
//! and unnamed statements, portals, transaction status, skip-to-Sync after an error) and
//! answers each statement from a script. It records what every connection ran and every
//! protocol rule the proxy broke, so a test can check what reached the servers without
//! Docker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::net::messages::{self, error_response, tag};
use crate::net::{BodyReader, Connection, Frame, Severity};

/// What one statement answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Text rows under the named columns, then this command tag.
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        tag: String,
    },
    /// A command with no rows.
    Command(String),
    /// An ERROR with this SQLSTATE and message.
    Error(String, String),
    /// A command with this tag, whose ReadyForQuery is followed by another one nobody
    /// asked for: a server breaking the protocol.
    CommandThenStrayReady(String),
}

impl Reply {
    /// One text column, one row.
    pub fn value(column: &str, value: &str) -> Reply {
        Reply::Rows {
            columns: vec![column.to_string()],
            rows: vec![vec![value.to_string()]],
            tag: "SELECT 1".to_string(),
        }
    }
}

/// Answers a statement (its text and its parameters as text) for a connection.
pub type Script = Arc<dyn Fn(&Statement<'_>) -> Reply + Send + Sync>;

/// A statement the script is asked to answer.
pub struct Statement<'a> {
    pub sql: &'a str,
    pub params: &'a [Option<String>],
}

/// What the proxy made the server do, for the test to check.
#[derive(Default, Debug)]
pub struct ServerLog {
    /// (connection, statement text) in the order they ran, from Query and Execute.
    pub ran: Vec<(i32, String)>,
    /// Protocol rules broken by the proxy, described.
    pub violations: Vec<String>,
    /// Connections opened so far.
    pub connections: i32,
}

/// A running scripted server; stops when dropped.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<ServerLog>>,
    task: JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedServer {
    /// Listens on 127.0.0.1 and serves every connection with `script`.
    pub async fn start(script: Script) -> ScriptedServer {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("scripted server: bind 127.0.0.1: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("scripted server: local address: {e}"),
        };
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let served = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = {
                    let mut log = lock(&served);
                    log.connections += 1;
                    log.connections
                };
                let backend = Backend {
                    connection,
                    script: script.clone(),
                    log: served.clone(),
                    statements: HashMap::new(),
                    portals: HashMap::new(),
                    fetched: HashMap::new(),
                    status: b'I',
                    in_batch: false,
                    skipping: false,
                    stray_ready: false,
                };
                tokio::spawn(backend.serve(stream));
            }
        });
        ScriptedServer { addr, log, task }
    }

    /// Every statement run, with its connection.
    pub fn ran(&self) -> Vec<(i32, String)> {
        lock(&self.log).ran.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        lock(&self.log).violations.clone()
    }
}

fn lock(log: &Mutex<ServerLog>) -> std::sync::MutexGuard<'_, ServerLog> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The default script: `SELECT` of parameters answers them joined by commas (so a client
/// sees which parameters its statement ran with), any other `SELECT` answers its own
/// text, anything else completes with its first word as the tag.
pub fn echo() -> Script {
    Arc::new(|statement: &Statement<'_>| echo_reply(statement))
}

pub fn echo_reply(statement: &Statement<'_>) -> Reply {
    let sql = statement.sql.trim();
    let first = first_word(sql);
    match first.as_str() {
        "SELECT" if !statement.params.is_empty() => {
            let values: Vec<&str> = statement
                .params
                .iter()
                .map(|p| p.as_deref().unwrap_or("NULL"))
                .collect();
            Reply::value("echo", &values.join(","))
        }
        "SELECT" => Reply::value("echo", sql),
        "INSERT" => Reply::Command("INSERT 0 1".to_string()),
        "" => Reply::Command(String::new()),
        _ => Reply::Command(first),
    }
}

/// A prepared statement: its text and how many parameters it takes.
#[derive(Clone)]
struct Prepared {
    sql: String,
    params: usize,
}

/// One server connection's state, as a PostgreSQL backend keeps it.
struct Backend {
    connection: i32,
    script: Script,
    log: Arc<Mutex<ServerLog>>,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, (Prepared, Vec<Option<String>>)>,
    /// Rows already sent of each portal executed.
    fetched: HashMap<String, usize>,
    status: u8,
    /// Extended-protocol messages came since the last Sync.
    in_batch: bool,
    /// After an error in an extended batch: messages are skipped up to Sync.
    skipping: bool,
    /// A ReadyForQuery nobody asked for is due after the next one.
    stray_ready: bool,
}

impl Backend {
    async fn serve(mut self, mut stream: TcpStream) {
        if self.startup(&mut stream).await.is_none() {
            return;
        }
        // As large as the proxy's default limit, for tests of large messages.
        let mut conn = Connection::new(stream, 64 << 20);
        let mut hello = vec![messages::authentication(0, &[])];
        for (name, value) in [
            ("server_version", "15.18"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("application_name", ""),
        ] {
            hello.push(messages::parameter_status(name, value));
        }
        hello.push(messages::backend_key_data(self.connection, 0));
        hello.push(messages::ready_for_query(b'I'));
        if self.send(&mut conn, &hello).await.is_none() {
            return;
        }
        while let Ok(frame) = conn.read_frame().await {
            let replies = match self.on_frame(&frame) {
                Some(replies) => replies,
                None => return,
            };
            if self.send(&mut conn, &replies).await.is_none() {
                return;
            }
        }
    }

    /// Reads the startup packet, declining TLS first if asked.
    async fn startup(&self, stream: &mut TcpStream) -> Option<()> {
        loop {
            let len = stream.read_i32().await.ok()?;
            let mut body = BytesMut::zeroed(usize::try_from(len).ok()?.checked_sub(4)?);
            stream.read_exact(&mut body).await.ok()?;
            let code = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
            if code == 80877103 {
                tokio::io::AsyncWriteExt::write_all(stream, b"N")
                    .await
                    .ok()?;
                continue;
            }
            return (code == 196608).then_some(());
        }
    }

    async fn send(&self, conn: &mut Connection<TcpStream>, frames: &[Frame]) -> Option<()> {
        for frame in frames {
            conn.write_frame(frame).await.ok()?;
        }
        conn.flush().await.ok()
    }

    fn violation(&self, what: String) {
        lock(&self.log)
            .violations
            .push(format!("connection {}: {what}", self.connection));
    }

    /// The replies to one message; `None` ends the connection.
    fn on_frame(&mut self, frame: &Frame) -> Option<Vec<Frame>> {
        let t = frame.tag();
        if t == tag::TERMINATE {
            return None;
        }
        if t == tag::QUERY {
            if self.in_batch {
                self.violation("a Query inside an extended batch not ended by Sync".into());
            }
            let sql =
                String::from_utf8_lossy(BodyReader::new(frame.body()).cstr().ok()?).into_owned();
            return Some(self.simple_query(&sql));
        }
        if t == tag::SYNC {
            self.in_batch = false;
            self.skipping = false;
            // Portals, the unnamed one too, end with the transaction.
            if self.status == b'I' {
                self.portals.clear();
                self.fetched.clear();
            }
            return Some(self.ready());
        }
        if t == tag::FLUSH {
            return Some(Vec::new());
        }
        self.in_batch = true;
        if self.skipping {
            return Some(Vec::new());
        }
        let result = match t {
            tag::PARSE => self.parse(frame),
            tag::BIND => self.bind(frame),
            tag::DESCRIBE => self.describe(frame),
            tag::EXECUTE => self.execute(frame),
            tag::CLOSE => self.close(frame),
            other => Err((
                "08P01".into(),
                format!("unexpected message {}", other as char),
            )),
        };
        Some(match result {
            Ok(frames) => frames,
            Err((code, message)) => {
                self.skipping = true;
                if self.status == b'T' {
                    self.status = b'E';
                }
                vec![error_response(Severity::Error, &code, &message)]
            }
        })
    }

    fn simple_query(&mut self, sql: &str) -> Vec<Frame> {
        let mut out = Vec::new();
        // The unnamed statement goes with a simple Query, as in PostgreSQL.
        self.statements.remove("");
        for stmt in split_statements(sql) {
            match self.run(stmt, &[]) {
                Ok(mut frames) => {
                    if let Some(columns) = columns_of(&self.answer(stmt, &[])) {
                        frames.insert(0, row_description(&columns));
                    }
                    out.extend(frames);
                }
                Err((code, message)) => {
                    out.push(error_response(Severity::Error, &code, &message));
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(Frame::new(b'I', &[]));
        }
        out.extend(self.ready());
        out
    }

    /// The ReadyForQuery that ends a batch, and a stray one when the script asked for it.
    fn ready(&mut self) -> Vec<Frame> {
        let ready = messages::ready_for_query(self.status);
        match std::mem::take(&mut self.stray_ready) {
            true => vec![ready.clone(), ready],
            false => vec![ready],
        }
    }

    fn answer(&self, sql: &str, params: &[Option<String>]) -> Reply {
        (self.script)(&Statement { sql, params })
    }

    /// Runs a statement: logged, transaction status kept, rows and tag returned.
    fn run(
        &mut self,
        sql: &str,
        params: &[Option<String>],
    ) -> Result<Vec<Frame>, (String, String)> {
        lock(&self.log).ran.push((self.connection, sql.to_string()));
        if self.status == b'E' && !is_transaction_end(sql) {
            return Err((
                "25P02".into(),
                "current transaction is aborted, commands ignored until end of transaction block"
                    .into(),
            ));
        }
        let first = first_word(sql);
        match first.as_str() {
            "BEGIN" | "START" => self.status = b'T',
            "COMMIT" | "END" | "ROLLBACK" | "ABORT" => {
                self.status = b'I';
                self.portals.clear();
                self.fetched.clear();
            }
            "DISCARD" | "DEALLOCATE" if sql.to_ascii_uppercase().ends_with("ALL") => {
                self.statements.clear();
            }
            _ => {}
        }
        let reply = built_in(sql, &self.statements).unwrap_or_else(|| self.answer(sql, params));
        // As PostgreSQL: a change of application_name is reported while the statement runs.
        let report: Vec<Frame> = reported_change(sql)
            .map(|value| messages::parameter_status("application_name", &value))
            .into_iter()
            .collect();
        match reply {
            Reply::Rows { rows, tag, .. } => {
                let mut frames = report;
                frames.extend(rows.iter().map(|row| data_row(row)));
                frames.push(messages::command_complete(&tag));
                Ok(frames)
            }
            Reply::Command(tag) => {
                let mut frames = report;
                frames.push(messages::command_complete(&tag));
                Ok(frames)
            }
            Reply::CommandThenStrayReady(tag) => {
                self.stray_ready = true;
                let mut frames = report;
                frames.push(messages::command_complete(&tag));
                Ok(frames)
            }
            Reply::Error(code, message) => {
                if self.status == b'T' {
                    self.status = b'E';
                }
                Err((code, message))
            }
        }
    }

    fn parse(&mut self, frame: &Frame) -> Result<Vec<Frame>, (String, String)> {
        let mut r = BodyReader::new(frame.body());
        let name = text(r.cstr().map_err(malformed)?);
        let sql = text(r.cstr().map_err(malformed)?);
        let commands = split_statements(&sql)
            .iter()
            .filter(|s| !s.starts_with("--"))
            .count();
        if commands > 1 {
            return Err((
                "42601".into(),
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err((
                "42P05".into(),
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        let params = (1..=99)
            .take_while(|n| sql.contains(&format!("${n}")))
            .count();
        self.statements.insert(name, Prepared { sql, params });
        Ok(vec![Frame::new(b'1', &[])])
    }

    fn statement(&self, name: &str) -> Result<Prepared, (String, String)> {
        self.statements.get(name).cloned().ok_or_else(|| {
            let message = if name.is_empty() {
                "unnamed prepared statement does not exist".to_string()
            } else {
                format!("prepared statement \"{name}\" does not exist")
            };
            ("26000".to_string(), message)
        })
    }

    fn bind(&mut self, frame: &Frame) -> Result<Vec<Frame>, (String, String)> {
        let mut r = BodyReader::new(frame.body());
        let portal = text(r.cstr().map_err(malformed)?);
        let name = text(r.cstr().map_err(malformed)?);
        let statement = self.statement(&name)?;
        let formats = r.i16().map_err(malformed)?;
        for _ in 0..formats {
            r.i16().map_err(malformed)?;
        }
        let count = r.i16().map_err(malformed)?;
        let mut params = Vec::new();
        for _ in 0..count {
            let len = r.i32().map_err(malformed)?;
            params.push(match usize::try_from(len) {
                Ok(len) => Some(text(r.take(len).map_err(malformed)?)),
                Err(_) => None,
            });
        }
        if params.len() != statement.params {
            return Err((
                "08P01".into(),
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{name}\" \
                     requires {}",
                    params.len(),
                    statement.params
                ),
            ));
        }
        if !portal.is_empty() && self.portals.contains_key(&portal) {
            return Err((
                "42P03".into(),
                format!("portal \"{portal}\" already exists"),
            ));
        }
        self.fetched.remove(&portal);
        self.portals.insert(portal, (statement, params));
        Ok(vec![Frame::new(b'2', &[])])
    }

    fn describe(&mut self, frame: &Frame) -> Result<Vec<Frame>, (String, String)> {
        let mut r = BodyReader::new(frame.body());
        let kind = r.u8().map_err(malformed)?;
        let name = text(r.cstr().map_err(malformed)?);
        let (statement, params) = if kind == b'S' {
            let statement = self.statement(&name)?;
            let params = vec![None; statement.params];
            (statement, params)
        } else {
            self.portals.get(&name).cloned().ok_or_else(|| {
                (
                    "34000".to_string(),
                    format!("portal \"{name}\" does not exist"),
                )
            })?
        };
        let mut out = Vec::new();
        if kind == b'S' {
            let mut body = (statement.params as i16).to_be_bytes().to_vec();
            for _ in 0..statement.params {
                body.extend_from_slice(&25i32.to_be_bytes());
            }
            out.push(Frame::new(b't', &body));
        }
        out.push(match columns_of(&self.answer(&statement.sql, &params)) {
            Some(columns) => row_description(&columns),
            None => Frame::new(b'n', &[]),
        });
        Ok(out)
    }

    fn execute(&mut self, frame: &Frame) -> Result<Vec<Frame>, (String, String)> {
        let mut r = BodyReader::new(frame.body());
        let portal = text(r.cstr().map_err(malformed)?);
        let (statement, params) = self.portals.get(&portal).cloned().ok_or_else(|| {
            (
                "34000".to_string(),
                format!("portal \"{portal}\" does not exist"),
            )
        })?;
        let max_rows = r.i32().map_err(malformed)?;
        let offset = self.fetched.get(&portal).copied().unwrap_or(0);
        if offset > 0 {
            // A suspended portal resumed: the rest of its rows, not a new run.
            let rows = match self.answer(&statement.sql, &params) {
                Reply::Rows { rows, .. } => rows,
                _ => Vec::new(),
            };
            return Ok(self.portion(&portal, rows, offset, max_rows));
        }
        let frames = self.run(&statement.sql, &params)?;
        let rows: Vec<Vec<String>> = match self.answer(&statement.sql, &params) {
            Reply::Rows { rows, .. } if max_rows > 0 => rows,
            _ => return Ok(frames),
        };
        Ok(self.portion(&portal, rows, 0, max_rows))
    }

    /// Rows from `offset` up to `max_rows` of them, then PortalSuspended when the limit
    /// was reached (as PostgreSQL: even if no row follows), else CommandComplete.
    fn portion(
        &mut self,
        portal: &str,
        rows: Vec<Vec<String>>,
        offset: usize,
        max_rows: i32,
    ) -> Vec<Frame> {
        let limit = usize::try_from(max_rows)
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or(usize::MAX);
        let part: Vec<&Vec<String>> = rows.iter().skip(offset).take(limit).collect();
        let mut out: Vec<Frame> = part.iter().map(|row| data_row(row)).collect();
        if part.len() == limit {
            self.fetched.insert(portal.to_string(), offset + limit);
            out.push(Frame::new(b's', &[]));
        } else {
            // Run to its end: a further Execute gets no rows, as from PostgreSQL.
            self.fetched.insert(portal.to_string(), rows.len());
            out.push(messages::command_complete(&format!(
                "SELECT {}",
                part.len()
            )));
        }
        out
    }

    fn close(&mut self, frame: &Frame) -> Result<Vec<Frame>, (String, String)> {
        let mut r = BodyReader::new(frame.body());
        let kind = r.u8().map_err(malformed)?;
        let name = text(r.cstr().map_err(malformed)?);
        if kind == b'S' {
            self.statements.remove(&name);
        } else {
            self.portals.remove(&name);
        }
        Ok(vec![Frame::new(b'3', &[])])
    }
}

/// The statements of a simple Query: split at semicolons outside quotes and dollar quotes.
fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quote, mut dollar): (usize, Option<char>, Option<&str>) = (0, None, None);
    let mut i = 0;
    while i < sql.len() {
        let rest = &sql[i..];
        let c = rest.chars().next().unwrap_or(' ');
        if let Some(tag) = dollar {
            if rest.starts_with(tag) {
                i += tag.len();
                dollar = None;
                continue;
            }
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c == '$' {
            if let Some(end) = rest[1..].find('$') {
                let tag = &rest[..end + 2];
                if tag[1..tag.len() - 1]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_')
                {
                    dollar = Some(tag);
                    i += tag.len();
                    continue;
                }
            }
        } else if c == ';' {
            out.push(sql[start..i].trim());
            start = i + 1;
        }
        i += c.len_utf8();
    }
    out.push(sql[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// What PostgreSQL does with two statements the proxy itself sends: a DO block that only
/// raises an error, and DEALLOCATE of a statement the connection does not have.
fn built_in(sql: &str, statements: &HashMap<String, Prepared>) -> Option<Reply> {
    let upper = sql.to_ascii_uppercase();
    if upper.starts_with("DO ") && upper.contains("RAISE EXCEPTION") {
        let code = sql
            .split("ERRCODE = '")
            .nth(1)
            .and_then(|rest| rest.get(..5))
            .unwrap_or("P0001");
        let message = sql
            .split("MESSAGE = '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or("raised");
        return Some(Reply::Error(code.to_string(), message.to_string()));
    }
    if let Some(name) = upper.strip_prefix("DEALLOCATE ") {
        let name = name
            .trim()
            .trim_start_matches("PREPARE ")
            .trim()
            .to_ascii_lowercase();
        if name != "all" && !statements.contains_key(&name) {
            return Some(Reply::Error(
                "26000".to_string(),
                format!("prepared statement \"{name}\" does not exist"),
            ));
        }
    }
    None
}

/// The new application_name a statement sets (`SET application_name = 'x'` or
/// `SELECT set_config('application_name', 'x', false)`), for its ParameterStatus.
fn reported_change(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("set application_name") {
        rest.trim_start()
            .strip_prefix('=')
            .or_else(|| rest.trim_start().strip_prefix("to"))?
    } else {
        lower.strip_prefix("select set_config('application_name',")?
    };
    let start = sql.len() - rest.len();
    let value = sql[start..].trim_start().strip_prefix('\'')?;
    Some(value.split('\'').next()?.to_string())
}

/// The statement's first word, upper-cased.
fn first_word(sql: &str) -> String {
    sql.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn is_transaction_end(sql: &str) -> bool {
    let first = first_word(sql);
    matches!(first.as_str(), "COMMIT" | "END" | "ROLLBACK" | "ABORT")
}

fn columns_of(reply: &Reply) -> Option<Vec<String>> {
    match reply {
        Reply::Rows { columns, .. } => Some(columns.clone()),
        _ => None,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn malformed(e: crate::net::WireError) -> (String, String) {
    ("08P01".to_string(), format!("malformed message: {e}"))
}

/// A RowDescription of text columns.
pub fn row_description(columns: &[String]) -> Frame {
    let mut body = (columns.len() as i16).to_be_bytes().to_vec();
    for column in columns {
        body.extend_from_slice(column.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i32.to_be_bytes()); // table
        body.extend_from_slice(&0i16.to_be_bytes()); // column number
        body.extend_from_slice(&25i32.to_be_bytes()); // text
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes()); // text format
    }
    Frame::new(b'T', &body)
}

/// A DataRow of text values.
pub fn data_row(values: &[String]) -> Frame {
    let mut body = (values.len() as i16).to_be_bytes().to_vec();
    for value in values {
        body.extend_from_slice(&(value.len() as i32).to_be_bytes());
        body.extend_from_slice(value.as_bytes());
    }
    Frame::new(b'D', &body)
}
