//! SRTLA on glommio: the shell around [`crate::proto::srtla`]'s receiver.
//!
//! Every shard binds each `srtla.listen` address (SO_REUSEPORT), so the kernel
//! spreads a group's links over the shards by their addresses. A group lives on
//! its *home* shard, the one that answered its REG1; the home's index is written
//! into the last byte of the group id, so a REG2 arriving anywhere is sent home
//! at once, and the shard that forwarded it remembers the link's address
//! ([`Route`]) to send the link's later datagrams the same way. The home tells
//! that shard to forget the address when the link is refused or leaves.
//!
//! Once a link of a group has joined from another shard, the home shard opens
//! a socket of its own on the same address, *connected* to the link: the
//! kernel prefers a connected socket to the SO_REUSEPORT group, so the link's
//! datagrams then reach the home shard directly instead of crossing shards
//! one by one ([`SrtlaShard::direct`]).
//!
//! A group is one virtual SRT caller (its REG1 address) inside srtgate's own
//! SRT stack: its SRT packets go straight to the handshake ([`Acceptor`]) and
//! then to the session's mailbox, and the session sends through a [`GroupPort`]
//! that routes each packet over the group's links.

mod port;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::net::UdpSocket;
use rand::rngs::StdRng;
use rand::SeedableRng;
use srt_protocol::packet::Packet;
use tracing::{debug, info, warn};

pub use port::GroupPort;

use crate::io::shard::Shard;
use crate::io::srt::accept::{Acceptor, Dispatch, PeerSlot};
use crate::io::srt::listener::{fresh_buffer, MAX_DATAGRAM};
use crate::io::srt::session::Transport;
use crate::io::srt::StopReason;
use crate::metrics::ratelimit::RateLimit;
use crate::metrics::srtla::{GroupInfo, LinkInfo};
use crate::metrics::GatewayCounters;
use crate::proto::srtla::groups::{self, Event, Handle, Limits, Receiver, Via};
use crate::proto::srtla::packet;

/// A message between shards about SRTLA.
#[derive(Debug)]
pub enum SrtlaMsg {
    /// A datagram from `from`, received by shard `origin` on its socket for
    /// `srtla.listen[listen]`, for the group's home shard.
    Datagram {
        origin: usize,
        listen: usize,
        from: SocketAddr,
        data: Bytes,
    },
    /// `from` is no link of a group homed on the sender: stop forwarding it.
    Forget { from: SocketAddr },
}

/// A link of a group homed on another shard, heard on this one.
struct Route {
    home: usize,
    last_seen: Instant,
}

struct GroupSide {
    /// The group's SRT caller (see [`Acceptor::dispatch`]).
    peer: PeerSlot,
    info: Arc<GroupInfo>,
}

struct Logs {
    refused: RateLimit,
    limits: RateLimit,
}

/// Routes a shard may hold for groups homed elsewhere, beyond the links the
/// configuration allows; more REG2s are dropped until some expire.
const ROUTE_SLACK: usize = 1024;
/// Housekeeping period: timeouts, figures for the API.
const TICK: Duration = Duration::from_millis(250);

/// A connected socket that brings one link's datagrams to its home shard.
struct Direct {
    stop: std::cell::Cell<bool>,
}

/// How often a direct link's task looks whether its link is gone.
const DIRECT_CHECK: Duration = Duration::from_secs(1);

/// One shard's SRTLA sockets, the groups homed here, and routes to the others.
pub struct SrtlaShard {
    shard: Rc<Shard>,
    sockets: Vec<Rc<UdpSocket>>,
    /// `srtla.listen`, as bound (index = listen index).
    locals: Vec<SocketAddr>,
    /// Links of groups homed here, heard on another shard, with a connected
    /// socket here.
    direct: RefCell<HashMap<SocketAddr, Rc<Direct>>>,
    receiver: RefCell<Receiver>,
    groups: RefCell<HashMap<Handle, GroupSide>>,
    routes: RefCell<HashMap<SocketAddr, Route>>,
    acceptor: Acceptor,
    rng: RefCell<StdRng>,
    events: RefCell<Vec<Event>>,
    /// Reused for the destinations of each packet a session sends.
    route_buf: RefCell<Vec<(SocketAddr, Via)>>,
    logs: RefCell<Logs>,
}

/// Bind one SRTLA address for a shard: SO_REUSEPORT like every shard's socket,
/// IPv6 sockets IPv6-only (so `0.0.0.0:5000` and `[::]:5000` can coexist), and
/// large buffers for bursts from several links.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    Ok(into_glommio(shard_socket(addr)?))
}

/// A socket on `local` (SO_REUSEPORT, like the shards' sockets) connected to
/// `peer`: the kernel delivers `peer`'s datagrams to it rather than to the
/// REUSEPORT group.
fn bind_connected(local: SocketAddr, peer: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = shard_socket(local)?;
    // UDP connect(2) completes at once, also on a non-blocking socket.
    s.connect(&peer.into())?;
    Ok(into_glommio(s))
}

fn shard_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn into_glommio(s: socket2::Socket) -> UdpSocket {
    // SAFETY: the descriptor is a bound UDP socket we own and hand over whole.
    unsafe { UdpSocket::from_raw_fd(s.into_raw_fd()) }
}

/// A plain bind (no SO_REUSEPORT), IPv6 sockets IPv6-only: succeeds only if no
/// other program holds the address. Used before start-up.
pub fn bind_plain(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The tag of a link heard by shard `origin` on `srtla.listen[listen]`.
fn via(origin: usize, listen: usize) -> Via {
    ((origin as u32) << 8) | (listen as u32 & 0xff)
}

fn via_origin(v: Via) -> usize {
    (v >> 8) as usize
}

fn via_listen(v: Via) -> usize {
    (v & 0xff) as usize
}

fn limits_of(shard: &Shard) -> Limits {
    let c = &shard.config().srtla;
    Limits {
        max_groups: c.max_groups,
        max_links_per_group: c.max_links_per_group,
        link_timeout: c.link_timeout,
        group_timeout: c.group_timeout,
    }
}

impl SrtlaShard {
    /// `sockets[i]` is bound to `locals[i]`, an address of `srtla.listen`.
    pub fn new(shard: Rc<Shard>, sockets: Vec<UdpSocket>, locals: Vec<SocketAddr>) -> Rc<Self> {
        let home = u8::try_from(shard.id).expect("at most 256 shards");
        Rc::new(Self {
            receiver: RefCell::new(Receiver::new(limits_of(&shard), home)),
            acceptor: Acceptor::new(shard.clone()),
            shard,
            sockets: sockets.into_iter().map(Rc::new).collect(),
            locals,
            direct: RefCell::new(HashMap::new()),
            groups: RefCell::new(HashMap::new()),
            routes: RefCell::new(HashMap::new()),
            rng: RefCell::new(StdRng::from_entropy()),
            events: RefCell::new(Vec::new()),
            route_buf: RefCell::new(Vec::new()),
            logs: RefCell::new(Logs {
                refused: RateLimit::new(Duration::from_secs(1), 10),
                limits: RateLimit::new(Duration::from_secs(10), 5),
            }),
        })
    }

    /// Start the receive loops and housekeeping.
    pub fn spawn(self: &Rc<Self>) {
        for i in 0..self.sockets.len() {
            glommio::spawn_local(self.clone().run(i)).detach();
        }
        glommio::spawn_local(self.clone().housekeeping()).detach();
    }

    /// Receive loop of `srtla.listen[listen]`; returns when the shard stops.
    async fn run(self: Rc<Self>, listen: usize) {
        let sock = self.sockets[listen].clone();
        let mut buf = fresh_buffer();
        loop {
            if buf.len() < MAX_DATAGRAM {
                buf = fresh_buffer();
            }
            let received = sock.recv_from(&mut buf[..MAX_DATAGRAM]).await;
            if self.shard.is_stopping() {
                return;
            }
            let (len, from) = match received {
                Ok(r) => r,
                Err(e) => {
                    debug!(error = %e, "srtla receive error");
                    continue;
                }
            };
            if len >= MAX_DATAGRAM {
                GatewayCounters::inc(&self.shard.metrics.gateway.srtla_malformed);
                self.refused_log(from, "oversized datagram", None);
                continue;
            }
            let data = buf.split_to(len).freeze();
            self.on_datagram(self.shard.id, listen, from, data).await;
        }
    }

    /// A datagram heard here (`origin` is this shard) or forwarded by `origin`.
    async fn on_datagram(
        self: &Rc<Self>,
        origin: usize,
        listen: usize,
        from: SocketAddr,
        data: Bytes,
    ) {
        let now = Instant::now();
        // Registrations name their group (REG1: its short id; REG2: its home).
        let (reg1, reg2_home) = match packet::classify(&data) {
            packet::Datagram::Reg1(id) => (Some(groups::short_id(id)), None),
            packet::Datagram::Reg2(id) => (None, Some(usize::from(groups::home_of(id)))),
            _ => (None, None),
        };
        if origin == self.shard.id {
            if !self.shard.with_config(|c| c.srtla.allows(from.ip())) {
                self.refuse_source(listen, from, &data).await;
                return;
            }
            let home = self.home_of(now, from, reg2_home);
            if home != self.shard.id {
                self.forward(home, listen, from, data);
                return;
            }
        }
        // max_groups holds for the whole process, not per shard.
        let reserved = reg1.is_some();
        if reserved {
            let max = self.shard.with_config(|c| c.srtla.max_groups);
            if !self.shard.metrics.srtla.try_reserve(max) {
                let reply = packet::bare(packet::REG_NAK);
                self.send(via(origin, listen), from, &reply).await;
                GatewayCounters::inc(&self.shard.metrics.gateway.srtla_refused);
                self.refused_log(from, "group limit reached (srtla.max_groups)", reg1);
                return;
            }
        }
        let mut events = std::mem::take(&mut *self.events.borrow_mut());
        {
            let mut rng = self.rng.borrow_mut();
            let tag = via(origin, listen);
            let mut receiver = self.receiver.borrow_mut();
            if reserved {
                // A registration: take limits changed by a reload at once,
                // not at the next tick.
                let limits = limits_of(&self.shard);
                if receiver.limits() != &limits {
                    receiver.set_limits(limits);
                }
            }
            receiver.on_datagram(now, from, tag, data, &mut *rng, &mut events);
        }
        if reserved
            && !events
                .iter()
                .any(|e| matches!(e, Event::GroupOpened { .. }))
        {
            self.shard.metrics.srtla.release();
        }
        self.handle_events(now, &mut events).await;
        *self.events.borrow_mut() = events;
        if origin != self.shard.id && !self.receiver.borrow().has_link(&from) {
            self.send_to_shard(origin, SrtlaMsg::Forget { from });
        }
    }

    /// Which shard's groups `from` belongs to (or will: `reg2_home` is the
    /// home a REG2's group id names).
    fn home_of(&self, now: Instant, from: SocketAddr, reg2_home: Option<usize>) -> usize {
        if let Some(home) = reg2_home {
            if home == self.shard.id || home >= self.shard.count {
                return self.shard.id;
            }
            let mut routes = self.routes.borrow_mut();
            let cap = self.route_cap();
            if routes.len() >= cap && !routes.contains_key(&from) {
                drop(routes);
                GatewayCounters::inc(&self.shard.metrics.gateway.srtla_forward_dropped);
                self.limit_log(from, "too many links pending on this shard; REG2 dropped");
                return self.shard.id;
            }
            routes.insert(
                from,
                Route {
                    home,
                    last_seen: now,
                },
            );
            return home;
        }
        if self.receiver.borrow().has_link(&from) {
            return self.shard.id;
        }
        match self.routes.borrow_mut().get_mut(&from) {
            Some(route) => {
                route.last_seen = now;
                route.home
            }
            None => self.shard.id,
        }
    }

    fn route_cap(&self) -> usize {
        let c = &self.shard.config().srtla;
        c.max_groups.saturating_mul(c.max_links_per_group) + ROUTE_SLACK
    }

    fn forward(&self, home: usize, listen: usize, from: SocketAddr, data: Bytes) {
        let msg = SrtlaMsg::Datagram {
            origin: self.shard.id,
            listen,
            from,
            data,
        };
        if !self.send_to_shard(home, msg) {
            GatewayCounters::inc(&self.shard.metrics.gateway.srtla_forward_dropped);
        }
    }

    fn send_to_shard(&self, shard: usize, msg: SrtlaMsg) -> bool {
        self.shard.mesh.try_send(shard, msg)
    }

    /// A message from another shard.
    pub async fn handle_msg(self: &Rc<Self>, msg: SrtlaMsg) {
        match msg {
            SrtlaMsg::Datagram {
                origin,
                listen,
                from,
                data,
            } => {
                if listen < self.sockets.len() {
                    self.on_datagram(origin, listen, from, data).await;
                }
            }
            SrtlaMsg::Forget { from } => {
                self.routes.borrow_mut().remove(&from);
            }
        }
    }

    /// A source outside `srtla.allow`: registrations get REG_NAK, the rest is dropped.
    async fn refuse_source(&self, listen: usize, from: SocketAddr, data: &[u8]) {
        GatewayCounters::inc(&self.shard.metrics.gateway.srtla_refused);
        let short = match packet::classify(data) {
            packet::Datagram::Reg1(id) | packet::Datagram::Reg2(id) => {
                let reply = packet::bare(packet::REG_NAK);
                let _ = self.sockets[listen].send_to(&reply, from).await;
                Some(groups::short_id(id))
            }
            _ => None,
        };
        self.refused_log(from, "source address not in srtla.allow", short);
    }

    async fn handle_events(self: &Rc<Self>, now: Instant, events: &mut Vec<Event>) {
        for event in events.drain(..) {
            match event {
                Event::Send { to, via, data } => self.send(via, to, &data).await,
                Event::Srt { group, data } => self.on_srt(now, group, data).await,
                Event::GroupOpened { group, short, from } => self.opened(group, short, from),
                Event::GroupClosed { group, reason } => self.closed(group, reason),
                Event::LinkUp {
                    group,
                    addr,
                    via,
                    links,
                } => {
                    let short = self.short(group);
                    info!(group = %format_args!("{short:08x}"), link = %addr,
                        shard = via_origin(via), links, "srtla link joined");
                    if via_origin(via) != self.shard.id {
                        self.direct(via_listen(via), addr);
                    }
                }
                Event::LinkDown {
                    group,
                    link,
                    reason,
                } => {
                    let origin = via_origin(link.via);
                    if origin != self.shard.id {
                        self.send_to_shard(origin, SrtlaMsg::Forget { from: link.addr });
                    }
                    if let Some(d) = self.direct.borrow_mut().remove(&link.addr) {
                        d.stop.set(true);
                    }
                    let short = self.short(group);
                    let links = self.receiver.borrow().link_count(group);
                    let rtt_ms = link.rtt.map_or(-1.0, |r| r.as_secs_f64() * 1000.0);
                    info!(group = %format_args!("{short:08x}"), link = %link.addr, links,
                        packets = link.packets, bytes = link.bytes, naks = link.naks, rtt_ms,
                        "srtla link left: {reason}");
                }
                Event::Refused {
                    from,
                    reason,
                    short,
                } => {
                    GatewayCounters::inc(&self.shard.metrics.gateway.srtla_refused);
                    self.refused_log(from, reason, short);
                }
            }
        }
    }

    /// Open a socket on `locals[listen]` connected to `link`, and a task that
    /// hands its datagrams to this shard as if heard here. Without it (the
    /// bind failed) the link's datagrams keep coming through its origin shard.
    fn direct(self: &Rc<Self>, listen: usize, link: SocketAddr) {
        if self.direct.borrow().contains_key(&link) {
            return;
        }
        let Some(&local) = self.locals.get(listen) else {
            return;
        };
        let sock = match bind_connected(local, link) {
            Ok(s) => s,
            Err(e) => {
                debug!(link = %link, error = %e, "srtla: no connected socket for the link");
                return;
            }
        };
        let _ = sock.set_read_timeout(Some(DIRECT_CHECK));
        let d = Rc::new(Direct {
            stop: std::cell::Cell::new(false),
        });
        self.direct.borrow_mut().insert(link, d.clone());
        let this = self.clone();
        glommio::spawn_local(async move {
            let mut buf = fresh_buffer();
            while !d.stop.get() && !this.shard.is_stopping() {
                if buf.len() < MAX_DATAGRAM {
                    buf = fresh_buffer();
                }
                let len = match sock.recv(&mut buf[..MAX_DATAGRAM]).await {
                    Ok(len) if len < MAX_DATAGRAM => len,
                    Ok(_) => {
                        GatewayCounters::inc(&this.shard.metrics.gateway.srtla_malformed);
                        continue;
                    }
                    Err(_) => continue, // the timeout: look at `stop` again
                };
                let data = buf.split_to(len).freeze();
                this.on_datagram(this.shard.id, listen, link, data).await;
            }
        })
        .detach();
    }

    async fn send(&self, via: Via, to: SocketAddr, data: &[u8]) {
        if let Some(sock) = self.sockets.get(via_listen(via)) {
            if let Err(e) = sock.send_to(data, to).await {
                debug!(peer = %to, error = %e, "srtla send failed");
            }
        }
    }

    fn short(&self, group: Handle) -> u32 {
        self.groups.borrow().get(&group).map_or(0, |g| g.info.short)
    }

    fn opened(&self, group: Handle, short: u32, from: SocketAddr) {
        let metrics = &self.shard.metrics;
        let info = metrics.srtla.open(GroupInfo::new(
            metrics.srtla.next_id(),
            short,
            self.shard.id,
            from,
        ));
        self.groups.borrow_mut().insert(
            group,
            GroupSide {
                peer: PeerSlot::Idle,
                info,
            },
        );
        info!(group = %format_args!("{short:08x}"), peer = %from, shard = self.shard.id,
            "srtla group registered");
    }

    fn closed(&self, group: Handle, reason: &'static str) {
        let Some(side) = self.groups.borrow_mut().remove(&group) else {
            return;
        };
        if let PeerSlot::Open(mailbox) = &side.peer {
            mailbox.stop(StopReason::Srtla(reason));
        }
        self.shard.metrics.srtla.close(side.info.id);
        self.shard.metrics.srtla.release();
        let age = side
            .info
            .started
            .elapsed()
            .unwrap_or_default()
            .as_secs_f32();
        info!(group = %format_args!("{:08x}", side.info.short), path = ?side.info.path(),
            secs = age, "srtla group closed: {reason}");
    }

    /// An SRT packet of a group: to its session, or to its handshake.
    async fn on_srt(self: &Rc<Self>, now: Instant, group: Handle, mut data: Bytes) {
        let len = data.len();
        // Handshakes carry the caller's address; IPv6 groups parse it as such.
        let Some(ipv6) = self
            .groups
            .borrow()
            .get(&group)
            .map(|g| g.info.peer.is_ipv6())
        else {
            return;
        };
        let Ok(packet) = Packet::parse(&mut data, ipv6) else {
            GatewayCounters::inc(&self.shard.metrics.gateway.srt_malformed);
            return;
        };
        let answers = {
            let mut groups = self.groups.borrow_mut();
            let Some(side) = groups.get_mut(&group) else {
                return;
            };
            let info = side.info.clone();
            let port = || {
                Transport::Srtla(GroupPort::new(
                    self.clone(),
                    group,
                    info,
                    self.shard.config().srtla.max_reorder_hold,
                ))
            };
            let peer = side.info.peer;
            match self
                .acceptor
                .dispatch(&mut side.peer, peer, packet, len, now, || true, port)
            {
                Dispatch::Session { overflow } => {
                    if overflow {
                        GatewayCounters::inc(&self.shard.metrics.gateway.srt_mailbox_overflow);
                    }
                    return;
                }
                Dispatch::Unknown | Dispatch::Limited => {
                    GatewayCounters::inc(&self.shard.metrics.gateway.srt_unknown_peer);
                    return;
                }
                Dispatch::Handshake { answers, .. } => answers,
            }
        };
        let mut wire = Vec::with_capacity(128);
        for p in answers {
            wire.clear();
            p.serialize(&mut wire);
            self.send_routed(now, group, &wire).await;
        }
    }

    /// Send one SRT packet of a group over its links.
    pub(crate) async fn send_routed(&self, now: Instant, group: Handle, data: &[u8]) {
        let mut to = std::mem::take(&mut *self.route_buf.borrow_mut());
        self.receiver.borrow_mut().route(now, group, data, &mut to);
        for &(addr, via) in &to {
            self.send(via, addr, data).await;
        }
        to.clear();
        *self.route_buf.borrow_mut() = to;
    }

    /// Timeouts, new limits from the configuration, and figures for the API.
    async fn housekeeping(self: Rc<Self>) {
        let mut last_figures = Instant::now();
        loop {
            glommio::timer::sleep(TICK).await;
            if self.shard.is_stopping() {
                self.close_all();
                return;
            }
            let now = Instant::now();
            let limits = limits_of(&self.shard);
            let link_timeout = limits.link_timeout;
            let mut events = std::mem::take(&mut *self.events.borrow_mut());
            {
                let mut receiver = self.receiver.borrow_mut();
                if receiver.limits() != &limits {
                    receiver.set_limits(limits);
                }
                receiver.on_timer(now, &mut events);
            }
            self.handle_events(now, &mut events).await;
            *self.events.borrow_mut() = events;
            self.routes
                .borrow_mut()
                .retain(|_, r| now.duration_since(r.last_seen) < link_timeout);
            self.expire_handshakes(now);
            if now.duration_since(last_figures) >= Duration::from_secs(1) {
                last_figures = now;
                self.publish_figures(now);
            }
        }
    }

    fn expire_handshakes(&self, now: Instant) {
        let timeout = self.shard.config().srt.handshake_timeout;
        for side in self.groups.borrow_mut().values_mut() {
            if let PeerSlot::Pending(p) = &side.peer {
                if now.duration_since(p.since) >= timeout {
                    side.peer = PeerSlot::Idle;
                }
            }
        }
    }

    fn publish_figures(&self, now: Instant) {
        let receiver = self.receiver.borrow();
        let groups = self.groups.borrow();
        for (handle, side) in groups.iter() {
            let Some(stats) = receiver.stats(*handle) else {
                continue;
            };
            let c = &side.info.counters;
            use std::sync::atomic::Ordering::Relaxed;
            c.packets_received.store(stats.packets_received, Relaxed);
            c.bytes_received.store(stats.bytes_received, Relaxed);
            c.packets_forwarded.store(stats.packets_forwarded, Relaxed);
            c.bytes_forwarded.store(stats.bytes_forwarded, Relaxed);
            let total: u64 = stats.links.iter().map(|l| l.packets).sum();
            let links = stats
                .links
                .iter()
                .map(|l| LinkInfo {
                    addr: l.addr,
                    packets: l.packets,
                    bytes: l.bytes,
                    share: if total == 0 {
                        0.0
                    } else {
                        l.packets as f64 / total as f64
                    },
                    last_seen_ago: now.saturating_duration_since(l.last_seen),
                    naks: l.naks,
                    rtt: l.rtt,
                })
                .collect();
            side.info.set_links(links);
        }
    }

    /// Shutdown: forget every group (their sessions are stopped by the shard).
    fn close_all(&self) {
        let mut events = Vec::new();
        let handles: Vec<Handle> = self.receiver.borrow().groups().collect();
        for h in handles {
            self.receiver
                .borrow_mut()
                .close(h, "gateway shutting down", &mut events);
        }
        for side in self.groups.borrow_mut().drain().map(|(_, s)| s) {
            self.shard.metrics.srtla.close(side.info.id);
            self.shard.metrics.srtla.release();
        }
    }

    fn refused_log(&self, from: SocketAddr, reason: &str, short: Option<u32>) {
        if let Some(n) = self.logs.borrow_mut().refused.check(Instant::now()) {
            match short {
                Some(s) => warn!(peer = %from, group = %format_args!("{s:08x}"), suppressed = n,
                    "srtla refused: {reason}"),
                None => warn!(peer = %from, suppressed = n, "srtla refused: {reason}"),
            }
        }
    }

    fn limit_log(&self, from: SocketAddr, what: &str) {
        if let Some(n) = self.logs.borrow_mut().limits.check(Instant::now()) {
            warn!(peer = %from, suppressed = n, "srtla: {what}");
        }
    }
}
