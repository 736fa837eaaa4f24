//! The per-shard HTTP/1.1 server.
//!
//! [`start`] binds, in the calling thread, one listening socket per shard and
//! address (`SO_REUSEPORT`, IPv6 sockets `IPV6_V6ONLY`), so bind errors are
//! reported synchronously and port 0 resolves to one port for all sockets.
//! Each shard then runs one accept loop per address; every accepted connection
//! becomes one local task running hyper's HTTP/1 connection with a handler
//! built on that shard (it may hold `Rc` state).
//!
//! Limits:
//! * `header_read_timeout`: a request head must arrive in full within it. hyper
//!   (1.12) starts this timer whenever it waits for a request head, including
//!   on an idle keep-alive connection, so it is also the idle timeout;
//! * `write_stall`: a write making no progress for this long closes the connection;
//! * `max_buf_size`: request heads larger than this get `431` and a close;
//! * `max_conns_per_shard`: beyond it a connection gets a canned `503` and is closed.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::sleep;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement, PoolThreadHandles};
use hyper::body::{Body, Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tracing::{debug, warn};

use super::{GlommioIo, GlommioTimer};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Addresses to listen on, all with `port`.
    pub ips: Vec<IpAddr>,
    /// TCP port; 0 picks a free one (the same for every address).
    pub port: u16,
    /// Number of glommio executors (shards).
    pub shards: usize,
    /// Pin shards to CPUs (`PoolPlacement::MaxSpread`) rather than leave them unbound.
    pub pin: bool,
    /// Time allowed for a request head; also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// A write that makes no progress for this long fails and closes the connection.
    pub write_stall: Option<Duration>,
    /// Open connections per shard before new ones are refused with 503.
    pub max_conns_per_shard: usize,
    /// hyper's read/write buffer limit; bounds the request head size.
    pub max_buf_size: usize,
    /// Vectored writes (zero-copy bodies); `false` makes hyper copy bodies.
    pub writev: bool,
    /// glommio registered-buffer memory per shard (counts against `RLIMIT_MEMLOCK`).
    pub io_memory: usize,
    /// listen(2) backlog.
    pub backlog: i32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 8080,
            shards: 2,
            pin: true,
            header_read_timeout: Duration::from_secs(10),
            write_stall: Some(Duration::from_secs(30)),
            max_conns_per_shard: 10_000,
            max_buf_size: 16 << 10,
            writev: true,
            io_memory: 512 << 10,
            backlog: 1024,
        }
    }
}

/// Counters over all shards.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections refused with 503 (or dropped) because a shard was full.
    pub refused: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
}

/// A running server.
pub struct ServerHandle {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    /// Duplicates of the listening sockets, to wake the accept loops on stop.
    wakers: Vec<OwnedFd>,
    threads: PoolThreadHandles<()>,
    stats: Arc<Stats>,
}

impl ServerHandle {
    /// The bound addresses (with the actual port).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Server-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stop accepting, drop open connections and join the shards.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for fd in &self.wakers {
            // A pending accept on a listener shut down for reading fails at once.
            let _ = SockRef::from(fd).shutdown(Shutdown::Read);
        }
        for r in self.threads.join_all() {
            if let Err(e) = r {
                warn!("shard ended with an error: {e}");
            }
        }
    }
}

/// A request handler; one is built per shard and cloned per connection.
///
/// Neither the handler, its futures nor its bodies need to be `Send`.
/// Closures `Fn(Request<Incoming>) -> impl Future<Output = Response<B>>` qualify.
pub trait Handler: Clone + 'static {
    /// Response body type.
    type Body: Body<Data = Bytes, Error: Into<BoxError>> + 'static;
    /// Answer one request.
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Self::Body>> + 'static + use<Self>;
}

/// The error type hyper accepts from bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<F, Fut, B> Handler for F
where
    F: Fn(Request<Incoming>) -> Fut + Clone + 'static,
    Fut: Future<Output = Response<B>> + 'static,
    B: Body<Data = Bytes, Error: Into<BoxError>> + 'static,
{
    type Body = B;
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<B>> + 'static + use<F, Fut, B> {
        self(req)
    }
}

/// Per-shard state shared by its accept loops and connections.
struct Shard<H> {
    cfg: Arc<ServerConfig>,
    builder: http1::Builder,
    handler: H,
    open: Cell<usize>,
    refusing: Cell<usize>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

/// Start serving. `make_handler` runs once on each shard and builds that
/// shard's request handler, which may be `!Send` (e.g. hold `Rc` state).
pub fn start<M, H>(cfg: ServerConfig, make_handler: M) -> io::Result<ServerHandle>
where
    M: Fn() -> H + Send + Sync + 'static,
    H: Handler,
{
    let shards = cfg.shards.max(1);
    let (per_shard, addrs) = bind_all(&cfg, shards)?;
    let wakers = per_shard
        .iter()
        .flatten()
        .map(|fd| fd.try_clone())
        .collect::<io::Result<Vec<_>>>()?;
    let placement = if cfg.pin {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        PoolPlacement::Unbound(shards)
    };
    let per_shard = Arc::new(Mutex::new(per_shard));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let make_handler = Arc::new(make_handler);
    let cfg = Arc::new(cfg);
    let threads = LocalExecutorPoolBuilder::new(placement)
        .io_memory(cfg.io_memory)
        .name("http")
        .on_all_shards({
            let (stop, stats) = (stop.clone(), stats.clone());
            move || {
                let fds = per_shard.lock().unwrap().pop().unwrap_or_default();
                async move {
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(GlommioTimer)
                        .header_read_timeout(cfg.header_read_timeout)
                        .keep_alive(true)
                        .max_buf_size(cfg.max_buf_size)
                        .writev(cfg.writev);
                    let shard = Rc::new(Shard {
                        handler: make_handler(),
                        cfg,
                        builder,
                        open: Cell::new(0),
                        refusing: Cell::new(0),
                        stats,
                        stop,
                    });
                    let loops: Vec<_> = fds
                        .into_iter()
                        .map(|fd| {
                            // SAFETY: `fd` is a listening TCP socket we own; ownership moves.
                            let listener = unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) };
                            glommio::spawn_local(accept_loop(listener, shard.clone()))
                        })
                        .collect();
                    for l in loops {
                        l.await;
                    }
                }
            }
        })
        .map_err(|e| io::Error::other(format!("cannot start {shards} executors: {e}")))?;
    Ok(ServerHandle {
        addrs,
        stop,
        wakers,
        threads,
        stats,
    })
}

/// Bind `shards` listening sockets per address; returns them grouped by shard.
fn bind_all(cfg: &ServerConfig, shards: usize) -> io::Result<(Vec<Vec<OwnedFd>>, Vec<SocketAddr>)> {
    let mut port = cfg.port;
    let mut per_shard: Vec<Vec<OwnedFd>> = (0..shards).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for ip in &cfg.ips {
        for fds in per_shard.iter_mut() {
            let sock = bind_one(SocketAddr::new(*ip, port), cfg.backlog)?;
            if port == 0 {
                port = sock.local_addr()?.as_socket().map_or(0, |a| a.port());
            }
            fds.push(sock.into());
        }
        addrs.push(SocketAddr::new(*ip, port));
    }
    Ok((per_shard, addrs))
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Keep [::] from also taking IPv4 traffic meant for the 0.0.0.0 group.
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    sock.listen(backlog)?;
    Ok(sock)
}

async fn accept_loop<H: Handler>(listener: TcpListener, shard: Rc<Shard<H>>) {
    loop {
        let accepted = listener.accept().await;
        if shard.stop.load(Ordering::Relaxed) {
            return;
        }
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE/ENFILE and the like: back off instead of spinning.
                warn!("accept failed: {e}");
                sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if shard.open.get() >= shard.cfg.max_conns_per_shard {
            shard.stats.refused.fetch_add(1, Ordering::Relaxed);
            if shard.refusing.get() < MAX_REFUSING {
                glommio::spawn_local(refuse(stream, shard.clone())).detach();
            } // else: dropped (closed) at once
            continue;
        }
        glommio::spawn_local(serve_conn(stream, ConnGuard::new(&shard))).detach();
    }
}

/// One HTTP/1 connection, served until it closes or fails.
async fn serve_conn<H: Handler>(stream: TcpStream, conn: ConnGuard<H>) {
    let shard = &conn.0;
    let _ = stream.set_nodelay(true);
    let io = GlommioIo::new(stream, shard.cfg.write_stall);
    let handler = shard.handler.clone();
    let service = service_fn(move |req| {
        let res = handler.call(req);
        async move { Ok::<_, Infallible>(res.await) }
    });
    if let Err(e) = shard.builder.serve_connection(io, service).await {
        debug!("connection closed: {e}");
    }
}

/// Refusals in flight per shard; past this, excess connections are just closed.
const MAX_REFUSING: usize = 64;
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\ncontent-length: 33\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
{\"error\":\"too many connections\"}\n";

/// Answer 503 and close. The client's request is drained (for up to a second)
/// before closing: closing with unread input sends a RST, which can make the
/// client lose the 503 before reading it.
async fn refuse<H>(mut stream: TcpStream, shard: Rc<Shard<H>>) {
    shard.refusing.set(shard.refusing.get() + 1);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(BUSY).await.is_ok() && stream.shutdown(Shutdown::Write).await.is_ok() {
        let drain = async {
            let mut buf = [0u8; 1024];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        future::or(drain, sleep(Duration::from_secs(1))).await;
    }
    shard.refusing.set(shard.refusing.get() - 1);
}

/// Counts one open connection on its shard (and server-wide) while alive.
struct ConnGuard<H>(Rc<Shard<H>>);

impl<H> ConnGuard<H> {
    fn new(shard: &Rc<Shard<H>>) -> Self {
        shard.open.set(shard.open.get() + 1);
        shard.stats.accepted.fetch_add(1, Ordering::Relaxed);
        shard.stats.active.fetch_add(1, Ordering::Relaxed);
        Self(shard.clone())
    }
}

impl<H> Drop for ConnGuard<H> {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}
