//! The async driver of one MQTT client connection: CONNECT/CONNACK handshake, a reader,
//! and a writer task that batches packets into as few writes as possible.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use mqgate_protocol::{encode_packet, ConnAck, Connect, MqttCodec, Packet, ProtocolVersion};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::connector::BoxedStream;
use crate::error::BridgeError;

/// Largest packet accepted from a broker (MQTT's own maximum).
const MAX_PACKET: usize = 268_435_455;

/// An established MQTT connection.
pub struct Link {
    reader: FramedRead<ReadHalf<BoxedStream>, MqttCodec>,
    tx: mpsc::UnboundedSender<Packet>,
    writer: JoinHandle<()>,
}

impl Link {
    /// Sends CONNECT (with the protocol level's high bit set when `try_private`) and waits
    /// up to `timeout` for CONNACK. Returns the link and the CONNACK, whatever its reason code.
    pub async fn open(
        stream: BoxedStream,
        connect: &Connect,
        try_private: bool,
        timeout: Duration,
    ) -> Result<(Link, ConnAck), BridgeError> {
        let (read, mut write) = tokio::io::split(stream);
        let mut bytes = BytesMut::new();
        encode_packet(
            &Packet::Connect(connect.clone()),
            connect.protocol,
            &mut bytes,
        )?;
        if try_private {
            mark_bridge(&mut bytes);
        }
        write
            .write_all(&bytes)
            .await
            .map_err(|e| BridgeError::io("sending CONNECT", e))?;
        let mut codec = MqttCodec::new(MAX_PACKET);
        codec.set_version(connect.protocol);
        let mut reader = FramedRead::new(read, codec.clone());
        let first = tokio::time::timeout(timeout, reader.next())
            .await
            .map_err(|_| BridgeError::Timeout("CONNACK"))?;
        let connack = match first {
            Some(Ok(Packet::ConnAck(connack))) => connack,
            Some(Ok(other)) => return Err(BridgeError::Unexpected(other.packet_type())),
            Some(Err(error)) => return Err(error.into()),
            // A clean close (a reset or a TLS alert stays an I/O error, with its reason).
            None => return Err(BridgeError::NoConnAck),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(FramedWrite::new(write, codec), rx));
        Ok((Link { reader, tx, writer }, connack))
    }

    /// Queues a packet for the writer.
    pub fn send(&self, packet: Packet) -> Result<(), BridgeError> {
        self.tx.send(packet).map_err(|_| BridgeError::Closed)
    }

    /// A sender that can be moved to other tasks.
    pub fn sender(&self) -> mpsc::UnboundedSender<Packet> {
        self.tx.clone()
    }

    /// The next packet from the broker.
    pub async fn next(&mut self) -> Result<Packet, BridgeError> {
        match self.reader.next().await {
            Some(Ok(packet)) => Ok(packet),
            Some(Err(error)) => Err(error.into()),
            None => Err(BridgeError::Closed),
        }
    }

    /// Lets the writer send what is queued (at most `grace`), then closes the connection.
    pub async fn close(self, grace: Duration) {
        let Link { tx, mut writer, .. } = self;
        drop(tx);
        if tokio::time::timeout(grace, &mut writer).await.is_err() {
            writer.abort();
        }
    }
}

/// Sets the high bit of the protocol level in an encoded CONNECT (mosquitto's bridge
/// marker, `try_private`). The level follows the fixed header and the 2+4-byte name "MQTT".
fn mark_bridge(bytes: &mut BytesMut) {
    let mut i = 1;
    while i < bytes.len() && bytes[i] & 0x80 != 0 {
        i += 1;
    }
    let level = i + 1 + 6;
    if let Some(byte) = bytes.get_mut(level) {
        *byte |= 0x80;
    }
}

/// Writes queued packets, flushing once per burst; ends when every sender is gone (after
/// flushing) or on a write error.
async fn write_loop(
    mut sink: FramedWrite<WriteHalf<BoxedStream>, MqttCodec>,
    mut rx: mpsc::UnboundedReceiver<Packet>,
) {
    while let Some(packet) = rx.recv().await {
        let mut result = sink.feed(&packet).await;
        while result.is_ok() {
            match rx.try_recv() {
                Ok(packet) => result = sink.feed(&packet).await,
                Err(_) => break,
            }
        }
        if let Err(error) = result.and(sink.flush().await) {
            tracing::debug!(%error, "bridge connection: write failed");
            return;
        }
    }
    let _ = sink.flush().await;
    let _ = sink.get_mut().shutdown().await;
}

/// The protocol version of a bridge's upstream.
pub fn protocol_of(version: mqgate_config::ProtocolVersion) -> ProtocolVersion {
    match version {
        mqgate_config::ProtocolVersion::V311 => ProtocolVersion::V3_1_1,
        mqgate_config::ProtocolVersion::V5 => ProtocolVersion::V5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqgate_protocol::{decode_packet, Properties};

    #[test]
    fn try_private_sets_the_high_bit_of_the_level() {
        let connect = Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_start: false,
            keep_alive: 60,
            client_id: "b".into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        let mut bytes = BytesMut::new();
        encode_packet(
            &Packet::Connect(connect),
            ProtocolVersion::V3_1_1,
            &mut bytes,
        )
        .unwrap();
        mark_bridge(&mut bytes);
        assert_eq!(&bytes[4..8], b"MQTT");
        assert_eq!(bytes[8], 0x84);
        // A strict decoder refuses the marked level: only a bridge-aware broker accepts it.
        assert!(decode_packet(&mut bytes, ProtocolVersion::V3_1_1, 1024).is_err());
    }
}
