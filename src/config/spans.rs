//! Where keys are in the YAML text: a second, untyped parse of the document
//! into a tree of keys and items, each with its line and column.
//!
//! Owns the mapping between key paths (`paths[2].passphrase`) and source
//! locations, in both directions. Used only on the error path: after a typed
//! parse failed (to say in which section an unknown key was) or after
//! validation failed (to point at the offending key). It must not decide
//! whether a document is valid; it knows nothing about the config's types.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// A 1-based line and column.
pub type LineCol = (u64, u64);

enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// The untyped document with locations.
pub struct Tree(Spanned<Node>);

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn line_col(l: &Location) -> Option<LineCol> {
    (l.line() > 0).then(|| (l.line(), l.column()))
}

/// Split `paths[2].publish.credentials[0].user` into steps.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        while let Some((idx, tail)) = rest.split_once(']') {
            if let Ok(i) = idx.parse() {
                out.push(Step::Index(i));
            }
            rest = tail.strip_prefix('[').unwrap_or(tail);
        }
    }
    out
}

impl Tree {
    /// Parse `text` without types; the error if it is not even YAML.
    pub fn parse(text: &str) -> Result<Tree, serde_saphyr::Error> {
        let options = serde_saphyr::options! { with_snippet: false };
        serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options).map(Tree)
    }

    /// Is the top level a mapping (or empty)?
    pub fn root_is_map(&self) -> bool {
        matches!(self.0.value, Node::Map(_))
    }

    /// Location of the key (or list item) that `path` names; if it is absent,
    /// of its nearest ancestor that is present.
    pub fn locate(&self, path: &str) -> Option<LineCol> {
        let mut node = &self.0.value;
        let mut best = None;
        for step in steps(path) {
            match (step, node) {
                (Step::Key(k), Node::Map(entries)) => {
                    let Some((key, value)) = entries.iter().find(|(key, _)| key.value == k) else {
                        break;
                    };
                    best = line_col(&key.referenced).or(best);
                    node = &value.value;
                }
                (Step::Index(i), Node::Seq(items)) => {
                    let Some(item) = items.get(i) else { break };
                    best = line_col(&item.referenced).or(best);
                    node = &item.value;
                }
                _ => break,
            }
        }
        best
    }

    /// Key path of the key that starts at `at`.
    pub fn key_at(&self, at: LineCol) -> Option<String> {
        let mut path = String::new();
        find(&self.0.value, at, Seek::Key, &mut path).then_some(path)
    }

    /// Key path of the value (or list item) that starts at `at`. A block
    /// mapping starts where its first key does: this finds the mapping.
    pub fn value_at(&self, at: LineCol) -> Option<String> {
        let mut path = String::new();
        find(&self.0.value, at, Seek::Value, &mut path).then_some(path)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Seek {
    Key,
    Value,
}

fn find(node: &Node, at: LineCol, seek: Seek, path: &mut String) -> bool {
    let len = path.len();
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.value);
                let here = match seek {
                    Seek::Key => line_col(&key.referenced) == Some(at),
                    Seek::Value => line_col(&value.referenced) == Some(at),
                };
                if here || find(&value.value, at, seek, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                let here = seek == Seek::Value && line_col(&item.referenced) == Some(at);
                if here || find(&item.value, at, seek, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        Node::Scalar => {}
    }
    false
}

/// The section part of a key path: `srt.latncy` → `srt`, `paths[1].x` →
/// `paths[1]`, `workers` → `` (top level).
pub fn parent(path: &str) -> &str {
    path.rfind('.').map_or("", |i| &path[..i])
}

/// The last key name of a path: `paths[1].publish.allow` → `allow`,
/// `srt.listen[2]` → `listen`.
pub fn last_key(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Node::Map(entries))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
        }

        d.deserialize_any(NodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
workers: 2
srt:
  listen: [\"0.0.0.0:1\", \"0.0.0.0:2\"]
  latency: 120ms
paths:
  - name: a
    publish:
      credentials:
        - { user: u, pass: p }
  - name: b
";

    #[test]
    fn splits_key_paths() {
        assert_eq!(
            steps("paths[2].publish.credentials[0].user"),
            [
                Step::Key("paths"),
                Step::Index(2),
                Step::Key("publish"),
                Step::Key("credentials"),
                Step::Index(0),
                Step::Key("user")
            ]
        );
        assert_eq!(steps("workers"), [Step::Key("workers")]);
        assert_eq!(parent("srt.latency"), "srt");
        assert_eq!(parent("workers"), "");
        assert_eq!(last_key("srt.listen[1]"), "listen");
        assert_eq!(last_key("paths[0].name"), "name");
    }

    #[test]
    fn locates_keys_and_items() {
        let t = Tree::parse(DOC).unwrap();
        assert!(t.root_is_map());
        assert_eq!(t.locate("workers"), Some((1, 1)));
        assert_eq!(t.locate("srt.latency"), Some((4, 3)));
        assert_eq!(t.locate("srt.listen[1]"), Some((3, 25)));
        assert_eq!(t.locate("paths[1].name"), Some((10, 5)));
        assert_eq!(
            t.locate("paths[0].publish.credentials[0].pass"),
            Some((9, 22))
        );
        // Absent keys fall back to the nearest ancestor that is there.
        assert_eq!(t.locate("paths[1].passphrase"), Some((10, 5)));
        assert_eq!(t.locate("log.level"), None);
    }

    #[test]
    fn finds_paths_by_location() {
        let t = Tree::parse(DOC).unwrap();
        assert_eq!(t.key_at((4, 3)).as_deref(), Some("srt.latency"));
        assert_eq!(t.value_at((4, 12)).as_deref(), Some("srt.latency"));
        assert_eq!(t.value_at((3, 25)).as_deref(), Some("srt.listen[1]"));
        assert_eq!(t.key_at((7, 5)).as_deref(), Some("paths[0].publish"));
        assert_eq!(
            t.key_at((8, 7)).as_deref(),
            Some("paths[0].publish.credentials")
        );
        // The block mapping under `srt` starts where its first key does.
        assert_eq!(t.key_at((3, 3)).as_deref(), Some("srt.listen"));
        assert_eq!(t.value_at((3, 3)).as_deref(), Some("srt"));
        assert_eq!(t.key_at((4, 12)), None);
        assert_eq!(t.value_at((99, 1)), None);
        assert!(Tree::parse("a: [\n").is_err());
    }
}
