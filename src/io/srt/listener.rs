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

use super::accept::{Acceptor, Dispatch, PeerSlot};
use super::session::Transport;
use crate::io::shard::Shard;
use crate::metrics::ratelimit::RateLimit;
use crate::metrics::GatewayCounters;

/// Receive window per datagram; anything that fills it was larger and is dropped.
pub const MAX_DATAGRAM: usize = 2048;
/// Receive buffers are carved out of chunks this big, so payloads can be handed
/// on as slices without a copy.
const RECV_CHUNK: usize = 64 * 1024;

struct Logs {
    malformed: RateLimit,
    limits: RateLimit,
}

pub struct SrtListener {
    shard: Rc<Shard>,
    sock: Rc<UdpSocket>,
    local: SocketAddr,
    peers: RefCell<HashMap<SocketAddr, PeerSlot>>,
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
        let slot = peers.entry(from).or_default();
        let sock = &self.sock;
        let may_start = || self.pending.get() < self.shard.config().srt.max_handshakes;
        let dispatched =
            self.acceptor
                .dispatch(slot, from, packet, len, Instant::now(), may_start, || {
                    Transport::Udp(sock.clone())
                });
        let idle = matches!(slot, PeerSlot::Idle);
        if idle {
            peers.remove(&from);
        }
        match dispatched {
            Dispatch::Session { overflow: false } => Vec::new(),
            Dispatch::Session { overflow: true } => {
                GatewayCounters::inc(&self.shard.metrics.gateway.srt_mailbox_overflow);
                if let Some(n) = self.logs.borrow_mut().limits.check(Instant::now()) {
                    warn!(peer = %from, suppressed = n,
                        "dropped srt packet: the session is not keeping up with its peer");
                }
                Vec::new()
            }
            Dispatch::Unknown => {
                GatewayCounters::inc(&self.shard.metrics.gateway.srt_unknown_peer);
                self.log_malformed(from, len, "not a handshake, from an unknown peer");
                Vec::new()
            }
            Dispatch::Limited => {
                GatewayCounters::inc(&self.shard.metrics.gateway.srt_handshake_limit);
                let limit = self.shard.config().srt.max_handshakes;
                if let Some(n) = self.logs.borrow_mut().limits.check(Instant::now()) {
                    warn!(peer = %from, limit, suppressed = n,
                        "dropped handshake: too many pending handshakes (srt.max_handshakes)");
                }
                Vec::new()
            }
            Dispatch::Handshake {
                answers,
                started,
                ended,
            } => {
                let n =
                    (self.pending.get() + usize::from(started)).saturating_sub(usize::from(ended));
                self.pending.set(n);
                answers
            }
        }
    }

    /// The listener's address was removed by a reload: end its sessions (the
    /// caller stops its tasks, which closes the socket).
    pub fn close(&self) {
        let mut closed = 0;
        for peer in self.peers.borrow().values() {
            if let PeerSlot::Open(m) = peer {
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
                PeerSlot::Pending(p) => {
                    let keep = now.duration_since(p.since) < timeout;
                    if !keep && !p.is_rejected() {
                        expired += 1;
                    }
                    if !keep {
                        self.pending.set(self.pending.get().saturating_sub(1));
                    }
                    keep
                }
                PeerSlot::Open(m) => !m.is_done(),
                PeerSlot::Idle => false,
            });
            if expired > 0 {
                let c = &self.shard.metrics.gateway.srt_handshake_timeouts;
                c.fetch_add(expired as u64, std::sync::atomic::Ordering::Relaxed);
                debug!(listen = %self.local, expired, "handshakes timed out");
            }
        }
    }
}
