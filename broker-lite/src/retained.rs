//! The retained messages and the limits on them (`max_retained_messages`,
//! `max_retained_bytes`), and the [`Limit`]s a client can run into.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::message::Message;

/// A limit on what one client may make the broker hold; named as in `[broker]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Retained topics stored at most.
    RetainedMessages,
    /// Bytes of the retained messages (topic, payload, MQTT 5 properties).
    RetainedBytes,
    /// Subscriptions one session may hold.
    SubscriptionsPerClient,
}

impl Limit {
    /// The configuration key.
    pub fn name(self) -> &'static str {
        match self {
            Limit::RetainedMessages => "max_retained_messages",
            Limit::RetainedBytes => "max_retained_bytes",
            Limit::SubscriptionsPerClient => "max_subscriptions_per_client",
        }
    }
}

/// The retained messages, and what those that count weigh against the limits: every
/// topic but the broker's own `$SYS` statistics (a fixed handful, refreshed every
/// `sys_interval`, that must neither take a client's room nor be refused).
///
/// Only a message that adds a topic, or grows one, can be refused: replacing a message
/// with one no larger, or clearing it, always works, so a store that is full (or was
/// restored over the limits) can always be cleaned up by its publishers.
#[derive(Debug)]
pub(crate) struct Retained {
    pub messages: HashMap<Arc<str>, Arc<Message>>,
    /// Counted messages (all but `$SYS/...`).
    pub count: usize,
    /// What the counted messages weigh ([`Retained::weight`]).
    pub bytes: usize,
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Retained {
    pub fn new(max_messages: usize, max_bytes: usize) -> Retained {
        Retained {
            messages: HashMap::new(),
            count: 0,
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Whether `topic` counts against the limits.
    pub fn counts(topic: &str) -> bool {
        !topic.starts_with("$SYS/")
    }

    /// What a message weighs against `max_bytes`: its topic, payload and the variable
    /// parts of its MQTT 5 properties (a 1-byte payload may carry a megabyte of user
    /// properties).
    pub fn weight(msg: &Message) -> usize {
        let p = &msg.properties;
        let mut n = msg.topic.len() + msg.payload.len();
        if !p.is_empty() {
            n += p.content_type.as_deref().map_or(0, str::len)
                + p.response_topic.as_deref().map_or(0, str::len)
                + p.correlation_data.as_ref().map_or(0, Bytes::len)
                + (p.user_properties.iter())
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
        }
        n
    }

    /// Stores (a copy of) `msg` as its topic's retained message and returns it, unless
    /// that adds a topic beyond `max_messages` or grows the bytes beyond `max_bytes`
    /// (then nothing changes).
    pub fn store(&mut self, msg: &Message) -> Result<Arc<Message>, Limit> {
        if Self::counts(&msg.topic) {
            let old = self.messages.get(&msg.topic).map(|m| Self::weight(m));
            if old.is_none() && self.count >= self.max_messages {
                return Err(Limit::RetainedMessages);
            }
            let old = old.unwrap_or(0);
            let new = Self::weight(msg);
            if new > old && self.bytes - old + new > self.max_bytes {
                return Err(Limit::RetainedBytes);
            }
        }
        let stored = compact(msg);
        self.put(stored.clone());
        Ok(stored)
    }

    /// Stores `msg` whatever the limits (a restore; `store` checked them).
    pub fn put(&mut self, msg: Arc<Message>) {
        let counted = Self::counts(&msg.topic);
        let new = Self::weight(&msg);
        if let Some(old) = self.messages.insert(msg.topic.clone(), msg) {
            if counted {
                self.count -= 1;
                self.bytes -= Self::weight(&old);
            }
        }
        if counted {
            self.count += 1;
            self.bytes += new;
        }
    }

    /// Deletes the retained message of `topic`.
    pub fn remove(&mut self, topic: &str) -> Option<Arc<Message>> {
        let old = self.messages.remove(topic)?;
        if Self::counts(topic) {
            self.count -= 1;
            self.bytes -= Self::weight(&old);
        }
        Some(old)
    }

    /// Whether the counted messages exceed a limit (possible only after a restore).
    pub fn over_limits(&self) -> bool {
        self.count > self.max_messages || self.bytes > self.max_bytes
    }
}

/// A copy of `msg` holding only its own bytes. A payload (and correlation data) is
/// decoded without copying, as a slice of the connection's read buffer: kept for as
/// long as it is retained it would keep that whole buffer allocated (16 KiB, or as much
/// as a large packet read with it), far more than `max_retained_bytes` counts.
fn compact(msg: &Message) -> Arc<Message> {
    let mut properties = msg.properties.clone();
    if let Some(data) = &msg.properties.correlation_data {
        properties.correlation_data = Some(Bytes::copy_from_slice(data));
    }
    Arc::new(Message {
        id: msg.id,
        topic: msg.topic.clone(),
        payload: Bytes::copy_from_slice(&msg.payload),
        qos: msg.qos,
        retain: msg.retain,
        properties,
        origin: msg.origin,
        expires_at: msg.expires_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use mqgate_protocol::QoS;

    use super::*;

    /// A retained QoS 0 message on `topic` (test helper, also for `core`'s tests).
    pub(crate) fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message {
            id: 1,
            topic: Arc::from(topic),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            origin: 0,
            expires_at: None,
        })
    }

    fn stored(r: &mut Retained, msg: &Message) -> Result<(), Limit> {
        r.store(msg).map(drop)
    }

    #[test]
    fn a_new_retained_topic_beyond_the_count_is_refused_a_replacement_is_not() {
        let mut r = Retained::new(3, 1 << 20);
        for t in ["a", "b", "c"] {
            assert_eq!(stored(&mut r, &msg(t, "1")), Ok(()));
        }
        assert_eq!(stored(&mut r, &msg("d", "1")), Err(Limit::RetainedMessages));
        assert!(!r.messages.contains_key("d"));
        // Replacing, even with a larger message, and clearing always work.
        assert_eq!(stored(&mut r, &msg("a", "22")), Ok(()));
        assert_eq!((r.count, r.bytes), (3, 2 + 2 + 2 + 1));
        assert!(r.remove("b").is_some());
        assert_eq!((r.count, r.bytes), (2, 3 + 2));
        assert_eq!(stored(&mut r, &msg("d", "1")), Ok(()));
        assert_eq!(r.count, 3);
    }

    #[test]
    fn the_byte_limit_refuses_new_topics_and_growth_but_not_shrinking() {
        // Topic plus payload: "t1" + 4 bytes = 6.
        let mut r = Retained::new(100, 12);
        assert_eq!(stored(&mut r, &msg("t1", "aaaa")), Ok(()));
        assert_eq!(stored(&mut r, &msg("t2", "aaaa")), Ok(()));
        assert_eq!(r.bytes, 12);
        assert_eq!(stored(&mut r, &msg("t3", "a")), Err(Limit::RetainedBytes));
        assert_eq!(
            stored(&mut r, &msg("t1", "aaaaa")),
            Err(Limit::RetainedBytes)
        );
        assert_eq!(r.messages["t1"].payload.len(), 4, "the old message stays");
        assert_eq!(stored(&mut r, &msg("t1", "aa")), Ok(()));
        assert_eq!(r.bytes, 10);
        // Growing within the limit is fine.
        assert_eq!(stored(&mut r, &msg("t1", "aaaa")), Ok(()));
        // One message larger than the limit never fits.
        let mut empty = Retained::new(100, 12);
        assert_eq!(
            stored(&mut empty, &msg("big", "0123456789")),
            Err(Limit::RetainedBytes)
        );
    }

    #[test]
    fn mqtt5_properties_weigh_and_the_stored_copy_owns_its_bytes() {
        let buffer = Bytes::from_static(b"0123456789payload");
        let mut m = Message::clone(&msg("t", "x"));
        m.payload = buffer.slice(10..);
        m.properties = mqgate_protocol::PropertyValues {
            user_properties: vec![("k".into(), "vv".into())],
            correlation_data: Some(buffer.slice(..4)),
            ..Default::default()
        }
        .into();
        // "t" + "payload" + "k" + "vv" + "0123".
        assert_eq!(Retained::weight(&m), 1 + 7 + 3 + 4);
        let mut r = Retained::new(10, 100);
        let Ok(stored) = r.store(&m) else {
            panic!("refused")
        };
        assert_eq!(*stored, m);
        assert_ne!(stored.payload.as_ptr(), m.payload.as_ptr());
        let data = |m: &Message| m.properties.correlation_data.clone().unwrap_or_default();
        assert_ne!(data(&stored).as_ptr(), data(&m).as_ptr());
    }

    #[test]
    fn the_brokers_own_sys_topics_do_not_count() {
        let mut r = Retained::new(1, 10);
        assert_eq!(
            stored(&mut r, &msg("$SYS/broker/uptime", "12345 seconds")),
            Ok(())
        );
        assert_eq!((r.count, r.bytes), (0, 0));
        assert_eq!(stored(&mut r, &msg("a", "1")), Ok(()));
        assert_eq!(stored(&mut r, &msg("$SYS/broker/version", "x")), Ok(()));
        assert_eq!(
            stored(&mut r, &msg("$other", "1")),
            Err(Limit::RetainedMessages)
        );
        assert!(r.remove("$SYS/broker/uptime").is_some());
        assert_eq!((r.count, r.bytes), (1, 2));
    }

    #[test]
    fn a_store_restored_over_its_limits_keeps_everything_and_can_shrink() {
        let mut r = Retained::new(2, 100);
        for t in ["a", "b", "c"] {
            r.put(msg(t, "xx"));
        }
        assert!(r.over_limits());
        assert_eq!(stored(&mut r, &msg("d", "x")), Err(Limit::RetainedMessages));
        assert_eq!(stored(&mut r, &msg("a", "x")), Ok(()));
        r.remove("a");
        r.remove("b");
        assert!(!r.over_limits());
        assert_eq!(stored(&mut r, &msg("d", "x")), Ok(()));
    }
}
