//! The streams a connection runs over, and which of them can park while idle: plain TCP
//! sockets can leave tokio for the parking set (`park.rs`) and can be lent to publishers
//! for direct delivery (`core.rs`); any other stream (WebSocket, TLS, SSH channels) stays
//! in its task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's stream.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// True if the stream is a plain socket that can park.
    fn parkable(&self) -> bool;
    /// Takes the socket out of tokio (only called if [`Transport::parkable`]).
    fn into_socket(self) -> io::Result<std::net::TcpStream>;
    /// The socket, if publishers may write deliveries straight into it while the
    /// connection is idle (plain TCP).
    fn lendable(&self) -> Option<&Arc<TcpStream>> {
        None
    }
    /// False if `poll_flush` has nothing to do after a write (a plain socket), so the
    /// connection loop need not take a turn for it.
    fn needs_flush(&self) -> bool {
        true
    }
}

/// A plain TCP connection. The socket is reference-counted so that, while the connection
/// is idle, its session can lend it to publishers (direct delivery, `core.rs`); the
/// connection itself reads and writes only while the socket is not lent.
pub(crate) struct Tcp(Arc<TcpStream>);

impl Tcp {
    /// Wraps an accepted (or resumed) socket.
    pub fn new(stream: TcpStream) -> Tcp {
        Tcp(Arc::new(stream))
    }
}

impl Transport for Tcp {
    fn parkable(&self) -> bool {
        true
    }

    fn into_socket(self) -> io::Result<std::net::TcpStream> {
        match Arc::try_unwrap(self.0) {
            Ok(stream) => stream.into_std(),
            Err(_) => Err(io::Error::other("the socket is still lent to publishers")),
        }
    }

    fn lendable(&self) -> Option<&Arc<TcpStream>> {
        Some(&self.0)
    }

    fn needs_flush(&self) -> bool {
        false
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r.map(|_| ())),
            }
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Arc::get_mut(&mut self.0) {
            Some(stream) => Pin::new(stream).poll_shutdown(cx),
            // Still lent (never at a connection's end): the socket closes when dropped.
            None => Poll::Ready(Ok(())),
        }
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
