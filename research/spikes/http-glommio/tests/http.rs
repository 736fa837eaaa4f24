//! End-to-end tests over loopback: routes, limits and timeouts.
//!
//! Each test starts its own server on a free port (short timeouts so the
//! suite stays quick) and talks raw HTTP/1.1 over blocking std sockets.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use httpspike::demo::{self, BIG_LEN};
use httpspike::io::http::server::{self, ServerConfig, ServerHandle};

fn config(shards: usize) -> ServerConfig {
    ServerConfig {
        port: 0,
        shards,
        pin: false,
        header_read_timeout: Duration::from_secs(1),
        write_stall: Some(Duration::from_secs(1)),
        io_memory: 128 << 10,
        ..ServerConfig::default()
    }
}

fn start(cfg: ServerConfig) -> ServerHandle {
    server::start(cfg, demo::make_handler).expect("server starts")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A parsed response: status, lower-cased head, body.
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Read one response (body by Content-Length; none for HEAD).
fn read_resp(s: &mut TcpStream, head_only: bool) -> std::io::Result<Resp> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { len }];
    s.read_exact(&mut body)?;
    Ok(Resp { status, head, body })
}

/// Send one request in one write (`write!` would issue several).
fn send(s: &mut TcpStream, method: &str, path: &str) {
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
}

fn get(s: &mut TcpStream, path: &str) -> Resp {
    send(s, "GET", path);
    read_resp(s, false).unwrap()
}

/// Wait until the peer closes; returns how long that took.
fn time_to_close(s: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn routes_ipv4_and_ipv6() {
    let mut cfg = config(2);
    cfg.ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let srv = start(cfg);
    for addr in srv.addrs().to_vec() {
        let mut s = connect(addr);
        let r = get(&mut s, "/hello");
        assert_eq!(r.status, 200);
        assert!(r.head.contains("content-type: text/plain"));
        assert_eq!(r.body, b"hello from glommio+hyper\n");

        let r = get(&mut s, "/big");
        assert_eq!((r.status, r.body.len()), (200, BIG_LEN));
        assert!(r.body.iter().all(|&b| b == b'x'));

        // HEAD: Content-Length of the GET body, but no body on the wire: the
        // next response on the same connection must parse cleanly.
        send(&mut s, "HEAD", "/big");
        let r = read_resp(&mut s, true).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.head.contains(&format!("content-length: {BIG_LEN}")));

        let r = get(&mut s, "/nope");
        assert_eq!(r.status, 404);
        assert!(r.head.contains("content-type: application/json"));
        assert_eq!(r.body, br#"{"error":"not found"}"#);
    }
    assert_eq!(srv.stats().accepted.load(Ordering::Relaxed), 2);
    srv.stop();
}

#[test]
fn long_wait_does_not_block_the_shard() {
    let srv = start(config(1));
    let addr = srv.addrs()[0];
    let waiter = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = get(&mut connect(addr), "/wait?ms=1000");
        (r.status, String::from_utf8(r.body).unwrap(), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let mut s = connect(addr);
    for _ in 0..50 {
        assert_eq!(get(&mut s, "/hello").status, 200);
    }
    let busy = t0.elapsed();
    let (status, body, waited) = waiter.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "waited 1000 ms\n"));
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    assert!(
        busy < Duration::from_millis(500),
        "50 requests took {busy:?} during the wait"
    );
    srv.stop();
}

#[test]
fn oversized_head_is_rejected_others_unaffected() {
    let srv = start(config(1));
    let addr = srv.addrs()[0];
    let mut good = connect(addr);
    assert_eq!(get(&mut good, "/hello").status, 200);

    let mut bad = connect(addr);
    let mut req = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    req.resize(req.len() + (64 << 10), b'a');
    req.extend_from_slice(b"\r\n\r\n");
    let _ = bad.write_all(&req); // the server may close before reading it all
    match read_resp(&mut bad, false) {
        Ok(r) => assert_eq!(r.status, 431),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
            ),
            "{e}"
        ),
    }
    assert_eq!(get(&mut good, "/hello").status, 200);
    srv.stop();
}

#[test]
fn slow_loris_is_cut_after_header_timeout() {
    let srv = start(config(1));
    let mut s = connect(srv.addrs()[0]);
    s.write_all(b"GET /hel").unwrap();
    let took = time_to_close(&mut s);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    srv.stop();
}

#[test]
fn idle_keep_alive_is_closed() {
    let srv = start(config(1));
    let mut s = connect(srv.addrs()[0]);
    assert_eq!(get(&mut s, "/hello").status, 200);
    let took = time_to_close(&mut s);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // Still served while requests keep coming faster than the timeout.
    let mut s = connect(srv.addrs()[0]);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(get(&mut s, "/hello").status, 200);
    }
    srv.stop();
}

#[test]
fn connection_limit_refuses_with_503() {
    let mut cfg = config(1);
    cfg.max_conns_per_shard = 3;
    let srv = start(cfg);
    let addr = srv.addrs()[0];
    let mut open: Vec<_> = (0..3).map(|_| connect(addr)).collect();
    for s in &mut open {
        assert_eq!(get(s, "/hello").status, 200);
    }
    let mut extra = connect(addr);
    send(&mut extra, "GET", "/hello");
    let r = read_resp(&mut extra, false).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.head.contains("retry-after: 1") && r.head.contains("connection: close"));
    assert_eq!(r.body, b"{\"error\":\"too many connections\"}\n");
    assert!(time_to_close(&mut extra) < Duration::from_secs(1));
    assert_eq!(srv.stats().refused.load(Ordering::Relaxed), 1);

    drop(open.pop());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(&mut connect(addr), "/hello").status, 200);
    assert_eq!(get(&mut open[0], "/hello").status, 200);
    srv.stop();
}

#[test]
fn stalled_reader_is_dropped() {
    let srv = start(config(1));
    let mut s = connect(srv.addrs()[0]);
    // 20 pipelined 2 MiB responses that we never read: the server's writes stall.
    for _ in 0..20 {
        send(&mut s, "GET", "/big");
    }
    let t0 = Instant::now();
    while srv.stats().active.load(Ordering::Relaxed) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(2), "never accepted");
        std::thread::sleep(Duration::from_millis(10));
    }
    while srv.stats().active.load(Ordering::Relaxed) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "connection still open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    srv.stop();
}
