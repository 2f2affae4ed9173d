//! The streams a connection runs over, and which of them can park while idle: plain TCP
//! sockets can leave tokio for the parking set (`park.rs`); any other stream (WebSocket,
//! TLS, SSH channels) stays in its task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's stream.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// True if the stream is a plain socket that can park.
    fn parkable(&self) -> bool;
    /// Takes the socket out of tokio (only called if [`Transport::parkable`]).
    fn into_socket(self) -> io::Result<std::net::TcpStream>;
}

impl Transport for TcpStream {
    fn parkable(&self) -> bool {
        true
    }

    fn into_socket(self) -> io::Result<std::net::TcpStream> {
        self.into_std()
    }
}

/// Any other stream: never parks.
pub(crate) struct Unparkable<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Unparkable<S> {
    fn parkable(&self) -> bool {
        false
    }

    fn into_socket(self) -> io::Result<std::net::TcpStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this stream cannot park",
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Unparkable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Unparkable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
