//! Configuration errors as people read them:
//! `FILE:LINE:COLUMN: message`, the offending line with a caret, and a hint.
//!
//! Owns [`ConfigError`], the translation of serde-saphyr's errors into it
//! (unknown keys list the valid keys of their section, bad values show the
//! accepted forms), and the placement of validation errors at their key. It
//! must not decide what is valid: that is [`super::Config::validate`].

use std::fmt;

use serde_saphyr::{DefaultMessageFormatter, Error as YamlError, MessageFormatter};

use super::duration;
use super::spans::{self, Tree};

/// One problem, with as much position as is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostic {
    /// File name (or other origin) of the text; empty when unknown.
    pub origin: String,
    /// 1-based line and column of the offending key or value.
    pub location: Option<(u64, u64)>,
    /// Key path, e.g. `paths[2].passphrase`.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the location points into.
    pub excerpt: Option<String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or YAML that does not fit the schema: unknown key, wrong type,
    /// bad duration or address.
    #[error("{0}")]
    Parse(Box<Diagnostic>),
    /// Well-formed, but a value breaks a rule: out of range, bad pattern,
    /// duplicate, too short.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl ConfigError {
    pub fn diagnostic(&self) -> &Diagnostic {
        match self {
            ConfigError::Parse(d) | ConfigError::Invalid(d) => d,
        }
    }

    fn diagnostic_mut(&mut self) -> &mut Diagnostic {
        match self {
            ConfigError::Parse(d) | ConfigError::Invalid(d) => d,
        }
    }

    /// Place a validation error in `text`: origin, line and column of its key.
    pub(super) fn locate(mut self, text: &str, origin: &str) -> ConfigError {
        let d = self.diagnostic_mut();
        d.origin = origin.to_owned();
        if let (Some(key), Ok(tree)) = (&d.key, Tree::parse(text)) {
            d.location = tree.locate(key);
        }
        d.excerpt = d.location.and_then(|(line, _)| source_line(text, line));
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.origin.is_empty() {
            f.write_str(&self.origin)?;
            if let Some((line, col)) = self.location {
                write!(f, ":{line}:{col}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if let (Some((line, col)), Some(src)) = (self.location, &self.excerpt) {
            let gutter = line.to_string().len();
            let pad = " ".repeat(
                usize::try_from(col.saturating_sub(1))
                    .unwrap_or(0)
                    .min(src.chars().count()),
            );
            write!(f, "\n {line} | {src}\n {:gutter$} | {pad}^", "")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Line `line` (1-based) of `text`, shortened for display.
fn source_line(text: &str, line: u64) -> Option<String> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let src = text.lines().nth(index)?;
    let src: String = src
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    Some(src.trim_end().to_owned())
}

fn line_col(err: &YamlError) -> Option<(u64, u64)> {
    err.location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line(), l.column()))
}

/// Turn a serde-saphyr error for `text` into a [`ConfigError::Parse`].
pub(super) fn from_parse_error(err: &YamlError, text: &str, origin: &str) -> ConfigError {
    // The typed parse stops at the first value of the wrong shape, which for
    // broken YAML (an unclosed bracket, say) is not where the problem is. The
    // untyped parse reads the whole document and reports the syntax error.
    let (tree, syntax) = match Tree::parse(text) {
        Ok(tree) => (Some(tree), None),
        Err(syntax) => (None, Some(syntax)),
    };
    let err = syntax.as_ref().unwrap_or(err).without_snippet();
    let location = line_col(err);
    let key_at = || tree.as_ref()?.key_at(location?);
    let value_at = || tree.as_ref()?.value_at(location?);
    let mut d = plain(err, value_at().or_else(key_at), text, origin);
    match err {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let section = key_at()
                .map(|p| spans::parent(&p).to_owned())
                .unwrap_or_default();
            let (message, valid) = if section.is_empty() {
                (
                    format!("unknown top-level key `{field}`"),
                    "valid top-level keys".to_owned(),
                )
            } else {
                (
                    format!("unknown key `{field}` in `{section}`"),
                    format!("valid keys in `{section}`"),
                )
            };
            d.key = None;
            d.message = message;
            let mut hint = format!("{valid}: {}", expected.join(", "));
            if let Some(near) = closest(field, expected) {
                hint.push_str(&format!(" (did you mean `{near}`?)"));
            }
            d.hint = Some(hint);
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            d.message = format!("unknown value `{variant}`");
            d.hint = Some(format!("accepted values: {}", expected.join(", ")));
        }
        YamlError::SerdeMissingField { field, .. } => {
            d.key = key_at()
                .or_else(value_at)
                .map(|p| spans::parent(&p).to_owned())
                .filter(|p| !p.is_empty());
            d.message = format!("missing key `{field}`");
            d.hint = d
                .key
                .as_deref()
                .and_then(|k| {
                    hint_for_srtla(k)
                        .or_else(|| hint_for_http(k))
                        .or_else(|| hint_for_key(spans::last_key(k)))
                })
                .map(str::to_owned);
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            d.key = None;
            d.message = match key {
                Some(k) => format!("key `{k}` appears twice"),
                None => "a key appears twice".to_owned(),
            };
            d.hint = Some("each key may appear once per section".to_owned());
        }
        YamlError::Unexpected { expected, .. } => {
            d.message = match *expected {
                "mapping start" => "expected a mapping (`key: value` lines)".to_owned(),
                "sequence start" => "expected a list".to_owned(),
                "string scalar" => {
                    "expected a single value (quote it if it starts with `[` or `{`)".to_owned()
                }
                other => format!("expected {other}"),
            };
        }
        YamlError::MultipleDocuments { .. } => {
            d.message =
                "only one YAML document is allowed (found a second one after `---`)".to_owned();
        }
        YamlError::InvalidScalar { ty, .. } if ty.starts_with(['u', 'i']) => {
            d.message = "not a whole number, or out of range".to_owned();
        }
        _ => {}
    }
    if tree.as_ref().is_some_and(|t| !t.root_is_map()) {
        d.key = None;
        d.message = "the top level must be a mapping of sections".to_owned();
        d.hint = Some(
            "valid top-level keys: workers, log, srt, srtla, http, hls, api, hooks, paths"
                .to_owned(),
        );
    }
    ConfigError::Parse(Box::new(d))
}

/// The diagnostic serde-saphyr's own message gives, with the key's hint.
fn plain(err: &YamlError, key: Option<String>, text: &str, origin: &str) -> Diagnostic {
    let err = err.without_snippet();
    let location = line_col(err);
    let hint = key
        .as_deref()
        .and_then(|k| {
            hint_for_srtla(k)
                .or_else(|| hint_for_http(k))
                .or_else(|| hint_for_key(spans::last_key(k)))
        })
        .map(str::to_owned);
    Diagnostic {
        origin: origin.to_owned(),
        location,
        key,
        message: DefaultMessageFormatter.format_message(err).into_owned(),
        hint,
        excerpt: location.and_then(|(line, _)| source_line(text, line)),
    }
}

/// What a key of the `srtla:` section accepts, where the name alone would
/// give the wrong hint (`allow` is a list of networks there).
fn hint_for_srtla(key: &str) -> Option<&'static str> {
    let rest = key.strip_prefix("srtla")?;
    Some(match rest.trim_start_matches('.') {
        "" => "a mapping with keys: enabled, listen, max_groups, max_links_per_group, link_timeout, group_timeout, allow, max_reorder_hold",
        "enabled" => "true or false",
        "listen" => "a list of IP address and UDP port pairs, e.g. [\"0.0.0.0:5000\", \"[::]:5000\"]",
        "max_groups" | "max_links_per_group" => "a whole number, 1 or more",
        "link_timeout" | "group_timeout" | "max_reorder_hold" => duration::FORMS,
        a if a.starts_with("allow") => "a list of networks as ADDRESS/PREFIX, e.g. [\"10.0.0.0/8\", \"2001:db8::/32\"]",
        _ => return None,
    })
}

/// What a key of the `http:` and `hls:` sections accepts.
fn hint_for_http(key: &str) -> Option<&'static str> {
    if let Some(rest) = key.strip_prefix("api") {
        return Some(match rest.trim_start_matches('.') {
            "" => "a mapping with keys: enabled, listen, token, auth_reads, max_body",
            "enabled" | "auth_reads" => "true or false",
            "listen" => {
                "a list of IP address and TCP port pairs, e.g. [\"127.0.0.1:9997\", \"[::1]:9997\"]"
            }
            "token" => "a string of 16 to 256 printable characters, or null",
            "max_body" => "a whole number of bytes",
            _ => return None,
        });
    }
    if let Some(rest) = key.strip_prefix("hooks") {
        return Some(match rest.trim_start_matches('.') {
            "" => "a mapping with keys: on_publish, on_unpublish, on_read, on_read_end, timeout, on_failure",
            "timeout" => duration::FORMS,
            "on_failure" => "deny or allow",
            _ => "http://HOST:PORT/PATH, or null",
        });
    }
    if let Some(rest) = key.strip_prefix("http") {
        return Some(match rest.trim_start_matches('.') {
            "" => "a mapping with keys: enabled, listen, header_timeout, write_timeout, max_connections, max_request_head, cors_origin, root",
            "enabled" => "true or false",
            "listen" => "a list of IP address and TCP port pairs, e.g. [\"0.0.0.0:8080\", \"[::]:8080\"]",
            "header_timeout" | "write_timeout" => duration::FORMS,
            "max_connections" | "max_request_head" => "a whole number",
            "cors_origin" | "root" => "a string",
            _ => return None,
        });
    }
    let rest = key.strip_prefix("hls")?;
    Some(match rest.trim_start_matches('.') {
        "" => "a mapping with keys: ll, ts, default, segment, part, window, keep_after_end, wait_for_segment",
        "ll" | "ts" => "true or false",
        "default" => "ll or ts",
        "segment" | "part" | "keep_after_end" | "wait_for_segment" => duration::FORMS,
        "window" => "a whole number, 2 to 100",
        _ => return None,
    })
}

/// What a key accepts, for type and format errors.
fn hint_for_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "latency" | "peer_idle_timeout" | "handshake_timeout" | "wait_for_publisher"
        | "publisher_grace" => duration::FORMS,
        "listen" => "a list of IP address and UDP port pairs, e.g. [\"0.0.0.0:8890\", \"[::]:8890\"]",
        "workers" | "max_sessions" | "max_handshakes" | "reader_queue" | "max_readers" => "a whole number, 0 or more",
        "allow" => "true or false",
        "level" => "a log level (trace, debug, info, warn, error, off) or `target=level` parts, e.g. info,srtgate::io=debug",
        "format" => "text or json",
        "bare_stream_id" => "auto, publish or read",
        "on_second_publisher" => "reject or takeover",
        "name" | "passphrase" | "user" | "pass" => "a string",
        "credentials" => "a list of { user: NAME, pass: SECRET }",
        "log" => "a mapping with keys: level, format",
        "srt" => "a mapping with keys: listen, latency, peer_idle_timeout, max_sessions, max_handshakes, handshake_timeout, bare_stream_id, reader_queue",
        "paths" => "a list of rules, each a mapping with at least `name`",
        "publish" | "read" => "a mapping with `allow` and `credentials`",
        _ => return None,
    })
}

/// The candidate nearest to `word` by edit distance, if close enough.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("latncy", "latency"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("latncy", &["listen", "latency"]), Some("latency"));
        assert_eq!(closest("zzzzzz", &["listen", "latency"]), None);
    }

    #[test]
    fn display_without_location_names_the_key() {
        let d = Diagnostic {
            key: Some("paths[2].passphrase".into()),
            message: "too short".into(),
            ..Diagnostic::default()
        };
        assert_eq!(d.to_string(), "paths[2].passphrase: too short");
    }

    #[test]
    fn display_with_location_points_at_the_column() {
        let d = Diagnostic {
            origin: "a.yaml".into(),
            location: Some((3, 5)),
            key: None,
            message: "oops".into(),
            hint: Some("do this".into()),
            excerpt: Some("    pasphrase: x".into()),
        };
        assert_eq!(
            d.to_string(),
            "a.yaml:3:5: oops\n 3 |     pasphrase: x\n   |     ^\n  hint: do this"
        );
    }
}
