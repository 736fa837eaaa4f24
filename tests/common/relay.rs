//! Userspace UDP relays: between an SRT caller and the gateway, dropping a
//! seeded share of the caller's data packets (loss without netem); and
//! between an SRTLA sender's links and the gateway, with a delay, loss and a
//! cut switch per link.
//!
//! The caller connects to the relay's port; the relay forwards to the gateway
//! from a socket of its own and sends the answers back. Only SRT data packets
//! (top bit clear) from the caller are dropped, never handshakes or control
//! packets, so connecting stays deterministic.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct LossyRelay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub forwarded: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl LossyRelay {
    /// Relay to `gateway`, dropping `loss` (0..1) of the caller's data packets.
    pub fn start(gateway: SocketAddr, loss: f64, seed: u64) -> LossyRelay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind relay front");
        let back = UdpSocket::bind("127.0.0.1:0").expect("bind relay back");
        back.connect(gateway).expect("connect relay back");
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let port = front.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let caller: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (front, back) = (Arc::new(front), Arc::new(back));

        let upstream = {
            let (front, back, stop, caller) =
                (front.clone(), back.clone(), stop.clone(), caller.clone());
            let (forwarded, dropped) = (forwarded.clone(), dropped.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *caller.lock().unwrap() = Some(from);
                    let is_data = n >= 16 && buf[0] & 0x80 == 0;
                    if is_data && rng.gen_bool(loss) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    forwarded.fetch_add(1, Ordering::Relaxed);
                    let _ = back.send(&buf[..n]);
                }
            })
        };
        let downstream = {
            let (front, back, stop) = (front, back, stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = back.recv(&mut buf) else { continue };
                    if let Some(to) = *caller.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            })
        };
        LossyRelay {
            port,
            stop,
            forwarded,
            dropped,
            threads: vec![upstream, downstream],
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How the relay treats one bonded link.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// The sender's source address for this link (127.0.0.1, .2, .3 …).
    pub ip: IpAddr,
    /// Added on the way up (sender to gateway).
    pub delay: Duration,
    /// Share (0..1) of the sender's SRT data packets dropped.
    pub loss: f64,
    /// Whether the link starts connected.
    pub up: bool,
}

impl Link {
    pub fn clean(ip: &str) -> Link {
        Link {
            ip: ip.parse().expect("link ip"),
            delay: Duration::ZERO,
            loss: 0.0,
            up: true,
        }
    }
    pub fn delay(mut self, d: Duration) -> Link {
        self.delay = d;
        self
    }
    pub fn loss(mut self, l: f64) -> Link {
        self.loss = l;
        self
    }
    pub fn down(mut self) -> Link {
        self.up = false;
        self
    }
}

struct LinkState {
    link: Link,
    back: UdpSocket,
    up: AtomicBool,
    sender: Mutex<Option<SocketAddr>>,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// Bonded links between an SRTLA sender and the gateway, emulated in
/// userspace: the sender sends every link to `port`, and the relay tells the
/// links apart by source address. Each link gets a one-way delay on the way
/// up, a seeded share of its SRT data packets dropped, and a switch that cuts
/// it both ways. Each link is forwarded from a socket of its own, so the
/// gateway sees one address per link.
pub struct LinksRelay {
    pub port: u16,
    links: Arc<Vec<LinkState>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl LinksRelay {
    pub fn start(gateway: SocketAddr, links: &[Link], seed: u64) -> LinksRelay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind links front"));
        let port = front.local_addr().unwrap().port();
        let states: Vec<LinkState> = links
            .iter()
            .map(|l| {
                let back = UdpSocket::bind("127.0.0.1:0").expect("bind link back");
                back.connect(gateway).expect("connect link back");
                back.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                LinkState {
                    link: *l,
                    back,
                    up: AtomicBool::new(l.up),
                    sender: Mutex::new(None),
                    forwarded: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                }
            })
            .collect();
        let links = Arc::new(states);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (front, links, stop) = (front.clone(), links.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                upstream(&front, &links, &stop, seed)
            }));
        }
        for i in 0..links.len() {
            let (front, links, stop) = (front.clone(), links.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let l = &links[i];
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = l.back.recv(&mut buf) else {
                        continue;
                    };
                    if !l.up.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Some(to) = *l.sender.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            }));
        }
        LinksRelay {
            port,
            links,
            stop,
            threads,
        }
    }

    fn state(&self, ip: &str) -> &LinkState {
        let ip: IpAddr = ip.parse().expect("link ip");
        self.links
            .iter()
            .find(|l| l.link.ip == ip)
            .expect("a link of this relay")
    }

    /// Cut the link from `ip` (both ways) or bring it back.
    pub fn set_up(&self, ip: &str, up: bool) {
        self.state(ip).up.store(up, Ordering::Relaxed);
    }

    /// Datagrams forwarded up and dropped on the link from `ip`.
    pub fn counts(&self, ip: &str) -> (u64, u64) {
        let l = self.state(ip);
        (
            l.forwarded.load(Ordering::Relaxed),
            l.dropped.load(Ordering::Relaxed),
        )
    }
}

/// A datagram on its way up: (due, arrival order, link, bytes).
type Delayed = (Instant, u64, usize, Vec<u8>);

/// Sender to gateway: pick the link by source address, drop or delay.
fn upstream(front: &UdpSocket, links: &[LinkState], stop: &AtomicBool, seed: u64) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut rng = StdRng::seed_from_u64(seed);
    // Earliest first.
    let mut queue: BinaryHeap<Reverse<Delayed>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.peek().is_some_and(|Reverse((due, ..))| *due <= now) {
            let Reverse((_, _, i, d)) = queue.pop().unwrap();
            let _ = links[i].back.send(&d);
        }
        let wait = queue
            .peek()
            .map_or(Duration::from_millis(20), |Reverse((due, ..))| {
                due.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(100), Duration::from_millis(20));
        front.set_read_timeout(Some(wait)).unwrap();
        let Ok((n, from)) = front.recv_from(&mut buf) else {
            continue;
        };
        let Some(i) = links.iter().position(|l| l.link.ip == from.ip()) else {
            continue;
        };
        let l = &links[i];
        *l.sender.lock().unwrap() = Some(from);
        let is_data = n >= 16 && buf[0] & 0x80 == 0;
        if !l.up.load(Ordering::Relaxed) || (is_data && rng.gen_bool(l.link.loss)) {
            l.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        l.forwarded.fetch_add(1, Ordering::Relaxed);
        if l.link.delay.is_zero() {
            let _ = l.back.send(&buf[..n]);
        } else {
            order += 1;
            queue.push(Reverse((
                Instant::now() + l.link.delay,
                order,
                i,
                buf[..n].to_vec(),
            )));
        }
    }
}

impl Drop for LinksRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
