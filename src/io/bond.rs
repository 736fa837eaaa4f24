//! `bond`: the I/O shell around the SRTLA [`Sender`]. One UDP socket per
//! link, bound to the link's source address and connected to the receiver;
//! one UDP socket the local SRT caller (e.g. ffmpeg) sends to. One thread,
//! blocking in poll(2); no async runtime.
//!
//! Binding a source address picks the link only where the host routes by
//! source address (policy routing, as for any SRTLA sender).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, info, warn};

use crate::proto::srtla::sender::{Note, Output, Sender, SenderConfig, WINDOW_SCALE};

pub const USAGE: &str = "usage: srtgate bond --srt ADDR:PORT --to HOST:PORT --via IP [--via IP ...]
  --srt ADDR:PORT  local address the SRT caller sends to (srt://ADDR:PORT)
  --to HOST:PORT   the SRTLA receiver
  --via IP         source address of one link (repeat for each link)";

/// Largest datagram received: SRT packets are at most 1500 bytes.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams are received into chunks this big and split off without
/// copying; a chunk is allocated when the last one is used up.
const RECV_CHUNK: usize = 64 * 1024;
/// Socket buffers: room for bursts at tens of Mbit/s.
const SOCKET_BUFFER: usize = 4 << 20;
/// Datagrams taken from one socket per poll round, so no socket starves the
/// others.
const BATCH: usize = 64;
/// Interval of the per-link statistics line.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Command line of `bond`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondOptions {
    pub srt_listen: SocketAddr,
    pub receiver: SocketAddr,
    pub via: Vec<IpAddr>,
}

impl BondOptions {
    /// Parse the arguments (without the program name). `--to` is resolved
    /// here, to an address of the family of the `--via` addresses.
    pub fn parse(args: impl Iterator<Item = String>) -> Result<BondOptions, String> {
        let (mut srt, mut to, mut via) = (None, None, Vec::new());
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            if flag == "-h" || flag == "--help" {
                return Err(USAGE.to_owned());
            }
            let value = inline
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--srt" => srt = Some(parse_value::<SocketAddr>(&flag, &value)?),
                "--to" => to = Some(value),
                "--via" => via.push(parse_value::<IpAddr>(&flag, &value)?),
                _ => return Err(format!("unknown argument {flag}")),
            }
        }
        let srt_listen = srt.ok_or("--srt is required")?;
        let to = to.ok_or("--to is required")?;
        let first = *via.first().ok_or("at least one --via is required")?;
        check_vias(&via)?;
        let receiver = resolve(&to, first.is_ipv4())?;
        Ok(BondOptions {
            srt_listen,
            receiver,
            via,
        })
    }
}

fn parse_value<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: cannot parse {value:?}"))
}

/// One family (one receiver address serves them all), no duplicates.
fn check_vias(via: &[IpAddr]) -> Result<(), String> {
    for (i, a) in via.iter().enumerate() {
        if a.is_ipv4() != via[0].is_ipv4() {
            return Err(format!("--via {a}: mixes IPv4 and IPv6"));
        }
        if via[..i].contains(a) {
            return Err(format!("--via {a} given twice"));
        }
    }
    Ok(())
}

/// `HOST:PORT` to an address of the wanted family.
fn resolve(to: &str, ipv4: bool) -> Result<SocketAddr, String> {
    let addrs = to
        .to_socket_addrs()
        .map_err(|e| format!("--to {to}: {e}"))?;
    addrs
        .into_iter()
        .find(|a| a.is_ipv4() == ipv4)
        .ok_or_else(|| format!("--to {to}: no address of the --via family"))
}

/// Bond the links until killed; errors only while setting up, or if
/// poll(2) itself fails.
pub fn run(opts: BondOptions) -> anyhow::Result<()> {
    let mut bond = Bond::new(&opts)?;
    info!(
        srt = %opts.srt_listen,
        receiver = %opts.receiver,
        links = opts.via.len(),
        "bonding"
    );
    loop {
        bond.turn()?;
    }
}

struct Link {
    socket: UdpSocket,
    via: IpAddr,
}

struct Bond {
    sender: Sender,
    caller: UdpSocket,
    /// Where packets for the caller go: the source of its latest packet.
    caller_addr: Option<SocketAddr>,
    links: Vec<Link>,
    receiver: SocketAddr,
    poll_fds: Vec<libc::pollfd>,
    rng: StdRng,
    out: Vec<Output>,
    failed: Vec<usize>,
    buf: BytesMut,
    /// Datagrams the kernel would not take (full buffer): dropped.
    send_drops: u64,
    next_report: Instant,
    reported_packets: Vec<u64>,
}

impl Bond {
    fn new(opts: &BondOptions) -> anyhow::Result<Self> {
        let caller = udp_socket(opts.srt_listen, None)
            .with_context(|| format!("listening for the SRT caller on {}", opts.srt_listen))?;
        let mut links = Vec::with_capacity(opts.via.len());
        for &via in &opts.via {
            let socket = udp_socket(SocketAddr::new(via, 0), Some(opts.receiver))
                .with_context(|| format!("link from {via} to {}", opts.receiver))?;
            links.push(Link { socket, via });
        }
        let poll_fds = std::iter::once(caller.as_raw_fd())
            .chain(links.iter().map(|l| l.socket.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let now = Instant::now();
        Ok(Self {
            sender: Sender::new(links.len(), SenderConfig::default(), now),
            caller,
            caller_addr: None,
            reported_packets: vec![0; links.len()],
            links,
            receiver: opts.receiver,
            poll_fds,
            rng: StdRng::from_entropy(),
            out: Vec::new(),
            failed: Vec::new(),
            buf: BytesMut::new(),
            send_drops: 0,
            next_report: now + REPORT_EVERY,
        })
    }

    /// Wait for datagrams or the next timer, and handle what is there.
    fn turn(&mut self) -> anyhow::Result<()> {
        self.wait()?;
        for i in 0..self.poll_fds.len() {
            if self.poll_fds[i].revents == 0 {
                continue;
            }
            match i {
                0 => self.recv_caller(),
                _ => self.recv_link(i - 1),
            }
        }
        let now = Instant::now();
        if self.sender.next_timeout() <= now {
            self.sender.on_timer(now, &mut self.rng, &mut self.out);
            self.flush(now);
        }
        if self.next_report <= now {
            self.next_report = now + REPORT_EVERY;
            self.report();
        }
        Ok(())
    }

    /// poll(2) until a socket is readable or the next deadline.
    fn wait(&mut self) -> anyhow::Result<()> {
        let deadline = self.sender.next_timeout().min(self.next_report);
        let wait = deadline.saturating_duration_since(Instant::now());
        // Round up, so a deadline 0.3 ms away does not spin.
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        for fd in &mut self.poll_fds {
            fd.revents = 0;
        }
        // SAFETY: the pointer and length describe `poll_fds`, which lives
        // across the call; poll only writes `revents` of those entries.
        let n = unsafe {
            libc::poll(
                self.poll_fds.as_mut_ptr(),
                self.poll_fds.len() as libc::nfds_t,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e).context("poll");
            }
        }
        Ok(())
    }

    /// The `n` bytes just received, as `Bytes` sharing the chunk.
    fn received(&mut self, n: usize) -> Bytes {
        self.buf.truncate(n);
        self.buf.split().freeze()
    }

    fn recv_caller(&mut self) {
        for _ in 0..BATCH {
            let result = self.caller.recv_from(recv_space(&mut self.buf));
            match result {
                Ok((n, from)) => {
                    if self.caller_addr != Some(from) {
                        info!(caller = %from, "SRT caller");
                        self.caller_addr = Some(from);
                    }
                    let data = self.received(n);
                    let now = Instant::now();
                    self.sender.on_caller(now, data, &mut self.out);
                    self.flush(now);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(error = %e, "receiving from the SRT caller");
                    return;
                }
            }
        }
    }

    fn recv_link(&mut self, link: usize) {
        for _ in 0..BATCH {
            let result = self.links[link].socket.recv(recv_space(&mut self.buf));
            let now = Instant::now();
            match result {
                Ok(n) => {
                    let data = self.received(n);
                    self.sender.on_link(now, link, data, &mut self.out);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ECONNREFUSED and the like, from ICMP: the receiver is
                    // not there on this path. The link retries by itself.
                    debug!(via = %self.links[link].via, error = %e, "link receive");
                    self.sender.on_link_error(now, link, &mut self.out);
                }
            }
            self.flush(now);
        }
    }

    /// Carry out the sender's outputs. A failed send marks its link down,
    /// which yields notes, so this runs until nothing is left.
    fn flush(&mut self, now: Instant) {
        let mut out = std::mem::take(&mut self.out);
        while !out.is_empty() {
            for o in out.drain(..) {
                self.carry_out(o);
            }
            for link in self.failed.drain(..) {
                self.sender.on_link_error(now, link, &mut out);
            }
        }
        self.out = out;
    }

    fn carry_out(&mut self, o: Output) {
        match o {
            Output::Link { link, data } => {
                let Some(l) = self.links.get(link) else {
                    return;
                };
                match l.socket.send(&data) {
                    Ok(_) => {}
                    Err(e) if is_transient(&e) => self.send_drops += 1,
                    Err(e) => {
                        debug!(via = %l.via, error = %e, "link send");
                        self.failed.push(link);
                    }
                }
            }
            Output::Caller(data) => {
                if let Some(to) = self.caller_addr {
                    if let Err(e) = self.caller.send_to(&data, to) {
                        debug!(caller = %to, error = %e, "sending to the SRT caller");
                    }
                }
            }
            Output::Note(note) => self.log_note(note),
        }
    }

    fn via(&self, link: usize) -> String {
        self.links
            .get(link)
            .map_or_else(|| format!("#{link}"), |l| l.via.to_string())
    }

    fn log_note(&self, note: Note) {
        match note {
            Note::Registered => info!(receiver = %self.receiver, "group registered"),
            Note::GroupLost => warn!(
                receiver = %self.receiver,
                "receiver does not know the group (REG_NGP): registering again"
            ),
            Note::LinkUp { link } => info!(via = %self.via(link), "link up"),
            Note::LinkDown { link, reason } => {
                info!(via = %self.via(link), reason, "link down");
            }
            Note::Refused { link, reason } => warn!(via = %self.via(link), reason, "refused"),
        }
    }

    /// One line: each link's share of the packets since the last report,
    /// window, packets in flight, round trip and losses.
    fn report(&mut self) {
        let stats = self.sender.stats();
        let sent: Vec<u64> = stats
            .iter()
            .zip(&self.reported_packets)
            .map(|(s, before)| s.packets_sent.saturating_sub(*before))
            .collect();
        let total = sent.iter().sum::<u64>().max(1);
        let mut line = String::new();
        for ((s, n), l) in stats.iter().zip(&sent).zip(&self.links) {
            let rtt = s
                .rtt
                .map_or("-".to_owned(), |r| format!("{}ms", r.as_millis()));
            line.push_str(&format!(
                "{} {} {}% w={:.1} f={} rtt={} lost={}; ",
                l.via,
                if s.up { "up" } else { "down" },
                n * 100 / total,
                f64::from(s.window) / f64::from(WINDOW_SCALE),
                s.in_flight,
                rtt,
                s.naks,
            ));
        }
        self.reported_packets = stats.iter().map(|s| s.packets_sent).collect();
        let dropped = self.sender.dropped();
        info!(
            registered = self.sender.group_registered(),
            packets = total,
            dropped_no_link = dropped.no_link,
            dropped_not_srt = dropped.not_srt,
            send_drops = self.send_drops,
            "links: {}",
            line.trim_end_matches("; ")
        );
    }
}

/// Room for one datagram at the end of the receive chunk `buf`.
fn recv_space(buf: &mut BytesMut) -> &mut [u8] {
    buf.clear();
    if buf.capacity() < MAX_DATAGRAM {
        buf.reserve(RECV_CHUNK);
    }
    buf.resize(MAX_DATAGRAM, 0);
    &mut buf[..]
}

/// Errors that lose one datagram but say nothing about the link.
fn is_transient(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || e.kind() == io::ErrorKind::Interrupted
        || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// A non-blocking UDP socket with large buffers, bound to `bind` and, for
/// links, connected (so the kernel filters other sources and reports ICMP
/// errors).
fn udp_socket(bind: SocketAddr, connect: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    if let Err(e) = s.set_recv_buffer_size(SOCKET_BUFFER) {
        warn!(error = %e, "SO_RCVBUF");
    }
    if let Err(e) = s.set_send_buffer_size(SOCKET_BUFFER) {
        warn!(error = %e, "SO_SNDBUF");
    }
    s.bind(&bind.into())?;
    if let Some(to) = connect {
        s.connect(&to.into())?;
    }
    s.set_nonblocking(true)?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BondOptions, String> {
        BondOptions::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_the_command_line() {
        let o = parse(&[
            "--srt",
            "127.0.0.1:6000",
            "--to=127.0.0.1:5000",
            "--via",
            "127.0.0.2",
            "--via",
            "127.0.0.3",
        ])
        .unwrap();
        assert_eq!(o.srt_listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(o.receiver, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(o.via.len(), 2);
        let o = parse(&["--srt", "[::1]:6000", "--to", "[::1]:5000", "--via", "::1"]);
        assert!(o.is_ok_and(|o| o.receiver.is_ipv6()));
        let o = parse(&[
            "--srt",
            "[::1]:6000",
            "--to",
            "127.0.0.1:5000",
            "--via",
            "::1",
        ]);
        assert!(o.unwrap_err().contains("family"));
    }

    #[test]
    fn rejects_bad_command_lines() {
        let bad: [&[&str]; 7] = [
            &["--srt", "127.0.0.1:6000", "--to", "127.0.0.1:5000"],
            &["--to", "127.0.0.1:5000", "--via", "127.0.0.1"],
            &["--srt", "x", "--to", "127.0.0.1:5000", "--via", "127.0.0.1"],
            &[
                "--srt",
                "127.0.0.1:1",
                "--to",
                "127.0.0.1:5",
                "--via",
                "1.2.3.4",
                "--via",
                "::1",
            ],
            &[
                "--srt",
                "127.0.0.1:1",
                "--to",
                "127.0.0.1:5",
                "--via",
                "1.2.3.4",
                "--via",
                "1.2.3.4",
            ],
            &["--srt", "127.0.0.1:1", "--to", "127.0.0.1:5", "--via"],
            &["--bogus", "1"],
        ];
        for args in bad {
            assert!(parse(args).is_err(), "{args:?}");
        }
        assert_eq!(parse(&["--help"]), Err(USAGE.to_owned()));
    }
}
