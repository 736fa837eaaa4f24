//! HTTP for the HTTP and HLS tests.
//!
//! - [`Client`] is a `ureq` agent (a maintained blocking HTTP/1.1 client):
//!   one keep-alive pool per client, every status returned as a response
//!   (never as an error), redirects not followed, each request bounded by
//!   one deadline (default 10 s) covering connect, send and the whole
//!   response. ureq checks the framing (status line, headers,
//!   `Content-Length` against the bytes received, chunk syntax).
//! - URLs are `http://host:port/path?query`; [`resolve`] and [`with_query`]
//!   use the `url` crate (WHATWG URL rules, as a browser resolves).
//!
//! For hostile tests, which send bytes no client crate would: [`raw_exchange`]
//! writes arbitrary bytes and collects whatever comes back until the server
//! closes or a timeout; [`SlowLoris`] dribbles a request that never ends and
//! reports when the server gave up on it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ureq::http;

/// Deadline of a request unless the client is told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body collected into [`Response::body`] (streamed bodies are not
/// limited).
const MAX_BODY: u64 = 512 * 1024 * 1024;

// ------------------------------------------------------------------ URLs

/// `reference` resolved against `base`, as a browser would.
pub fn resolve(base: &str, reference: &str) -> Result<String, String> {
    url::Url::parse(base)
        .and_then(|b| b.join(reference))
        .map(String::from)
        .map_err(|e| format!("cannot resolve {reference:?} against {base:?}: {e}"))
}

/// `url` with `query` (`k=v&k2=v2`) added to its query string.
pub fn with_query(url: &str, query: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return format!("{url}?{query}");
    };
    let q = match u.query() {
        Some(q) if !q.is_empty() && !q.ends_with('&') => format!("{q}&{query}"),
        Some(q) => format!("{q}{query}"),
        None => query.to_string(),
    };
    u.set_query(Some(&q));
    u.into()
}

// ------------------------------------------------------------------ responses

/// One HTTP response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    /// The canonical reason phrase of the status.
    pub reason: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Names in lower case, values in order of arrival per name.
    pub headers: Vec<(String, String)>,
    /// Empty for `HEAD`, 204, 304 and streamed requests.
    pub body: Vec<u8>,
    /// Body bytes received (also counted for streamed requests).
    pub body_len: u64,
    /// Whether the body came chunked.
    pub chunked: bool,
    /// From the start of the request to the end of the response.
    pub elapsed: Duration,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (any case), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether header `name` lists `token` (comma-separated, any case), as
    /// in `Connection: keep-alive, close`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Status line and headers, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}", self.version, self.status, self.reason);
        for (n, v) in &self.headers {
            s.push_str(&format!("\n{n}: {v}"));
        }
        s
    }
}

// ------------------------------------------------------------------ client

/// A blocking HTTP/1.1 client keeping its connections alive.
pub struct Client {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("srtgate-tests")
        .allow_non_standard_methods(true)
        .build()
        .new_agent()
}

impl Client {
    pub fn new() -> Client {
        Client::with_timeout(DEFAULT_TIMEOUT)
    }

    /// A client whose requests each have `timeout` in all.
    pub fn with_timeout(timeout: Duration) -> Client {
        Client {
            agent: agent(),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Drops every idle connection.
    pub fn close(&mut self) {
        self.agent = agent();
    }

    pub fn get(&mut self, url: &str) -> Result<Response, String> {
        self.request("GET", url, &[])
    }

    pub fn head(&mut self, url: &str) -> Result<Response, String> {
        self.request("HEAD", url, &[])
    }

    /// A request without a body, with extra `headers`.
    pub fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        self.exchange(method, url, headers, None, true, &mut |_| {})
    }

    /// A request with a body (`Content-Length` is added).
    pub fn request_body(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        self.exchange(method, url, headers, Some(body), true, &mut |_| {})
    }

    /// A request whose response body goes to `sink` piece by piece instead
    /// of into [`Response::body`] (which stays empty; `body_len` counts).
    pub fn stream(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Response, String> {
        self.exchange(method, url, headers, None, false, sink)
    }

    fn exchange(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        collect: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Response, String> {
        let started = Instant::now();
        let fail = |e: String| format!("{method} {url}: {e}");
        let mut builder = http::Request::builder().method(method).uri(url);
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        let timeout = Some(self.timeout);
        let res = match body {
            Some(b) => {
                let req = builder.body(b).map_err(|e| fail(e.to_string()))?;
                let req = self
                    .agent
                    .configure_request(req)
                    .timeout_global(timeout)
                    .build();
                self.agent.run(req)
            }
            None => {
                let req = builder.body(()).map_err(|e| fail(e.to_string()))?;
                let req = self
                    .agent
                    .configure_request(req)
                    .timeout_global(timeout)
                    .build();
                self.agent.run(req)
            }
        };
        let mut res = res.map_err(|e| fail(e.to_string()))?;
        let mut out = Response {
            status: res.status().as_u16(),
            reason: res.status().canonical_reason().unwrap_or("").to_string(),
            version: format!("{:?}", res.version()),
            headers: res
                .headers()
                .iter()
                .map(|(n, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_string(), v)
                })
                .collect(),
            ..Response::default()
        };
        out.chunked = out.header_has_token("transfer-encoding", "chunked");
        let mut reader = res.body_mut().as_reader();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(fail(format!(
                        "reading the body ({} bytes read): {e}",
                        out.body_len
                    )))
                }
            };
            out.body_len += n as u64;
            if collect {
                if out.body_len > MAX_BODY {
                    return Err(fail(format!(
                        "body larger than {MAX_BODY} bytes (use a streaming request)"
                    )));
                }
                out.body.extend_from_slice(&buf[..n]);
            }
            sink(&buf[..n]);
        }
        out.elapsed = started.elapsed();
        Ok(out)
    }
}

/// `GET url` on a new connection.
pub fn get(url: &str) -> Result<Response, String> {
    Client::new().get(url)
}

/// `HEAD url` on a new connection.
pub fn head(url: &str) -> Result<Response, String> {
    Client::new().head(url)
}

/// `method url` with extra `headers`, on a new connection.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    Client::new().request(method, url, headers)
}

// ------------------------------------------------------------------ raw connections

/// `host:port` or `[v6]:port` as a socket address.
pub fn socket_addr(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr:?} resolves to no address"))
}

/// What came back on a raw connection.
#[derive(Debug, Clone, Default)]
pub struct RawReply {
    /// Every byte received.
    pub bytes: Vec<u8>,
    /// The server closed (or reset) the connection.
    pub closed: bool,
    /// From connecting to the close, or to the timeout.
    pub elapsed: Duration,
}

impl RawReply {
    /// The status code of the first response, if the bytes start with a
    /// status line.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The code of an `HTTP/1.x NNN ...` status line at the start of `bytes`.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = &bytes[..bytes.iter().position(|&b| b == b'\r' || b == b'\n')?];
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || !matches!(rest.get(3), None | Some(b' ')) {
        return None;
    }
    let status = std::str::from_utf8(code).ok()?.parse().ok()?;
    (100..600).contains(&status).then_some(status)
}

/// Connects to `addr`, writes `bytes` as they are, then reads until the
/// server closes the connection or `timeout` (from connecting) passes. A
/// server that closes while the bytes are being written counts as closed.
pub fn raw_exchange(addr: &str, bytes: &[u8], timeout: Duration) -> Result<RawReply, String> {
    let mut c = RawConn::open(addr, timeout)?;
    let _ = c.send(bytes);
    let left = timeout.saturating_sub(c.opened.elapsed());
    c.read_for(left);
    Ok(RawReply {
        closed: c.closed_after.is_some(),
        elapsed: c.closed_after.unwrap_or_else(|| c.opened.elapsed()),
        bytes: c.received,
    })
}

/// One TCP connection driven by hand.
struct RawConn {
    stream: TcpStream,
    opened: Instant,
    received: Vec<u8>,
    /// When (since opening) the server's close was noticed.
    closed_after: Option<Duration>,
}

impl RawConn {
    fn open(addr: &str, timeout: Duration) -> Result<RawConn, String> {
        let sa = socket_addr(addr)?;
        let stream = TcpStream::connect_timeout(&sa, timeout)
            .map_err(|e| format!("connecting to {sa}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(DEFAULT_TIMEOUT));
        Ok(RawConn {
            stream,
            opened: Instant::now(),
            received: Vec::new(),
            closed_after: None,
        })
    }

    fn mark_closed(&mut self) {
        if self.closed_after.is_none() {
            self.closed_after = Some(self.opened.elapsed());
        }
    }

    /// Writes `bytes`; a failure other than a timeout means the server
    /// closed or reset.
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| {
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                self.mark_closed();
            }
            format!("sending: {e}")
        })
    }

    /// Reads for `wait` or until the server closes. Returns whether it
    /// closed.
    fn read_for(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 8192];
        while self.closed_after.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut buf) {
                Ok(0) => self.mark_closed(),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => self.mark_closed(),
            }
        }
        self.closed_after.is_some()
    }
}

// ------------------------------------------------------------------ slow loris

/// A client that sends a request so slowly that it never ends: first
/// `head`, then `drip` over and over, `chunk` bytes every `interval`, never
/// the blank line that would end the headers.
#[derive(Debug, Clone)]
pub struct SlowLoris {
    pub head: Vec<u8>,
    pub drip: Vec<u8>,
    pub chunk: usize,
    pub interval: Duration,
    /// Gives up (reporting the connection still open) after this long.
    pub limit: Duration,
}

/// How a slow-loris connection ended.
#[derive(Debug, Clone, Default)]
pub struct SlowReport {
    /// Bytes written before the server closed or the limit passed.
    pub sent: usize,
    /// When (since connecting) the server closed the connection; `None` if
    /// it was still open at the limit.
    pub closed_after: Option<Duration>,
    /// Whatever the server sent (a 408, say).
    pub response: Vec<u8>,
    /// Connecting failed.
    pub error: Option<String>,
}

impl SlowReport {
    /// Status of a response the server sent before closing, if any.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.response)
    }
}

impl Default for SlowLoris {
    fn default() -> SlowLoris {
        SlowLoris {
            head: b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec(),
            drip: b"X-Slow: 1\r\n".to_vec(),
            chunk: 1,
            interval: Duration::from_millis(500),
            limit: Duration::from_secs(30),
        }
    }
}

impl SlowLoris {
    pub fn new() -> SlowLoris {
        SlowLoris::default()
    }

    /// Starts with `GET path` instead of `GET /`.
    pub fn path(mut self, path: &str) -> SlowLoris {
        self.head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
        self
    }

    pub fn head(mut self, head: &[u8]) -> SlowLoris {
        self.head = head.to_vec();
        self
    }

    pub fn drip(mut self, drip: &[u8]) -> SlowLoris {
        self.drip = drip.to_vec();
        self
    }

    pub fn chunk(mut self, bytes: usize) -> SlowLoris {
        self.chunk = bytes.max(1);
        self
    }

    pub fn interval(mut self, interval: Duration) -> SlowLoris {
        self.interval = interval;
        self
    }

    pub fn limit(mut self, limit: Duration) -> SlowLoris {
        self.limit = limit;
        self
    }

    /// Runs against `addr` until the server closes or the limit passes.
    pub fn run(&self, addr: &str) -> SlowReport {
        let mut c = match RawConn::open(addr, self.limit.min(DEFAULT_TIMEOUT)) {
            Ok(c) => c,
            Err(e) => {
                return SlowReport {
                    error: Some(e),
                    ..SlowReport::default()
                }
            }
        };
        let drip: &[u8] = if self.drip.is_empty() {
            b" "
        } else {
            &self.drip
        };
        let mut bytes = self.head.iter().chain(drip.iter().cycle());
        let mut sent = 0usize;
        while c.closed_after.is_none() && c.opened.elapsed() < self.limit {
            let piece: Vec<u8> = bytes.by_ref().take(self.chunk).copied().collect();
            if c.send(&piece).is_err() {
                break;
            }
            sent += piece.len();
            let left = self.limit.saturating_sub(c.opened.elapsed());
            c.read_for(self.interval.min(left));
        }
        SlowReport {
            sent,
            closed_after: c.closed_after,
            response: c.received,
            error: None,
        }
    }

    /// Runs on a thread of its own.
    pub fn spawn(self, addr: &str) -> JoinHandle<SlowReport> {
        let addr = addr.to_string();
        std::thread::Builder::new()
            .name("slow-loris".to_string())
            .stack_size(128 * 1024)
            .spawn(move || self.run(&addr))
            .expect("spawn slow-loris thread")
    }
}
