//! MQTT over WebSockets, for the `ws` listener here and the `wss` listener and standalone
//! proxy in the proxy crate: the server handshake (path check, subprotocol `mqtt`) and an
//! adapter that turns a WebSocket of binary frames into a byte stream, so one MQTT packet
//! may span several frames and one frame may carry several packets.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::warn;

use crate::error::Error;

/// Subprotocols accepted, in order of preference (`mqttv3.1` is what old 3.1 clients send).
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// What a WebSocket endpoint accepts.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// The HTTP path of the endpoint (`[[listener]] path`); other paths get 404.
    pub path: String,
    /// Largest MQTT packet; frames and messages may be slightly larger (framing overhead).
    pub max_packet_size: usize,
}

/// A WebSocket carrying MQTT bytes in binary frames, as an `AsyncRead + AsyncWrite`.
#[derive(Debug)]
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

/// Performs the server handshake on `stream`: the request must be for `settings.path`;
/// the `mqtt` (or `mqttv3.1`) subprotocol is chosen when offered.
pub async fn accept<S>(stream: S, settings: &WsSettings) -> Result<WsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let path = settings.path.clone();
    // The callback's signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback =
        move |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
            if request.uri().path() != path {
                let mut refusal = ErrorResponse::new(Some(format!(
                    "no WebSocket endpoint at {}\n",
                    request.uri().path()
                )));
                *refusal.status_mut() = StatusCode::NOT_FOUND;
                return Err(refusal);
            }
            let offered: Vec<String> = request
                .headers()
                .get_all("Sec-WebSocket-Protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
                .collect();
            if let Some(chosen) = SUBPROTOCOLS
                .iter()
                .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
            {
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(chosen));
            }
            Ok(response)
        };
    let limit = settings.max_packet_size.saturating_add(16);
    let config = WebSocketConfig {
        max_message_size: Some(limit),
        max_frame_size: Some(limit),
        ..WebSocketConfig::default()
    };
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsStream {
        ws,
        pending: Bytes::new(),
    })
}

/// [`accept`] under `timeout`, inside the connection's task; a failure is one log line
/// with the peer and the reason, and `None`.
pub async fn upgrade<S>(
    stream: S,
    peer: SocketAddr,
    settings: &WsSettings,
    timeout: Duration,
) -> Option<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, accept(stream, settings)).await {
        Ok(Ok(ws)) => Some(ws),
        Ok(Err(error)) => {
            warn!(%peer, %error, "WebSocket handshake failed");
            None
        }
        Err(_) => {
            warn!(%peer, timeout_ms = timeout.as_millis() as u64, "WebSocket handshake timed out");
            None
        }
    }
}

fn to_io(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.pending = Bytes::from(data),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT over WebSockets requires binary frames, got a text frame",
                    )))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(to_io)?;
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(buf.to_vec()))
            .map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_close(cx)
            .map_err(to_io)
    }
}
