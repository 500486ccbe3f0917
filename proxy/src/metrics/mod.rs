//! `GET /metrics` for Prometheus, on `[proxy] metrics_listen`: a minimal HTTP/1.1
//! responder (one request per connection), so the proxy carries no HTTP stack for it.

mod exposition;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::context::ProxyContext;

pub use exposition::{render, CONTENT_TYPE};

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a request read: a scrape's request line and headers fit easily.
const MAX_REQUEST: usize = 8 * 1024;

/// Answers scrapes until the proxy shuts down.
pub async fn serve(listener: TcpListener, ctx: Arc<ProxyContext>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.recv() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                ctx.tasks.spawn(answer(stream, ctx.clone()));
            }
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one request and answers it: the metrics for `GET /metrics`, else an error status.
async fn answer(mut stream: TcpStream, ctx: Arc<ProxyContext>) {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        _ => return,
    };
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", render(&ctx)),
        (Some("GET"), Some(_)) => ("404 Not Found", "not found; try /metrics\n".to_string()),
        _ => ("400 Bad Request", "bad request\n".to_string()),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request up to its blank line, or `None` if it is too long or the peer left.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
    }
}
