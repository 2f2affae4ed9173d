//! MQTT over WebSockets: subprotocol `mqtt`, binary frames, one packet split over two
//! frames and several packets in one frame; another path than the endpoint's gets 404.

mod support;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{Packet, ProtocolVersion, QoS};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_client_with_split_and_merged_frames() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "tcp-sub", true).await;
    sub.subscribe("ws/#", QoS::AtLeastOnce).await;

    let mut request = format!("ws://{}/mqtt", b.ws_addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "mqtt"
    );

    let v = ProtocolVersion::V3_1_1;
    let mut connect = BytesMut::new();
    encode_packet(
        &Packet::Connect(connect_packet("ws-client", true, 30, None)),
        v,
        &mut connect,
    )
    .unwrap();
    let (a, c) = connect.split_at(5);
    ws.send(Message::Binary(a.to_vec())).await.unwrap();
    ws.send(Message::Binary(c.to_vec())).await.unwrap();

    let mut inbox = BytesMut::new();
    let mut next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        if let Some(p) = decode_packet(&mut inbox, v, 1 << 20).unwrap() {
            return p;
        }
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(d) => inbox.extend_from_slice(&d),
            other => panic!("unexpected frame {other:?}"),
        }
    };
    assert!(matches!(next(&mut ws).await, Packet::ConnAck(a) if !a.reason.is_failure()));

    let mut two = BytesMut::new();
    encode_packet(
        &publish("ws/a", b"first", QoS::AtLeastOnce, false, 1),
        v,
        &mut two,
    )
    .unwrap();
    encode_packet(
        &publish("ws/b", b"second", QoS::AtMostOnce, false, 0),
        v,
        &mut two,
    )
    .unwrap();
    ws.send(Message::Binary(two.to_vec())).await.unwrap();
    assert!(matches!(next(&mut ws).await, Packet::PubAck(a) if a.pkid == 1));
    let p = sub.recv_publish().await;
    assert_eq!(p.payload, "first");
    sub.ack(&p).await;
    assert_eq!(sub.recv_publish().await.payload, "second");
    b.shutdown().await;
}

#[tokio::test]
async fn another_path_is_refused_with_404_and_the_listener_keeps_serving() {
    let b = TestBroker::start(settings()).await;
    let request = format!("ws://{}/not-mqtt", b.ws_addr)
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected a 404 refusal, got {other:?}"),
    }
    let request = format!("ws://{}/mqtt", b.ws_addr)
        .into_client_request()
        .unwrap();
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}
