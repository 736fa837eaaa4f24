//! Demo handler: the routes the spike measures and tests.
//!
//! * `GET /hello` → `200 text/plain`
//! * `GET /big` → 2 MiB shared from the shard's [`App`] (no copy per request)
//! * `GET /wait?ms=N` → waits N ms (at most 30 s) on a glommio timer, like a
//!   blocking playlist reload, without blocking the shard
//! * `HEAD` of the above → same headers, no body
//! * anything else → `404 {"error":"not found"}`

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::io::http::server::Handler;
use crate::io::http::SharedBody;

/// Size of the `/big` payload.
pub const BIG_LEN: usize = 2 << 20;
/// Longest wait `/wait` accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Per-shard state; `Rc`, so the handler is `!Send`.
#[derive(Debug)]
pub struct App {
    big: Rc<[Bytes]>,
}

impl App {
    /// State for one shard.
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            big: Rc::from([Bytes::from(vec![b'x'; BIG_LEN])]),
        })
    }
}

/// The demo [`Handler`]: a handle on the shard's [`App`].
#[derive(Clone, Debug)]
pub struct Demo(Rc<App>);

/// Build the handler for one shard (pass to [`crate::io::http::server::start`]).
pub fn make_handler() -> Demo {
    Demo(App::new())
}

impl Handler for Demo {
    type Body = SharedBody;
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<SharedBody>> + 'static + use<> {
        handle(self.0.clone(), req)
    }
}

/// Route one request.
pub async fn handle(app: Rc<App>, req: Request<Incoming>) -> Response<SharedBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    // hyper leaves the body out of HEAD responses but keeps Content-Length.
    match req.uri().path() {
        "/hello" => text("hello from glommio+hyper\n"),
        "/big" => respond(
            StatusCode::OK,
            "application/octet-stream",
            SharedBody::new(app.big.clone()),
        ),
        "/wait" => {
            let ms = query_u64(req.uri().query(), "ms").unwrap_or(0);
            let wait = Duration::from_millis(ms).min(MAX_WAIT);
            glommio::timer::sleep(wait).await;
            text(format!("waited {} ms\n", wait.as_millis()))
        }
        _ => json(StatusCode::NOT_FOUND, "not found"),
    }
}

fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn text(body: impl Into<Bytes>) -> Response<SharedBody> {
    respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        SharedBody::from_bytes(body),
    )
}

fn json(status: StatusCode, error: &str) -> Response<SharedBody> {
    let body = format!("{{\"error\":\"{error}\"}}");
    respond(status, "application/json", SharedBody::from_bytes(body))
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: SharedBody,
) -> Response<SharedBody> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(query_u64(Some("ms=500"), "ms"), Some(500));
        assert_eq!(query_u64(Some("a=1&ms=7"), "ms"), Some(7));
        assert_eq!(query_u64(Some("msx=7"), "ms"), None);
        assert_eq!(query_u64(None, "ms"), None);
    }
}
