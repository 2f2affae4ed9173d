//! An exactly-once QoS 2 subscriber for the cloud side of the bridge tests, written on
//! mqgate-protocol's codec because neither stock client is one across a broker restart:
//!
//! * libmosquitto 2.0.11 (`mosquitto_sub -c`) delivers a QoS 2 message on PUBREL, after
//!   sending PUBCOMP, and drops it if that send fails: a PUBREL that arrives as the broker
//!   goes down loses the message (seen twice in 60 runs of
//!   `qos2_is_delivered_exactly_once_across_reconnects`: mosquitto logged `Sending PUBREL
//!   to cloud-sub (m932)` then `terminating`; mosquitto_sub logged `received PUBREL (Mid:
//!   932)`, `sending PUBCOMP (m932)` and printed no message; after the restart mosquitto
//!   resent PUBREL 932 from its persisted session, for an id the client no longer knew).
//! * rumqttc 0.24 forgets its incoming QoS 2 ids at reconnect and then treats the resent
//!   PUBREL as an error, so it reconnects in a loop.
//!
//! This one follows the spec's "method B": deliver on the first PUBLISH of a packet id,
//! remember the id until its PUBREL (across reconnects, with a persistent session), and
//! take a PUBLISH of a remembered id as a duplicate.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mqgate_protocol::{
    Connect, MqttCodec, Packet, Properties, ProtocolVersion, PubAck, QoS, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{Received, DEADLINE};

/// Subscribes `client_id` (persistent session) to `filter` at QoS 2 on `addr`,
/// reconnecting forever; returns its record once the first SUBACK arrived.
pub async fn subscribe_exactly_once(addr: SocketAddr, client_id: &str, filter: &str) -> Received {
    let received = Received::default();
    let record = received.clone();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let client_id = client_id.to_owned();
    let filter = filter.to_owned();
    tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        // Packet ids delivered and not released yet: the session's exactly-once state.
        let mut awaiting_pubrel = HashSet::new();
        loop {
            let _ = session(
                &addr,
                &client_id,
                &filter,
                &record,
                &mut awaiting_pubrel,
                &mut subscribed,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::timeout(DEADLINE, subscribed_rx)
        .await
        .expect("SUBACK in time")
        .unwrap();
    received
}

/// One connection; ends (with an error) when it breaks.
async fn session(
    addr: &SocketAddr,
    client_id: &str,
    filter: &str,
    record: &Received,
    awaiting_pubrel: &mut HashSet<u16>,
    subscribed: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (read, write) = TcpStream::connect(addr).await?.into_split();
    let mut codec = MqttCodec::new(1 << 20);
    codec.set_version(ProtocolVersion::V3_1_1);
    let mut reader = FramedRead::new(read, codec.clone());
    let mut writer = FramedWrite::new(write, codec);
    let connect = Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: false,
        keep_alive: 0,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    writer.send(&Packet::Connect(connect)).await?;
    let subscribe = Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
        }],
        properties: Properties::default(),
    };
    writer.send(&Packet::Subscribe(subscribe)).await?;
    while let Some(packet) = reader.next().await {
        let reply = match packet? {
            Packet::SubAck(_) => {
                if let Some(tx) = subscribed.take() {
                    let _ = tx.send(());
                }
                None
            }
            Packet::Publish(p) => {
                let fresh = p.qos != QoS::ExactlyOnce || awaiting_pubrel.insert(p.pkid);
                if fresh {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    let mut g = record.inner.lock().unwrap();
                    g.2.push(format!("{} {}", p.topic, payload));
                    g.0.insert(payload);
                    g.1 += 1;
                }
                match p.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(p.pkid))),
                    QoS::ExactlyOnce => Some(Packet::PubRec(PubAck::new(p.pkid))),
                }
            }
            Packet::PubRel(rel) => {
                awaiting_pubrel.remove(&rel.pkid);
                Some(Packet::PubComp(PubAck::new(rel.pkid)))
            }
            _ => None,
        };
        if let Some(reply) = reply {
            writer.send(&reply).await?;
        }
    }
    Err("connection closed".into())
}
