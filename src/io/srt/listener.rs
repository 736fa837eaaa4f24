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
use srt_protocol::connection::Connection;
use srt_protocol::options::{PacketCount, Passphrase};
use srt_protocol::packet::{ControlTypes, HandshakeVsInfo, Packet, ShakeType, SrtControlPacket};
use srt_protocol::protocol::handshake::Handshake;
use srt_protocol::protocol::pending_connection::listen::Listen;
use srt_protocol::protocol::pending_connection::{
    AccessControlResponse, ConnectionReject, ConnectionResult,
};
use srt_protocol::settings::{ConnInitSettings, KeySettings};
use tracing::{debug, error, warn};

use super::access::{self, Admission, LiveState};
use super::{contain, session, Mailbox};
use crate::io::shard::Shard;
use crate::metrics::ratelimit::RateLimit;
use crate::metrics::GatewayCounters;

/// Send buffer of every connection, in packets (about 10 MiB of TS at most).
pub const SEND_BUFFER_PACKETS: u64 = 8192;
/// Receive window per datagram; anything that fills it was larger and is dropped.
const MAX_DATAGRAM: usize = 2048;
/// Receive buffers are carved out of chunks this big, so payloads can be handed
/// on as slices without a copy.
const RECV_CHUNK: usize = 64 * 1024;

enum Peer {
    Pending(Box<Pending>),
    Open(Rc<Mailbox>),
}

struct Pending {
    listen: Listen,
    since: Instant,
    /// Our rejection, repeated if the caller repeats its conclusion.
    rejection: Option<Packet>,
}

struct Logs {
    malformed: RateLimit,
    refused: RateLimit,
    limits: RateLimit,
    handshake: RateLimit,
}

pub struct SrtListener {
    shard: Rc<Shard>,
    sock: Rc<UdpSocket>,
    local: SocketAddr,
    peers: RefCell<HashMap<SocketAddr, Peer>>,
    pending: Cell<usize>,
    logs: RefCell<Logs>,
}

/// What the gateway looks like to admission, read from the registry and metrics.
struct Live<'a>(&'a Shard);

impl LiveState for Live<'_> {
    fn has_publisher(&self, path: &str) -> bool {
        self.0.hub.registry().publisher(path).is_some()
    }
    fn readers(&self, path: &str) -> usize {
        self.0.metrics.readers_of(path)
    }
    fn sessions(&self) -> usize {
        self.0.metrics.session_count()
    }
}

fn fresh_buffer() -> BytesMut {
    BytesMut::zeroed(RECV_CHUNK)
}

impl SrtListener {
    pub fn bind(shard: Rc<Shard>, local: SocketAddr) -> std::io::Result<Rc<Self>> {
        let sock = UdpSocket::bind(local)?;
        Ok(Rc::new(Self {
            shard,
            sock: Rc::new(sock),
            local,
            peers: RefCell::new(HashMap::new()),
            pending: Cell::new(0),
            logs: RefCell::new(Logs {
                malformed: RateLimit::new(Duration::from_secs(10), 5),
                refused: RateLimit::new(Duration::from_secs(1), 20),
                limits: RateLimit::new(Duration::from_secs(10), 3),
                handshake: RateLimit::new(Duration::from_secs(10), 5),
            }),
        }))
    }

    fn init_settings(&self) -> ConnInitSettings {
        let cfg = self.shard.config();
        let mut s = ConnInitSettings::default().copy_randomize();
        // Latency is negotiated per path once the stream id is known; see `apply_latency`.
        s.send_latency = Duration::ZERO;
        s.recv_latency = Duration::ZERO;
        s.peer_idle_timeout = cfg.srt.peer_idle_timeout;
        s.key_settings = None;
        // srt-protocol's default is 32 packets, and an overflow leaves its sender
        // stuck on a dropped sequence number. Readers are kept well below this
        // (see `session::SEND_BUFFER_HIGH`).
        s.send_buffer_size = PacketCount(SEND_BUFFER_PACKETS);
        s
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
            let pending = Pending {
                listen: Listen::new(self.init_settings(), true),
                since: Instant::now(),
                rejection: None,
            };
            vacant.insert(Peer::Pending(Box::new(pending)));
        }
        let Some(Peer::Pending(pending)) = peers.get_mut(&from) else {
            return Vec::new();
        };
        if let Some(rejection) = &pending.rejection {
            return vec![rejection.clone()];
        }
        let (send, next) = self.handshake(from, pending, packet, Instant::now());
        match next {
            Next::Keep => {}
            Next::Reject(p) => pending.rejection = Some(p),
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

    /// One step of a pending handshake.
    fn handshake(
        &self,
        from: SocketAddr,
        pending: &mut Pending,
        packet: Packet,
        now: Instant,
    ) -> (Vec<Packet>, Next) {
        let result = contain(|| pending.listen.handle_packet(now, Ok((packet, from))));
        let result = match result {
            Ok(r) => r,
            Err(panic) => return (Vec::new(), self.contained(from, &panic)),
        };
        match result {
            ConnectionResult::SendPacket((p, _)) => (vec![p], Next::Keep),
            ConnectionResult::RequestAccess(req) => {
                let sid = req.stream_id.as_ref().map(|s| s.as_str().to_owned());
                let cfg = self.shard.config();
                let decision =
                    access::admit(&cfg, sid.as_deref(), req.key_size, &Live(&self.shard));
                let (response, admission) = match decision {
                    Ok(adm) => match key_settings(&adm) {
                        Ok(keys) => (AccessControlResponse::Accepted(keys), Some(adm)),
                        Err(e) => {
                            error!(peer = %from, error = %e, "path passphrase unusable");
                            (AccessControlResponse::Rejected(
                                srt_protocol::packet::RejectReason::Server(
                                    srt_protocol::packet::ServerRejectReason::InternalServerError,
                                ),
                            ), None)
                        }
                    },
                    Err(refusal) => {
                        self.refused(from, sid.as_deref(), &refusal.reason, refusal.code);
                        (AccessControlResponse::Rejected(refusal.code), None)
                    }
                };
                let result =
                    contain(|| pending.listen.handle_access_control_response(now, response));
                match (result, admission) {
                    (Err(panic), _) => (Vec::new(), self.contained(from, &panic)),
                    (Ok(ConnectionResult::Connected(resp, conn)), Some(adm)) => {
                        let (resp, conn) = apply_latency(resp.map(|r| r.0), conn, adm.latency);
                        GatewayCounters::inc(&self.shard.metrics.gateway.srt_accepted);
                        // The session sends the conclusion answer itself, before any
                        // data, so a caller never sees data ahead of its handshake.
                        let mailbox = session::start(
                            self.shard.clone(),
                            self.sock.clone(),
                            from,
                            conn,
                            resp,
                            adm,
                        );
                        (Vec::new(), Next::Open(mailbox))
                    }
                    (Ok(ConnectionResult::Reject(p, rej)), adm) => {
                        if adm.is_some() {
                            // srt-protocol refused what we admitted: the passphrase did not fit.
                            let code = reject_code(&rej);
                            self.refused(from, sid.as_deref(), access::describe(code), code);
                        }
                        match p {
                            Some((p, _)) => (vec![p.clone()], Next::Reject(p)),
                            None => (Vec::new(), Next::Drop),
                        }
                    }
                    (Ok(other), _) => {
                        debug!(peer = %from, result = ?other, "handshake ended unexpectedly");
                        (Vec::new(), Next::Drop)
                    }
                }
            }
            ConnectionResult::Reject(p, rej) => {
                let code = reject_code(&rej);
                self.refused(from, None, access::describe(code), code);
                match p {
                    Some((p, _)) => (vec![p.clone()], Next::Reject(p)),
                    None => (Vec::new(), Next::Drop),
                }
            }
            ConnectionResult::NotHandled(e) => {
                GatewayCounters::inc(&self.shard.metrics.gateway.srt_malformed);
                if let Some(n) = self.logs.borrow_mut().handshake.check(now) {
                    warn!(peer = %from, suppressed = n, "ignored handshake packet: {e}");
                }
                (Vec::new(), Next::Keep)
            }
            ConnectionResult::NoAction => (Vec::new(), Next::Keep),
            ConnectionResult::Connected(..) | ConnectionResult::Failure(_) => {
                (Vec::new(), Next::Drop)
            }
        }
    }

    fn contained(&self, from: SocketAddr, panic: &str) -> Next {
        GatewayCounters::inc(&self.shard.metrics.gateway.panics_contained);
        error!(peer = %from, panic, "srt-protocol panicked during the handshake; handshake dropped");
        Next::Drop
    }

    fn refused(
        &self,
        from: SocketAddr,
        sid: Option<&str>,
        reason: &str,
        code: srt_protocol::packet::RejectReason,
    ) {
        GatewayCounters::inc(&self.shard.metrics.gateway.srt_refused);
        if let Some(n) = self.logs.borrow_mut().refused.check(Instant::now()) {
            let sid = crate::proto::streamid::redact(sid.unwrap_or(""));
            warn!(peer = %from, sid = ?sid, reason = ?reason, code = i32::from(code),
                suppressed = n, "refused");
        }
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
                    if !keep && p.rejection.is_none() {
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

#[allow(clippy::large_enum_variant)] // transient, one per handshake packet
enum Next {
    Keep,
    Reject(Packet),
    Drop,
    Open(Rc<Mailbox>),
}

fn is_induction(packet: &Packet) -> bool {
    matches!(packet, Packet::Control(c) if matches!(&c.control_type,
        ControlTypes::Handshake(h) if h.shake_type == ShakeType::Induction))
}

fn reject_code(rej: &ConnectionReject) -> srt_protocol::packet::RejectReason {
    match rej {
        ConnectionReject::Rejecting(r) | ConnectionReject::Rejected(r) => *r,
    }
}

fn key_settings(adm: &Admission) -> Result<Option<KeySettings>, String> {
    match &adm.passphrase {
        None => Ok(None),
        Some(p) => {
            let passphrase = Passphrase::try_from(p.clone()).map_err(|e| e.to_string())?;
            Ok(Some(KeySettings {
                key_size: adm.key_size,
                passphrase,
            }))
        }
    }
}

/// Give the connection the path's latency: each direction's TSBPD delay is the
/// largest of the caller's and the path's, and our handshake answer says so.
fn apply_latency(
    resp: Option<Packet>,
    mut conn: Connection,
    latency: Duration,
) -> (Option<Packet>, Connection) {
    let s = &mut conn.settings;
    s.recv_tsbpd_latency = s.recv_tsbpd_latency.max(latency);
    s.send_tsbpd_latency = s.send_tsbpd_latency.max(latency);
    let (send, recv) = (s.send_tsbpd_latency, s.recv_tsbpd_latency);
    let fix = |ct: &mut ControlTypes| {
        if let ControlTypes::Handshake(h) = ct {
            if let HandshakeVsInfo::V5(info) = &mut h.info {
                if let Some(SrtControlPacket::HandshakeResponse(hs)) = &mut info.ext_hs {
                    hs.send_latency = send;
                    hs.recv_latency = recv;
                }
            }
        }
    };
    let resp = resp.map(|mut p| {
        if let Packet::Control(c) = &mut p {
            fix(&mut c.control_type);
        }
        p
    });
    if let Handshake::Listener(ct) = &mut conn.handshake {
        fix(ct);
    }
    (resp, conn)
}
