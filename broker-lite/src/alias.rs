//! MQTT 5 topic aliases of one connection: the table the client fills (inbound) and the
//! one the broker fills (outbound). Both live and die with the network connection.

use std::collections::HashMap;
use std::sync::Arc;

/// Why an inbound alias cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasError {
    /// 0 or above the maximum the broker announced (DISCONNECT 0x94).
    OutOfRange,
    /// An empty topic with an alias that was never set (DISCONNECT 0x82).
    Unknown,
}

/// Aliases set by the client, 1..=max.
#[derive(Debug, Default)]
pub(crate) struct InboundAliases {
    max: u16,
    /// Boxed and created at the first alias: every connection holds the empty table
    /// (8 bytes, not 48).
    #[allow(clippy::box_collection)]
    topics: Option<Box<HashMap<u16, Arc<str>>>>,
}

impl InboundAliases {
    /// A table accepting aliases 1..=`max`.
    pub fn new(max: u16) -> InboundAliases {
        InboundAliases { max, topics: None }
    }

    /// Resolves a PUBLISH's `topic` and `alias`: an empty topic takes the alias's topic,
    /// a non-empty one (re)defines the alias.
    pub fn resolve(&mut self, topic: Arc<str>, alias: u16) -> Result<Arc<str>, AliasError> {
        if alias == 0 || alias > self.max {
            return Err(AliasError::OutOfRange);
        }
        if topic.is_empty() {
            let known = self.topics.as_ref().and_then(|t| t.get(&alias));
            return known.cloned().ok_or(AliasError::Unknown);
        }
        let topics = self.topics.get_or_insert_with(Box::default);
        topics.insert(alias, topic.clone());
        Ok(topic)
    }
}

/// Aliases the broker assigns towards the client, up to the client's maximum. New topics
/// get the next free alias; when all are used, further topics are sent in full.
#[derive(Debug, Default)]
pub(crate) struct OutboundAliases {
    max: u16,
    /// Boxed and created at the first alias: every connection holds the empty table
    /// (8 bytes, not 48).
    #[allow(clippy::box_collection)]
    aliases: Option<Box<HashMap<Arc<str>, u16>>>,
}

/// How to send a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutAlias {
    /// Full topic, no alias.
    None,
    /// Full topic, and it defines this new alias.
    Define(u16),
    /// Empty topic with this known alias.
    Use(u16),
}

impl OutboundAliases {
    /// A table for a client that accepts aliases 1..=`max` (0: none).
    pub fn new(max: u16) -> OutboundAliases {
        OutboundAliases { max, aliases: None }
    }

    /// How to send `topic`, assigning a new alias when there is room.
    pub fn lookup(&mut self, topic: &Arc<str>) -> OutAlias {
        if self.max == 0 {
            return OutAlias::None;
        }
        let aliases = self.aliases.get_or_insert_with(Box::default);
        if let Some(a) = aliases.get(topic) {
            return OutAlias::Use(*a);
        }
        let next = aliases.len() + 1;
        if next > usize::from(self.max) {
            return OutAlias::None;
        }
        let alias = next as u16;
        aliases.insert(topic.clone(), alias);
        OutAlias::Define(alias)
    }

    /// Takes back an alias defined by [`OutboundAliases::lookup`] whose packet was not
    /// sent (it was too large), so that the client is never sent an alias it lacks.
    pub fn undefine(&mut self, topic: &Arc<str>) {
        if let Some(aliases) = &mut self.aliases {
            aliases.remove(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_aliases_are_checked_and_resolved() {
        let mut t = InboundAliases::new(2);
        assert_eq!(t.resolve(Arc::from("a"), 3), Err(AliasError::OutOfRange));
        assert_eq!(t.resolve(Arc::from(""), 0), Err(AliasError::OutOfRange));
        assert_eq!(t.resolve(Arc::from(""), 1), Err(AliasError::Unknown));
        assert_eq!(&*t.resolve(Arc::from("a/b"), 1).unwrap(), "a/b");
        assert_eq!(&*t.resolve(Arc::from(""), 1).unwrap(), "a/b");
        assert_eq!(&*t.resolve(Arc::from("c"), 1).unwrap(), "c");
        assert_eq!(&*t.resolve(Arc::from(""), 1).unwrap(), "c");
    }

    #[test]
    fn outbound_aliases_fill_up_then_send_full_topics() {
        let mut t = OutboundAliases::new(1);
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        assert_eq!(t.lookup(&a), OutAlias::Define(1));
        assert_eq!(t.lookup(&a), OutAlias::Use(1));
        assert_eq!(t.lookup(&b), OutAlias::None);
        t.undefine(&a);
        assert_eq!(t.lookup(&b), OutAlias::Define(1));
        assert_eq!(OutboundAliases::new(0).lookup(&a), OutAlias::None);
    }
}
