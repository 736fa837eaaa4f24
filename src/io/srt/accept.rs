//! Accepting SRT callers: one srt-protocol `Listen` per pending handshake,
//! admission by [`super::access`], per-path latency and keys, and the hand-over
//! of a connected caller to its session task.
//!
//! Shared by the SRT listener (callers keyed by UDP address) and the SRTLA
//! shell (one virtual caller per bonded group): how a session reaches its
//! peer is its [`Transport`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

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
use super::session::{self, Transport};
use super::{contain, Mailbox};
use crate::io::shard::Shard;
use crate::metrics::ratelimit::RateLimit;
use crate::metrics::GatewayCounters;

/// Send buffer of every connection, in packets (about 10 MiB of TS at most).
pub const SEND_BUFFER_PACKETS: u64 = 8192;

/// A handshake in progress.
pub struct Pending {
    listen: Listen,
    pub since: Instant,
    /// Our rejection, repeated if the caller repeats its conclusion.
    rejection: Option<Packet>,
}

impl Pending {
    /// Whether the handshake ended in a rejection (kept to answer repeats).
    pub fn is_rejected(&self) -> bool {
        self.rejection.is_some()
    }
}

/// What became of a handshake after a step.
#[allow(clippy::large_enum_variant)] // transient, one per handshake packet
pub enum Next {
    Keep,
    Reject(Packet),
    Drop,
    Open(Rc<Mailbox>),
}

/// Where one SRT caller stands: nothing yet, a handshake in progress, or a
/// session. The SRT listener keeps one per UDP peer, the SRTLA shell one per
/// bonded group; both hand every packet to [`Acceptor::dispatch`].
#[derive(Default)]
pub enum PeerSlot {
    #[default]
    Idle,
    Pending(Box<Pending>),
    Open(Rc<Mailbox>),
}

/// What [`Acceptor::dispatch`] did with a packet.
pub enum Dispatch {
    /// Handed to the session (`overflow`: its mailbox was full, dropped).
    Session { overflow: bool },
    /// Not a handshake, from a caller without a session: dropped.
    Unknown,
    /// A new handshake that the caller's limit (`may_start`) refused: dropped.
    Limited,
    /// A handshake step: what to answer. `started`: a handshake began with
    /// this packet; `ended`: it ended (a session opened, or it was dropped).
    Handshake {
        answers: Vec<Packet>,
        started: bool,
        ended: bool,
    },
}

struct Logs {
    refused: RateLimit,
    handshake: RateLimit,
}

/// Runs handshakes for one shard's listener (or SRTLA shell).
pub struct Acceptor {
    shard: Rc<Shard>,
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

impl Acceptor {
    pub fn new(shard: Rc<Shard>) -> Self {
        Self {
            shard,
            logs: RefCell::new(Logs {
                refused: RateLimit::new(Duration::from_secs(1), 20),
                handshake: RateLimit::new(Duration::from_secs(10), 5),
            }),
        }
    }

    /// A fresh handshake, started by an induction.
    pub fn pending(&self, now: Instant) -> Pending {
        Pending {
            listen: Listen::new(self.init_settings(), true),
            since: now,
            rejection: None,
        }
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

    /// One packet from the caller in `slot`: to its session, or a step of its
    /// handshake (a new one only if `may_start` allows). A connected caller
    /// becomes a session that talks through `transport`.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &self,
        slot: &mut PeerSlot,
        from: SocketAddr,
        packet: Packet,
        len: usize,
        now: Instant,
        may_start: impl FnOnce() -> bool,
        transport: impl FnOnce() -> Transport,
    ) -> Dispatch {
        match slot {
            PeerSlot::Open(mailbox) if !mailbox.is_done() => {
                return Dispatch::Session {
                    overflow: !mailbox.push(packet, len),
                };
            }
            PeerSlot::Open(_) => *slot = PeerSlot::Idle,
            PeerSlot::Pending(_) | PeerSlot::Idle => {}
        }
        let mut started = false;
        if matches!(slot, PeerSlot::Idle) {
            if !is_induction(&packet) {
                return Dispatch::Unknown;
            }
            if !may_start() {
                return Dispatch::Limited;
            }
            *slot = PeerSlot::Pending(Box::new(self.pending(now)));
            started = true;
        }
        let PeerSlot::Pending(pending) = slot else {
            return Dispatch::Unknown;
        };
        let (answers, next) = self.step(from, pending, packet, now, transport);
        let ended = match next {
            Next::Keep | Next::Reject(_) => false,
            Next::Drop => {
                *slot = PeerSlot::Idle;
                true
            }
            Next::Open(mailbox) => {
                *slot = PeerSlot::Open(mailbox);
                true
            }
        };
        Dispatch::Handshake {
            answers,
            started,
            ended,
        }
    }

    /// One step of a pending handshake with `from`. A connected caller becomes
    /// a session that talks through `transport`.
    pub fn step(
        &self,
        from: SocketAddr,
        pending: &mut Pending,
        packet: Packet,
        now: Instant,
        transport: impl FnOnce() -> Transport,
    ) -> (Vec<Packet>, Next) {
        if let Some(rejection) = &pending.rejection {
            return (vec![rejection.clone()], Next::Keep);
        }
        let (send, next) = self.step_inner(from, pending, packet, now, transport);
        if let Next::Reject(p) = &next {
            pending.rejection = Some(p.clone());
        }
        (send, next)
    }

    fn step_inner(
        &self,
        from: SocketAddr,
        pending: &mut Pending,
        packet: Packet,
        now: Instant,
        transport: impl FnOnce() -> Transport,
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
                        let mailbox =
                            session::start(self.shard.clone(), transport(), from, conn, resp, adm);
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

    pub fn contained(&self, from: SocketAddr, panic: &str) -> Next {
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
        self.shard.metrics.refused("srt", access::label(code));
        if let Some(n) = self.logs.borrow_mut().refused.check(Instant::now()) {
            let sid = crate::proto::streamid::redact(sid.unwrap_or(""));
            warn!(peer = %from, sid = ?sid, reason = ?reason, code = i32::from(code),
                suppressed = n, "refused");
        }
    }
}

pub fn is_induction(packet: &Packet) -> bool {
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
