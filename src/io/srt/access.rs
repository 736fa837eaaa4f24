//! Admission of SRT callers: stream id → path rule → role, credentials,
//! encryption, publisher conflicts and limits.
//!
//! Sans-IO: takes the configuration and what the caller offered, returns either
//! an [`Admission`] or a [`Refusal`] carrying the SRT rejection code to answer
//! with and the phrase to log. It also keeps srt-protocol 0.4 away from its
//! encryption panics: the key size we answer with is always the caller's, and
//! encryption mismatches are refused here, before srt-protocol sees them.

use std::time::Duration;

use srt_protocol::options::KeySize;
use srt_protocol::packet::{CoreRejectReason, RejectReason, ServerRejectReason};

use crate::config::{BareStreamId, Config, Denied, Mode, SecondPublisher};
use crate::proto::streamid::{self, RequestMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publish,
    Read,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Read => "read",
        }
    }
}

/// A caller let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub role: Role,
    pub path: String,
    pub user: Option<String>,
    /// The password the caller gave (checked again when the rules change).
    pub pass: Option<String>,
    /// Passphrase to answer with (the path's), with the caller's key size.
    pub passphrase: Option<String>,
    pub key_size: KeySize,
    pub latency: Duration,
    pub takeover: bool,
    /// How long a reader waits for a publisher.
    pub wait_for_publisher: Duration,
    /// How long readers wait for a new publisher when this publisher goes.
    pub publisher_grace: Duration,
    /// Readers get TS muxed from the frames instead of the publisher's own.
    pub remux: bool,
}

/// A caller refused: the code goes on the wire, the reason into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RejectReason,
    pub reason: String,
}

fn refuse(code: RejectReason, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

fn server(r: ServerRejectReason) -> RejectReason {
    RejectReason::Server(r)
}

/// What admission needs to know about the live state of the gateway.
pub trait LiveState {
    fn has_publisher(&self, path: &str) -> bool;
    fn readers(&self, path: &str) -> usize;
    fn sessions(&self) -> usize;
}

/// Decide on a caller's access request.
pub fn admit(
    cfg: &Config,
    stream_id: Option<&str>,
    key_size: KeySize,
    live: &impl LiveState,
) -> Result<Admission, Refusal> {
    if live.sessions() >= cfg.srt.max_sessions {
        return Err(refuse(
            server(ServerRejectReason::Overload),
            "session limit reached (srt.max_sessions)",
        ));
    }
    let sid = stream_id.unwrap_or("");
    let req = streamid::parse(sid).map_err(|e| {
        refuse(
            server(ServerRejectReason::BadRequest),
            format!("bad stream id: {e}"),
        )
    })?;
    let Some(rule) = cfg.rule_for(&req.path) else {
        return Err(refuse(
            server(ServerRejectReason::Notfound),
            format!("no path rule matches {:?}", req.path),
        ));
    };
    let role = match req.mode {
        RequestMode::Publish => Role::Publish,
        RequestMode::Read => Role::Read,
        RequestMode::Unspecified => match cfg.srt.bare_stream_id {
            BareStreamId::Publish => Role::Publish,
            BareStreamId::Read => Role::Read,
            BareStreamId::Auto => {
                if live.has_publisher(&req.path) {
                    Role::Read
                } else {
                    Role::Publish
                }
            }
        },
    };
    let mode = match role {
        Role::Publish => Mode::Publish,
        Role::Read => Mode::Read,
    };
    rule.check(mode, req.user.as_deref(), req.pass.as_deref())
        .map_err(|d| match d {
            Denied::Forbidden => refuse(
                server(ServerRejectReason::Forbidden),
                format!("forbidden: {} not allowed on {}", role.as_str(), req.path),
            ),
            Denied::Unauthorized => refuse(
                server(ServerRejectReason::Unauthorized),
                format!(
                    "unauthorized: missing or wrong credentials to {} {}",
                    role.as_str(),
                    req.path
                ),
            ),
        })?;
    match (&rule.passphrase, key_size) {
        (None, KeySize::Unspecified)
        | (Some(_), KeySize::AES128 | KeySize::AES192 | KeySize::AES256) => {}
        (None, _) => {
            return Err(refuse(
                RejectReason::Core(CoreRejectReason::Unsecure),
                "encryption mismatch: caller encrypts but the path has no passphrase",
            ))
        }
        (Some(_), KeySize::Unspecified) => {
            return Err(refuse(
                RejectReason::Core(CoreRejectReason::Unsecure),
                "encryption mismatch: the path requires a passphrase",
            ))
        }
    }
    let takeover = rule.on_second_publisher == SecondPublisher::Takeover;
    match role {
        Role::Publish if !takeover && live.has_publisher(&req.path) => {
            return Err(refuse(
                server(ServerRejectReason::Conflict),
                format!("publisher already present on {}", req.path),
            ));
        }
        Role::Read => {
            if rule.wait_for_publisher.is_zero() && !live.has_publisher(&req.path) {
                return Err(refuse(
                    server(ServerRejectReason::Notfound),
                    format!("no publisher on {}", req.path),
                ));
            }
            if rule.max_readers > 0 && live.readers(&req.path) >= rule.max_readers {
                return Err(refuse(
                    server(ServerRejectReason::Overload),
                    format!("reader limit reached on {} (max_readers)", req.path),
                ));
            }
        }
        Role::Publish => {}
    }
    Ok(Admission {
        role,
        latency: rule.latency_or(cfg.srt.latency),
        passphrase: rule.passphrase.clone(),
        key_size,
        takeover,
        wait_for_publisher: rule.wait_for_publisher,
        publisher_grace: rule.publisher_grace,
        remux: rule.remux,
        user: req.user,
        pass: req.pass,
        path: req.path,
    })
}

/// The short label of a rejection, for the refusal counters.
pub fn label(code: RejectReason) -> &'static str {
    match code {
        RejectReason::Server(ServerRejectReason::BadRequest) => "bad_stream_id",
        RejectReason::Server(ServerRejectReason::Notfound) => "not_found",
        RejectReason::Server(ServerRejectReason::Forbidden) => "forbidden",
        RejectReason::Server(ServerRejectReason::Unauthorized) => "unauthorized",
        RejectReason::Server(ServerRejectReason::Conflict) => "conflict",
        RejectReason::Server(ServerRejectReason::Overload) => "limit",
        RejectReason::Core(CoreRejectReason::BadSecret) => "wrong_passphrase",
        RejectReason::Core(CoreRejectReason::Unsecure) => "encryption_mismatch",
        RejectReason::Core(CoreRejectReason::Version)
        | RejectReason::Server(ServerRejectReason::Version) => "version",
        _ => "other",
    }
}

/// Phrase for a rejection srt-protocol produced itself (e.g. a wrong passphrase).
pub fn describe(code: RejectReason) -> &'static str {
    match code {
        RejectReason::Core(CoreRejectReason::BadSecret) => "wrong passphrase",
        RejectReason::Core(CoreRejectReason::Unsecure) => "encryption mismatch",
        RejectReason::Core(CoreRejectReason::Version) => "unsupported SRT version",
        RejectReason::Server(ServerRejectReason::Version) => "unsupported SRT version",
        _ => "handshake rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Live {
        published: bool,
        readers: usize,
    }

    impl LiveState for Live {
        fn has_publisher(&self, _: &str) -> bool {
            self.published
        }
        fn readers(&self, _: &str) -> usize {
            self.readers
        }
        fn sessions(&self) -> usize {
            0
        }
    }

    const IDLE: Live = Live {
        published: false,
        readers: 0,
    };
    const BUSY: Live = Live {
        published: true,
        readers: 0,
    };

    fn cfg() -> Config {
        Config::from_yaml(
            r#"
paths:
  - name: "secure/*"
    passphrase: "0123456789abcdef"
  - name: "private/*"
    publish: { credentials: [ { user: "alice", pass: "s3cret" } ] }
  - name: "readonly/*"
    publish: { allow: false }
  - name: "now/*"
    wait_for_publisher: 0s
  - name: "live/*"
"#,
            "test.yaml",
        )
        .expect("test config parses")
    }

    fn code(r: Result<Admission, Refusal>) -> RejectReason {
        r.expect_err("should be refused").code
    }

    #[test]
    fn stream_id_forms_and_bare_auto() {
        let c = cfg();
        let a = admit(
            &c,
            Some("#!::r=live/a,m=publish"),
            KeySize::Unspecified,
            &IDLE,
        )
        .unwrap();
        assert_eq!((a.role, a.path.as_str()), (Role::Publish, "live/a"));
        let a = admit(&c, Some("read:live/a"), KeySize::Unspecified, &IDLE).unwrap();
        assert_eq!(a.role, Role::Read);
        assert_eq!(
            admit(&c, Some("live/a"), KeySize::Unspecified, &IDLE)
                .unwrap()
                .role,
            Role::Publish
        );
        assert_eq!(
            admit(&c, Some("live/a"), KeySize::Unspecified, &BUSY)
                .unwrap()
                .role,
            Role::Read
        );
    }

    #[test]
    fn refusals_carry_the_right_code() {
        let c = cfg();
        let srv = |r| RejectReason::Server(r);
        assert_eq!(
            code(admit(&c, None, KeySize::Unspecified, &IDLE)),
            srv(ServerRejectReason::BadRequest)
        );
        assert_eq!(
            code(admit(
                &c,
                Some("publish:nowhere/x"),
                KeySize::Unspecified,
                &IDLE
            )),
            srv(ServerRejectReason::Notfound)
        );
        assert_eq!(
            code(admit(
                &c,
                Some("publish:readonly/x"),
                KeySize::Unspecified,
                &IDLE
            )),
            srv(ServerRejectReason::Forbidden)
        );
        assert_eq!(
            code(admit(
                &c,
                Some("publish:private/x:alice:nope"),
                KeySize::Unspecified,
                &IDLE
            )),
            srv(ServerRejectReason::Unauthorized)
        );
        assert!(admit(
            &c,
            Some("publish:private/x:alice:s3cret"),
            KeySize::Unspecified,
            &IDLE
        )
        .is_ok());
        assert_eq!(
            code(admit(
                &c,
                Some("publish:live/x"),
                KeySize::Unspecified,
                &BUSY
            )),
            srv(ServerRejectReason::Conflict)
        );
        assert_eq!(
            code(admit(&c, Some("read:now/x"), KeySize::Unspecified, &IDLE)),
            srv(ServerRejectReason::Notfound)
        );
    }

    #[test]
    fn encryption_is_matched_before_srt_protocol_sees_it() {
        let c = cfg();
        let unsecure = RejectReason::Core(CoreRejectReason::Unsecure);
        assert_eq!(
            code(admit(&c, Some("publish:live/x"), KeySize::AES128, &IDLE)),
            unsecure
        );
        assert_eq!(
            code(admit(
                &c,
                Some("publish:secure/x"),
                KeySize::Unspecified,
                &IDLE
            )),
            unsecure
        );
        // Any key length the caller chose is answered in kind.
        for ks in [KeySize::AES128, KeySize::AES192, KeySize::AES256] {
            let a = admit(&c, Some("publish:secure/x"), ks, &IDLE).unwrap();
            assert_eq!(a.key_size, ks);
            assert!(a.passphrase.is_some());
        }
    }
}
