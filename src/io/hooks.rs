//! HTTP callback hooks (`hooks:` in the configuration), as SRS's
//! `http_hooks`: a JSON `POST` to an operator's service when a session starts
//! publishing or reading and when it ends.
//!
//! `on_publish` and `on_read` decide: a 2xx answer lets the session in, any
//! other answer refuses it. When the hook cannot be asked (connection refused,
//! `hooks.timeout` passed, not HTTP) `hooks.on_failure` decides. The ending
//! hooks are notices: sent from a task of their own, never waited for.
//!
//! The client is hyper's HTTP/1 connection over a glommio TCP stream (one
//! connection per call, `Connection: close`), bounded as a whole by the
//! timeout, so a hook that hangs never holds more than one session's start.

use std::time::Duration;

use bytes::Bytes;
use glommio::net::TcpStream;
use hyper::header::{self, HeaderValue};
use hyper::Request;
use serde_json::json;
use tracing::{info, warn};

use crate::config::{HookFailure, HookUrl, HooksConfig};
use crate::io::http::{GlommioIo, SharedBody};
use crate::metrics::{short_id, SessionInfo};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Publish,
    Unpublish,
    Read,
    ReadEnd,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Publish => "on_publish",
            Hook::Unpublish => "on_unpublish",
            Hook::Read => "on_read",
            Hook::ReadEnd => "on_read_end",
        }
    }

    fn url(self, c: &HooksConfig) -> Option<&str> {
        match self {
            Hook::Publish => c.on_publish.as_deref(),
            Hook::Unpublish => c.on_unpublish.as_deref(),
            Hook::Read => c.on_read.as_deref(),
            Hook::ReadEnd => c.on_read_end.as_deref(),
        }
    }
}

/// The JSON a hook receives.
fn body(hook: Hook, s: &SessionInfo) -> Bytes {
    let v = json!({
        "action": hook.name(),
        "id": format!("{:016x}", s.id),
        "protocol": s.protocol,
        "role": s.role,
        "path": s.path,
        "peer": s.peer.to_string(),
        "ip": s.peer.ip().to_string(),
        "user": s.user,
        "server": "srtgate",
        "version": env!("CARGO_PKG_VERSION"),
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Why a hook call got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    #[error("bad hook URL: {0}")]
    Url(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        addr: std::net::SocketAddr,
        reason: String,
    },
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        addr: std::net::SocketAddr,
        source: hyper::Error,
    },
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer from {addr}: {source}")]
    Answer {
        addr: std::net::SocketAddr,
        source: hyper::Error,
    },
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
}

/// Why a hook refused a session: with the hook and the session it was asked about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookRefusal {
    #[error("the {hook} hook answered {status} (session {session})")]
    Status {
        hook: &'static str,
        status: u16,
        session: String,
    },
    #[error("the {hook} hook failed ({source}) and hooks.on_failure is deny (session {session})")]
    Failed {
        hook: &'static str,
        session: String,
        source: HookError,
    },
}

/// POST `body` to `url`; the answer's status, or why there is none.
pub async fn post(url: &str, body: Bytes, timeout: Duration) -> Result<u16, HookError> {
    let url = HookUrl::parse(url).map_err(HookError::Url)?;
    let addr = url.addr;
    let call = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| HookError::Connect {
                addr,
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let io = GlommioIo::new(stream, Some(timeout));
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, SharedBody>(io)
            .await
            .map_err(|source| HookError::Handshake { addr, source })?;
        glommio::spawn_local(async move {
            let _ = conn.await;
        })
        .detach();
        let mut req = Request::post(url.target.as_str()).body(SharedBody::from_bytes(body))?;
        let h = req.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&url.authority) {
            h.insert(header::HOST, v);
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("srtgate/", env!("CARGO_PKG_VERSION"))),
        );
        let res = sender
            .send_request(req)
            .await
            .map_err(|source| HookError::Answer { addr, source })?;
        Ok(res.status().as_u16())
    };
    futures_lite::future::or(call, async {
        glommio::timer::sleep(timeout).await;
        Err(HookError::Timeout(timeout))
    })
    .await
}

/// Ask `hook` (on_publish or on_read) whether the session may go on:
/// `Err(why)` refuses it. No hook configured: allowed.
pub async fn ask(
    hooks: &HooksConfig,
    hook: Hook,
    session: &SessionInfo,
) -> Result<(), HookRefusal> {
    let Some(url) = hook.url(hooks) else {
        return Ok(());
    };
    match post(url, body(hook, session), hooks.timeout).await {
        Ok(status) if (200..300).contains(&status) => Ok(()),
        Ok(status) => Err(HookRefusal::Status {
            hook: hook.name(),
            status,
            session: short_id(session.id),
        }),
        Err(e) => match hooks.on_failure {
            HookFailure::Deny => Err(HookRefusal::Failed {
                hook: hook.name(),
                session: short_id(session.id),
                source: e,
            }),
            HookFailure::Allow => {
                warn!(hook = hook.name(), error = %e, "hook failed; allowed (hooks.on_failure: allow)");
                Ok(())
            }
        },
    }
}

/// Tell `hook` (on_unpublish or on_read_end), without waiting for it.
pub fn notify(hooks: &HooksConfig, hook: Hook, session: &SessionInfo) {
    let Some(url) = hook.url(hooks) else {
        return;
    };
    let (url, body, timeout) = (url.to_owned(), body(hook, session), hooks.timeout);
    let id = short_id(session.id);
    glommio::spawn_local(async move {
        match post(&url, body, timeout).await {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => info!(hook = hook.name(), id = %id, status, "hook answered non-2xx"),
            Err(e) => warn!(hook = hook.name(), id = %id, error = %e, "hook failed"),
        }
    })
    .detach();
}
