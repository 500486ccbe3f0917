//! A framed, buffered PostgreSQL protocol connection.

use bytes::BytesMut;
use std::pin::Pin;
use std::task::{Context, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::error::WireError;
use super::frame::Frame;

/// Reads whole messages from a byte stream and buffers writes until `flush`.
///
/// `read_frame` is cancel-safe (all progress lives in the read buffer), so a session can
/// `select!` over its client and its server connection.
pub struct Connection<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    max_len: usize,
}

/// Flush the write buffer once it holds this much, so a large result streams.
const FLUSH_AT: usize = 64 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, max_len: usize) -> Self {
        Self::with_buffer(stream, BytesMut::with_capacity(8 * 1024), max_len)
    }

    /// Takes over bytes already read from the stream (e.g. after a startup packet).
    pub fn with_buffer(stream: S, rbuf: BytesMut, max_len: usize) -> Self {
        Connection {
            stream,
            rbuf,
            wbuf: BytesMut::with_capacity(8 * 1024),
            max_len,
        }
    }

    /// The next whole message; `Closed` on a clean end of stream between messages.
    pub async fn read_frame(&mut self) -> Result<Frame, WireError> {
        loop {
            match Frame::parse(&mut self.rbuf, self.max_len) {
                Err(WireError::Incomplete) => {}
                other => return other,
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return if self.rbuf.is_empty() {
                    Err(WireError::Closed)
                } else {
                    Err(WireError::Malformed("connection closed inside a message"))
                };
            }
        }
    }

    /// Whether a whole message is already buffered (so reading it will not wait).
    pub fn has_buffered_frame(&self) -> bool {
        if self.rbuf.len() < 5 {
            return false;
        }
        let len = i32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]]);
        len >= 4 && self.rbuf.len() > len as usize
    }

    /// Queues a message; flushes by itself when the buffer is large.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.write_bytes(frame.as_bytes()).await
    }

    pub async fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.wbuf.extend_from_slice(bytes);
        if self.wbuf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), WireError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.stream.flush().await?;
        Ok(())
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.write_frame(frame).await?;
        self.flush().await
    }

    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Whether an idle connection can still be used: the peer has neither closed it nor
    /// sent anything unasked (a server's FATAL before it goes away). Never waits: one
    /// read is polled and dropped (TLS keeps no partial state in a poll).
    pub fn idle_and_open(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        // Pending: nothing to read, still open. Else end of stream, unexpected data, or
        // a socket error.
        Pin::new(&mut self.stream)
            .poll_read(&mut cx, &mut buf)
            .is_pending()
    }
}
