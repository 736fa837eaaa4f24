//! The HTTP/1.1 server of one shard.
//!
//! Every shard binds its own `SO_REUSEPORT` listener on each `http.listen`
//! address, so the kernel spreads connections over the shards; each accepted
//! connection becomes one local task running hyper's HTTP/1 connection with
//! this shard's handler (which may hold `Rc` state).
//!
//! Limits, all from `http:` in the configuration:
//! * `header_timeout`: a request head must arrive in full within it. hyper
//!   starts this timer whenever it waits for a request head, including on an
//!   idle keep-alive connection, so it is also the idle timeout (slow-loris
//!   clients are closed after it);
//! * `write_timeout`: a write making no progress for this long closes the
//!   connection (a client that stopped reading);
//! * `max_request_head`: larger request heads get `431` and a close;
//! * `max_connections`, shared out over the shards: beyond it a connection
//!   gets a canned `503` and is closed.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::sleep;
use hyper::body::{Body, Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, warn};

use super::{GlommioIo, GlommioTimer};
use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// listen(2) backlog.
const BACKLOG: i32 = 1024;
/// Refusals in flight per shard; past this, excess connections are just closed.
const MAX_REFUSING: usize = 64;

/// A request handler; one per shard, cloned per connection. Neither it, its
/// futures nor its bodies need to be `Send`.
pub trait Handler: Clone + 'static {
    type Body: Body<Data = Bytes, Error: Into<BoxError>> + 'static;
    /// Answer one request; `peer` is the client's address.
    fn call(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Self::Body>> + 'static + use<Self>;
}

/// The error type hyper accepts from bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bind one shard's listening socket on `addr` (`SO_REUSEPORT`; IPv6 sockets
/// are IPv6-only so `[::]` and `0.0.0.0` can share a port).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    // SAFETY: `sock` is a listening TCP socket we own; ownership moves.
    Ok(unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) })
}

/// One shard's server state, shared by its accept loops and connections.
pub struct HttpServer<H> {
    builder: http1::Builder,
    handler: H,
    write_timeout: Duration,
    max_open: usize,
    open: Cell<usize>,
    refusing: Cell<usize>,
    metrics: Arc<Metrics>,
}

impl<H: Handler> HttpServer<H> {
    pub fn new(config: &HttpConfig, shards: usize, handler: H, metrics: Arc<Metrics>) -> Rc<Self> {
        let mut builder = http1::Builder::new();
        builder
            .timer(GlommioTimer)
            .header_read_timeout(config.header_timeout)
            .keep_alive(true)
            .max_buf_size(config.max_request_head)
            .writev(true);
        Rc::new(Self {
            builder,
            handler,
            write_timeout: config.write_timeout,
            max_open: config.connections_per_shard(shards),
            open: Cell::new(0),
            refusing: Cell::new(0),
            metrics,
        })
    }

    /// Accept connections on `listener` until the shard stops.
    pub async fn run(self: Rc<Self>, listener: TcpListener) {
        loop {
            let stream = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE/ENFILE and the like: back off instead of spinning.
                    warn!("http: accept failed: {e}");
                    sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            if self.open.get() >= self.max_open {
                self.metrics
                    .http
                    .refused_busy
                    .fetch_add(1, Ordering::Relaxed);
                if self.refusing.get() < MAX_REFUSING {
                    glommio::spawn_local(refuse(stream, self.clone())).detach();
                } // else: dropped (closed) at once
                continue;
            }
            glommio::spawn_local(self.clone().serve(stream)).detach();
        }
    }

    /// One HTTP/1 connection, served until it closes or fails.
    async fn serve(self: Rc<Self>, stream: TcpStream) {
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let _open = OpenGuard::new(&self);
        let _ = stream.set_nodelay(true);
        let io = GlommioIo::new(stream, Some(self.write_timeout));
        let handler = self.handler.clone();
        let service = service_fn(move |req| {
            let res = handler.call(req, peer);
            async move { Ok::<_, Infallible>(res.await) }
        });
        if let Err(e) = self.builder.serve_connection(io, service).await {
            let m = &self.metrics.http;
            if e.is_timeout() {
                m.timed_out.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, "http: connection timed out: {e}");
            } else if e.is_parse() || e.is_parse_too_large() {
                m.bad_requests.fetch_add(1, Ordering::Relaxed);
                warn!(%peer, "http: malformed request, connection closed: {e}");
            } else {
                debug!(%peer, "http: connection closed: {e}");
            }
        }
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\ncontent-length: 33\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
{\"error\":\"too many connections\"}\n";

/// Answer 503 and close. The client's request is drained (for up to a second)
/// before closing: closing with unread input sends a RST, which can make the
/// client lose the 503 before reading it.
async fn refuse<H>(mut stream: TcpStream, server: Rc<HttpServer<H>>) {
    server.refusing.set(server.refusing.get() + 1);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(BUSY).await.is_ok() && stream.shutdown(Shutdown::Write).await.is_ok() {
        let drain = async {
            let mut buf = [0u8; 1024];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        future::or(drain, sleep(Duration::from_secs(1))).await;
    }
    server.refusing.set(server.refusing.get() - 1);
}

/// Counts one open connection on its shard (and process-wide) while alive.
struct OpenGuard<H>(Rc<HttpServer<H>>);

impl<H> OpenGuard<H> {
    fn new(server: &Rc<HttpServer<H>>) -> Self {
        server.open.set(server.open.get() + 1);
        let m = &server.metrics.http;
        m.accepted.fetch_add(1, Ordering::Relaxed);
        m.open.fetch_add(1, Ordering::Relaxed);
        Self(server.clone())
    }
}

impl<H> Drop for OpenGuard<H> {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.metrics.http.open.fetch_sub(1, Ordering::Relaxed);
    }
}
