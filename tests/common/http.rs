//! A small blocking HTTP/1.1 client for the HTTP and HLS tests, on
//! `std::net::TcpStream` only.
//!
//! - [`Client`] keeps one connection per `host:port` and reuses it
//!   (keep-alive). A reused connection that the server closed while idle is
//!   replaced once, transparently; a timeout is never retried.
//! - Bodies framed by `Content-Length`, `Transfer-Encoding: chunked` or the
//!   end of the connection. Framing is checked strictly, because these tests
//!   judge a server: a response with both `Content-Length` and
//!   `Transfer-Encoding`, a bad chunk size, a chunk not followed by CRLF, a
//!   header line without CRLF or without a colon, or bytes arriving on an
//!   idle keep-alive connection (such as a body sent after a `HEAD`
//!   response) are errors.
//! - Every request has a deadline (default 10 s) covering connect, send and
//!   the whole response.
//! - URLs are `http://host:port/path?query`; `host` is a name, an IPv4
//!   address or a bracketed IPv6 address (`[::1]`).
//!
//! For hostile tests: [`raw_exchange`] writes arbitrary bytes and collects
//! whatever comes back until the server closes or a timeout; [`RawConn`]
//! drives one connection by hand; [`SlowLoris`] dribbles a request that never
//! ends and reports when the server gave up on it.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Deadline of a request unless the client is told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest status line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted in one response.
const MAX_HEADERS: usize = 200;
/// Largest body collected into [`Response::body`] (streamed bodies are not
/// limited).
const MAX_BODY: u64 = 512 * 1024 * 1024;
/// Read buffer of one connection (kept small: load tests open hundreds).
const READ_BUFFER: usize = 16 * 1024;

// ------------------------------------------------------------------ URLs

/// An `http://` URL split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/` (the fragment is dropped).
    pub target: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {url:?}"))?;
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = if target.is_empty() {
            "/".to_string()
        } else if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        if authority.contains('@') {
            return Err(format!("user info in URLs is not supported: {url:?}"));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let end = inner
                .find(']')
                .ok_or_else(|| format!("unterminated IPv6 address in {url:?}"))?;
            let port = match &inner[end + 1..] {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("junk after the IPv6 address in {url:?}"))?,
                ),
            };
            (&inner[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("bad port {p:?} in {url:?}"))?,
        };
        Ok(Url {
            host: host.to_string(),
            port,
            target,
        })
    }

    /// `host:port`, with brackets around an IPv6 address; also the `Host`
    /// header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// The query, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    pub fn socket_addrs(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.authority()))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{} resolves to no address", self.authority()));
        }
        Ok(addrs)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.target)
    }
}

/// `reference` resolved against `base` (an `http://` URL), as a browser
/// would: absolute URLs stay, `//host/x` takes the base's scheme, `/x`
/// replaces the path and query, anything else replaces the last path
/// segment; `.` and `..` segments are removed.
pub fn resolve(base: &str, reference: &str) -> Result<String, String> {
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return Ok(reference.to_string());
    }
    if let Some(rest) = reference.strip_prefix("//") {
        return Ok(format!("http://{rest}"));
    }
    let base = Url::parse(base)?;
    let root = format!("http://{}", base.authority());
    if reference.is_empty() {
        return Ok(format!("{root}{}", base.target));
    }
    if reference.starts_with('?') {
        return Ok(format!("{root}{}{reference}", base.path()));
    }
    let (path, query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        let dir = &base.path()[..base.path().rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{path}")
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = joined.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut path = out.join("/");
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(match query {
        Some(q) => format!("{root}{path}?{q}"),
        None => format!("{root}{path}"),
    })
}

/// `url` with `query` (`k=v&k2=v2`) added to its query string.
pub fn with_query(url: &str, query: &str) -> String {
    let (url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let sep = if !url.contains('?') {
        "?"
    } else if url.ends_with('?') || url.ends_with('&') {
        ""
    } else {
        "&"
    };
    match fragment {
        Some(f) => format!("{url}{sep}{query}#{f}"),
        None => format!("{url}{sep}{query}"),
    }
}

// ------------------------------------------------------------------ responses

/// One HTTP response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// In order of arrival, names as sent.
    pub headers: Vec<(String, String)>,
    /// Empty for `HEAD`, 204, 304 and streamed requests.
    pub body: Vec<u8>,
    /// Body bytes received (also counted for streamed requests).
    pub body_len: u64,
    /// Whether the body came chunked.
    pub chunked: bool,
    /// Whether the response came on a connection that had served an earlier
    /// request.
    pub reused: bool,
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

// ------------------------------------------------------------------ wire reading

/// A stream whose every read is bounded by one deadline.
struct Timed {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Why reading a response failed.
enum ReadError {
    /// The peer closed (or reset) before sending a byte of the response.
    ClosedBeforeResponse(String),
    /// Anything else.
    Failed(String),
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

fn io_text(e: &io::Error, what: &str) -> String {
    if is_timeout(e) {
        format!("timed out {what}")
    } else {
        format!("{what}: {e}")
    }
}

/// Reads one CRLF-terminated line (without the CRLF). `Ok(None)` at a clean
/// end of input before any byte.
fn read_line<R: BufRead>(r: &mut R, what: &str) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_closed(&e) && line.is_empty() => return Ok(None),
            Err(e) => return Err(io_text(&e, &format!("reading {what}"))),
        };
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(format!(
                "connection closed in the middle of {what} ({:?})",
                String::from_utf8_lossy(&line)
            ));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > MAX_LINE + 2 {
            return Err(format!("{what} longer than {MAX_LINE} bytes"));
        }
        if done {
            line.pop();
            if line.pop() != Some(b'\r') {
                return Err(format!(
                    "{what} ends with a bare LF, not CRLF: {:?}",
                    String::from_utf8_lossy(&line)
                ));
            }
            return Ok(Some(line));
        }
    }
}

/// Reads exactly `n` bytes into `sink`.
fn read_exact_into<R: BufRead>(
    r: &mut R,
    mut n: u64,
    sink: &mut dyn FnMut(&[u8]),
    what: &str,
) -> Result<(), String> {
    let total = n;
    while n > 0 {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(io_text(
                    &e,
                    &format!("reading {what} ({} of {total} bytes read)", total - n),
                ))
            }
        };
        if buf.is_empty() {
            return Err(format!(
                "connection closed after {} of {total} bytes of {what}",
                total - n
            ));
        }
        let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        sink(&buf[..take]);
        r.consume(take);
        n -= take as u64;
    }
    Ok(())
}

/// Reads until the end of input into `sink`.
fn read_to_end_into<R: BufRead>(r: &mut R, sink: &mut dyn FnMut(&[u8])) -> Result<(), String> {
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_closed(&e) => return Ok(()),
            Err(e) => return Err(io_text(&e, "reading a body delimited by close")),
        };
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len();
        sink(buf);
        r.consume(n);
    }
}

fn read_chunked<R: BufRead>(r: &mut R, sink: &mut dyn FnMut(&[u8])) -> Result<(), String> {
    loop {
        let line = read_line(r, "a chunk size line")?
            .ok_or("connection closed before a chunk size line")?;
        let line = String::from_utf8_lossy(&line).into_owned();
        let size = line
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad chunk size line {line:?}"));
        }
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| format!("chunk size out of range: {line:?}"))?;
        if size == 0 {
            // Trailer fields, then an empty line.
            for _ in 0..=MAX_HEADERS {
                let t = read_line(r, "a trailer line")?
                    .ok_or("connection closed in the chunked trailer")?;
                if t.is_empty() {
                    return Ok(());
                }
                if !t.contains(&b':') {
                    return Err(format!(
                        "trailer line without a colon: {:?}",
                        String::from_utf8_lossy(&t)
                    ));
                }
            }
            return Err("too many trailer lines".to_string());
        }
        read_exact_into(r, size, sink, "a chunk")?;
        let mut crlf = Vec::with_capacity(2);
        read_exact_into(
            r,
            2,
            &mut |b| crlf.extend_from_slice(b),
            "the CRLF after a chunk",
        )?;
        if crlf != b"\r\n" {
            return Err(format!(
                "chunk of {size} bytes not followed by CRLF (got {:?})",
                String::from_utf8_lossy(&crlf)
            ));
        }
    }
}

/// A parsed status line and header block.
struct Head {
    version: String,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

fn parse_status_line(line: &[u8]) -> Result<(String, u16, String), String> {
    let text = std::str::from_utf8(line).map_err(|_| {
        format!(
            "status line is not UTF-8: {:?}",
            String::from_utf8_lossy(line)
        )
    })?;
    let mut it = text.splitn(3, ' ');
    let version = it.next().unwrap_or("");
    let code = it.next().unwrap_or("");
    let reason = it.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("not an HTTP/1.x status line: {text:?}"));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad status code in {text:?}"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("bad status in {text:?}"))?;
    if !(100..600).contains(&status) {
        return Err(format!("status out of range in {text:?}"));
    }
    Ok((version.to_string(), status, reason.to_string()))
}

fn read_head<R: BufRead>(r: &mut R) -> Result<Head, ReadError> {
    let line = match read_line(r, "the status line") {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(ReadError::ClosedBeforeResponse(
                "connection closed before a response".to_string(),
            ))
        }
        Err(e) => return Err(ReadError::Failed(e)),
    };
    let (version, status, reason) = parse_status_line(&line).map_err(ReadError::Failed)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, "a header line")
            .map_err(ReadError::Failed)?
            .ok_or_else(|| ReadError::Failed("connection closed in the headers".to_string()))?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ReadError::Failed(format!(
                "more than {MAX_HEADERS} headers"
            )));
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if text.starts_with([' ', '\t']) {
            return Err(ReadError::Failed(format!(
                "obsolete folded header line {text:?}"
            )));
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| ReadError::Failed(format!("header line without a colon: {text:?}")))?;
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(ReadError::Failed(format!("bad header name in {text:?}")));
        }
        headers.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok(Head {
        version,
        status,
        reason,
        headers,
    })
}

/// How a response body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

fn framing(method: &str, head: &Head) -> Result<Framing, String> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(Framing::None);
    }
    let te: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_str())
        .collect();
    let cl: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    if !te.is_empty() && !cl.is_empty() {
        return Err("response has both Transfer-Encoding and Content-Length".to_string());
    }
    if !te.is_empty() {
        let last = te
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .next_back()
            .unwrap_or("");
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    if let Some(first) = cl.first() {
        if cl.iter().any(|v| v != first) {
            return Err(format!("conflicting Content-Length headers {cl:?}"));
        }
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad Content-Length {first:?}"));
        }
        let n = first
            .parse::<u64>()
            .map_err(|_| format!("Content-Length out of range {first:?}"))?;
        return Ok(Framing::Length(n));
    }
    Ok(Framing::Close)
}

fn connection_has(headers: &[(String, String)], token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Reads one response (skipping interim 1xx responses). Returns it and
/// whether the connection may carry another request. With `collect`, the
/// body goes into [`Response::body`] as well as `sink`.
fn read_response<R: BufRead>(
    r: &mut R,
    method: &str,
    collect: bool,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(Response, bool), ReadError> {
    let mut first = true;
    let head = loop {
        let head = match read_head(r) {
            Err(ReadError::ClosedBeforeResponse(e)) if !first => {
                return Err(ReadError::Failed(format!(
                    "{e} (after an interim response)"
                )))
            }
            other => other?,
        };
        first = false;
        if head.status == 101 {
            return Err(ReadError::Failed(
                "101 Switching Protocols is not supported".to_string(),
            ));
        }
        if (100..200).contains(&head.status) {
            continue;
        }
        break head;
    };
    let framing = framing(method, &head).map_err(ReadError::Failed)?;
    let mut body = Vec::new();
    let mut body_len = 0u64;
    let mut too_big = false;
    {
        let mut take = |b: &[u8]| {
            body_len += b.len() as u64;
            if collect {
                if body_len <= MAX_BODY {
                    body.extend_from_slice(b);
                } else {
                    too_big = true;
                }
            }
            sink(b);
        };
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => read_exact_into(r, n, &mut take, "the body"),
            Framing::Chunked => read_chunked(r, &mut take),
            Framing::Close => read_to_end_into(r, &mut take),
        }
        .map_err(ReadError::Failed)?;
    }
    if too_big {
        return Err(ReadError::Failed(format!(
            "body larger than {MAX_BODY} bytes (use a streaming request)"
        )));
    }
    let keep = !matches!(framing, Framing::Close)
        && !connection_has(&head.headers, "close")
        && (head.version == "HTTP/1.1" || connection_has(&head.headers, "keep-alive"));
    Ok((
        Response {
            status: head.status,
            reason: head.reason,
            version: head.version,
            chunked: matches!(framing, Framing::Chunked),
            headers: head.headers,
            body,
            body_len,
            reused: false,
            elapsed: Duration::ZERO,
        },
        keep,
    ))
}

/// Parses one complete response from `bytes` (as answered to `method`).
/// `Ok(None)` while the bytes end before the response does; a body delimited
/// by the end of the connection is taken to end with `bytes`. Returns the
/// response and the number of bytes it took.
pub fn parse_response(bytes: &[u8], method: &str) -> Result<Option<(Response, usize)>, String> {
    let mut r: &[u8] = bytes;
    match read_response(&mut r, method, true, &mut |_| {}) {
        Ok((resp, _)) => Ok(Some((resp, bytes.len() - r.len()))),
        Err(ReadError::ClosedBeforeResponse(_)) => Ok(None),
        // Running out of bytes reads as the peer closing.
        Err(ReadError::Failed(e)) if e.starts_with("connection closed") => Ok(None),
        Err(ReadError::Failed(e)) => Err(e),
    }
}

// ------------------------------------------------------------------ client

struct Conn {
    reader: BufReader<Timed>,
    served: u64,
}

impl Conn {
    fn stream(&self) -> &TcpStream {
        &self.reader.get_ref().stream
    }

    /// What an idle keep-alive connection holds: nothing (usable), an end of
    /// stream (closed by the server), or unexpected bytes.
    fn idle_state(&mut self) -> Result<bool, usize> {
        let buffered = self.reader.buffer().len();
        if buffered > 0 {
            return Err(buffered);
        }
        let s = self.stream();
        if s.set_nonblocking(true).is_err() {
            return Ok(false);
        }
        let mut probe = [0u8; 256];
        let state = match s.peek(&mut probe) {
            Ok(0) => Ok(false),
            // An idle-timeout notice before a close: the connection is done.
            Ok(n) if probe[..n].starts_with(b"HTTP/1.1 408") => Ok(false),
            Ok(n) => Err(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(_) => Ok(false),
        };
        if s.set_nonblocking(false).is_err() {
            return Ok(false);
        }
        state
    }
}

/// A blocking HTTP/1.1 client with one keep-alive connection per
/// `host:port`.
pub struct Client {
    timeout: Duration,
    conns: HashMap<String, Conn>,
    connects: u64,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

enum Attempt {
    Done(Response, bool),
    /// The reused connection turned out to be closed before any response
    /// byte: try again on a new one.
    Stale(String),
}

impl Client {
    pub fn new() -> Client {
        Client::with_timeout(DEFAULT_TIMEOUT)
    }

    /// A client whose requests each have `timeout` in all.
    pub fn with_timeout(timeout: Duration) -> Client {
        Client {
            timeout,
            conns: HashMap::new(),
            connects: 0,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// TCP connections opened so far.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Idle connections held.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Drops every idle connection.
    pub fn close(&mut self) {
        self.conns.clear();
    }

    pub fn get(&mut self, url: &str) -> Result<Response, String> {
        self.request("GET", url, &[])
    }

    pub fn head(&mut self, url: &str) -> Result<Response, String> {
        self.request("HEAD", url, &[])
    }

    /// A request without a body. `headers` replace the defaults of the same
    /// name (`Host`, `User-Agent`, `Accept`).
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
        let deadline = started + self.timeout;
        let parsed = Url::parse(url)?;
        let request = build_request(method, &parsed, headers, body);
        let close_after = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        let key = parsed.authority();
        let fail = |e: String| format!("{method} {url}: {e}");

        if let Some(mut conn) = self.conns.remove(&key) {
            match conn.idle_state() {
                Ok(true) => match attempt(&mut conn, &request, method, deadline, collect, sink) {
                    Ok(Attempt::Done(mut resp, keep)) => {
                        resp.reused = true;
                        resp.elapsed = started.elapsed();
                        conn.served += 1;
                        if keep && !close_after {
                            self.conns.insert(key, conn);
                        }
                        return Ok(resp);
                    }
                    Ok(Attempt::Stale(_)) => {}
                    Err(e) => return Err(fail(e)),
                },
                Ok(false) => {}
                Err(n) => {
                    return Err(fail(format!(
                        "the server sent {n} unexpected byte(s) on the idle connection after \
                         the previous response (a body after a HEAD, 204 or 304 response, or a \
                         wrong Content-Length?)"
                    )))
                }
            }
        }
        let mut conn = self.connect(&parsed, deadline).map_err(fail)?;
        match attempt(&mut conn, &request, method, deadline, collect, sink) {
            Ok(Attempt::Done(mut resp, keep)) => {
                resp.elapsed = started.elapsed();
                conn.served += 1;
                if keep && !close_after {
                    self.conns.insert(key, conn);
                }
                Ok(resp)
            }
            Ok(Attempt::Stale(e)) | Err(e) => Err(fail(e)),
        }
    }

    fn connect(&mut self, url: &Url, deadline: Instant) -> Result<Conn, String> {
        let mut last = String::new();
        for addr in url.socket_addrs()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("timed out connecting to {addr}"));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    self.connects += 1;
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn {
                        reader: BufReader::with_capacity(READ_BUFFER, Timed { stream, deadline }),
                        served: 0,
                    });
                }
                Err(e) => last = io_text(&e, &format!("connecting to {addr}")),
            }
        }
        Err(last)
    }
}

fn attempt(
    conn: &mut Conn,
    request: &[u8],
    method: &str,
    deadline: Instant,
    collect: bool,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<Attempt, String> {
    let reused = conn.served > 0;
    conn.reader.get_mut().deadline = deadline;
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("timed out before sending".to_string());
    }
    let stream = &mut conn.reader.get_mut().stream;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| format!("set_write_timeout: {e}"))?;
    if let Err(e) = stream.write_all(request).and_then(|_| stream.flush()) {
        if reused && is_closed(&e) {
            return Ok(Attempt::Stale(e.to_string()));
        }
        return Err(io_text(&e, "sending the request"));
    }
    match read_response(&mut conn.reader, method, collect, sink) {
        Ok((resp, keep)) => Ok(Attempt::Done(resp, keep)),
        Err(ReadError::ClosedBeforeResponse(e)) if reused => Ok(Attempt::Stale(e)),
        Err(ReadError::ClosedBeforeResponse(e)) | Err(ReadError::Failed(e)) => Err(e),
    }
}

fn build_request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!("{method} {} HTTP/1.1\r\n", url.target);
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        out.push_str(&format!("Host: {}\r\n", url.authority()));
    }
    if !has("user-agent") {
        out.push_str("User-Agent: srtgate-tests\r\n");
    }
    if !has("accept") {
        out.push_str("Accept: */*\r\n");
    }
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !has("content-length") {
            out.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    bytes
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

/// `host:port`, `[v6]:port` or an `http://` URL, as a socket address.
pub fn socket_addr(addr: &str) -> Result<SocketAddr, String> {
    if addr.starts_with("http://") {
        return Ok(Url::parse(addr)?.socket_addrs()?[0]);
    }
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

    /// The complete responses the bytes hold, back to back, as answers to
    /// `method` (pipelined requests of one method); stops at the first
    /// incomplete one. An error if the bytes are not well-formed responses.
    pub fn responses(&self, method: &str) -> Result<Vec<Response>, String> {
        let mut out = Vec::new();
        let mut rest: &[u8] = &self.bytes;
        while !rest.is_empty() {
            match parse_response(rest, method)? {
                Some((r, used)) if used > 0 => {
                    out.push(r);
                    rest = &rest[used..];
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n')?;
    parse_status_line(&bytes[..end]).ok().map(|(_, s, _)| s)
}

/// Connects to `addr`, writes `bytes` as they are, then reads until the
/// server closes the connection or `timeout` (from connecting) passes. A
/// server that closes while the bytes are being written counts as closed.
pub fn raw_exchange(addr: &str, bytes: &[u8], timeout: Duration) -> Result<RawReply, String> {
    let mut c = RawConn::open(addr, timeout)?;
    let _ = c.send(bytes);
    let left = timeout.saturating_sub(c.elapsed());
    c.wait_closed(left);
    Ok(RawReply {
        closed: c.is_closed(),
        elapsed: c.closed_after().unwrap_or_else(|| c.elapsed()),
        bytes: c.received,
    })
}

/// Whether a response's body is delimited by the end of the connection (so
/// that it is complete only once the server closed).
fn needs_close(method: &str, resp: &Response) -> bool {
    !method.eq_ignore_ascii_case("HEAD")
        && !(100..200).contains(&resp.status)
        && resp.status != 204
        && resp.status != 304
        && resp.header("content-length").is_none()
        && !resp.chunked
}

/// One TCP connection driven by hand.
pub struct RawConn {
    stream: TcpStream,
    opened: Instant,
    /// Everything received so far.
    pub received: Vec<u8>,
    closed_after: Option<Duration>,
}

impl RawConn {
    /// Connects to `addr` (see [`socket_addr`]).
    pub fn open(addr: &str, timeout: Duration) -> Result<RawConn, String> {
        let sa = socket_addr(addr)?;
        let stream = TcpStream::connect_timeout(&sa, timeout)
            .map_err(|e| io_text(&e, &format!("connecting to {sa}")))?;
        let _ = stream.set_nodelay(true);
        Ok(RawConn {
            stream,
            opened: Instant::now(),
            received: Vec::new(),
            closed_after: None,
        })
    }

    /// Since the connection opened.
    pub fn elapsed(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Whether the server closed (or reset) the connection.
    pub fn is_closed(&self) -> bool {
        self.closed_after.is_some()
    }

    /// When (since opening) the close was noticed.
    pub fn closed_after(&self) -> Option<Duration> {
        self.closed_after
    }

    fn mark_closed(&mut self) {
        if self.closed_after.is_none() {
            self.closed_after = Some(self.opened.elapsed());
        }
    }

    /// Writes `bytes`. Fails (and marks the connection closed) if the
    /// server closed or reset it.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let _ = self.stream.set_write_timeout(Some(DEFAULT_TIMEOUT));
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) => {
                if is_closed(&e) {
                    self.mark_closed();
                }
                Err(io_text(&e, "sending"))
            }
        }
    }

    /// Writes `bytes` `chunk` bytes at a time, `interval` apart, reading
    /// meanwhile; stops early when the server closes. Returns the number of
    /// bytes written.
    pub fn send_slowly(&mut self, bytes: &[u8], chunk: usize, interval: Duration) -> usize {
        let mut sent = 0;
        for piece in bytes.chunks(chunk.max(1)) {
            if sent > 0 && self.read_for(interval) {
                break;
            }
            if self.send(piece).is_err() {
                break;
            }
            sent += piece.len();
        }
        sent
    }

    /// Half-closes: no more bytes from us.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// One read of at most `wait`. Returns false on timeout.
    fn read_once(&mut self, wait: Duration) -> bool {
        if self.is_closed() {
            return false;
        }
        let wait = wait.max(Duration::from_millis(1));
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.mark_closed();
                true
            }
            Ok(n) => {
                self.received.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => false,
            Err(_) => {
                self.mark_closed();
                true
            }
        }
    }

    /// Reads for `wait` or until the server closes. Returns whether it
    /// closed.
    pub fn read_for(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.is_closed() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.read_once(left);
        }
        self.is_closed()
    }

    /// Reads until `done(received)` holds, the server closes, or `timeout`.
    /// Returns whether `done` held.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.received) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.is_closed() || left.is_zero() {
                return false;
            }
            self.read_once(left);
        }
    }

    /// Reads one complete response to `method` (counting from the start of
    /// what is not yet consumed), and consumes it.
    pub fn read_response(&mut self, method: &str, timeout: Duration) -> Result<Response, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match parse_response(&self.received, method)? {
                Some((resp, used)) if !needs_close(method, &resp) || self.is_closed() => {
                    self.received.drain(..used);
                    return Ok(resp);
                }
                _ => {}
            }
            if self.is_closed() {
                return Err(format!(
                    "connection closed before a complete response ({} bytes: {:?})",
                    self.received.len(),
                    String::from_utf8_lossy(&self.received[..self.received.len().min(300)])
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no complete response within {:.1}s ({} bytes: {:?})",
                    timeout.as_secs_f64(),
                    self.received.len(),
                    String::from_utf8_lossy(&self.received[..self.received.len().min(300)])
                ));
            }
            self.read_once(left);
        }
    }

    /// Waits until the server closes. Returns when that was noticed (since
    /// opening), or `None` if it was still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Option<Duration> {
        self.read_for(timeout);
        self.closed_after
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
        let mut sent = 0usize;
        let mut pos = 0usize;
        let drip = if self.drip.is_empty() {
            b" ".to_vec()
        } else {
            self.drip.clone()
        };
        while !c.is_closed() && c.elapsed() < self.limit {
            let mut piece = Vec::with_capacity(self.chunk);
            while piece.len() < self.chunk {
                let b = if pos < self.head.len() {
                    self.head[pos]
                } else {
                    drip[(pos - self.head.len()) % drip.len()]
                };
                piece.push(b);
                pos += 1;
            }
            if c.send(&piece).is_err() {
                break;
            }
            sent += piece.len();
            let left = self.limit.saturating_sub(c.elapsed());
            c.read_for(self.interval.min(left));
        }
        SlowReport {
            sent,
            closed_after: c.closed_after(),
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
