//! One SRT session, one task: its whole life is [`Session::run`], a loop over
//! packets from its mailbox, its timer, and (for readers) the stream's TS chunks.
//!
//! Publishers hand the TS they receive to the stream's [`Publication`] as it
//! came (passed through to SRT readers) and demuxed into frames (for every
//! other output); readers send the stream's shared TS chunks, the PAT/PMT
//! first when they start at a keyframe. Each call into srt-protocol is
//! contained: a panic there ends this session only.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use glommio::net::UdpSocket;
use glommio::timer::Timer;
use srt_protocol::connection::{Action, Connection, DuplexConnection, Input};
use srt_protocol::packet::{ControlPacket, ControlTypes, Packet, TimeStamp};
use tracing::{error, info, warn, Instrument};

use super::access::{Admission, Role};
use super::end::{SessionEnd, SessionError};
use super::stats::SrtStats;
use super::{contain, Mailbox, StopReason};
use crate::config::Mode;
use crate::io::hooks::{self, Hook};
use crate::io::hub::Subscription;
use crate::io::shard::{SessionEntry, Shard};
use crate::io::srtla::GroupPort;
use crate::io::udp;
use crate::media::bus::EndReason;
use crate::media::TsChunk;
use crate::metrics::{short_id, SessionInfo};
use crate::proto::srtla::reseq::Resequencer;
use crate::proto::ts::{DemuxEvent, TsDemuxer};

/// SRT payload for TS: seven 188-byte packets, as every SRT encoder sends.
const TS_PAYLOAD: usize = 7 * 188;
/// Bound on srt-protocol steps per input, against a state machine that never settles.
const MAX_STEPS: usize = 100_000;
/// TS chunks taken from the queue per wake, so packets and timers stay served.
const CHUNKS_PER_WAKE: usize = 64;
/// A reader takes no more chunks while srt-protocol holds this many unacknowledged
/// packets; the stream's queue then holds them, and skips to a keyframe if the
/// reader stays behind.
const SEND_BUFFER_HIGH: u64 = super::accept::SEND_BUFFER_PACKETS * 3 / 4;

/// How a session reaches its peer.
pub enum Transport {
    /// The peer's own UDP address, through the listener's socket.
    Udp(Rc<UdpSocket>),
    /// A bonded SRTLA group: packets go out over the group's links, and data
    /// coming in is resequenced across them first.
    Srtla(GroupPort),
}

/// Start a session task for an accepted caller; returns its mailbox.
pub fn start(
    shard: Rc<Shard>,
    transport: Transport,
    peer: SocketAddr,
    conn: Connection,
    answer: Option<Packet>,
    adm: Admission,
) -> Rc<Mailbox> {
    let mailbox = Rc::new(Mailbox::new());
    let id = shard.metrics.next_session_id();
    shard.add_session(
        id,
        SessionEntry {
            mailbox: mailbox.clone(),
            path: adm.path.clone(),
            mode: match adm.role {
                Role::Publish => Mode::Publish,
                Role::Read => Mode::Read,
            },
            user: adm.user.clone(),
            pass: adm.pass.clone(),
            encrypted: adm.passphrase.is_some(),
        },
    );
    let info = shard.metrics.open(SessionInfo {
        id,
        protocol: match transport {
            Transport::Udp(_) => "srt",
            Transport::Srtla(_) => "srtla",
        },
        role: adm.role.as_str(),
        path: adm.path.clone(),
        user: adm.user.clone(),
        peer,
        shard: shard.id,
        started: SystemTime::now(),
        counters: Default::default(),
    });
    let span = match &transport {
        Transport::Srtla(port) => {
            port.set_path(&adm.path, id);
            let group = format!("{:08x}", port.short());
            tracing::info_span!("srtla", id = %short_id(id), path = %adm.path, group = %group)
        }
        Transport::Udp(_) => {
            tracing::info_span!("srt", id = %short_id(id), path = %adm.path, peer = %peer)
        }
    };
    let now = Instant::now();
    let reseq = match &transport {
        // Holding must leave room in the latency for retransmission of real loss.
        Transport::Srtla(port) => Some(Resequencer::new(
            port.max_hold().min(conn.settings.recv_tsbpd_latency / 3),
        )),
        Transport::Udp(_) => None,
    };
    let session = Session {
        conn: DuplexConnection::new(conn),
        shard,
        transport,
        reseq,
        ready: Vec::new(),
        peer,
        mailbox: mailbox.clone(),
        info,
        adm,
        stats: SrtStats::default(),
        out: answer.into_iter().collect(),
        wire: Vec::with_capacity(1500),
        inbox: Vec::with_capacity(64),
        released: Vec::with_capacity(64),
        next_wake: now,
        started: now,
        last_flush: (now, 0),
        path_flushed: (0, 0),
        end: None,
        last_seq: None,
        peer_shutdown: false,
        fresh: true,
        skips_seen: 0,
    };
    glommio::spawn_local(session.run().instrument(span)).detach();
    mailbox
}

enum Event {
    Stop(StopReason),
    Packets,
    Chunk(Result<TsChunk, EndReason>),
    Timer,
}

#[allow(clippy::large_enum_variant)] // transient, one per srt-protocol step
enum Step {
    Send(Packet),
    Release(Bytes),
    Stats,
    Wait(Duration),
    Close,
}

impl From<Action<'_>> for Step {
    fn from(a: Action<'_>) -> Self {
        match a {
            Action::SendPacket((p, _)) => Step::Send(p),
            Action::ReleaseData((_, b)) => Step::Release(b),
            Action::UpdateStatistics(_) => Step::Stats,
            Action::WaitForData(d) => Step::Wait(d),
            Action::Close => Step::Close,
        }
    }
}

struct Session {
    shard: Rc<Shard>,
    transport: Transport,
    /// SRTLA only: puts data that arrived out of order across links back in order.
    reseq: Option<Resequencer<(Packet, usize)>>,
    ready: Vec<(Packet, usize)>,
    peer: SocketAddr,
    conn: DuplexConnection,
    mailbox: Rc<Mailbox>,
    info: Arc<SessionInfo>,
    adm: Admission,
    stats: SrtStats,
    out: Vec<Packet>,
    wire: Vec<u8>,
    inbox: Vec<(Packet, usize)>,
    released: Vec<Bytes>,
    next_wake: Instant,
    started: Instant,
    last_flush: (Instant, u64),
    /// Bytes already added to the path's totals (in, out).
    path_flushed: (u64, u64),
    /// Why the session ends, once it does.
    end: Option<SessionEnd>,
    /// The last data sequence number handed to srt-protocol (for fault reports).
    last_seq: Option<u32>,
    peer_shutdown: bool,
    /// A reader that starts (again) at the next keyframe: it sends the PAT/PMT first.
    fresh: bool,
    /// Reader skips seen so far.
    skips_seen: u64,
}

impl Session {
    async fn run(mut self) {
        // The handshake answer goes out first.
        self.flush_out().await;
        let (ask, tell) = match self.adm.role {
            Role::Publish => (Hook::Publish, Hook::Unpublish),
            Role::Read => (Hook::Read, Hook::ReadEnd),
        };
        let hooks = self.shard.with_config(|c| c.hooks.clone());
        match hooks::ask(&hooks, ask, &self.info).await {
            Err(why) => {
                warn!(hook = ask.name(), reason = %why, "refused by a hook");
                self.shard.metrics.refused(self.info.protocol, "hook");
                self.end = Some(SessionEnd::Hook(why));
            }
            Ok(()) => {
                match self.adm.role {
                    Role::Publish => self.publish().await,
                    Role::Read => self.read().await,
                }
                let hooks = self.shard.with_config(|c| c.hooks.clone());
                hooks::notify(&hooks, tell, &self.info);
            }
        }
        if self.mailbox.stop_reason().is_some() || !self.peer_shutdown {
            self.send_shutdown().await;
        }
        self.flush_stats(Instant::now());
        if let Some(end) = self.end.take() {
            let fault = end.is_fault();
            let e = SessionError {
                session: self.info.id,
                peer: self.peer,
                path: self.adm.path.clone(),
                end,
            };
            if fault {
                error!(error = %e, "session ended by a fault");
            }
            self.end = Some(e.end);
        }
        let s = &self.stats;
        let reason = self
            .end
            .as_ref()
            .map_or("ended".to_string(), |e| e.to_string());
        info!(
            reason = %reason,
            secs = self.started.elapsed().as_secs_f32(),
            bytes_in = s.bytes_in, bytes_out = s.bytes_out,
            lost = s.lost_in + s.lost_out, retransmits = s.retrans_in + s.retrans_out,
            naks = s.naks_in + s.naks_out,
            rtt_ms = s.rtt.map_or(-1.0, |r| r.as_secs_f64() * 1000.0),
            "closed"
        );
        if let Some(r) = &self.reseq {
            let st = r.stats();
            info!(
                reordered = st.reordered,
                held = st.held,
                given_up = st.gaps_given_up,
                late = st.late_after_give_up,
                naks_sent = s.naks_out,
                hold_ms = r.hold().as_secs_f64() * 1000.0,
                "resequencing"
            );
        }
        tracing::debug!(stats = ?self.conn.statistics(), settings = ?self.conn.settings(), "srt-protocol view");
        self.mailbox.set_done();
        self.shard.remove_session(self.info.id);
        self.shard.metrics.close(self.info.id);
    }

    async fn publish(&mut self) {
        let takeover = self.adm.takeover;
        let (mut publication, replaced) = match self.shard.hub.publish(
            &self.adm.path,
            self.info.id,
            takeover,
            self.adm.publisher_grace,
            self.adm.remux,
        ) {
            Ok(p) => p,
            Err(existing) => {
                warn!(other = %short_id(existing.session), "refused: publisher already present");
                self.end = Some(SessionEnd::Conflict);
                return;
            }
        };
        if let Some(old) = replaced {
            info!(previous = %short_id(old.session), "taking over the path");
            self.shard
                .kick(old.shard, old.session, StopReason::TakenOver);
        }
        info!(
            latency_ms = self.adm.latency.as_millis() as u64,
            ts = if self.adm.remux {
                "remux"
            } else {
                "passthrough"
            },
            "publishing"
        );
        let mut demux = TsDemuxer::new();
        let mut events = Vec::new();
        let mut timer = Timer::new(Duration::from_millis(1));
        while self.end.is_none() {
            let event = self.wait(&mut timer, None).await;
            let now = Instant::now();
            if !self.handle(event, now) {
                break;
            }
            for data in self.released.drain(..) {
                demux.push(&data, &mut events);
                for ev in events.drain(..) {
                    match ev {
                        DemuxEvent::Tracks(tracks) => {
                            let list: Vec<_> = tracks.iter().map(|t| t.codec.name()).collect();
                            info!(tracks = ?list, "tracks");
                            publication.set_tracks(&tracks, demux.pmt_pid());
                        }
                        DemuxEvent::Frame(frame) => publication.push_frame(frame),
                    }
                }
                publication.push_ts(data);
            }
            if !publication.is_current() && self.end.is_none() {
                self.end = Some(SessionEnd::Stopped(StopReason::TakenOver));
            }
            self.flush_out().await;
            if now.duration_since(self.last_flush.0) >= Duration::from_secs(1) {
                let d = demux.stats();
                let pass = publication.passthrough_stats();
                self.info.counters.frames.store(d.frames, Relaxed);
                self.info.counters.ts_errors.store(
                    d.cc_errors + d.resyncs + d.pes_errors + pass.realigned,
                    Relaxed,
                );
                self.flush_stats(now);
            }
        }
    }

    async fn read(&mut self) {
        let sub: Subscription<TsChunk> = self.shard.hub.subscribe_ts(&self.adm.path);
        // A publisher on another shard shows in the registry before its first
        // chunk reaches this shard's stream.
        let published = sub.stream.has_publisher()
            || self
                .shard
                .hub
                .registry()
                .publisher(&self.adm.path)
                .is_some();
        let mut waiting_until = (!published).then(|| Instant::now() + self.adm.wait_for_publisher);
        let mut paused = false;
        if waiting_until.is_some() {
            info!(
                wait_ms = self.adm.wait_for_publisher.as_millis() as u64,
                "reading; waiting for a publisher"
            );
        } else {
            info!("reading");
        }
        let mut timer = Timer::new(Duration::from_millis(1));
        while self.end.is_none() {
            if let Some(deadline) = waiting_until {
                self.next_wake = self.next_wake.min(deadline);
            }
            let room = self.send_room(Instant::now());
            if self.end.is_some() {
                break;
            }
            let event = self.wait(&mut timer, room.then_some(&sub)).await;
            let now = Instant::now();
            let mut event = Some(event);
            let mut taken = 0;
            while let Some(ev) = event.take() {
                match &ev {
                    Event::Chunk(Ok(chunk)) => {
                        waiting_until = None;
                        let (skips, _) = sub.reader.skips();
                        if chunk.key && skips != self.skips_seen {
                            // Skipped to a keyframe: start there as a new reader does.
                            self.skips_seen = skips;
                            self.fresh = true;
                        }
                    }
                    Event::Chunk(Err(EndReason::Restarted)) => {
                        // Another publisher, or chunks lost between shards: the
                        // next chunk is a keyframe, sent with its PAT/PMT.
                        self.fresh = true;
                        taken += 1;
                        if let Ok(Some(chunk)) = sub.reader.try_recv() {
                            event = Some(Event::Chunk(Ok(chunk)));
                        }
                        continue;
                    }
                    Event::Chunk(Err(EndReason::Paused(grace))) => {
                        info!(
                            grace_ms = grace.as_millis() as u64,
                            "publisher gone; waiting for a new one"
                        );
                        waiting_until = Some(now + *grace);
                        paused = true;
                        self.fresh = true;
                        break;
                    }
                    _ => {}
                }
                if !self.handle(ev, now) {
                    break;
                }
                taken += 1;
                if taken < CHUNKS_PER_WAKE && self.send_room(now) {
                    if let Ok(Some(chunk)) = sub.reader.try_recv() {
                        event = Some(Event::Chunk(Ok(chunk)));
                    }
                }
            }
            if let Some(deadline) = waiting_until {
                if now >= deadline && self.end.is_none() {
                    if paused {
                        self.end = Some(SessionEnd::PublisherGone);
                    } else {
                        warn!("refused: no publisher appeared in time (wait_for_publisher)");
                        self.end = Some(SessionEnd::NoPublisher);
                    }
                }
            }
            self.flush_out().await;
            if now.duration_since(self.last_flush.0) >= Duration::from_secs(1) {
                let (skips, dropped) = sub.reader.skips();
                if skips > self.info.counters.skips.load(Relaxed) {
                    warn!(
                        skips,
                        dropped, "reader fell behind: skipped to the next keyframe"
                    );
                }
                self.info.counters.skips.store(skips, Relaxed);
                self.info.counters.skipped_items.store(dropped, Relaxed);
                self.flush_stats(now);
            }
        }
    }

    /// Whether srt-protocol's send buffer can take more data.
    fn send_room(&mut self, now: Instant) -> bool {
        let conn = &mut self.conn;
        match contain(move || {
            conn.update_statistics(now);
            conn.statistics().tx_buffered_data
        }) {
            Ok(buffered) => buffered < SEND_BUFFER_HIGH,
            Err(panic) => {
                self.shard
                    .metrics
                    .gateway
                    .panics_contained
                    .fetch_add(1, Relaxed);
                if self.end.is_none() {
                    self.end = Some(SessionEnd::Panicked {
                        panic,
                        seq: self.last_seq,
                    });
                }
                false
            }
        }
    }

    /// Wait for the next thing to do.
    async fn wait(&self, timer: &mut Timer, sub: Option<&Subscription<TsChunk>>) -> Event {
        let now = Instant::now();
        let mut wake = crate::io::clock::on_tick(self.next_wake);
        if let Some(due) = self.reseq.as_ref().and_then(|r| r.next_timeout()) {
            wake = wake.min(due);
        }
        timer.reset(
            wake.saturating_duration_since(now)
                .max(Duration::from_micros(200)),
        );
        let mut recv = sub.map(|s| s.reader.recv());
        poll_fn(|cx| {
            if let Some(r) = self.mailbox.stop_reason() {
                return Poll::Ready(Event::Stop(r));
            }
            if self.mailbox.has_packets() {
                return Poll::Ready(Event::Packets);
            }
            self.mailbox.register(cx.waker());
            if let Some(recv) = recv.as_mut() {
                if let Poll::Ready(item) = std::pin::Pin::new(recv).poll(cx) {
                    return Poll::Ready(Event::Chunk(item));
                }
            }
            if std::pin::Pin::new(&mut *timer).poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            Poll::Pending
        })
        .await
    }

    /// Feed one event to the connection; false once the session must end.
    fn handle(&mut self, event: Event, now: Instant) -> bool {
        match event {
            Event::Stop(reason) => {
                self.end = Some(SessionEnd::Stopped(reason));
                false
            }
            Event::Packets => {
                let mut inbox = std::mem::take(&mut self.inbox);
                self.mailbox.drain_into(&mut inbox);
                let mut alive = true;
                for (packet, len) in inbox.drain(..) {
                    if !alive {
                        continue;
                    }
                    alive = match (&mut self.reseq, &packet) {
                        (Some(reseq), Packet::Data(d)) => {
                            let (seq, retransmitted) = (d.seq_number.as_raw(), d.retransmitted);
                            reseq.push(now, seq, retransmitted, (packet, len), &mut self.ready);
                            self.deliver_ready(now)
                        }
                        _ => self.deliver(now, packet, len),
                    };
                }
                self.inbox = inbox;
                alive
            }
            Event::Chunk(Ok(chunk)) => {
                if chunk.key && (self.fresh || chunk.discontinuity) {
                    self.fresh = false;
                    if let Some(start) = chunk.start {
                        if !self.drive(now, Input::Data(Some((now, start)))) {
                            return false;
                        }
                    }
                }
                let data = chunk.data;
                let mut at = 0;
                while at < data.len() {
                    let end = (at + TS_PAYLOAD).min(data.len());
                    if !self.drive(now, Input::Data(Some((now, data.slice(at..end))))) {
                        return false;
                    }
                    at = end;
                }
                true
            }
            Event::Chunk(Err(reason)) => {
                self.end = Some(match reason {
                    EndReason::PublisherGone | EndReason::Paused(_) => SessionEnd::PublisherGone,
                    EndReason::Closed | EndReason::Restarted => SessionEnd::StreamClosed,
                });
                false
            }
            Event::Timer => {
                if let Some(reseq) = &mut self.reseq {
                    reseq.on_timer(now, &mut self.ready);
                    if !self.deliver_ready(now) {
                        return false;
                    }
                }
                self.drive(now, Input::Timer)
            }
        }
    }

    /// Hand one packet from the peer to srt-protocol.
    fn deliver(&mut self, now: Instant, packet: Packet, len: usize) -> bool {
        self.stats.on_recv(now, &packet, len);
        if let Packet::Data(d) = &packet {
            self.last_seq = Some(d.seq_number.as_raw());
        }
        if let Packet::Control(ControlPacket {
            control_type: ControlTypes::Shutdown,
            ..
        }) = &packet
        {
            self.peer_shutdown = true;
        }
        self.drive(now, Input::Packet(Ok((packet, self.peer))))
    }

    /// Hand on what the resequencer released.
    fn deliver_ready(&mut self, now: Instant) -> bool {
        let mut ready = std::mem::take(&mut self.ready);
        let mut alive = true;
        for (packet, len) in ready.drain(..) {
            if alive {
                alive = self.deliver(now, packet, len);
            }
        }
        self.ready = ready;
        alive
    }

    /// Run srt-protocol until it waits; false once the session must end.
    fn drive(&mut self, now: Instant, first: Input) -> bool {
        let mut input = first;
        for _ in 0..MAX_STEPS {
            let conn = &mut self.conn;
            let step = match contain(move || Step::from(conn.handle_input(now, input))) {
                Ok(step) => step,
                Err(panic) => {
                    self.shard
                        .metrics
                        .gateway
                        .panics_contained
                        .fetch_add(1, Relaxed);
                    self.end = Some(SessionEnd::Panicked {
                        panic,
                        seq: self.last_seq,
                    });
                    return false;
                }
            };
            input = match step {
                Step::Send(p) => {
                    self.out.push(p);
                    Input::PacketSent
                }
                Step::Release(data) => {
                    self.released.push(data);
                    Input::DataReleased
                }
                Step::Stats => Input::StatisticsUpdated,
                Step::Wait(d) => {
                    self.next_wake = now + d;
                    return true;
                }
                Step::Close => {
                    self.end = Some(if self.peer_shutdown {
                        SessionEnd::PeerClosed
                    } else {
                        SessionEnd::PeerTimedOut
                    });
                    return false;
                }
            };
        }
        self.end = Some(SessionEnd::Unsettled { seq: self.last_seq });
        false
    }

    /// Send what srt-protocol produced. Runs of equal-sized packets (a frame's
    /// data for this reader) go out as one GSO send ([`udp::send_segments`]).
    async fn flush_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let now = Instant::now();
        let gso = udp::gso_enabled() && matches!(self.transport, Transport::Udp(_));
        let mut out = std::mem::take(&mut self.out);
        self.wire.clear();
        let (mut seg, mut run) = (0usize, 0usize);
        for p in out.drain(..) {
            let start = self.wire.len();
            p.serialize(&mut self.wire);
            let len = self.wire.len() - start;
            self.stats.on_send(now, &p, len);
            if run > 0 && !(gso && len <= seg && run < udp::MAX_SEGMENTS) {
                // This packet cannot join the run: send the run, start anew.
                self.send_run(start, seg).await;
                self.wire.drain(..start);
                run = 0;
            }
            if run == 0 {
                seg = len;
            }
            run += 1;
            if len < seg {
                // A shorter datagram can only end a run.
                self.send_run(self.wire.len(), seg).await;
                self.wire.clear();
                run = 0;
            }
        }
        if run > 0 {
            self.send_run(self.wire.len(), seg).await;
            self.wire.clear();
        }
        self.out = out;
    }

    /// Send `wire[..end]`, datagrams of `seg` bytes (the last may be shorter).
    /// A failed send is a lost packet; SRT's ARQ deals with it.
    async fn send_run(&self, end: usize, seg: usize) {
        let buf = &self.wire[..end];
        let sock = match &self.transport {
            Transport::Udp(sock) => sock,
            Transport::Srtla(port) => {
                for datagram in buf.chunks(seg) {
                    port.send(datagram).await;
                }
                return;
            }
        };
        if buf.len() > seg {
            match udp::send_segments(sock.as_raw_fd(), buf, seg as u16, self.peer) {
                Ok(true) | Err(_) => return,
                Ok(false) => {} // socket full or GSO refused: one by one
            }
        }
        for datagram in buf.chunks(seg) {
            let _ = sock.send_to(datagram, self.peer).await;
        }
    }

    async fn send_shutdown(&mut self) {
        let settings = self.conn.settings();
        let elapsed = settings.socket_start_time.elapsed().as_micros() as u32;
        let p = Packet::Control(ControlPacket {
            timestamp: TimeStamp::from_micros(elapsed),
            dest_sockid: settings.remote_sockid,
            control_type: ControlTypes::Shutdown,
        });
        self.out.push(p);
        self.flush_out().await;
    }

    fn flush_stats(&mut self, now: Instant) {
        let s = &self.stats;
        let c = &self.info.counters;
        c.packets_in.store(s.packets_in, Relaxed);
        c.bytes_in.store(s.bytes_in, Relaxed);
        c.packets_out.store(s.packets_out, Relaxed);
        c.bytes_out.store(s.bytes_out, Relaxed);
        c.lost.store(s.lost_in + s.lost_out, Relaxed);
        c.retransmits.store(s.retrans_in + s.retrans_out, Relaxed);
        c.naks.store(s.naks_in + s.naks_out, Relaxed);
        c.rtt_us
            .store(s.rtt.map_or(0, |r| r.as_micros() as u64), Relaxed);
        c.rtt_var_us
            .store(s.rtt_var.map_or(0, |r| r.as_micros() as u64), Relaxed);
        // Per-path totals: payload bytes in for publishers, out for readers.
        let (path_in, path_out) = match self.adm.role {
            Role::Publish => (s.bytes_in, 0),
            Role::Read => (0, s.bytes_out),
        };
        let (was_in, was_out) = self.path_flushed;
        self.shard
            .metrics
            .add_path_bytes(&self.adm.path, path_in - was_in, path_out - was_out);
        self.path_flushed = (path_in, path_out);
        let bytes = s.bytes_in + s.bytes_out;
        let (then, before) = self.last_flush;
        let secs = now.duration_since(then).as_secs_f64();
        if secs > 0.0 {
            c.bitrate_bps
                .store(((bytes - before) as f64 * 8.0 / secs) as u64, Relaxed);
        }
        self.last_flush = (now, bytes);
        if let (Transport::Srtla(port), Some(reseq)) = (&self.transport, &self.reseq) {
            port.publish(reseq.stats(), reseq.hold(), s.naks_out);
        }
    }
}
