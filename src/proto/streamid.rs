//! SRT stream id parsing: what path a caller wants, in which mode, and with
//! which credentials.
//!
//! Accepted forms:
//! 1. SRT access-control syntax: `#!::r=live/x,m=publish,u=USER,s=SECRET`
//!    (keys in any order; `r` required; `m=request` reads, `m=publish`
//!    publishes, no `m` leaves the mode unspecified; `s` is the password, as
//!    MediaMTX reads it; `t`, `h` and unknown keys are ignored).
//! 2. MediaMTX style: `publish:PATH`, `publish:PATH:USER:PASS`, `read:PATH`,
//!    `read:PATH:USER:PASS`.
//! 3. A bare path, `live/x`: mode unspecified.
//!
//! Plain synchronous code over untrusted input: never panics, bounds every
//! string it keeps, and refuses control characters so nothing hostile reaches
//! the logs. It must not decide access (that is `config` rules and admission)
//! and must not log; [`StreamRequest`]'s `Debug` hides the password.

use std::fmt;

use crate::config::validate_stream_path;

/// Longest stream id accepted, in bytes (SRT itself allows 512).
pub const MAX_STREAM_ID_LEN: usize = 512;

/// Longest caller-supplied text kept in an error, in characters.
const MAX_ECHO: usize = 32;

/// The mode a stream id asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestMode {
    Publish,
    Read,
    /// Bare path or no `m=`: the configuration decides (`srt.bare_stream_id`).
    Unspecified,
}

/// A parsed stream id.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// Valid per [`validate_stream_path`].
    pub path: String,
    pub mode: RequestMode,
    pub user: Option<String>,
    pub pass: Option<String>,
}

impl fmt::Debug for StreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRequest")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a stream id was refused. The `Display` text is meant for logs; any
/// caller-supplied part is shortened and escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("empty stream id")]
    Empty,
    #[error("stream id longer than {MAX_STREAM_ID_LEN} bytes")]
    TooLong,
    #[error("bad path: {0}")]
    BadPath(&'static str),
    #[error(
        "unsupported mode {0:?} (use m=publish or m=request, or the publish: / read: prefixes)"
    )]
    BadMode(String),
    #[error("malformed stream id: {0}")]
    Malformed(&'static str),
}

/// The stream id as it may be logged: passwords replaced by `***`, cut to 200
/// characters.
pub fn redact(sid: &str) -> String {
    let mut out = if let Some(body) = sid.strip_prefix("#!::") {
        let items: Vec<String> = body
            .split(',')
            .map(|item| match item.split_once('=') {
                Some(("s", _)) => "s=***".to_owned(),
                _ => item.to_owned(),
            })
            .collect();
        format!("#!::{}", items.join(","))
    } else {
        let fields: Vec<&str> = sid.split(':').collect();
        if fields.len() >= 4 && matches!(fields[0], "publish" | "read") {
            format!("{}:{}:{}:***", fields[0], fields[1], fields[2])
        } else {
            sid.to_owned()
        }
    };
    if out.len() > 200 {
        let mut cut = 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Parse a stream id in any of the accepted forms.
pub fn parse(sid: &str) -> Result<StreamRequest, StreamIdError> {
    if sid.is_empty() {
        return Err(StreamIdError::Empty);
    }
    if sid.len() > MAX_STREAM_ID_LEN {
        return Err(StreamIdError::TooLong);
    }
    if sid.chars().any(char::is_control) {
        return Err(StreamIdError::Malformed("control character"));
    }
    if let Some(body) = sid.strip_prefix("#!::") {
        parse_access_control(body)
    } else if sid.starts_with("#!") {
        Err(StreamIdError::Malformed(
            "unsupported '#!' syntax (expected '#!::key=value,...')",
        ))
    } else if sid.contains(':') {
        parse_prefixed(sid)
    } else {
        validate_stream_path(sid).map_err(StreamIdError::BadPath)?;
        Ok(StreamRequest {
            path: sid.to_owned(),
            mode: RequestMode::Unspecified,
            user: None,
            pass: None,
        })
    }
}

/// `r=PATH,m=MODE,u=USER,s=SECRET` (after `#!::`).
fn parse_access_control(body: &str) -> Result<StreamRequest, StreamIdError> {
    if body.is_empty() {
        return Err(StreamIdError::Malformed("no key=value pairs after '#!::'"));
    }
    let mut seen: Vec<&str> = Vec::new();
    let (mut resource, mut mode, mut user, mut pass) = (None, None, None, None);
    for pair in body.split(',') {
        if pair.is_empty() {
            return Err(StreamIdError::Malformed("empty key=value pair"));
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(StreamIdError::Malformed("pair without '='"));
        };
        if key.is_empty() {
            return Err(StreamIdError::Malformed("empty key"));
        }
        if seen.contains(&key) {
            return Err(StreamIdError::Malformed("duplicate key"));
        }
        seen.push(key);
        match key {
            "r" => resource = Some(value),
            "m" => mode = Some(value),
            "u" => user = Some(value),
            "s" => pass = Some(value),
            // `t` (type), `h` (host) and keys we do not know are ignored.
            _ => {}
        }
    }
    let path = resource.ok_or(StreamIdError::Malformed("missing r= (the stream path)"))?;
    validate_stream_path(path).map_err(StreamIdError::BadPath)?;
    let mode = match mode {
        None => RequestMode::Unspecified,
        Some("publish") => RequestMode::Publish,
        Some("request") => RequestMode::Read,
        Some(other) => return Err(StreamIdError::BadMode(echo(other))),
    };
    let non_empty = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(StreamRequest {
        path: path.to_owned(),
        mode,
        user: non_empty(user),
        pass: non_empty(pass),
    })
}

/// `publish:PATH`, `read:PATH`, optionally followed by `:USER:PASS`.
fn parse_prefixed(sid: &str) -> Result<StreamRequest, StreamIdError> {
    let mut fields = sid.split(':');
    let prefix = fields.next().unwrap_or_default();
    let mode = match prefix {
        "publish" => RequestMode::Publish,
        "read" => RequestMode::Read,
        other => return Err(StreamIdError::BadMode(echo(other))),
    };
    let shape = "expected publish:PATH, read:PATH, or either followed by :USER:PASS";
    let (path, creds) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(path), None, _, _) => (path, None),
        (Some(path), Some(user), Some(pass), None) => (path, Some((user, pass))),
        _ => return Err(StreamIdError::Malformed(shape)),
    };
    validate_stream_path(path).map_err(StreamIdError::BadPath)?;
    let (user, pass) = match creds {
        None => (None, None),
        Some(("", _) | (_, "")) => return Err(StreamIdError::Malformed("empty user or password")),
        Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
    };
    Ok(StreamRequest {
        path: path.to_owned(),
        mode,
        user,
        pass,
    })
}

/// Caller text kept in an error: at most [`MAX_ECHO`] characters.
fn echo(s: &str) -> String {
    s.chars().take(MAX_ECHO).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, mode: RequestMode, user: Option<&str>, pass: Option<&str>) -> StreamRequest {
        StreamRequest {
            path: path.into(),
            mode,
            user: user.map(Into::into),
            pass: pass.map(Into::into),
        }
    }

    use RequestMode::{Publish, Read, Unspecified};
    use StreamIdError::{BadMode, BadPath, Empty, Malformed, TooLong};

    #[test]
    fn access_control_syntax() {
        assert_eq!(
            parse("#!::r=live/x,m=publish"),
            Ok(req("live/x", Publish, None, None))
        );
        assert_eq!(
            parse("#!::r=live/x,m=request"),
            Ok(req("live/x", Read, None, None))
        );
        assert_eq!(
            parse("#!::r=live/x"),
            Ok(req("live/x", Unspecified, None, None))
        );
        assert_eq!(
            parse("#!::m=publish,s=pa=ss,u=alice,r=live/x"),
            Ok(req("live/x", Publish, Some("alice"), Some("pa=ss")))
        );
        assert_eq!(
            parse("#!::r=a/b/c,t=stream,h=example.org,x=whatever,m=request"),
            Ok(req("a/b/c", Read, None, None))
        );
        assert_eq!(
            parse("#!::r=live/x,u=,s="),
            Ok(req("live/x", Unspecified, None, None))
        );
        assert_eq!(
            parse("#!::r=live/x,u=bob"),
            Ok(req("live/x", Unspecified, Some("bob"), None))
        );
    }

    #[test]
    fn access_control_refusals() {
        assert_eq!(
            parse("#!::r=live/x,m=bidirectional"),
            Err(BadMode("bidirectional".into()))
        );
        assert_eq!(
            parse("#!::r=live/x,m=PUBLISH"),
            Err(BadMode("PUBLISH".into()))
        );
        assert_eq!(parse("#!::r=live/x,m="), Err(BadMode(String::new())));
        assert!(matches!(parse("#!::"), Err(Malformed(_))));
        assert!(matches!(parse("#!::m=publish"), Err(Malformed(_))));
        assert!(matches!(parse("#!::r=live/x,r=live/y"), Err(Malformed(_))));
        assert!(matches!(
            parse("#!::r=live/x,m=publish,m=request"),
            Err(Malformed(_))
        ));
        assert!(matches!(parse("#!::r=live/x,t=a,t=b"), Err(Malformed(_))));
        assert!(matches!(parse("#!::r=live/x,"), Err(Malformed(_))));
        assert!(matches!(parse("#!::,r=live/x"), Err(Malformed(_))));
        assert!(matches!(parse("#!::r"), Err(Malformed(_))));
        assert!(matches!(parse("#!::=x,r=live/x"), Err(Malformed(_))));
        assert!(matches!(parse("#!:r=live/x"), Err(Malformed(_))));
        assert!(matches!(parse("#!:{r=live/x}"), Err(Malformed(_))));
        assert!(matches!(parse("#!::r="), Err(BadPath(_))));
        assert!(matches!(parse("#!::r=../x"), Err(BadPath(_))));
        assert!(matches!(parse("#!::r=live//x"), Err(BadPath(_))));
        assert!(matches!(parse("#!::r=live/x:y"), Err(BadPath(_))));
    }

    #[test]
    fn mediamtx_syntax() {
        assert_eq!(
            parse("publish:live/x"),
            Ok(req("live/x", Publish, None, None))
        );
        assert_eq!(parse("read:live/x"), Ok(req("live/x", Read, None, None)));
        assert_eq!(
            parse("publish:live/x:alice:s3cret"),
            Ok(req("live/x", Publish, Some("alice"), Some("s3cret")))
        );
        assert_eq!(
            parse("read:a/b:bob:p@ss=w,rd"),
            Ok(req("a/b", Read, Some("bob"), Some("p@ss=w,rd")))
        );
        assert!(matches!(parse("publish:live/x:alice"), Err(Malformed(_))));
        assert!(matches!(parse("publish:live/x:a:b:c"), Err(Malformed(_))));
        assert!(matches!(parse("publish:live/x::pass"), Err(Malformed(_))));
        assert!(matches!(parse("publish:live/x:user:"), Err(Malformed(_))));
        assert!(matches!(parse("publish:"), Err(BadPath(_))));
        assert!(matches!(parse("read:/live/x"), Err(BadPath(_))));
        assert!(matches!(parse("read:live/../x"), Err(BadPath(_))));
        assert_eq!(parse("play:live/x"), Err(BadMode("play".into())));
        assert_eq!(parse("Publish:live/x"), Err(BadMode("Publish".into())));
        assert_eq!(parse(":live/x"), Err(BadMode(String::new())));
    }

    #[test]
    fn bare_paths() {
        assert_eq!(parse("live/x"), Ok(req("live/x", Unspecified, None, None)));
        assert_eq!(parse("a"), Ok(req("a", Unspecified, None, None)));
        for bad in [
            "/live/x", "live/x/", "live//x", "..", "live/..", "./x", "live x", "live/é", "//",
        ] {
            assert!(matches!(parse(bad), Err(BadPath(_))), "{bad:?}");
        }
    }

    #[test]
    fn hostile_inputs() {
        assert_eq!(parse(""), Err(Empty));
        assert_eq!(parse(&"a".repeat(513)), Err(TooLong));
        assert_eq!(parse(&format!("#!::r={}", "a".repeat(600))), Err(TooLong));
        // 512 bytes is allowed by length, but the path is then too long.
        assert_eq!(
            parse(&"a".repeat(512)),
            Err(BadPath("longer than 200 characters"))
        );
        assert_eq!(parse(&"a".repeat(200)).map(|r| r.path.len()), Ok(200));
        assert!(matches!(parse("live/x\0"), Err(Malformed(_))));
        assert!(matches!(parse("#!::r=live/x,u=a\0b"), Err(Malformed(_))));
        assert!(matches!(
            parse("publish:live/x:al\nice:pw"),
            Err(Malformed(_))
        ));
        assert!(matches!(parse("\u{7f}"), Err(Malformed(_))));
        assert!(matches!(parse("\u{1b}[31mred"), Err(Malformed(_))));
        assert!(matches!(parse("live/\u{202e}x"), Err(BadPath(_))));
        assert!(matches!(parse("直播/x"), Err(BadPath(_))));
        assert!(matches!(parse("#!::r=直播"), Err(BadPath(_))));
        assert!(matches!(parse(&",".repeat(300)), Err(BadPath(_))));
        assert!(matches!(
            parse(&format!("#!::{}", ",".repeat(300))),
            Err(Malformed(_))
        ));
        assert!(matches!(
            parse(&format!("#!::{}", "a=b,".repeat(100))),
            Err(Malformed(_))
        ));
        assert!(matches!(parse(&":".repeat(400)), Err(BadMode(_))));
        // Unicode credentials are fine; unicode paths are not.
        assert_eq!(
            parse("#!::r=live/x,u=José,s=ключ").unwrap().user.as_deref(),
            Some("José")
        );
    }

    #[test]
    fn echoed_text_is_bounded_and_escaped() {
        let long_mode = format!("#!::r=live/x,m={}", "é".repeat(200));
        let Err(BadMode(m)) = parse(&long_mode) else {
            panic!("expected BadMode")
        };
        assert_eq!(m.chars().count(), MAX_ECHO);
        let shown = BadMode("a\"b".into()).to_string();
        assert!(shown.starts_with("unsupported mode \"a\\\"b\""), "{shown}");
    }

    #[test]
    fn errors_read_well_in_logs() {
        assert_eq!(Empty.to_string(), "empty stream id");
        assert_eq!(TooLong.to_string(), "stream id longer than 512 bytes");
        assert_eq!(
            BadPath("empty segment ('//')").to_string(),
            "bad path: empty segment ('//')"
        );
        assert_eq!(
            Malformed("duplicate key").to_string(),
            "malformed stream id: duplicate key"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let r = parse("publish:live/x:alice:s3cret").unwrap();
        let shown = format!("{r:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("publish:live/x:alice:s3cret"),
            "publish:live/x:alice:***"
        );
        assert_eq!(redact("read:live/x"), "read:live/x");
        assert_eq!(
            redact("#!::r=live/x,u=bob,s=hunter22,m=request"),
            "#!::r=live/x,u=bob,s=***,m=request"
        );
        assert_eq!(redact("live/x"), "live/x");
        assert!(redact(&"é".repeat(300)).chars().count() <= 201);
    }
}
