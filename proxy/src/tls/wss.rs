//! The `wss` listener: MQTT over WebSocket over TLS into broker-lite. The TLS part is the
//! `tls` listener's accept loop (permit, handshake under a timeout in the connection's
//! task, client-certificate policy and identity, reloadable configuration); the
//! WebSocket upgrade follows in the same task, under the same timeout.

use std::sync::Arc;

use mqgate_broker_lite::BrokerHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::tls::serve::{accept_tls, TlsServeOptions};
use crate::tls::source::TlsAcceptorSource;
use mqgate_broker_lite::ws::{upgrade, WsSettings};

/// Serves MQTT over secure WebSockets on `listener` until `shutdown`: TLS as
/// [`serve_tls_with`](crate::tls::serve_tls_with) does, then the WebSocket handshake
/// (path `ws.path`, subprotocol `mqtt`) within `options.handshake_timeout`; the stream
/// goes to broker-lite with the certificate identity.
pub async fn serve_wss(
    listener: TcpListener,
    source: Arc<TlsAcceptorSource>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
    options: TlsServeOptions,
    ws: WsSettings,
) {
    let ws = Arc::new(ws);
    let timeout = options.handshake_timeout;
    accept_tls(
        listener,
        source,
        shutdown,
        options,
        move |stream, identity| {
            let (broker, ws) = (broker.clone(), ws.clone());
            async move {
                if let Some(stream) = upgrade(stream, identity.peer, &ws, timeout).await {
                    broker.serve_connection(stream, identity).await;
                }
            }
        },
    )
    .await;
}
