//! The HLS outputs one shard is home to, and the requests they answer: the
//! HLS shell around the sans-IO [`crate::media::hls`] variants (it owns
//! their clock and their waits).
//!
//! HLS is one output of the media core (see the architecture map in
//! `lib.rs`): each path's HLS output lives on one shard, its *home*, chosen by
//! a hash of the path (not by the publisher's shard), so a publisher that
//! reconnects and lands on another shard still continues the same playlist.
//! It is created when the first request for a published path arrives,
//! subscribes to the stream's frames on its home shard (the relay brings them
//! from the publisher's shard, starting at the GOP cache's keyframe), muxes
//! the TS variant and the LL-HLS variant once for every viewer, and is dropped
//! `hls.keep_after_end` after its publisher left or its last request came.
//!
//! HTTP requests arriving on any shard are answered by the home: directly, or
//! as a [`HlsMsg::Get`] that comes back as a [`HlsMsg::Reply`]. Waiting
//! (a blocking playlist reload, a preload-hinted part, a path that is published
//! but has no segment yet) happens on the home, on a [`Notify`] that the
//! stream fires when its playlist changes; it never blocks the shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_lite::future;

use crate::config::HlsConfig;
use crate::io::hub::Hub;
use crate::media::bus::EndReason;
use crate::media::hls::{Fmp4Hls, HlsSettings, TsHls};
use crate::media::{Frame, TrackInfo};
use crate::proto::hls::playlist::Blocking;
use crate::proto::ts::TsMuxer;

/// HLS requests between shards.
#[derive(Debug)]
pub enum HlsMsg {
    /// A request from shard `from`, to be answered with `Reply { id }`.
    Get {
        from: usize,
        id: u64,
        req: HlsRequest,
    },
    Reply {
        id: u64,
        res: HlsResponse,
    },
}

/// An HLS variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// LL-HLS: fMP4 segments and parts.
    Ll,
    /// MPEG-TS segments.
    Ts,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A media playlist; with `msn` (and `part`) a blocking reload.
    Playlist {
        variant: Variant,
        msn: Option<u64>,
        part: Option<usize>,
    },
    /// An fMP4 initialization segment, by file name.
    Init(String),
    Segment {
        variant: Variant,
        msn: u64,
    },
    Part {
        msn: u64,
        part: usize,
    },
}

#[derive(Debug, Clone)]
pub struct HlsRequest {
    pub path: Arc<str>,
    pub resource: Resource,
}

/// The kind of an answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Playlist,
    Mp4,
    Ts,
    /// `body` is a short reason, to be wrapped in JSON.
    Error,
}

#[derive(Debug, Clone)]
pub struct HlsResponse {
    pub status: u16,
    pub kind: BodyKind,
    pub body: Bytes,
}

impl HlsResponse {
    fn ok(kind: BodyKind, body: Bytes) -> Self {
        Self {
            status: 200,
            kind,
            body,
        }
    }

    pub fn error(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            kind: BodyKind::Error,
            body: Bytes::from_static(reason.as_bytes()),
        }
    }
}

/// A change counter that tasks of the same shard can wait on.
#[derive(Debug, Default)]
pub struct Notify {
    version: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn version(&self) -> u64 {
        self.version.get()
    }

    pub fn notify(&self) {
        self.version.set(self.version.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes once the version differs from `seen`.
    pub fn changed(&self, seen: u64) -> Changed<'_> {
        Changed { notify: self, seen }
    }

    /// Wait for a change after `seen`, at most until `deadline`; false on timeout.
    pub async fn wait_until(&self, seen: u64, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        future::or(
            async {
                self.changed(seen).await;
                true
            },
            async {
                glommio::timer::sleep(left).await;
                false
            },
        )
        .await
    }
}

pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.version.get() != self.seen {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// What the playlists' live edges were: the TS variant's version, the
/// LL-HLS variant's next part, and whether it is playable.
type Edge = (u64, Option<(u64, usize)>, bool);

/// One path's HLS output.
struct HlsStream {
    gen: Cell<u64>,
    /// A publisher is feeding it (or it waits for the first frames).
    live: Cell<bool>,
    ended_at: Cell<Option<Instant>>,
    /// When the last request for it came.
    requested_at: Cell<Instant>,
    ts: RefCell<Option<TsHls>>,
    ll: RefCell<Option<Fmp4Hls>>,
    /// The TS variant's muxer (the output's own: once per stream).
    mux: RefCell<Option<TsMuxer>>,
    /// Fired when the output is dropped: its feeding task ends.
    stop: Notify,
    /// Fired whenever either playlist changes.
    changed: Notify,
    /// What the playlists looked like at the last notification.
    edge: Cell<Edge>,
    /// Rendered playlists (LL, TS), until the next change.
    rendered: RefCell<[Option<Bytes>; 2]>,
}

impl HlsStream {
    fn edge_now(&self) -> Edge {
        let ts = self.ts.borrow().as_ref().map_or(0, TsHls::version);
        let ll = self.ll.borrow();
        (
            ts,
            ll.as_ref().and_then(Fmp4Hls::next_part),
            ll.as_ref().is_some_and(Fmp4Hls::is_playable),
        )
    }

    /// Wake waiters if a playlist changed.
    fn check_changed(&self, force: bool) {
        let now = self.edge_now();
        if force || now != self.edge.get() {
            self.edge.set(now);
            *self.rendered.borrow_mut() = [None, None];
            self.changed.notify();
        }
    }

    fn end(&self) {
        if let Some(ts) = self.ts.borrow_mut().as_mut() {
            ts.end();
        }
        if let Some(ll) = self.ll.borrow_mut().as_mut() {
            ll.end();
        }
    }

    /// The publisher left: the playlists end; the output lingers.
    fn finish(&self) {
        if self.live.get() {
            self.end();
            self.live.set(false);
            self.ended_at.set(Some(Instant::now()));
            self.check_changed(true);
        }
    }

    /// One frame of the stream (after [`HlsHome::start`]).
    fn frame(&self, frame: &Frame) {
        let now = SystemTime::now();
        if let Some(ts) = self.ts.borrow_mut().as_mut() {
            let chunk = self
                .mux
                .borrow_mut()
                .as_mut()
                .map(|m| m.mux(frame))
                .unwrap_or_default();
            ts.push(frame, &chunk, now);
        }
        if let Some(ll) = self.ll.borrow_mut().as_mut() {
            ll.push(frame, now);
        }
        self.check_changed(false);
    }

    fn is_playable(&self, variant: Variant) -> Option<bool> {
        match variant {
            Variant::Ts => self.ts.borrow().as_ref().map(TsHls::is_playable),
            Variant::Ll => self.ll.borrow().as_ref().map(Fmp4Hls::is_playable),
        }
    }

    fn check_blocking(
        &self,
        variant: Variant,
        msn: u64,
        part: Option<usize>,
    ) -> Result<(), Blocking> {
        match variant {
            Variant::Ts => self
                .ts
                .borrow()
                .as_ref()
                .map_or(Err(Blocking::Wait), |t| t.check_blocking(msn)),
            Variant::Ll => self
                .ll
                .borrow()
                .as_ref()
                .map_or(Err(Blocking::Wait), |l| l.check_blocking(msn, part)),
        }
    }

    fn playlist(&self, variant: Variant) -> Bytes {
        let i = (variant == Variant::Ts) as usize;
        if let Some(b) = &self.rendered.borrow()[i] {
            return b.clone();
        }
        let text = match variant {
            Variant::Ts => self.ts.borrow().as_ref().map(TsHls::playlist),
            Variant::Ll => self.ll.borrow().as_ref().map(Fmp4Hls::playlist),
        };
        let b = Bytes::from(text.unwrap_or_default());
        self.rendered.borrow_mut()[i] = Some(b.clone());
        b
    }

    fn memory(&self) -> usize {
        self.ts.borrow().as_ref().map_or(0, TsHls::memory)
            + self.ll.borrow().as_ref().map_or(0, Fmp4Hls::memory)
    }
}

/// Figures of one stream, for the index and the API.
#[derive(Debug, Clone)]
pub struct HlsStreamInfo {
    pub path: Arc<str>,
    pub live: bool,
    pub codecs: Option<String>,
    pub resolution: Option<(u16, u16)>,
    pub memory: usize,
}

/// The HLS outputs whose home is this shard, and the requests this shard
/// sent to other homes.
pub struct HlsHome {
    hub: Rc<Hub>,
    config: RefCell<HlsConfig>,
    streams: RefCell<HashMap<Arc<str>, Rc<HlsStream>>>,
    /// Requests sent to other shards, waiting for their reply.
    pending: RefCell<HashMap<u64, Rc<ReplySlot>>>,
    next_request: Cell<u64>,
    /// First media sequence number of the next stream: tenths of a second
    /// since 1970, so a stream made later never reuses an earlier one's
    /// segment names (segments are served as immutable).
    clock: fn() -> SystemTime,
}

/// Where the reply to a request sent to another shard lands.
#[derive(Default)]
struct ReplySlot {
    res: RefCell<Option<HlsResponse>>,
    ready: Notify,
}

impl HlsHome {
    pub fn new(hub: Rc<Hub>, config: HlsConfig) -> Rc<Self> {
        Rc::new(Self {
            hub,
            config: RefCell::new(config),
            streams: RefCell::new(HashMap::new()),
            pending: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
            clock: SystemTime::now,
        })
    }

    pub fn set_config(&self, config: HlsConfig) {
        *self.config.borrow_mut() = config;
    }

    fn settings(&self) -> HlsSettings {
        let c = self.config.borrow();
        HlsSettings {
            target: c.segment,
            part_target: c.part,
            window: c.window,
        }
    }

    fn first_msn(&self) -> u64 {
        let since = (self.clock)()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        since.as_millis() as u64 / 100
    }

    /// The shard that is home to `path`'s HLS output (FNV-1a of the path).
    pub fn home(&self, path: &str) -> usize {
        (crate::media::fnv1a(path.as_bytes()) % self.hub.shards as u64) as usize
    }

    /// Answer an HLS request, asking the path's home shard (`home`, from
    /// [`HlsHome::home`]) if it is another one. `timeout` bounds the wait for
    /// a reply from there.
    pub async fn request(
        self: &Rc<Self>,
        home: usize,
        req: HlsRequest,
        timeout: Duration,
    ) -> HlsResponse {
        if home == self.hub.shard {
            return self.answer(req).await;
        }
        let id = self.next_request.get() + 1;
        self.next_request.set(id);
        let slot = Rc::new(ReplySlot::default());
        self.pending.borrow_mut().insert(id, slot.clone());
        let msg = HlsMsg::Get {
            from: self.hub.shard,
            id,
            req,
        };
        let res = if self.hub.mesh().try_send(home, msg) {
            let deadline = Instant::now() + timeout;
            loop {
                let seen = slot.ready.version();
                if let Some(res) = slot.res.borrow_mut().take() {
                    break Some(res);
                }
                if !slot.ready.wait_until(seen, deadline).await {
                    break None;
                }
            }
        } else {
            None
        };
        self.pending.borrow_mut().remove(&id);
        res.unwrap_or_else(|| HlsResponse::error(503, "busy: the stream's shard did not answer"))
    }

    /// A message from another shard: a request to answer here, or a reply.
    pub fn handle(self: &Rc<Self>, msg: HlsMsg) {
        match msg {
            HlsMsg::Get { from, id, req } => {
                // Answered in a task of its own: it may wait (blocking reload).
                let home = self.clone();
                glommio::spawn_local(async move {
                    let res = home.answer(req).await;
                    let _ = home.hub.mesh().send(from, HlsMsg::Reply { id, res }).await;
                })
                .detach();
            }
            HlsMsg::Reply { id, res } => {
                if let Some(slot) = self.pending.borrow().get(&id) {
                    *slot.res.borrow_mut() = Some(res);
                    slot.ready.notify();
                }
            }
        }
    }

    fn stream(&self, path: &str) -> Option<Rc<HlsStream>> {
        self.streams.borrow().get(path).cloned()
    }

    /// The output of `path`, created (and subscribed to the stream's frames)
    /// for its first request if the path is published.
    fn ensure(self: &Rc<Self>, path: &Arc<str>) -> Option<Rc<HlsStream>> {
        if let Some(s) = self.stream(path) {
            s.requested_at.set(Instant::now());
            return Some(s);
        }
        self.hub.registry().publisher(path)?;
        let stream = Rc::new(HlsStream {
            gen: Cell::new(0),
            live: Cell::new(true),
            ended_at: Cell::new(None),
            requested_at: Cell::new(Instant::now()),
            ts: RefCell::new(None),
            ll: RefCell::new(None),
            mux: RefCell::new(None),
            stop: Notify::default(),
            changed: Notify::default(),
            edge: Cell::new((0, None, false)),
            rendered: RefCell::new([None, None]),
        });
        self.streams
            .borrow_mut()
            .insert(path.clone(), stream.clone());
        tracing::info!(path = &**path, "hls: output created");
        glommio::spawn_local(self.clone().feed(path.clone(), stream.clone())).detach();
        Some(stream)
    }

    /// The output's life: the stream's frames in, segments and parts out,
    /// until the output is dropped.
    async fn feed(self: Rc<Self>, path: Arc<str>, out: Rc<HlsStream>) {
        let sub = self.hub.subscribe_frames(&path);
        let mut need_start = true;
        let mut skips = 0;
        loop {
            let next = future::or(async { Some(sub.reader.recv().await) }, async {
                out.stop.changed(0).await;
                None
            })
            .await;
            let Some(next) = next else { break };
            match next {
                Ok(frame) => {
                    let now_skips = sub.reader.skips().0;
                    if now_skips != skips {
                        skips = now_skips;
                        tracing::warn!(
                            path = &*path,
                            "hls: frames were skipped; the playlist continues after a discontinuity"
                        );
                        need_start = true;
                    }
                    if need_start {
                        let Some(d) = sub.stream.description() else {
                            continue;
                        };
                        self.start(&out, sub.stream.gen(), &d.infos());
                        need_start = false;
                    }
                    out.frame(&frame);
                }
                // Another publisher, a new track list, or frames lost between shards.
                Err(EndReason::Restarted) => need_start = true,
                Err(EndReason::Paused(_) | EndReason::PublisherGone) => {
                    out.finish();
                    need_start = true;
                }
                Err(EndReason::Closed) => {
                    out.finish();
                    break;
                }
            }
        }
    }

    /// Begin (or begin again, after a discontinuity) with these tracks.
    fn start(&self, s: &HlsStream, gen: u64, tracks: &[TrackInfo]) {
        let config = self.config.borrow().clone();
        let settings = self.settings();
        let has_video = tracks.iter().any(|t| t.codec.is_video());
        *s.mux.borrow_mut() = Some(TsMuxer::new(tracks));
        s.gen.set(gen);
        s.live.set(true);
        s.ended_at.set(None);
        let created = s.ts.borrow().is_some() || s.ll.borrow().is_some();
        if created {
            // The segment in progress ends; the next one follows a discontinuity.
            s.end();
            if let Some(ll) = s.ll.borrow_mut().as_mut() {
                ll.restart(tracks);
            }
        } else {
            let first = self.first_msn();
            *s.ts.borrow_mut() = config
                .ts
                .then(|| TsHls::new(&settings, has_video).starting_at(first));
            *s.ll.borrow_mut() = config
                .ll
                .then(|| Fmp4Hls::new(&settings, tracks).starting_at(first));
        }
        s.check_changed(true);
    }

    /// Drop outputs whose publisher left, or whose last request came, more
    /// than `keep_after_end` ago.
    pub fn sweep(&self, now: Instant) {
        let keep = self.config.borrow().keep_after_end;
        self.streams.borrow_mut().retain(|path, s| {
            let ended = s
                .ended_at
                .get()
                .is_some_and(|t| now.duration_since(t) >= keep);
            let idle = now.duration_since(s.requested_at.get()) >= keep;
            if ended || idle {
                tracing::info!(
                    path = &**path,
                    reason = if ended {
                        "publisher gone"
                    } else {
                        "no requests"
                    },
                    "hls: output dropped"
                );
                s.stop.notify();
                s.changed.notify();
            }
            !(ended || idle)
        });
    }

    /// Streams here, for the index and the API.
    pub fn info(&self) -> Vec<HlsStreamInfo> {
        self.streams
            .borrow()
            .iter()
            .map(|(path, s)| {
                let ll = s.ll.borrow();
                HlsStreamInfo {
                    path: path.clone(),
                    live: s.live.get(),
                    codecs: ll.as_ref().and_then(Fmp4Hls::codecs),
                    resolution: ll.as_ref().and_then(Fmp4Hls::resolution),
                    memory: s.memory(),
                }
            })
            .collect()
    }

    /// Bytes held by every stream here.
    pub fn memory(&self) -> usize {
        self.streams.borrow().values().map(|s| s.memory()).sum()
    }

    /// Answer a request, waiting as HLS allows (never longer than a few
    /// target durations).
    pub async fn answer(self: &Rc<Self>, req: HlsRequest) -> HlsResponse {
        let config = self.config.borrow().clone();
        let variant = match &req.resource {
            Resource::Playlist { variant, .. } | Resource::Segment { variant, .. } => *variant,
            Resource::Init(_) | Resource::Part { .. } => Variant::Ll,
        };
        let on = match variant {
            Variant::Ll => config.ll,
            Variant::Ts => config.ts,
        };
        if !on {
            return HlsResponse::error(404, "this HLS variant is turned off");
        }
        let start = Instant::now();
        // A path being published but without a segment yet: wait for one.
        let wait_first = start + config.wait_for_segment;
        let Some(stream) = self.ensure(&req.path) else {
            return HlsResponse::error(404, "no such stream");
        };
        loop {
            let seen = stream.changed.version();
            if stream.is_playable(variant) == Some(true) {
                break;
            }
            if !stream.live.get() || !stream.changed.wait_until(seen, wait_first).await {
                return HlsResponse::error(404, "no segment yet");
            }
        }
        // Blocking requests wait at most three target durations (RFC 8216bis 6.2.5.2).
        let deadline = Instant::now() + config.segment * 3;
        match req.resource {
            Resource::Playlist { variant, msn, part } => {
                if let Some(msn) = msn {
                    loop {
                        let seen = stream.changed.version();
                        match stream.check_blocking(variant, msn, part) {
                            Ok(()) => break,
                            Err(Blocking::TooFarAhead) => {
                                return HlsResponse::error(
                                    400,
                                    "_HLS_msn is too far ahead of the live edge",
                                )
                            }
                            Err(Blocking::Wait) => {
                                if !stream.changed.wait_until(seen, deadline).await {
                                    return HlsResponse::error(
                                        503,
                                        "the requested segment did not appear in time",
                                    );
                                }
                            }
                        }
                    }
                }
                HlsResponse::ok(BodyKind::Playlist, stream.playlist(variant))
            }
            Resource::Init(name) => match stream.ll.borrow().as_ref().and_then(|l| l.init(&name)) {
                Some(b) => HlsResponse::ok(BodyKind::Mp4, b),
                None => HlsResponse::error(404, "no such initialization segment"),
            },
            Resource::Segment { variant, msn } => {
                let found = match variant {
                    Variant::Ts => stream.ts.borrow().as_ref().and_then(|t| t.segment(msn)),
                    Variant::Ll => stream.ll.borrow().as_ref().and_then(|l| l.segment(msn)),
                };
                match found {
                    Some(b) => HlsResponse::ok(
                        if variant == Variant::Ts {
                            BodyKind::Ts
                        } else {
                            BodyKind::Mp4
                        },
                        b,
                    ),
                    None => HlsResponse::error(
                        404,
                        "no such segment (not yet, or no longer, in the playlist)",
                    ),
                }
            }
            Resource::Part { msn, part } => loop {
                let seen = stream.changed.version();
                let (found, pending) = {
                    let ll = stream.ll.borrow();
                    let Some(ll) = ll.as_ref() else {
                        return HlsResponse::error(404, "no such part");
                    };
                    // The hinted part, or one just after it, will exist soon.
                    let pending = ll.next_part().is_some_and(|(m, p)| {
                        (m, p) == (msn, part)
                            || (m == msn && p < part && part <= p + 1)
                            || (m + 1 == msn && part == 0)
                    });
                    (ll.part(msn, part), pending)
                };
                if let Some(b) = found {
                    break HlsResponse::ok(BodyKind::Mp4, b);
                }
                if !pending || !stream.live.get() {
                    break HlsResponse::error(404, "no such part");
                }
                if !stream.changed.wait_until(seen, deadline).await {
                    break HlsResponse::error(503, "the part did not appear in time");
                }
            },
        }
    }
}
