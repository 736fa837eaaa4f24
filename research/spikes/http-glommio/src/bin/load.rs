//! `load`: a small closed-loop HTTP/1.1 load client (std threads, blocking
//! sockets, keep-alive, one request in flight per connection).
//!
//! ```text
//! load [--addr 127.0.0.1:8080] [--path /hello] [--conns 4] [--secs 5] [--max 5000000]
//! ```
//! Each connection runs on its own thread until `--secs` pass or `--max`
//! requests were made in total, then prints requests/s, body MB/s and latency
//! percentiles. Bounded in time and count by design.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    addr: SocketAddr,
    path: String,
    conns: usize,
    secs: u64,
    max: u64,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    bytes: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut o = Opts {
        addr: "127.0.0.1:8080".parse()?,
        path: "/hello".into(),
        conns: 4,
        secs: 5,
        max: 5_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let val = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--addr" => o.addr = val.parse()?,
            "--path" => o.path = val,
            "--conns" => o.conns = val.parse()?,
            "--secs" => o.secs = val.parse()?,
            "--max" => o.max = val.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let o = Arc::new(o);
    let budget = Arc::new(AtomicU64::new(o.max));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.secs);
    let threads: Vec<_> = (0..o.conns)
        .map(|_| {
            let (o, budget) = (o.clone(), budget.clone());
            std::thread::spawn(move || run(&o, &budget, deadline))
        })
        .collect();
    let mut all = Tally::default();
    for t in threads {
        let t = t.join().map_err(|_| "load thread panicked")?;
        all.requests += t.requests;
        all.bytes += t.bytes;
        all.errors += t.errors;
        all.latencies_us.extend(t.latencies_us);
    }
    let secs = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let v = &all.latencies_us;
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} {} conns={} {:.1}s: {} req, {:.0} req/s, {:.1} MB/s body, errors={}, p50={}us p99={}us max={}us",
        o.addr,
        o.path,
        o.conns,
        secs,
        all.requests,
        all.requests as f64 / secs,
        all.bytes as f64 / secs / 1e6,
        all.errors,
        pct(0.50),
        pct(0.99),
        all.latencies_us.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// One connection's loop; reconnects after an error.
fn run(o: &Opts, budget: &AtomicU64, deadline: Instant) -> Tally {
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", o.path, o.addr);
    let mut tally = Tally::default();
    let mut line = String::new();
    'connect: while Instant::now() < deadline {
        let Ok(stream) = TcpStream::connect(o.addr) else {
            tally.errors += 1;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut writer = &stream;
        let mut reader = BufReader::with_capacity(256 << 10, &stream);
        while Instant::now() < deadline {
            if budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .is_err()
            {
                return tally;
            }
            let t0 = Instant::now();
            match writer
                .write_all(request.as_bytes())
                .and_then(|_| read_response(&mut reader, &mut line))
            {
                Ok(body) => {
                    tally.requests += 1;
                    tally.bytes += body;
                    tally
                        .latencies_us
                        .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                Err(_) => {
                    tally.errors += 1;
                    continue 'connect;
                }
            }
        }
    }
    tally
}

/// Read one response with a `Content-Length` body; returns the body length.
fn read_response(reader: &mut BufReader<&TcpStream>, line: &mut String) -> io::Result<u64> {
    let mut len = None;
    let mut first = true;
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if first {
            first = false;
            if !line.starts_with("HTTP/1.1 200") {
                return Err(io::Error::other(format!("status: {line}")));
            }
            continue;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse::<u64>().ok();
            }
        }
    }
    let len = len.ok_or_else(|| io::Error::other("no content-length"))?;
    let got = io::copy(&mut reader.by_ref().take(len), &mut io::sink())?;
    if got != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(len)
}
