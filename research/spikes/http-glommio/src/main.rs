//! `httpspike`: run the demo server for a bounded time.
//!
//! ```text
//! httpspike [--port 8080] [--shards 2] [--max-conns 10000] [--header-timeout-ms 10000]
//!           [--secs 120] [--no-writev] [--no-ipv6] [--no-pin]
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use httpspike::demo;
use httpspike::io::http::server::{self, ServerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = ServerConfig {
        ips: vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
        ..ServerConfig::default()
    };
    let mut secs = 120;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut num = || -> Result<u64, Box<dyn std::error::Error>> {
            Ok(args.next().ok_or(format!("{arg} needs a value"))?.parse()?)
        };
        match arg.as_str() {
            "--port" => cfg.port = u16::try_from(num()?)?,
            "--shards" => cfg.shards = usize::try_from(num()?)?,
            "--max-conns" => cfg.max_conns_per_shard = usize::try_from(num()?)?,
            "--header-timeout-ms" => cfg.header_read_timeout = Duration::from_millis(num()?),
            "--secs" => secs = num()?,
            "--no-writev" => cfg.writev = false,
            "--no-ipv6" => cfg.ips.truncate(1),
            "--no-pin" => cfg.pin = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let server = server::start(cfg.clone(), demo::make_handler)?;
    eprintln!(
        "listening on {:?}: {} shards, writev={}, header timeout {:?}; stopping in {secs} s",
        server.addrs(),
        cfg.shards,
        cfg.writev,
        cfg.header_read_timeout
    );
    std::thread::sleep(Duration::from_secs(secs));
    let s = server.stats();
    eprintln!("stopping: {s:?}");
    server.stop();
    Ok(())
}
