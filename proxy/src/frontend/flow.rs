//! What a session does after handling one message, and the replies that end a step.

use crate::net::messages::error_response;
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
        Err(e) => {
            tracing::debug!("client connection failed: {e}");
            Err(Flow::Stop)
        }
    }
}
