//! What the session engine's fast tests need: scripted servers, a proxy started
//! in-process in front of them, and a client that speaks the wire protocol message by
//! message (so a test can send exactly what a driver sends, batch boundaries included).

#[cfg(test)]
mod fuzz;
pub mod scripted_server;

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::net::messages::{self, tag};
use crate::net::{BodyReader, Connection, Frame};
use crate::ProxyHandle;
use scripted_server::ScriptedServer;

/// The password of the test user `app`.
pub const PASSWORD: &str = "secret";

/// How long a test waits for any one reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a proxy whose database `app` has one shard per server (a sharded database, on
/// the table `items` keyed by `id`, when there are several), user `app`, the given pool
/// mode and size, and `extra` lines for `[proxy]`.
pub async fn start_proxy(
    servers: &[&ScriptedServer],
    pool_mode: &str,
    pool_size: u32,
    extra: &str,
) -> ProxyHandle {
    let mut toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\npool_mode = \"{pool_mode}\"\npool_size = {pool_size}\n\
         auth_method = \"cleartext\"\ncheckout_timeout = \"500ms\"\nlog_level = \"warn\"\n{extra}\n\
         [[users]]\nname = \"app\"\npassword = \"{PASSWORD}\"\n\n\
         [[databases]]\nname = \"app\"\n"
    );
    if servers.len() > 1 {
        toml.push_str("[[databases.sharded_tables]]\ntable = \"items\"\ncolumn = \"id\"\n");
    }
    for server in servers {
        toml.push_str(&format!(
            "[[databases.shards]]\nprimary = \"{}\"\n",
            server.addr
        ));
    }
    let config = match pgshard_config::parse(&toml, "test.toml") {
        Ok(config) => config,
        Err(e) => panic!("test config: {e}\n{toml}"),
    };
    match crate::start(config).await {
        Ok(proxy) => proxy,
        Err(e) => panic!("start the proxy: {e}"),
    }
}

/// A client that sends protocol messages one by one and reads the replies.
pub struct TestClient {
    conn: Connection<TcpStream>,
    /// The BackendKeyData the proxy gave at login (process id, secret key).
    pub cancel_key: (i32, i32),
}

/// The replies up to a ReadyForQuery, read apart.
#[derive(Debug, Default)]
pub struct Replies {
    /// Text of the first column of each DataRow.
    pub rows: Vec<String>,
    /// CommandComplete tags.
    pub tags: Vec<String>,
    /// (SQLSTATE, message) of each ErrorResponse.
    pub errors: Vec<(String, String)>,
    /// The message types, in order.
    pub tags_seen: Vec<char>,
    /// The ReadyForQuery status.
    pub status: char,
    /// A BackendKeyData's process id and secret key.
    pub backend_key: Option<(i32, i32)>,
}

impl Replies {
    pub fn error_code(&self) -> Option<&str> {
        self.errors.first().map(|(code, _)| code.as_str())
    }
}

impl TestClient {
    /// Connects as `app` to `app`, with extra startup parameters.
    pub async fn connect(proxy: &ProxyHandle, params: &[(&str, &str)]) -> TestClient {
        let mut stream = match TcpStream::connect(proxy.addr).await {
            Ok(stream) => stream,
            Err(e) => panic!("connect to the proxy: {e}"),
        };
        let mut body = 196608i32.to_be_bytes().to_vec();
        for (name, value) in [("user", "app"), ("database", "app")].iter().chain(params) {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        if let Err(e) = stream.write_all(&packet).await {
            panic!("send the startup packet: {e}");
        }
        let mut client = TestClient {
            conn: Connection::new(stream, 1 << 20),
            cancel_key: (0, 0),
        };
        let ask = client.read().await;
        assert_eq!(ask.tag(), b'R', "expected a password request");
        let mut password = PASSWORD.as_bytes().to_vec();
        password.push(0);
        client.send(&[messages::password(&password)]).await;
        let login = client.replies().await;
        assert!(login.errors.is_empty(), "login failed: {:?}", login.errors);
        client.cancel_key = login.backend_key.unwrap_or_default();
        client
    }

    pub async fn send(&mut self, frames: &[Frame]) {
        for frame in frames {
            if let Err(e) = self.conn.write_frame(frame).await {
                panic!("send to the proxy: {e}");
            }
        }
        if let Err(e) = self.conn.flush().await {
            panic!("send to the proxy: {e}");
        }
    }

    /// Sends raw bytes: part of a message, as a slow or stalled client does.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let sent = async {
            self.conn.write_bytes(bytes).await?;
            self.conn.flush().await
        };
        if let Err(e) = sent.await {
            panic!("send to the proxy: {e}");
        }
    }

    pub async fn read(&mut self) -> Frame {
        match tokio::time::timeout(REPLY_TIMEOUT, self.conn.read_frame()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => panic!("read from the proxy: {e}"),
            Err(_) => panic!("no reply from the proxy within {REPLY_TIMEOUT:?}"),
        }
    }

    /// Reads replies up to and including ReadyForQuery.
    pub async fn replies(&mut self) -> Replies {
        let mut replies = Replies::default();
        loop {
            let frame = self.read().await;
            replies.tags_seen.push(frame.tag() as char);
            let mut r = BodyReader::new(frame.body());
            match frame.tag() {
                b'D' => {
                    let _columns = r.i16();
                    let value = match r.i32() {
                        Ok(len) if len >= 0 => r
                            .take(len as usize)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default(),
                        _ => "NULL".to_string(),
                    };
                    replies.rows.push(value);
                }
                b'C' => replies
                    .tags
                    .push(String::from_utf8_lossy(r.cstr().unwrap_or(b"")).into_owned()),
                b'E' => replies.errors.push(messages::error_fields(&frame)),
                b'K' => {
                    if let (Ok(pid), Ok(key)) = (r.i32(), r.i32()) {
                        replies.backend_key = Some((pid, key));
                    }
                }
                tag::READY_FOR_QUERY => {
                    replies.status = r.u8().map(char::from).unwrap_or('?');
                    return replies;
                }
                _ => {}
            }
        }
    }

    /// A simple Query and its replies.
    pub async fn query(&mut self, sql: &str) -> Replies {
        self.send(&[messages::query(sql)]).await;
        self.replies().await
    }

    /// Whether the proxy has closed the connection (nothing more comes); a message that
    /// does come fails the test.
    pub async fn closed(&mut self) -> bool {
        match tokio::time::timeout(REPLY_TIMEOUT, self.conn.read_frame()).await {
            Ok(Ok(frame)) => panic!("expected the end, got '{}'", frame.tag() as char),
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    /// Sends a CancelRequest for this client on a new connection, as libpq does.
    pub async fn cancel(&self, proxy: &ProxyHandle) {
        let (pid, key) = self.cancel_key;
        let sent = async {
            let mut stream = TcpStream::connect(proxy.addr).await?;
            stream
                .write_all(&crate::net::startup::cancel_packet(pid, key))
                .await?;
            stream.shutdown().await
        };
        if let Err(e) = sent.await {
            panic!("send a cancel request: {e}");
        }
    }

    /// Leaves without a Terminate, as a crashed client does.
    pub fn drop_connection(self) {}
}

/// Bind of `statement` to the unnamed portal with text parameters.
pub fn bind(statement: &str, params: &[&str]) -> Frame {
    let mut body = vec![0u8];
    body.extend_from_slice(statement.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for param in params {
        body.extend_from_slice(&(param.len() as i32).to_be_bytes());
        body.extend_from_slice(param.as_bytes());
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    Frame::new(tag::BIND, &body)
}

/// Describe of a statement (`S`) or portal (`P`).
pub fn describe(kind: u8, name: &str) -> Frame {
    let mut body = vec![kind];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    Frame::new(tag::DESCRIBE, &body)
}

/// Execute of the unnamed portal, all rows.
pub fn execute() -> Frame {
    let mut body = vec![0u8];
    body.extend_from_slice(&0i32.to_be_bytes());
    Frame::new(tag::EXECUTE, &body)
}

pub fn sync() -> Frame {
    Frame::new(tag::SYNC, &[])
}

pub fn flush() -> Frame {
    Frame::new(tag::FLUSH, &[])
}

/// Parse with no parameter types given.
pub fn parse(name: &str, sql: &str) -> Frame {
    messages::parse(name, sql.as_bytes(), &0i16.to_be_bytes())
}
