//! A userspace UDP relay between an SRT caller and the gateway that drops a
//! seeded share of the caller's data packets: loss without netem.
//!
//! The caller connects to the relay's port; the relay forwards to the gateway
//! from a socket of its own and sends the answers back. Only SRT data packets
//! (top bit clear) from the caller are dropped, never handshakes or control
//! packets, so connecting stays deterministic.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
