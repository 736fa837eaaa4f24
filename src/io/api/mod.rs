//! The control API, `/metrics` and the dashboard, on the `api.listen`
//! addresses (loopback by default). One [`Api`] handler per shard, run by the
//! same per-shard HTTP server as the HLS port.
//!
//! | URL                         | methods          | answer                          |
//! |-----------------------------|------------------|---------------------------------|
//! | `/`                         | GET              | the dashboard page              |
//! | `/static/<file>`            | GET              | files of `http.root`            |
//! | `/v1/openapi.yaml`          | GET              | this API's OpenAPI description  |
//! | `/metrics`                  | GET              | Prometheus text format          |
//! | `/v1/health`                | GET              | version, uptime, ports          |
//! | `/v1/streams[/<path>]`      | GET              | live streams                    |
//! | `/v1/sessions[/<id>]`       | GET, DELETE (id) | sessions; DELETE kicks          |
//! | `/v1/config`                | GET, PUT, PATCH  | the running configuration       |
//! | `/v1/config/reload`         | POST             | re-read the configuration file  |
//!
//! Authorization (see `research/api.md`): writes and `GET /v1/config` need
//! `api.token` as a bearer token when one is set, and come from loopback
//! when none is; `api.auth_reads` extends the token to every other read.
//! Errors are `{"error": "..."}` with a 4xx status; see [`error`].

mod change;
mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::control::Control;
use super::http::files::StaticFiles;
use super::http::server::Handler;
use super::http::SharedBody;
use super::shard::Shard;

/// The shard's API handler.
#[derive(Clone)]
pub struct Api(Rc<App>);

struct App {
    shard: Rc<Shard>,
    files: Arc<StaticFiles>,
    control: Arc<Control>,
}

impl Api {
    pub fn new(shard: Rc<Shard>, files: Arc<StaticFiles>, control: Arc<Control>) -> Self {
        Self(Rc::new(App {
            shard,
            files,
            control,
        }))
    }
}

impl Handler for Api {
    type Body = SharedBody;
    fn call(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<SharedBody>> + 'static + use<> {
        let app = self.0.clone();
        async move {
            app.shard
                .metrics
                .http
                .requests
                .fetch_add(1, Ordering::Relaxed);
            let mut res = app.handle(req, peer).await;
            res.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            res
        }
    }
}

/// What a request needs to be let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The dashboard page and its files.
    Nothing,
    Read,
    Write,
}

/// A JSON error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<SharedBody> {
    json_response(status, &json!({ "error": message.into() }))
}

pub fn json_response(status: StatusCode, value: &Value) -> Response<SharedBody> {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut res = Response::new(SharedBody::from_bytes(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<SharedBody> {
    let mut res = Response::new(SharedBody::from_bytes(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn method_not_allowed(allow: &'static str) -> Response<SharedBody> {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; allowed: {allow}"),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// Compare secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl App {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<SharedBody> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let get = method == Method::GET || method == Method::HEAD;
        // Route first (404/405 need no authorization), then authorize, then act.
        let (need, allow): (Need, &'static str) = match path.as_str() {
            "/" | "/favicon.ico" | "/v1/openapi.yaml" => (Need::Nothing, "GET, HEAD"),
            p if p.starts_with("/static/") => (Need::Nothing, "GET, HEAD"),
            "/metrics" | "/v1/health" | "/v1/streams" | "/v1/sessions" => (Need::Read, "GET, HEAD"),
            p if p.starts_with("/v1/streams/") => (Need::Read, "GET, HEAD"),
            p if p.starts_with("/v1/sessions/") => (
                if get { Need::Read } else { Need::Write },
                "GET, HEAD, DELETE",
            ),
            "/v1/config" => (Need::Write, "GET, HEAD, PUT, PATCH"),
            "/v1/config/reload" => (Need::Write, "POST"),
            _ => {
                self.shard
                    .metrics
                    .http
                    .not_found
                    .fetch_add(1, Ordering::Relaxed);
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no such endpoint: {}", clip(&path)),
                );
            }
        };
        let allowed = allow.split(", ").any(|m| m == method.as_str());
        if !allowed {
            return method_not_allowed(allow);
        }
        if let Err(res) = self.authorize(&req, peer, need) {
            return *res;
        }
        let query = req.uri().query().map(str::to_owned);
        match (path.as_str(), &method) {
            ("/", _) => self.file("dashboard.html"),
            ("/favicon.ico", _) => self.file("favicon.ico"),
            ("/v1/openapi.yaml", _) => self.file("openapi.yaml"),
            (p, _) if p.starts_with("/static/") => self.file(&p["/static/".len()..]),
            ("/metrics", _) => {
                let mut out = String::with_capacity(16 << 10);
                crate::metrics::prometheus::render(
                    &self.shard.metrics,
                    self.control.started_at,
                    &mut out,
                );
                text_response(
                    StatusCode::OK,
                    crate::metrics::prometheus::CONTENT_TYPE,
                    out,
                )
            }
            ("/v1/health", _) => {
                json_response(StatusCode::OK, &views::health(&self.shard, &self.control))
            }
            ("/v1/streams", _) => json_response(StatusCode::OK, &views::streams(&self.shard)),
            (p, _) if p.starts_with("/v1/streams/") => {
                let name = &p["/v1/streams/".len()..];
                match views::stream(&self.shard, name) {
                    Some(v) => json_response(StatusCode::OK, &v),
                    None => error(
                        StatusCode::NOT_FOUND,
                        format!("no live stream {:?}", clip(name)),
                    ),
                }
            }
            ("/v1/sessions", _) => json_response(StatusCode::OK, &views::sessions(&self.shard)),
            (p, m) if p.starts_with("/v1/sessions/") => {
                let id = &p["/v1/sessions/".len()..];
                if m == Method::DELETE {
                    views::kick(&self.shard, id)
                } else {
                    match views::session(&self.shard, id) {
                        Some(v) => json_response(StatusCode::OK, &v),
                        None => error(StatusCode::NOT_FOUND, format!("no session {:?}", clip(id))),
                    }
                }
            }
            ("/v1/config", m) if m == Method::GET || m == Method::HEAD => {
                // Exactly a configuration (PUT takes it back as it is); the
                // generation goes in a header.
                let (gen, config) = self.control.current();
                let v = serde_json::to_value(&*config).unwrap_or(Value::Null);
                let mut res = json_response(StatusCode::OK, &v);
                if let Ok(g) = HeaderValue::from_str(&gen.to_string()) {
                    res.headers_mut().insert("x-config-generation", g);
                }
                res
            }
            ("/v1/config", m) => {
                let dry_run = query_flag(query.as_deref(), "dry_run");
                let patch = m == Method::PATCH;
                let content_type = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| {
                        v.split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase()
                    });
                let body = match read_body(req.into_body(), self.max_body()).await {
                    Ok(b) => b,
                    Err(res) => return *res,
                };
                let source = if patch {
                    match content_type.as_deref() {
                        Some("application/merge-patch+json" | "application/json") | None => {}
                        Some(other) => {
                            return error(
                                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                                format!("PATCH takes a JSON merge patch (application/merge-patch+json), not {other}"),
                            )
                        }
                    }
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(v @ Value::Object(_)) => change::Source::Patch(v),
                        Ok(_) => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "a merge patch must be a JSON object",
                            )
                        }
                        Err(e) => {
                            return json_response(
                                StatusCode::BAD_REQUEST,
                                &json!({
                                    "error": format!("malformed JSON: {e}"),
                                    "file": "request body",
                                    "line": e.line(),
                                    "column": e.column(),
                                }),
                            )
                        }
                    }
                } else {
                    match String::from_utf8(body.to_vec()) {
                        Ok(text) => change::Source::Text(text),
                        Err(_) => {
                            return error(StatusCode::BAD_REQUEST, "the body is not UTF-8 text")
                        }
                    }
                };
                change::run(&self.control, source, dry_run).await
            }
            ("/v1/config/reload", _) => {
                change::run(&self.control, change::Source::File, false).await
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn max_body(&self) -> usize {
        self.shard.with_config(|c| c.api.max_body)
    }

    fn authorize(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        need: Need,
    ) -> Result<(), Box<Response<SharedBody>>> {
        if need == Need::Nothing {
            return Ok(());
        }
        let (token, auth_reads) = self
            .shard
            .with_config(|c| (c.api.token.clone(), c.api.auth_reads));
        let refuse = |status, reason: &'static str, message: &str| {
            self.shard.metrics.refused("api", reason);
            let mut res = error(status, message);
            if status == StatusCode::UNAUTHORIZED {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"srtgate\""),
                );
            }
            Err(Box::new(res))
        };
        match token {
            Some(token) if need == Need::Write || auth_reads => {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim());
                match given {
                    None => refuse(
                        StatusCode::UNAUTHORIZED,
                        "no_token",
                        "this needs the API token: send Authorization: Bearer <api.token>",
                    ),
                    Some(t) if !same_secret(t.as_bytes(), token.as_bytes()) => {
                        tracing::warn!(%peer, path = %clip(req.uri().path()), "api: wrong token");
                        refuse(StatusCode::UNAUTHORIZED, "wrong_token", "wrong API token")
                    }
                    Some(_) => Ok(()),
                }
            }
            None if need == Need::Write && !peer.ip().is_loopback() => refuse(
                StatusCode::FORBIDDEN,
                "not_loopback",
                "changes without api.token are accepted from loopback clients only; set api.token",
            ),
            _ => Ok(()),
        }
    }

    fn file(&self, key: &str) -> Response<SharedBody> {
        let Some(file) = self.files.get(key) else {
            return error(StatusCode::NOT_FOUND, format!("no file {:?}", clip(key)));
        };
        let mut res = Response::new(SharedBody::from_bytes(file.body.clone()));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        res
    }
}

/// At most 200 characters of a client-supplied string, for messages and logs.
fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

fn query_flag(query: Option<&str>, key: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|kv| match kv.split_once('=') {
            Some((k, v)) => k == key && matches!(v, "1" | "true" | "yes"),
            None => kv == key,
        })
    })
}

/// Bodies larger than this are not even drained before the 413 (the
/// client may then see its connection reset instead of the answer).
const DRAIN_MAX: u64 = 16 << 20;

/// Read a request body of at most `max` bytes (413 beyond). An oversized
/// body is read to its end and dropped (up to [`DRAIN_MAX`]), so the client
/// gets the 413 rather than a reset connection.
async fn read_body(body: Incoming, max: usize) -> Result<Bytes, Box<Response<SharedBody>>> {
    let too_large = || {
        let mut res = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than api.max_body ({max} bytes)"),
        );
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        Box::new(res)
    };
    if body.size_hint().lower() > DRAIN_MAX {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    let mut seen = 0u64;
    let read = async {
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            let frame = frame.map_err(|e| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                ))
            })?;
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if seen > DRAIN_MAX {
                    return Err(too_large());
                }
                if seen <= max as u64 {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if seen > max as u64 {
            return Err(too_large());
        }
        Ok(())
    };
    // A client that stops sending mid-body is not waited for forever.
    futures_lite::future::or(read, async {
        glommio::timer::sleep(Duration::from_secs(30)).await;
        Err(Box::new(error(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in 30 s",
        )))
    })
    .await?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_secrets() {
        assert!(query_flag(Some("dry_run=true"), "dry_run"));
        assert!(query_flag(Some("a=1&dry_run"), "dry_run"));
        assert!(!query_flag(Some("dry_run=0"), "dry_run"));
        assert!(!query_flag(None, "dry_run"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
