//! Field paths (`bridge[0].topic[1].qos`) and finding them in the TOML text.

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

/// One step of a field path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A key of a table.
    Key(&'static str),
    /// An element of an array (of tables).
    Index(usize),
}

/// The path of a field in TOML terms, built while validating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The path with `key` appended.
    pub(crate) fn key(&self, key: &'static str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key));
        Self(segments)
    }

    /// The path with `[index]` appended.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// A root-level `key`.
    pub(crate) fn root(key: &'static str) -> Self {
        Self::default().key(key)
    }

    /// Byte range of the deepest part of this path present in `doc`: the field's value
    /// when it is written, otherwise the closest enclosing table or array element.
    pub(crate) fn span_in(&self, doc: &ImDocument<&str>) -> Option<Range<usize>> {
        let mut node = Node::Item(doc.as_item());
        let mut best = None;
        for segment in &self.0 {
            let Some(next) = node.child(segment) else {
                break;
            };
            if let Some(span) = next.span() {
                best = Some(span);
            }
            node = next;
        }
        best
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A position in a `toml_edit` document: standard tables are `Item`s, inline ones `Value`s.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a toml_edit::Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn child(self, segment: &Segment) -> Option<Node<'a>> {
        match (self, segment) {
            (Node::Item(Item::Table(table)), Segment::Key(key))
            | (Node::Table(table), Segment::Key(key)) => table.get(key).map(Node::Item),
            (Node::Item(Item::ArrayOfTables(array)), Segment::Index(i)) => {
                array.get(*i).map(Node::Table)
            }
            (Node::Item(Item::Value(value)), segment) => Node::Value(value).child(segment),
            (Node::Value(Value::InlineTable(table)), Segment::Key(key)) => {
                table.get(key).map(Node::Value)
            }
            (Node::Value(Value::Array(array)), Segment::Index(i)) => array.get(*i).map(Node::Value),
            _ => None,
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(item) => item.span(),
            Node::Table(table) => table.span(),
            Node::Value(value) => value.span(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_toml_access() {
        let path = FieldPath::root("bridge")
            .index(0)
            .key("topic")
            .index(1)
            .key("qos");
        assert_eq!(path.to_string(), "bridge[0].topic[1].qos");
    }

    #[test]
    fn finds_values_and_falls_back_to_the_enclosing_table() {
        let text =
            "[[listener]]\nkind = \"tls\"\nbind = \"0.0.0.0:8883\"\n[listener.tls]\nkey = \"k\"\n";
        let doc = ImDocument::parse(text).unwrap();
        let bind = FieldPath::root("listener").index(0).key("bind");
        let span = bind.span_in(&doc).unwrap();
        assert_eq!(&text[span], "\"0.0.0.0:8883\"");
        let cert = FieldPath::root("listener").index(0).key("tls").key("cert");
        let span = cert.span_in(&doc).unwrap();
        assert!(
            text[span].starts_with("[listener.tls]"),
            "fallback to the table header"
        );
    }
}
