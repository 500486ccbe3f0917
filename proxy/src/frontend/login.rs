//! A client's way in: startup negotiation, authentication, database lookup.

use std::sync::Arc;

use bytes::BytesMut;
use pgshard_config::{AuthMethod, TlsMode, ADMIN_DATABASE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::admission::Admission;
use crate::auth::{
    md5_salt, verify_cleartext, verify_md5, ScramExchange, SecretKind, SCRAM_SHA_256,
};
use crate::context::{ProxyContext, UserEntry};
use crate::net::messages::{authentication, error_response, negotiate_protocol_version, tag};
use crate::net::startup::{StartupRequest, PROTOCOL_3_0};
use crate::net::{ClientStream, Connection, Frame, MaybeTls, Severity, WireError};
use crate::routing::DatabaseRoute;

/// An authenticated client, ready for its session.
pub struct LoggedIn {
    pub conn: Connection<ClientStream>,
    pub user: Arc<UserEntry>,
    pub destination: Destination,
    pub params: Vec<(String, String)>,
}

/// What a client logged in to.
pub enum Destination {
    /// A configured database, served by its servers.
    Database(Arc<DatabaseRoute>),
    /// The admin console (the virtual database `pgshard`).
    Admin,
}

/// Runs startup and authentication within `client_login_timeout`; `None` when the
/// client left, was refused (it was told why), took too long, or only sent a
/// CancelRequest. A client that logs in moves `admission` to a client place; with none
/// left it is refused with 53300, as PostgreSQL refuses clients beyond max_connections.
pub async fn login(
    stream: TcpStream,
    ctx: &ProxyContext,
    admission: &mut Admission,
) -> Option<LoggedIn> {
    let timeout = ctx.config.proxy.client_login_timeout;
    let mut deadline = ctx.shutdown.clone();
    tokio::select! {
        result = tokio::time::timeout(timeout, login_inner(stream, ctx, admission)) => {
            result.unwrap_or_else(|_| {
                tracing::debug!("client did not log in within {timeout:?}");
                None
            })
        }
        // The shutdown deadline passed with the login still under way.
        _ = deadline.terminating() => None,
    }
}

async fn login_inner(
    stream: TcpStream,
    ctx: &ProxyContext,
    admission: &mut Admission,
) -> Option<LoggedIn> {
    let login_max = ctx.config.proxy.max_login_message_size as usize;
    let mut stream = MaybeTls::Plain(stream);
    let mut buf = BytesMut::with_capacity(512);
    let (params, minor, protocol_options) = loop {
        match StartupRequest::parse(&mut buf, login_max) {
            Err(WireError::Incomplete) => match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => continue,
            },
            Ok(StartupRequest::Ssl) => {
                stream = encrypt(stream, &buf, ctx).await?;
            }
            Ok(StartupRequest::GssEnc) => {
                // No GSS encryption: 'N' tells the client to go on without it.
                stream.write_all(b"N").await.ok()?;
            }
            Ok(StartupRequest::Cancel { pid, key }) => {
                ctx.cancels.cancel(pid, key).await;
                return None;
            }
            Ok(StartupRequest::Startup { .. })
                if !stream.is_tls() && ctx.config.proxy.tls_mode == TlsMode::Require =>
            {
                refuse(
                    &mut stream,
                    "28000",
                    "pgshard accepts only TLS connections here: connect with sslmode=require \
                     (or verify-full)",
                )
                .await;
                return None;
            }
            Ok(StartupRequest::Startup {
                params,
                minor,
                protocol_options,
            }) => break (params, minor, protocol_options),
            Err(WireError::UnsupportedProtocol(v)) => {
                let msg = format!(
                    "unsupported frontend protocol {}.{}: server supports 3.0 to 3.0",
                    v >> 16,
                    v & 0xffff
                );
                refuse(&mut stream, "0A000", &msg).await;
                return None;
            }
            Err(WireError::TooLarge { len, max }) => {
                tracing::info!("refused a startup packet of {len} bytes (limit {max})");
                let message = format!(
                    "invalid length of startup packet: {len} bytes, more than the {max} allowed"
                );
                refuse(&mut stream, "08P01", &message).await;
                return None;
            }
            Err(WireError::BadLength(len)) => {
                tracing::debug!("bad startup packet length {len}");
                refuse(&mut stream, "08P01", "invalid length of startup packet").await;
                return None;
            }
            Err(e) => {
                tracing::debug!("bad startup packet: {e}");
                refuse(&mut stream, "08P01", "invalid startup packet layout").await;
                return None;
            }
        }
    };
    let mut conn = Connection::with_buffer(stream, buf, login_max);
    if minor > 0 || !protocol_options.is_empty() {
        // As PostgreSQL answers a newer 3.x client: the session goes on in 3.0, without
        // the options; the client decides whether that will do.
        tracing::debug!(
            minor,
            ?protocol_options,
            "client asked for protocol 3.{minor}"
        );
        let negotiate = negotiate_protocol_version(PROTOCOL_3_0, &protocol_options);
        conn.write_frame(&negotiate).await.ok()?;
    }
    if ctx.admissions.clients_full() {
        // Said before any password is asked for, as PostgreSQL does.
        too_many_clients(&mut conn, ctx).await;
        return None;
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(user_name) = get("user").filter(|u| !u.is_empty()) else {
        fatal(
            &mut conn,
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
        return None;
    };
    let user_name = user_name.to_string();
    let db_name = get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user_name)
        .to_string();
    if get("replication").is_some_and(|r| r != "false" && r != "0" && r != "off") {
        fatal(
            &mut conn,
            "0A000",
            "pgshard does not proxy replication connections; connect to the server directly",
        )
        .await;
        return None;
    }
    let user = ctx.users.get(&user_name).cloned();
    if !authenticate(&mut conn, ctx, &user_name, user.as_deref()).await {
        return None;
    }
    let user = user?;
    if !admission.log_in() {
        too_many_clients(&mut conn, ctx).await;
        return None;
    }
    conn.set_max_len(ctx.config.proxy.max_message_size as usize);
    conn.set_budget(ctx.message_budget.clone());
    conn.set_small_when_idle();
    let admin_console = db_name == ADMIN_DATABASE && !ctx.config.proxy.admin_users.is_empty();
    if admin_console {
        if !ctx.config.proxy.admin_users.contains(&user_name) {
            tracing::warn!(user = %user_name, "refused the admin console: not in proxy.admin_users");
            fatal(
                &mut conn,
                "42501",
                &format!("user \"{user_name}\" may not use the admin console"),
            )
            .await;
            return None;
        }
        conn.write_frame(&authentication(0, &[])).await.ok()?;
        return Some(LoggedIn {
            conn,
            user,
            destination: Destination::Admin,
            params,
        });
    }
    let Some(database) = ctx.databases.get(&db_name).cloned() else {
        fatal(
            &mut conn,
            "3D000",
            &format!("database \"{db_name}\" does not exist"),
        )
        .await;
        return None;
    };
    if database.admin.is_disabled() {
        fatal(
            &mut conn,
            "55000",
            &format!(
                "database \"{db_name}\" is not currently accepting connections (DISABLE in \
                 the pgshard admin console; ENABLE lets clients in again)"
            ),
        )
        .await;
        return None;
    }
    conn.write_frame(&authentication(0, &[])).await.ok()?;
    Some(LoggedIn {
        conn,
        user,
        destination: Destination::Database(database),
        params,
    })
}

/// Asks for the configured kind of password and checks it; on failure the client is
/// told `password authentication failed`, worded as PostgreSQL words it.
async fn authenticate(
    conn: &mut Connection<ClientStream>,
    ctx: &ProxyContext,
    user_name: &str,
    user: Option<&UserEntry>,
) -> bool {
    let kind = user.map(|u| u.secret.kind());
    let method = match (ctx.config.proxy.auth_method, kind) {
        // PostgreSQL too upgrades md5 to SCRAM for users whose secret is a SCRAM verifier.
        (AuthMethod::Md5, Some(SecretKind::ScramSha256)) => AuthMethod::ScramSha256,
        (m, _) => m,
    };
    let result = match method {
        AuthMethod::ScramSha256 => match scram(conn, ctx, user_name, user).await {
            Some(passed) => passed,
            None => return false,
        },
        AuthMethod::Md5 => {
            let salt = md5_salt();
            match ask_password(conn, authentication(5, &salt)).await {
                Some(resp) => match user {
                    Some(u) => verify_md5(&u.secret, user_name, salt, &resp).is_ok(),
                    None => false,
                },
                None => return false,
            }
        }
        AuthMethod::Cleartext => match ask_password(conn, authentication(3, &[])).await {
            Some(resp) => match user {
                Some(u) => verify_cleartext(&u.secret, user_name, &resp).is_ok(),
                None => false,
            },
            None => return false,
        },
    };
    if result {
        return true;
    }
    tracing::info!(user = user_name, "password authentication failed");
    fatal(
        conn,
        "28P01",
        &format!("password authentication failed for user \"{user_name}\""),
    )
    .await;
    false
}

/// The SASL exchange; unknown users (and md5-only secrets) get a mock exchange that fails
/// the same way a wrong password does. Whether the password was right; `None` when the
/// client left or was already told why it is refused.
async fn scram(
    conn: &mut Connection<ClientStream>,
    ctx: &ProxyContext,
    user_name: &str,
    user: Option<&UserEntry>,
) -> Option<bool> {
    let mut mechanisms = SCRAM_SHA_256.as_bytes().to_vec();
    mechanisms.extend_from_slice(&[0, 0]);
    let initial = ask_password(conn, authentication(10, &mechanisms)).await?;
    let mut r = crate::net::BodyReader::new(&initial);
    let (Ok(mechanism), Ok(len)) = (r.cstr_utf8(), r.i32()) else {
        return Some(false);
    };
    if ScramExchange::check_mechanism(mechanism).is_err() || len < 0 {
        return Some(false);
    }
    let client_first = r.rest();
    let mut exchange = match user.map(|u| ScramExchange::for_secret(&u.secret)) {
        Some(Ok(ex)) => ex,
        _ => ScramExchange::mock(user_name, &ctx.mock_key),
    };
    let Ok(server_first) = exchange.server_first(client_first) else {
        return Some(false);
    };
    let client_final = ask_password(conn, authentication(11, &server_first)).await?;
    match exchange.server_final(&client_final) {
        Ok(server_final) => conn
            .write_frame(&authentication(12, &server_final))
            .await
            .ok()
            .map(|()| true),
        Err(_) => Some(false),
    }
}

/// Sends an authentication request and returns the body of the client's answer; `None`
/// when the client left, or sent a message longer than `max_login_message_size` (it is
/// told so, with 08P01).
async fn ask_password(conn: &mut Connection<ClientStream>, request: Frame) -> Option<Vec<u8>> {
    conn.send(&request).await.ok()?;
    let frame = match conn.read_frame().await {
        Ok(frame) => frame,
        Err(WireError::TooLarge { len, max }) => {
            tracing::info!("refused an authentication message of {len} bytes (limit {max})");
            let message = format!(
                "invalid authentication message length: {len} bytes, more than the {max} \
                 allowed"
            );
            fatal(conn, "08P01", &message).await;
            return None;
        }
        Err(WireError::BadLength(_)) => {
            fatal(conn, "08P01", "invalid message length").await;
            return None;
        }
        Err(_) => return None,
    };
    if frame.tag() != tag::PASSWORD {
        return None;
    }
    let body = frame.body();
    // Password and md5 messages end in a NUL; SASL messages carry raw data.
    let code = crate::net::BodyReader::new(request.body()).i32().ok()?;
    let body = match code {
        10 | 11 => body,
        _ => body.strip_suffix(&[0]).unwrap_or(body),
    };
    Some(body.to_vec())
}

/// Refuses a login because every client place is taken, in PostgreSQL's words.
async fn too_many_clients(conn: &mut Connection<ClientStream>, ctx: &ProxyContext) {
    tracing::warn!(
        "refused a login: proxy.max_client_connections ({}) clients are logged in",
        ctx.config.proxy.max_client_connections
    );
    fatal(conn, "53300", "sorry, too many clients already").await;
}

/// Sends a FATAL error and flushes; the caller then drops the connection.
pub async fn fatal(conn: &mut Connection<ClientStream>, code: &str, message: &str) {
    let _ = conn
        .send(&error_response(Severity::Fatal, code, message))
        .await;
}

/// Answers an SSLRequest: with TLS set up, `S` and the handshake; else `N`, and the
/// client goes on in plaintext (or gives up, if it insists on TLS). `None` when the
/// client is to be dropped.
async fn encrypt(
    stream: ClientStream,
    buffered: &[u8],
    ctx: &ProxyContext,
) -> Option<ClientStream> {
    match (stream, &ctx.tls) {
        (MaybeTls::Plain(mut tcp), Some(acceptor)) => {
            if !buffered.is_empty() {
                // Bytes sent before the handshake would pass for bytes sent under TLS.
                let mut stream = MaybeTls::Plain(tcp);
                refuse(
                    &mut stream,
                    "08P01",
                    "received unencrypted data after SSL request",
                )
                .await;
                return None;
            }
            tcp.write_all(b"S").await.ok()?;
            match acceptor.accept(tcp).await {
                Ok(tls) => Some(MaybeTls::Tls(Box::new(tls))),
                Err(e) => {
                    tracing::debug!("client TLS handshake failed: {e}");
                    None
                }
            }
        }
        (mut stream @ MaybeTls::Tls(_), _) => {
            refuse(
                &mut stream,
                "08P01",
                "SSL request on an encrypted connection",
            )
            .await;
            None
        }
        (mut stream, None) => {
            stream.write_all(b"N").await.ok()?;
            Some(stream)
        }
    }
}

async fn refuse(stream: &mut ClientStream, code: &str, message: &str) {
    let frame = error_response(Severity::Fatal, code, message);
    let _ = stream.write_all(frame.as_bytes()).await;
}
