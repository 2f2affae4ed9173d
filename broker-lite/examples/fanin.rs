//! QoS 1 fan-in throughput of an in-process broker over TCP: several publishers, one
//! subscriber of `bench/#`, MQTT 3.1.1 or 5.0 clients.
//!
//! `cargo run --release -p mqgate-broker-lite --example fanin -- <4|5> [publishers] [seconds]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqgate_broker_lite::{AllowAll, Broker, BrokerSettings};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{
    Connect, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, Subscribe, SubscribeFilter,
    SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const WINDOW: usize = 64;

async fn open(addr: std::net::SocketAddr, id: &str, v: ProtocolVersion) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut out = BytesMut::new();
    let c = Connect {
        protocol: v,
        clean_start: true,
        keep_alive: 60,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    encode_packet(&Packet::Connect(c), v, &mut out).unwrap();
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Some(Packet::ConnAck(_)) = decode_packet(&mut buf, v, 1 << 20).unwrap() {
            return s;
        }
        s.read_buf(&mut buf).await.unwrap();
    }
}

async fn next(r: &mut OwnedReadHalf, buf: &mut BytesMut, v: ProtocolVersion) -> Option<Packet> {
    loop {
        if let Some(p) = decode_packet(buf, v, 1 << 20).unwrap() {
            return Some(p);
        }
        if r.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let v = match args.get(1).map(String::as_str) {
        Some("5") => ProtocolVersion::V5,
        _ => ProtocolVersion::V3_1_1,
    };
    let publishers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let settings = BrokerSettings {
        sys_interval: Duration::ZERO,
        ..BrokerSettings::default()
    };
    let broker = Broker::start(settings, Arc::new(AllowAll)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(mqgate_broker_lite::serve_tcp(
        listener,
        broker.handle(),
        stop.clone(),
    ));

    let received = Arc::new(AtomicU64::new(0));
    let sub = open(addr, "sub", v).await;
    let (mut r, mut w) = sub.into_split();
    let mut out = BytesMut::new();
    let s = Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter {
            filter: "bench/#".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Properties::default(),
    };
    encode_packet(&Packet::Subscribe(s), v, &mut out).unwrap();
    w.write_all(&out).await.unwrap();
    let mut rbuf = BytesMut::new();
    assert!(matches!(
        next(&mut r, &mut rbuf, v).await,
        Some(Packet::SubAck(_))
    ));
    let count = received.clone();
    tokio::spawn(async move {
        let mut out = BytesMut::new();
        loop {
            loop {
                match decode_packet(&mut rbuf, v, 1 << 20).unwrap() {
                    Some(Packet::Publish(p)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        encode_packet(&Packet::PubAck(PubAck::new(p.pkid)), v, &mut out).unwrap();
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            if !out.is_empty() {
                if w.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            if r.read_buf(&mut rbuf).await.unwrap_or(0) == 0 {
                return;
            }
        }
    });
    for i in 0..publishers {
        let s = open(addr, &format!("pub{i}"), v).await;
        tokio::spawn(async move {
            let (mut r, mut w) = s.into_split();
            let payload = Bytes::from(vec![b'x'; 64]);
            let topic: Arc<str> = Arc::from(format!("bench/{i}"));
            let mut inflight = 0usize;
            let mut pkid = 0u16;
            let mut rbuf = BytesMut::new();
            let mut out = BytesMut::new();
            loop {
                while inflight < WINDOW {
                    pkid = pkid % 60000 + 1;
                    let p = Publish {
                        dup: false,
                        qos: QoS::AtLeastOnce,
                        retain: false,
                        topic: topic.clone(),
                        pkid,
                        payload: payload.clone(),
                        properties: Properties::default(),
                    };
                    encode_packet(&Packet::Publish(p), v, &mut out).unwrap();
                    inflight += 1;
                }
                if w.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                match next(&mut r, &mut rbuf, v).await {
                    Some(Packet::PubAck(_)) => inflight -= 1,
                    Some(_) => {}
                    None => return,
                }
                while let Ok(Some(p)) = decode_packet(&mut rbuf, v, 1 << 20) {
                    if matches!(p, Packet::PubAck(_)) {
                        inflight -= 1;
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    let before = received.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let n = received.load(Ordering::Relaxed) - before;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "fan-in QoS 1, MQTT {}, {publishers} publishers: {rate:.0} msg/s",
        if v.is_v5() { "5.0" } else { "3.1.1" }
    );
    stop.cancel();
    broker.shutdown().await;
}
