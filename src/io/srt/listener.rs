//! The SRT listener of one shard on one address.
//!
//! It receives every datagram that the kernel hashes to this shard, parses it
//! once (payloads stay zero-copy slices of the receive buffer), and either hands
//! it to the peer's session mailbox or runs the handshake with srt-protocol's
//! `Listen`. Admission decisions come from [`super::access`]. Bad input is
//! counted and logged (rate-limited) and never reaches another peer's state.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::net::UdpSocket;
use srt_protocol::packet::Packet;
use tracing::{debug, warn};

use super::accept::{is_induction, Acceptor, Next, Pending};
use super::session::Transport;
use super::Mailbox;
use crate::io::shard::Shard;
use crate::metrics::ratelimit::RateLimit;
use crate::metrics::GatewayCounters;

/// Receive window per datagram; anything that fills it was larger and is dropped.
pub const MAX_DATAGRAM: usize = 2048;
/// Receive buffers are carved out of chunks this big, so payloads can be handed
/// on as slices without a copy.
const RECV_CHUNK: usize = 64 * 1024;

enum Peer {
    Pending(Box<Pending>),
    Open(Rc<Mailbox>),
}

struct Logs {
    malformed: RateLimit,
    limits: RateLimit,
}

pub struct SrtListener {
    shard: Rc<Shard>,
    sock: Rc<UdpSocket>,
    local: SocketAddr,
    peers: RefCell<HashMap<SocketAddr, Peer>>,
    pending: Cell<usize>,
    acceptor: Acceptor,
    logs: RefCell<Logs>,
}

/// A fresh receive buffer; datagrams are split off its front.
pub fn fresh_buffer() -> BytesMut {
    BytesMut::zeroed(RECV_CHUNK)
}

impl SrtListener {
    pub fn bind(shard: Rc<Shard>, local: SocketAddr) -> std::io::Result<Rc<Self>> {
        let sock = UdpSocket::bind(local)?;
        Ok(Rc::new(Self {
            acceptor: Acceptor::new(shard.clone()),
            shard,
            sock: Rc::new(sock),
            local,
            peers: RefCell::new(HashMap::new()),
            pending: Cell::new(0),
            logs: RefCell::new(Logs {
                malformed: RateLimit::new(Duration::from_secs(10), 5),
                limits: RateLimit::new(Duration::from_secs(10), 3),
            }),
        }))
    }

    /// Receive loop; returns when the shard stops.
    pub async fn run(self: Rc<Self>) {
        let mut buf = fresh_buffer();
        let counters = &self.shard.metrics.gateway;
        loop {
            if buf.len() < MAX_DATAGRAM {
                buf = fresh_buffer();
            }
            let received = self.sock.recv_from(&mut buf[..MAX_DATAGRAM]).await;
            if self.shard.is_stopping() {
                return;
            }
            let (len, from) = match received {
                Ok(r) => r,
                Err(e) => {
                    if let Some(n) = self.logs.borrow_mut().malformed.check(Instant::now()) {
                        warn!(listen = %self.local, error = %e, suppressed = n, "srt receive error");
                    }
                    continue;
                }
            };
            if len >= MAX_DATAGRAM {
                GatewayCounters::inc(&counters.srt_oversized);
                self.log_malformed(from, len, "oversized datagram");
                continue;
            }
            let mut data = buf.split_to(len).freeze();
            let packet = match Packet::parse(&mut data, self.local.is_ipv6()) {
                Ok(p) => p,
                Err(e) => {
                    GatewayCounters::inc(&counters.srt_malformed);
                    self.log_malformed(from, len, &format!("unparseable: {e}"));
                    continue;
                }
            };
            let out = self.on_packet(from, packet, len);
            for p in out {
                self.send(&p, from).await;
            }
        }
    }

    fn log_malformed(&self, from: SocketAddr, len: usize, what: &str) {
        if let Some(n) = self.logs.borrow_mut().malformed.check(Instant::now()) {
            warn!(peer = %from, len, suppressed = n, "dropped srt packet: {what}");
        }
    }

    async fn send(&self, packet: &Packet, to: SocketAddr) {
        let mut out = Vec::with_capacity(256);
        packet.serialize(&mut out);
        if let Err(e) = self.sock.send_to(&out, to).await {
            debug!(peer = %to, error = %e, "srt send failed");
        }
    }

    /// Dispatch one packet; returns handshake packets to send to `from`.
    fn on_packet(&self, from: SocketAddr, packet: Packet, len: usize) -> Vec<Packet> {
        let mut peers = self.peers.borrow_mut();
        match peers.get(&from) {
            Some(Peer::Open(mailbox)) if !mailbox.is_done() => {
                if !mailbox.push(packet, len) {
                    GatewayCounters::inc(&self.shard.metrics.gateway.srt_mailbox_overflow);
                    if let Some(n) = self.logs.borrow_mut().limits.check(Instant::now()) {
                        warn!(peer = %from, suppressed = n,
                            "dropped srt packet: the session is not keeping up with its peer");
                    }
                }
                return Vec::new();
            }
            Some(Peer::Open(_)) => {
                peers.remove(&from);
            }
            Some(Peer::Pending(_)) => {}
            None => {}
        }
        if let std::collections::hash_map::Entry::Vacant(vacant) = peers.entry(from) {
            if !is_induction(&packet) {
                GatewayCounters::inc(&self.shard.metrics.gateway.srt_unknown_peer);
                self.log_malformed(from, len, "not a handshake, from an unknown peer");
                return Vec::new();
            }
            let limit = self.shard.config().srt.max_handshakes;
            if self.pending.get() >= limit {
                GatewayCounters::inc(&self.shard.metrics.gateway.srt_handshake_limit);
                if let Some(n) = self.logs.borrow_mut().limits.check(Instant::now()) {
                    warn!(peer = %from, limit, suppressed = n,
                        "dropped handshake: too many pending handshakes (srt.max_handshakes)");
                }
                return Vec::new();
            }
            self.pending.set(self.pending.get() + 1);
            vacant.insert(Peer::Pending(Box::new(
                self.acceptor.pending(Instant::now()),
            )));
        }
        let Some(Peer::Pending(pending)) = peers.get_mut(&from) else {
            return Vec::new();
        };
        let sock = &self.sock;
        let (send, next) = self
            .acceptor
            .step(from, pending, packet, Instant::now(), || {
                Transport::Udp(sock.clone())
            });
        match next {
            Next::Keep | Next::Reject(_) => {}
            Next::Drop => {
                peers.remove(&from);
                self.pending.set(self.pending.get().saturating_sub(1));
            }
            Next::Open(mailbox) => {
                peers.insert(from, Peer::Open(mailbox));
                self.pending.set(self.pending.get().saturating_sub(1));
            }
        }
        send
    }

    /// The listener's address was removed by a reload: end its sessions (the
    /// caller stops its tasks, which closes the socket).
    pub fn close(&self) {
        let mut closed = 0;
        for peer in self.peers.borrow().values() {
            if let Peer::Open(m) = peer {
                if !m.is_done() {
                    m.stop(super::StopReason::Reload("its listen address was removed"));
                    closed += 1;
                }
            }
        }
        tracing::info!(listen = %self.local, sessions = closed, "srt listener closed");
    }

    /// Drop handshakes that never finished and forget ended sessions; every second.
    pub async fn housekeeping(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            if self.shard.is_stopping() {
                return;
            }
            let timeout = self.shard.config().srt.handshake_timeout;
            let now = Instant::now();
            let mut expired = 0usize;
            self.peers.borrow_mut().retain(|_, peer| match peer {
                Peer::Pending(p) => {
                    let keep = now.duration_since(p.since) < timeout;
                    if !keep && !p.is_rejected() {
                        expired += 1;
                    }
                    if !keep {
                        self.pending.set(self.pending.get().saturating_sub(1));
                    }
                    keep
                }
                Peer::Open(m) => !m.is_done(),
            });
            if expired > 0 {
                let c = &self.shard.metrics.gateway.srt_handshake_timeouts;
                c.fetch_add(expired as u64, std::sync::atomic::Ordering::Relaxed);
                debug!(listen = %self.local, expired, "handshakes timed out");
            }
        }
    }
}
