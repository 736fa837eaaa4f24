//! srtgate's HTTP routes: which URL serves what, and the headers that go
//! with it.
//!
//! | URL                              | answer                                   |
//! |----------------------------------|------------------------------------------|
//! | `/`                              | the index page (`index.html`)            |
//! | `/v1/paths`                      | live paths as JSON                       |
//! | `/static/<file>`, `/vendor/...`  | files from `http.root`                   |
//! | `/<path>/`                       | the player page (`player.html`)          |
//! | `/<path>`                        | redirect to `/<path>/`                   |
//! | `/<path>/index.m3u8`             | the default variant's media playlist     |
//! | `/<path>/ll.m3u8`, `ts.m3u8`     | LL-HLS / MPEG-TS media playlist          |
//! | `/<path>/init*.mp4`, `seg*.m4s`, `seg*.ts` | initialization segment, segments, parts |
//!
//! Playlists are `no-cache`; segments, parts and initialization segments are
//! `immutable` (their names are never reused, see
//! [`crate::io::hls`]), so a CDN or an nginx cache in front works.
//! Every answer carries CORS headers (`http.cors_origin`). Errors are short
//! JSON bodies. Reading a path needs what reading it over SRT needs: a path
//! rule that allows it, and its credentials (HTTP Basic) if it has any.
//!
//! [`route`] is pure (URL in, [`Route`] out) and unit-tested; [`Routes`] is
//! the shard's handler around it.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use tracing::warn;

use super::files::StaticFiles;
use super::server::Handler;
use super::SharedBody;
use crate::config::{validate_stream_path, Denied, HlsDefault, Mode};
use crate::io::hls::{BodyKind, HlsRequest, Resource, Variant};
use crate::io::shard::Shard;
use crate::metrics::ratelimit::RateLimit;

/// Where a URL leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Index,
    Paths,
    /// A file from the static table, by key.
    File(&'a str),
    Player(&'a str),
    /// Moved to this location (the player page of a path, with its slash).
    Redirect(String),
    Hls {
        path: &'a str,
        resource: Resource,
    },
}

/// Why a URL leads nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// `..`, `.`, backslashes, encoded slashes or dots, NUL: refused (400).
    Traversal,
    /// A malformed query parameter (400).
    BadQuery(&'static str),
    NotFound,
}

/// Map a request path and query to a [`Route`].
pub fn route<'a>(
    path: &'a str,
    query: Option<&str>,
    default: HlsDefault,
) -> Result<Route<'a>, RouteError> {
    check_traversal(path)?;
    let rest = path.strip_prefix('/').ok_or(RouteError::NotFound)?;
    match rest {
        "" => return Ok(Route::Index),
        "v1/paths" => return Ok(Route::Paths),
        "favicon.ico" => return Ok(Route::File("favicon.ico")),
        _ => {}
    }
    if let Some(file) = rest.strip_prefix("static/") {
        return Ok(Route::File(file));
    }
    if rest.starts_with("vendor/") {
        return Ok(Route::File(rest));
    }
    if let Some(stream) = rest.strip_suffix('/') {
        validate_stream_path(stream).map_err(|_| RouteError::NotFound)?;
        return Ok(Route::Player(stream));
    }
    let (stream, file) = rest.rsplit_once('/').unwrap_or(("", rest));
    if !file.contains('.') {
        // `/live/cam1`: the player page lives at `/live/cam1/`.
        validate_stream_path(rest).map_err(|_| RouteError::NotFound)?;
        return Ok(Route::Redirect(format!("/{rest}/")));
    }
    validate_stream_path(stream).map_err(|_| RouteError::NotFound)?;
    let resource = hls_resource(file, query, default)?;
    Ok(Route::Hls {
        path: stream,
        resource,
    })
}

fn check_traversal(path: &str) -> Result<(), RouteError> {
    let lower = path.to_ascii_lowercase();
    if path.contains(['\\', '\0'])
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
        || path.split('/').any(|s| s == ".." || s == ".")
    {
        return Err(RouteError::Traversal);
    }
    Ok(())
}

fn hls_resource(
    file: &str,
    query: Option<&str>,
    default: HlsDefault,
) -> Result<Resource, RouteError> {
    let playlist = |variant| -> Result<Resource, RouteError> {
        let msn = query_number(query, "_HLS_msn")?;
        let part = query_number(query, "_HLS_part")?;
        if part.is_some() && msn.is_none() {
            return Err(RouteError::BadQuery("_HLS_part without _HLS_msn"));
        }
        let part = part
            .map(|p| usize::try_from(p).map_err(|_| RouteError::BadQuery("_HLS_part is too large")))
            .transpose()?;
        Ok(Resource::Playlist { variant, msn, part })
    };
    match file {
        "index.m3u8" => playlist(match default {
            HlsDefault::Ll => Variant::Ll,
            HlsDefault::Ts => Variant::Ts,
        }),
        "ll.m3u8" => playlist(Variant::Ll),
        "ts.m3u8" => playlist(Variant::Ts),
        _ => {
            if let Some(n) = file
                .strip_prefix("init")
                .and_then(|f| f.strip_suffix(".mp4"))
            {
                if n.is_empty() || number(n).is_some() {
                    return Ok(Resource::Init(file.to_owned()));
                }
                return Err(RouteError::NotFound);
            }
            let name = file.strip_prefix("seg").ok_or(RouteError::NotFound)?;
            if let Some(msn) = name.strip_suffix(".ts") {
                let msn = number(msn).ok_or(RouteError::NotFound)?;
                return Ok(Resource::Segment {
                    variant: Variant::Ts,
                    msn,
                });
            }
            let name = name.strip_suffix(".m4s").ok_or(RouteError::NotFound)?;
            match name.split_once('.') {
                None => Ok(Resource::Segment {
                    variant: Variant::Ll,
                    msn: number(name).ok_or(RouteError::NotFound)?,
                }),
                Some((msn, part)) => Ok(Resource::Part {
                    msn: number(msn).ok_or(RouteError::NotFound)?,
                    part: number(part)
                        .and_then(|p| usize::try_from(p).ok())
                        .ok_or(RouteError::NotFound)?,
                }),
            }
        }
    }
}

/// A decimal number of 1 to 19 digits, nothing else.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn query_number(query: Option<&str>, key: &str) -> Result<Option<u64>, RouteError> {
    let Some(query) = query else { return Ok(None) };
    for kv in query.split('&') {
        if let Some(v) = kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return number(v)
                .map(Some)
                .ok_or(RouteError::BadQuery("not a number"));
        }
    }
    Ok(None)
}

/// User and password of an `Authorization: Basic` header.
pub fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(b64.trim())?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The shard's handler.
#[derive(Clone)]
pub struct Routes(Rc<App>);

struct App {
    shard: Rc<Shard>,
    files: Arc<StaticFiles>,
    cors: Option<HeaderValue>,
    refusals: RefCell<RateLimit>,
}

impl Routes {
    pub fn new(shard: Rc<Shard>, files: Arc<StaticFiles>) -> Self {
        let cors = shard.with_config(|c| {
            (!c.http.cors_origin.is_empty())
                .then(|| HeaderValue::from_str(&c.http.cors_origin).ok())
                .flatten()
        });
        Self(Rc::new(App {
            shard,
            files,
            cors,
            refusals: RefCell::new(RateLimit::new(Duration::from_secs(1), 10)),
        }))
    }
}

impl Handler for Routes {
    type Body = SharedBody;
    fn call(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<SharedBody>> + 'static + use<> {
        let app = self.0.clone();
        async move {
            let mut res = app.handle(req, peer).await;
            if let Some(origin) = &app.cors {
                let h = res.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static("content-length, date"),
                );
            }
            res
        }
    }
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const NO_CACHE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

impl App {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<SharedBody> {
        let metrics = &self.shard.metrics.http;
        metrics.requests.fetch_add(1, Ordering::Relaxed);
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => {
                let mut res = respond(StatusCode::NO_CONTENT, None, NO_CACHE, SharedBody::empty());
                let h = res.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, range"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
                return res;
            }
            _ => {
                metrics.refused.fetch_add(1, Ordering::Relaxed);
                self.shard.metrics.refused("http", "method");
                let mut res = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                res.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                return res;
            }
        }
        let default = self.shard.with_config(|c| c.hls.default);
        let uri = req.uri();
        let route = match route(uri.path(), uri.query(), default) {
            Ok(r) => r,
            Err(RouteError::Traversal) => {
                metrics.refused.fetch_add(1, Ordering::Relaxed);
                self.shard.metrics.refused("http", "traversal");
                self.log_refusal(peer, uri.path(), "path traversal attempt");
                return json_error(StatusCode::BAD_REQUEST, "bad path");
            }
            Err(RouteError::BadQuery(why)) => {
                return json_error(StatusCode::BAD_REQUEST, why);
            }
            Err(RouteError::NotFound) => return self.not_found(),
        };
        match route {
            Route::Index => self.file("index.html", &req),
            Route::Paths => self.paths(),
            Route::File(key) => self.file(key, &req),
            Route::Redirect(to) => {
                let mut res = json_error(StatusCode::MOVED_PERMANENTLY, "moved");
                if let Ok(v) = HeaderValue::from_str(&to) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                res
            }
            Route::Player(path) => match self.may_read(path, &req, peer) {
                Ok(()) => self.file("player.html", &req),
                Err(res) => *res,
            },
            Route::Hls { path, resource } => {
                if let Err(res) = self.may_read(path, &req, peer) {
                    return *res;
                }
                let agent = req
                    .headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let res = self.hls(path, resource).await;
                if res.status().is_success() {
                    // Viewers and per-path bytes: this shard's table, no lock.
                    let bytes = res.body().len() as u64;
                    self.shard.hls_seen(path, peer, agent, bytes);
                }
                res
            }
        }
    }

    fn log_refusal(&self, peer: SocketAddr, path: &str, why: &str) {
        if let Some(suppressed) = self.refusals.borrow_mut().check(Instant::now()) {
            let path: String = path.chars().take(200).collect();
            warn!(%peer, path, suppressed, "http: refused: {why}");
        }
    }

    fn not_found(&self) -> Response<SharedBody> {
        self.shard
            .metrics
            .http
            .not_found
            .fetch_add(1, Ordering::Relaxed);
        json_error(StatusCode::NOT_FOUND, "not found")
    }

    /// Path rules and credentials, as for an SRT reader.
    fn may_read(
        &self,
        path: &str,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(), Box<Response<SharedBody>>> {
        let verdict = self.shard.with_config(|c| {
            let rule = c.rule_for(path)?;
            let creds = basic_auth(req.headers());
            let (user, pass) = match &creds {
                Some((u, p)) => (Some(u.as_str()), Some(p.as_str())),
                None => (None, None),
            };
            Some(rule.check(Mode::Read, user, pass))
        });
        let metrics = &self.shard.metrics.http;
        match verdict {
            None => Err(Box::new(self.not_found())),
            Some(Ok(())) => Ok(()),
            Some(Err(Denied::Forbidden)) => {
                metrics.refused.fetch_add(1, Ordering::Relaxed);
                self.shard.metrics.refused("http", "forbidden");
                self.log_refusal(peer, path, "reading this path is not allowed");
                Err(Box::new(json_error(
                    StatusCode::FORBIDDEN,
                    "reading this path is not allowed",
                )))
            }
            Some(Err(Denied::Unauthorized)) => {
                metrics.refused.fetch_add(1, Ordering::Relaxed);
                self.shard.metrics.refused("http", "unauthorized");
                if req.headers().contains_key(header::AUTHORIZATION) {
                    self.log_refusal(peer, path, "wrong credentials");
                }
                let mut res = json_error(StatusCode::UNAUTHORIZED, "credentials required");
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"srtgate\", charset=\"UTF-8\""),
                );
                Err(Box::new(res))
            }
        }
    }

    fn file(&self, key: &str, req: &Request<Incoming>) -> Response<SharedBody> {
        let Some(file) = self.files.get(key) else {
            return self.not_found();
        };
        let etag = HeaderValue::from_str(&file.etag).ok();
        let fresh = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .zip(etag.as_ref())
            .is_some_and(|(a, b)| a == b);
        let mut res = if fresh {
            respond(
                StatusCode::NOT_MODIFIED,
                None,
                NO_CACHE,
                SharedBody::empty(),
            )
        } else {
            respond(
                StatusCode::OK,
                Some(file.content_type),
                NO_CACHE,
                SharedBody::from_bytes(file.body.clone()),
            )
        };
        if let Some(etag) = etag {
            res.headers_mut().insert(header::ETAG, etag);
        }
        res
    }

    fn paths(&self) -> Response<SharedBody> {
        let (ll, ts, default) = self
            .shard
            .with_config(|c| (c.hls.ll, c.hls.ts, c.hls.enabled()));
        let mut out = String::from("{\"paths\":[");
        for (i, (path, _, description)) in self.shard.hub.registry().live().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let p = json_string(path);
            let tracks: Vec<String> = description
                .iter()
                .flat_map(|d| d.tracks.iter())
                .map(|t| json_string(t.codec().name()))
                .collect();
            out.push_str(&format!(
                "{{\"path\":{p},\"tracks\":[{}],\"player\":{}",
                tracks.join(","),
                json_string(&format!("/{path}/"))
            ));
            out.push_str(",\"hls\":{");
            let mut first = true;
            for (on, key, file) in [
                (default, "index", "index.m3u8"),
                (ll, "ll", "ll.m3u8"),
                (ts, "ts", "ts.m3u8"),
            ] {
                if on {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&format!(
                        "\"{key}\":{}",
                        json_string(&format!("/{path}/{file}"))
                    ));
                }
            }
            out.push_str("}}");
        }
        out.push_str("]}\n");
        respond(
            StatusCode::OK,
            Some("application/json"),
            NO_CACHE,
            SharedBody::from_bytes(out),
        )
    }

    async fn hls(&self, path: &str, resource: Resource) -> Response<SharedBody> {
        let timeout = self
            .shard
            .with_config(|c| c.hls.segment * 3 + c.hls.wait_for_segment + Duration::from_secs(2));
        let hls = &self.shard.hls;
        let home = hls.home(path);
        if home != self.shard.id {
            self.shard
                .metrics
                .http
                .hls_forwarded
                .fetch_add(1, Ordering::Relaxed);
        }
        let req = HlsRequest {
            path: Arc::from(path),
            resource,
        };
        let res = hls.request(home, req, timeout).await;
        let metrics = &self.shard.metrics.http;
        let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (content_type, cache) = match res.kind {
            BodyKind::Playlist => (PLAYLIST, NO_CACHE),
            BodyKind::Mp4 => ("video/mp4", IMMUTABLE),
            BodyKind::Ts => ("video/mp2t", IMMUTABLE),
            BodyKind::Error => {
                if res.status == 404 {
                    metrics.not_found.fetch_add(1, Ordering::Relaxed);
                } else if res.status == 503 {
                    metrics.hls_forward_failed.fetch_add(1, Ordering::Relaxed);
                }
                let why = std::str::from_utf8(&res.body).unwrap_or("error");
                return json_error(status, why);
            }
        };
        metrics
            .hls_bytes
            .fetch_add(res.body.len() as u64, Ordering::Relaxed);
        respond(
            status,
            Some(content_type),
            cache,
            SharedBody::from_bytes(res.body),
        )
    }
}

fn respond(
    status: StatusCode,
    content_type: Option<&'static str>,
    cache: &'static str,
    body: SharedBody,
) -> Response<SharedBody> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    if let Some(t) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn json_error(status: StatusCode, error: &str) -> Response<SharedBody> {
    let body = format!("{{\"error\":{}}}\n", json_string(error));
    respond(
        status,
        Some("application/json"),
        NO_CACHE,
        SharedBody::from_bytes(Bytes::from(body)),
    )
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: &str) -> Result<Route<'_>, RouteError> {
        route(path, None, HlsDefault::Ll)
    }

    #[test]
    fn pages_and_files() {
        assert_eq!(r("/"), Ok(Route::Index));
        assert_eq!(r("/v1/paths"), Ok(Route::Paths));
        assert_eq!(r("/static/player.js"), Ok(Route::File("player.js")));
        assert_eq!(
            r("/vendor/hls.min.js"),
            Ok(Route::File("vendor/hls.min.js"))
        );
        assert_eq!(r("/live/cam1/"), Ok(Route::Player("live/cam1")));
        assert_eq!(r("/live/cam1"), Ok(Route::Redirect("/live/cam1/".into())));
        assert_eq!(r("/live//x/"), Err(RouteError::NotFound));
    }

    #[test]
    fn hls_resources() {
        let hls = |p| match r(p) {
            Ok(Route::Hls { path, resource }) => (path, resource),
            other => panic!("{p}: {other:?}"),
        };
        let playlist = |variant| Resource::Playlist {
            variant,
            msn: None,
            part: None,
        };
        assert_eq!(hls("/live/x/index.m3u8"), ("live/x", playlist(Variant::Ll)));
        assert_eq!(
            route("/a/index.m3u8", None, HlsDefault::Ts),
            Ok(Route::Hls {
                path: "a",
                resource: playlist(Variant::Ts)
            })
        );
        assert_eq!(hls("/a/b/c/ts.m3u8"), ("a/b/c", playlist(Variant::Ts)));
        assert_eq!(hls("/a/init.mp4").1, Resource::Init("init.mp4".into()));
        assert_eq!(hls("/a/init42.mp4").1, Resource::Init("init42.mp4".into()));
        assert_eq!(
            hls("/a/seg17.ts").1,
            Resource::Segment {
                variant: Variant::Ts,
                msn: 17
            }
        );
        assert_eq!(
            hls("/a/seg17.m4s").1,
            Resource::Segment {
                variant: Variant::Ll,
                msn: 17
            }
        );
        assert_eq!(hls("/a/seg17.3.m4s").1, Resource::Part { msn: 17, part: 3 });
        for bad in [
            "/a/seg.ts",
            "/a/seg-1.ts",
            "/a/seg+1.ts",
            "/a/segx.m4s",
            "/a/seg1.2.3.m4s",
            "/a/init-1.mp4",
            "/a/other.m3u8",
            "/a/seg99999999999999999999.ts",
            "/index.m3u8",
        ] {
            assert_eq!(r(bad), Err(RouteError::NotFound), "{bad}");
        }
    }

    #[test]
    fn blocking_query() {
        let q = |query| route("/a/ll.m3u8", Some(query), HlsDefault::Ll);
        assert_eq!(
            q("_HLS_msn=5&_HLS_part=2"),
            Ok(Route::Hls {
                path: "a",
                resource: Resource::Playlist {
                    variant: Variant::Ll,
                    msn: Some(5),
                    part: Some(2)
                }
            })
        );
        assert!(q("_HLS_skip=YES&_HLS_msn=5").is_ok());
        assert_eq!(
            q("_HLS_part=2"),
            Err(RouteError::BadQuery("_HLS_part without _HLS_msn"))
        );
        assert_eq!(q("_HLS_msn=x"), Err(RouteError::BadQuery("not a number")));
        assert_eq!(q("_HLS_msn=-1"), Err(RouteError::BadQuery("not a number")));
    }

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/../etc/passwd",
            "/static/../../etc/passwd",
            "/live/./x/index.m3u8",
            "/static/%2e%2e/secret",
            "/static/..%2Fsecret",
            "/a\\..\\b",
            "/x/%00",
        ] {
            assert_eq!(r(bad), Err(RouteError::Traversal), "{bad}");
        }
        // Dots inside a name are fine.
        assert_eq!(r("/static/a..b.js"), Ok(Route::File("a..b.js")));
    }

    #[test]
    fn basic_credentials() {
        let mut h = HeaderMap::new();
        // "bob:hunter22"
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Ym9iOmh1bnRlcjIy"),
        );
        assert_eq!(basic_auth(&h), Some(("bob".into(), "hunter22".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_auth(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_auth(&h), None);
        assert_eq!(json_string("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
    }
}
