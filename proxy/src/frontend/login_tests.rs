//! Fast tests of the way in, against a scripted server: connections that never log in
//! take login places, never the clients', and are refused at once or let go in time;
//! messages before login are small.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::messages::{self, error_fields, tag};
use crate::net::{BodyReader, Connection, Frame};
use crate::testing::scripted_server::{echo, ScriptedServer};
use crate::testing::{start_proxy, TestClient, PASSWORD};
use crate::ProxyHandle;

/// A proxy in front of one scripted server, with `extra` lines for `[proxy]`.
async fn proxy_with(extra: &str) -> (ProxyHandle, ScriptedServer) {
    let server = ScriptedServer::start(echo()).await;
    let proxy = start_proxy(&[&server], "transaction", 2, extra).await;
    (proxy, server)
}

/// A TCP connection that says nothing.
async fn silent(proxy: &ProxyHandle) -> TcpStream {
    match TcpStream::connect(proxy.addr).await {
        Ok(stream) => stream,
        Err(e) => panic!("connect to the proxy: {e}"),
    }
}

/// Waits until the proxy holds `held` connections, `logins` of them logging in.
async fn settles(proxy: &ProxyHandle, held: usize, logins: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while (proxy.clients(), proxy.logins_in_progress()) != (held, logins) {
        assert!(
            Instant::now() < deadline,
            "{} connections held, {} logging in; not {held} and {logins}",
            proxy.clients(),
            proxy.logins_in_progress()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A protocol 3.0 startup packet as user `app` with `params` after it.
fn startup(params: &[(&str, &str)]) -> Vec<u8> {
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
    packet
}

/// Sends `bytes` on a new connection and returns it, framed.
async fn send_raw(proxy: &ProxyHandle, bytes: &[u8]) -> Connection<TcpStream> {
    let mut stream = silent(proxy).await;
    if let Err(e) = stream.write_all(bytes).await {
        panic!("send to the proxy: {e}");
    }
    Connection::new(stream, 1 << 20)
}

/// The next message, or `None` once the proxy has closed the connection.
async fn next(conn: &mut Connection<TcpStream>) -> Option<Frame> {
    match tokio::time::timeout(Duration::from_secs(5), conn.read_frame()).await {
        Ok(Ok(frame)) => Some(frame),
        Ok(Err(_)) => None,
        Err(_) => panic!("the proxy neither answered nor closed within 5s"),
    }
}

/// Reads an ErrorResponse: its SQLSTATE and message, and that the connection then closes.
async fn refused(conn: &mut Connection<TcpStream>) -> (String, String) {
    let Some(frame) = next(conn).await else {
        panic!("closed without an error");
    };
    assert_eq!(frame.tag(), tag::ERROR_RESPONSE, "expected an error");
    let fields = error_fields(&frame);
    assert!(next(conn).await.is_none(), "still open after {fields:?}");
    fields
}

/// A client logs in and runs a query.
async fn serves(proxy: &ProxyHandle) {
    let mut client = TestClient::connect(proxy, &[]).await;
    let answer = client.query("SELECT 'served'").await;
    assert_eq!(answer.rows, vec!["SELECT 'served'".to_string()]);
}

/// `max_client_connections` silent connections used to take every client place until
/// the login timeout (60s, renewable); now they only take login places.
#[tokio::test]
async fn silent_connections_never_take_the_clients_places() {
    let (proxy, _server) =
        proxy_with("max_client_connections = 2\nmax_logins_in_progress = 4").await;
    let mut silents = Vec::new();
    for _ in 0..2 {
        silents.push(silent(&proxy).await);
    }
    settles(&proxy, 2, 2).await;
    let started = Instant::now();
    serves(&proxy).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    settles(&proxy, 2, 2).await;

    // With every login place taken, a new connection is refused at once, and the
    // clients that did log in go on.
    let mut logged_in = TestClient::connect(&proxy, &[]).await;
    for _ in 0..2 {
        silents.push(silent(&proxy).await);
    }
    settles(&proxy, 5, 4).await;
    let started = Instant::now();
    let mut refused_conn = send_raw(&proxy, &startup(&[])).await;
    let (code, message) = refused(&mut refused_conn).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("53300", "sorry, too many clients already")
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(logged_in.query("SELECT 1").await.status, 'I');
    settles(&proxy, 5, 4).await;

    // A login place comes free: a client gets in.
    silents.pop();
    settles(&proxy, 4, 3).await;
    serves(&proxy).await;
}

/// With every client place taken, a login is refused right after its startup packet,
/// before any password is asked for, as PostgreSQL does; a CancelRequest still works.
#[tokio::test]
async fn a_full_proxy_refuses_before_the_password() {
    let (proxy, _server) = proxy_with("max_client_connections = 1").await;
    let mut only = TestClient::connect(&proxy, &[]).await;
    let mut late = send_raw(&proxy, &startup(&[])).await;
    let (code, _) = refused(&mut late).await;
    assert_eq!(code, "53300");
    let mut cancel = 16i32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&80877102i32.to_be_bytes());
    cancel.extend_from_slice(&[0; 8]);
    let mut cancel = send_raw(&proxy, &cancel).await;
    assert!(
        next(&mut cancel).await.is_none(),
        "a CancelRequest is not answered"
    );
    assert_eq!(only.query("SELECT 1").await.status, 'I');
}

/// A connection that does not log in within `client_login_timeout` is let go.
#[tokio::test]
async fn a_login_ends_at_client_login_timeout() {
    let (proxy, _server) = proxy_with("client_login_timeout = \"300ms\"").await;
    let started = Instant::now();
    let mut stream = silent(&proxy).await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open after 5s: {read:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
    settles(&proxy, 0, 0).await;
    serves(&proxy).await;
}

/// Before login, a password message is at most `max_login_message_size` (10000 bytes by
/// default): a larger one is refused with 08P01, and the proxy serves on.
#[tokio::test]
async fn a_password_message_beyond_the_login_limit_is_refused() {
    let (proxy, _server) = proxy_with("").await;
    let mut conn = send_raw(&proxy, &startup(&[])).await;
    let ask = next(&mut conn).await;
    assert_eq!(ask.map(|f| f.tag()), Some(tag::AUTHENTICATION));
    // The header and a little of a 20 kB password: refused before the rest comes.
    let password = messages::password(&vec![b'x'; 20_000]);
    if let Err(e) = conn.write_bytes(&password.as_bytes()[..100]).await {
        panic!("send: {e}");
    }
    if let Err(e) = conn.flush().await {
        panic!("send: {e}");
    }
    let (code, message) = refused(&mut conn).await;
    assert_eq!(code, "08P01", "{message}");
    assert!(message.contains("20004 bytes"), "{message}");
    serves(&proxy).await;

    // Just under the limit is a wrong password, no more.
    let mut conn = send_raw(&proxy, &startup(&[])).await;
    next(&mut conn).await;
    let mut long = vec![b'x'; 9_000];
    long.push(0);
    if let Err(e) = conn.send(&messages::password(&long)).await {
        panic!("send: {e}");
    }
    let (code, _) = refused(&mut conn).await;
    assert_eq!(code, "28P01");

    // The startup packet has the same limit.
    let mut conn = send_raw(
        &proxy,
        &startup(&[("application_name", &"a".repeat(10_000))]),
    )
    .await;
    let (code, _) = refused(&mut conn).await;
    assert_eq!(code, "08P01");
    serves(&proxy).await;
}

/// The limit is configurable: a larger startup packet passes when allowed.
#[tokio::test]
async fn the_login_limit_is_configurable() {
    let (proxy, _server) = proxy_with("max_login_message_size = \"32kB\"").await;
    let name = "a".repeat(20_000);
    let mut conn = send_raw(&proxy, &startup(&[("application_name", &name)])).await;
    let ask = next(&mut conn).await;
    assert_eq!(ask.map(|f| f.tag()), Some(tag::AUTHENTICATION));
    let mut password = PASSWORD.as_bytes().to_vec();
    password.push(0);
    if let Err(e) = conn.send(&messages::password(&password)).await {
        panic!("send: {e}");
    }
    loop {
        let Some(frame) = next(&mut conn).await else {
            panic!("closed during login");
        };
        assert_ne!(
            frame.tag(),
            tag::ERROR_RESPONSE,
            "{:?}",
            error_fields(&frame)
        );
        if frame.tag() == tag::READY_FOR_QUERY {
            assert_eq!(BodyReader::new(frame.body()).u8().ok(), Some(b'I'));
            break;
        }
    }
}

/// A client asking for protocol 3.2 and an option is told, as PostgreSQL tells it, that
/// 3.0 is the newest the proxy speaks and which options it does not know; the login and
/// the session go on in 3.0.
#[tokio::test]
async fn a_newer_protocol_is_negotiated_down_to_3_0() {
    let (proxy, server) = proxy_with("").await;
    let mut packet = startup(&[("_pq_.compression", "zstd"), ("application_name", "new")]);
    packet[4..8].copy_from_slice(&0x0003_0002i32.to_be_bytes());
    let mut conn = send_raw(&proxy, &packet).await;
    let Some(negotiate) = next(&mut conn).await else {
        panic!("closed instead of negotiating");
    };
    assert_eq!(
        negotiate.tag(),
        tag::NEGOTIATE_PROTOCOL_VERSION,
        "{:?}",
        error_fields(&negotiate)
    );
    let mut r = BodyReader::new(negotiate.body());
    assert_eq!(r.i32().ok(), Some(196608), "newest version: 3.0");
    assert_eq!(r.i32().ok(), Some(1), "options not recognized");
    assert_eq!(r.cstr().ok(), Some(&b"_pq_.compression"[..]));
    assert_eq!(
        next(&mut conn).await.map(|f| f.tag()),
        Some(tag::AUTHENTICATION)
    );
    let mut password = PASSWORD.as_bytes().to_vec();
    password.push(0);
    if let Err(e) = conn.send(&messages::password(&password)).await {
        panic!("send: {e}");
    }
    while let Some(frame) = next(&mut conn).await {
        assert_ne!(
            frame.tag(),
            tag::ERROR_RESPONSE,
            "{:?}",
            error_fields(&frame)
        );
        if frame.tag() == tag::READY_FOR_QUERY {
            break;
        }
    }
    if let Err(e) = conn.send(&messages::query("SELECT 'in 3.0'")).await {
        panic!("send: {e}");
    }
    let mut rows = 0;
    while let Some(frame) = next(&mut conn).await {
        assert_ne!(
            frame.tag(),
            tag::ERROR_RESPONSE,
            "{:?}",
            error_fields(&frame)
        );
        rows += usize::from(frame.tag() == tag::DATA_ROW);
        if frame.tag() == tag::READY_FOR_QUERY {
            break;
        }
    }
    assert_eq!(rows, 1);
    assert!(
        !server.ran().iter().any(|(_, sql)| sql.contains("_pq_")),
        "a protocol option reached the server as a setting: {:?}",
        server.ran()
    );
}
