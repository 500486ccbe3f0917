//! What a session does after handling one message, and the replies that end a step.

use std::collections::HashMap;

use crate::backend::PooledServer;
use crate::net::messages::{self, error_response};
use crate::net::{ClientStream, Connection, Frame, Severity, WireError};

/// Whether the session goes on after a step.
pub enum Flow {
    Continue,
    Stop,
}

/// Sends replies the proxy made itself and flushes them; a client that cannot take them
/// is gone.
pub async fn reply_local(client: &mut Connection<ClientStream>, frames: &[Frame]) -> Flow {
    for f in frames {
        if client.write_frame(f).await.is_err() {
            return Flow::Stop;
        }
    }
    match client.flush().await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Stop,
    }
}

/// Ends the session with a FATAL error.
pub async fn fatal(client: &mut Connection<ClientStream>, code: &str, message: &str) -> Flow {
    let _ = client
        .send(&error_response(Severity::Fatal, code, message))
        .await;
    Flow::Stop
}

/// A message the client sent, or how the session ends when reading it failed: a closed
/// connection ends quietly, a message of impossible length with 08P01.
pub async fn client_frame(
    client: &mut Connection<ClientStream>,
    frame: Result<Frame, WireError>,
) -> Result<Frame, Flow> {
    match frame {
        Ok(f) => Ok(f),
        Err(WireError::Closed) => Err(Flow::Stop),
        Err(e @ (WireError::TooLarge { .. } | WireError::BadLength(_))) => {
            tracing::info!("client sent a bad message: {e}");
            Err(fatal(client, "08P01", "invalid message length").await)
        }
        Err(e @ WireError::OverBudget { .. }) => {
            tracing::warn!("refused a client's message: {e}");
            Err(fatal(
                client,
                "53200",
                &format!(
                    "out of memory: pgshard: {e}; retry later, or raise proxy.max_message_memory"
                ),
            )
            .await)
        }
        Err(e) => {
            tracing::debug!("client connection failed: {e}");
            Err(Flow::Stop)
        }
    }
}

/// Ends a login: the server's parameters (as the server that answered reported them),
/// the client's cancel key and ReadyForQuery. False when the client is gone.
pub async fn greet_client(
    client: &mut Connection<ClientStream>,
    params: &HashMap<String, String>,
    pid: i32,
    key: i32,
) -> bool {
    let mut params: Vec<_> = params.iter().collect();
    params.sort();
    let mut frames: Vec<Frame> = params
        .into_iter()
        .map(|(name, value)| messages::parameter_status(name, value))
        .collect();
    frames.push(messages::backend_key_data(pid, key));
    frames.push(messages::ready_for_query(b'I'));
    matches!(reply_local(client, &frames).await, Flow::Continue)
}

/// Tells an idle client the proxy is shutting down, in PostgreSQL's words, and ends it.
pub async fn shutdown_notice(client: &mut Connection<ClientStream>) -> Flow {
    fatal(
        client,
        "57P01",
        "terminating connection due to administrator command",
    )
    .await
}

/// Makes a server connection fit for the next client once its client has left: closed
/// when the client abandoned work on it (a query, a batch without Sync, a transaction),
/// reset with DISCARD ALL when it carries session state (`keep_state`: session pooling or
/// a pinned client), else given back as it is.
pub async fn clean_for_next_client(server: &mut PooledServer, abandoned: bool, keep_state: bool) {
    if abandoned || server.in_transaction() {
        server.broken = true;
    } else if keep_state {
        match server.run_quietly("DISCARD ALL").await {
            Ok(None) => {
                server.statements.clear();
                server.applied_settings = None;
            }
            _ => server.broken = true,
        }
    }
}
