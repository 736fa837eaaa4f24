//! One shard's view of the streams: a [`Feed`] per path with readers here, fed
//! either by a local publisher ([`Publication`]) or by the relay from the shard
//! that owns the publisher.
//!
//! Cross-shard rule: a stream is owned by its publisher's shard. That shard muxes
//! once and forwards each TS chunk (refcounted `Bytes`, never copied) to every
//! other shard with readers, one message per (chunk, shard); the receiving shard
//! fans it out locally. Forwarding never waits: a full channel drops the chunk and
//! that relay restarts at the next keyframe, counted in [`RelayStats`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::channel_mesh::Senders;

use super::bus::{Bus, EndReason, Reader};
use super::registry::{shards_in, Publisher, Registry};
use super::{Frame, TrackInfo, TsChunk};
use crate::io::hls::{HlsMsg, HlsRequest, HlsResponse, HlsStreams, Notify};
use crate::proto::ts::TsMuxer;

/// Messages between shards.
#[derive(Debug)]
pub enum ShardMsg {
    /// `shard` has readers of `path`: forward it there.
    Subscribe { path: Arc<str>, shard: usize },
    /// `shard` has no readers of `path` any more.
    Unsubscribe { path: Arc<str>, shard: usize },
    /// One TS chunk of `path` from publisher generation `gen`.
    Ts {
        path: Arc<str>,
        gen: u64,
        chunk: Bytes,
        key: bool,
    },
    /// The publisher of generation `gen` has gone; readers may wait `grace`
    /// for another (zero: they end).
    PublisherGone {
        path: Arc<str>,
        gen: u64,
        grace: Duration,
    },
    /// Stop a session (a publisher taken over by a newer one, an API kick).
    Kick {
        session: u64,
        reason: crate::io::srt::StopReason,
    },
    /// For the shard's SRTLA shell.
    Srtla(crate::io::srtla::SrtlaMsg),
    /// For the HLS home of a path, or a reply from it.
    Hls(HlsMsg),
}

/// Relay counters of one shard.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayStats {
    pub forwarded: u64,
    pub dropped: u64,
    pub stale: u64,
}

struct Remote {
    shard: usize,
    need_key: bool,
}

/// A path as seen from one shard.
pub struct Feed {
    pub path: Arc<str>,
    pub ts: Bus<TsChunk>,
    pub frames: Bus<Frame>,
    /// Generation of the publisher feeding this shard now; 0 = none.
    gen: Cell<u64>,
    tracks: RefCell<Vec<TrackInfo>>,
    /// Shards to forward to, when the publisher is on this shard.
    remotes: RefCell<Vec<Remote>>,
    local_publisher: Cell<bool>,
    readers: Cell<usize>,
    interest: Cell<bool>,
}

impl Feed {
    /// End the readers, or with a grace period let them wait for a new publisher.
    fn publisher_gone(&self, grace: Duration) {
        if grace.is_zero() {
            self.ts.end(EndReason::PublisherGone);
            self.frames.end(EndReason::PublisherGone);
        } else {
            self.ts.pause(grace);
            self.frames.pause(grace);
        }
    }

    pub fn has_publisher(&self) -> bool {
        self.gen.get() != 0
    }

    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.tracks.borrow().clone()
    }

    pub fn readers(&self) -> usize {
        self.readers.get()
    }
}

/// The per-shard directory of feeds and the relay endpoints.
pub struct Hub {
    pub shard: usize,
    /// Number of shards.
    pub shards: usize,
    registry: Arc<Registry>,
    /// The HLS streams whose home is this shard.
    pub hls: Rc<HlsStreams>,
    hls_on: Cell<bool>,
    /// HLS requests sent to other shards, waiting for their reply.
    pending: RefCell<HashMap<u64, Rc<ReplySlot>>>,
    next_request: Cell<u64>,
    peers: Option<Senders<ShardMsg>>,
    feeds: RefCell<HashMap<Arc<str>, Rc<Feed>>>,
    reader_queue: Cell<usize>,
    stats: Cell<RelayStats>,
}

impl Hub {
    pub fn new(
        shard: usize,
        shards: usize,
        registry: Arc<Registry>,
        peers: Option<Senders<ShardMsg>>,
        config: &crate::config::Config,
    ) -> Rc<Self> {
        let reader_queue = config.srt.reader_queue;
        Rc::new(Self {
            shard,
            shards: shards.max(1),
            hls: HlsStreams::new(registry.clone(), config.hls.clone()),
            hls_on: Cell::new(config.hls.enabled()),
            pending: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
            registry,
            peers,
            feeds: RefCell::new(HashMap::new()),
            reader_queue: Cell::new(reader_queue),
            stats: Cell::new(RelayStats::default()),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn stats(&self) -> RelayStats {
        self.stats.get()
    }

    pub fn set_reader_queue(&self, n: usize) {
        self.reader_queue.set(n);
    }

    /// The shard that is home to `path`'s HLS output (FNV-1a of the path).
    pub fn hls_home(&self, path: &str) -> usize {
        (super::fnv1a(path.as_bytes()) % self.shards as u64) as usize
    }

    /// Hand a publisher's HLS message to the path's home; false if it was dropped.
    fn hls_publish(&self, path: &str, msg: HlsMsg) -> bool {
        let home = self.hls_home(path);
        if home == self.shard {
            self.hls.publish(msg);
            true
        } else {
            self.send(home, ShardMsg::Hls(msg))
        }
    }

    /// Answer an HLS request, asking the path's home shard (`home`, from
    /// [`Hub::hls_home`]) if it is another one. `timeout` bounds the wait for
    /// a reply from there.
    pub async fn hls_request(
        &self,
        home: usize,
        req: HlsRequest,
        timeout: Duration,
    ) -> HlsResponse {
        if home == self.shard {
            return self.hls.answer(req).await;
        }
        let id = self.next_request.get() + 1;
        self.next_request.set(id);
        let slot = Rc::new(ReplySlot::default());
        self.pending.borrow_mut().insert(id, slot.clone());
        let msg = ShardMsg::Hls(HlsMsg::Get {
            from: self.shard,
            id,
            req,
        });
        let res = if self.send(home, msg) {
            let deadline = std::time::Instant::now() + timeout;
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

    /// Send a reply to an HLS request from another shard, waiting for room.
    pub async fn hls_reply(&self, to: usize, id: u64, res: HlsResponse) {
        if let Some(peers) = &self.peers {
            let _ = peers
                .send_to(to, ShardMsg::Hls(HlsMsg::Reply { id, res }))
                .await;
        }
    }

    pub fn feed(&self, path: &str) -> Option<Rc<Feed>> {
        self.feeds.borrow().get(path).cloned()
    }

    fn feed_or_create(&self, path: &str) -> Rc<Feed> {
        if let Some(f) = self.feed(path) {
            return f;
        }
        let path: Arc<str> = Arc::from(path);
        let cap = self.reader_queue.get();
        let feed = Rc::new(Feed {
            path: path.clone(),
            ts: Bus::new(cap),
            frames: Bus::new(cap),
            gen: Cell::new(0),
            tracks: RefCell::new(Vec::new()),
            remotes: RefCell::new(Vec::new()),
            local_publisher: Cell::new(false),
            readers: Cell::new(0),
            interest: Cell::new(false),
        });
        self.feeds.borrow_mut().insert(path, feed.clone());
        feed
    }

    fn send(&self, shard: usize, msg: ShardMsg) -> bool {
        match &self.peers {
            Some(peers) if shard != self.shard => peers.try_send_to(shard, msg).is_ok(),
            _ => false,
        }
    }

    fn bump(&self, f: impl FnOnce(&mut RelayStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Forget a feed nobody uses any more, telling the owner we stopped listening.
    fn maybe_remove(&self, feed: &Rc<Feed>) {
        if feed.readers.get() > 0 || feed.local_publisher.get() {
            return;
        }
        if feed.interest.replace(false) {
            if let Some(owner) = self.registry.remove_interest(&feed.path, self.shard) {
                self.send(
                    owner.shard,
                    ShardMsg::Unsubscribe {
                        path: feed.path.clone(),
                        shard: self.shard,
                    },
                );
            }
        }
        self.feeds.borrow_mut().remove(&feed.path);
    }

    /// Start publishing `path` from this shard.
    pub fn publish(
        self: &Rc<Self>,
        path: &str,
        session: u64,
        takeover: bool,
        grace: Duration,
    ) -> Result<(Publication, Option<Publisher>), Publisher> {
        let claim = self.registry.claim(path, self.shard, session, takeover)?;
        let feed = self.feed_or_create(path);
        feed.gen.set(claim.gen);
        feed.local_publisher.set(true);
        feed.tracks.borrow_mut().clear();
        *feed.remotes.borrow_mut() = shards_in(claim.interest)
            .filter(|&s| s != self.shard)
            .map(|shard| Remote {
                shard,
                need_key: true,
            })
            .collect();
        let publication = Publication {
            hub: self.clone(),
            feed,
            gen: claim.gen,
            muxer: None,
            has_video: false,
            grace,
            hls: None,
            hls_seq: 0,
        };
        Ok((publication, claim.replaced))
    }

    /// Read `path` as MPEG-TS from this shard.
    pub fn subscribe_ts(self: &Rc<Self>, path: &str) -> Subscription {
        let feed = self.feed_or_create(path);
        feed.readers.set(feed.readers.get() + 1);
        let reader = feed.ts.subscribe();
        if !feed.interest.replace(true) {
            if let Some(owner) = self.registry.add_interest(path, self.shard) {
                if owner.shard != self.shard {
                    self.send(
                        owner.shard,
                        ShardMsg::Subscribe {
                            path: feed.path.clone(),
                            shard: self.shard,
                        },
                    );
                }
            }
        }
        Subscription {
            hub: self.clone(),
            feed,
            reader,
        }
    }

    /// Handle a relay message from another shard (all but `Kick`, `Srtla` and
    /// HLS `Get`, which the shard layer owns; it is returned).
    pub fn handle(&self, msg: ShardMsg) -> Option<ShardMsg> {
        match msg {
            ShardMsg::Subscribe { path, shard } => {
                let feed = self.feed(&path)?;
                if !feed.local_publisher.get() {
                    return None;
                }
                let mut remotes = feed.remotes.borrow_mut();
                if remotes.iter().any(|r| r.shard == shard) {
                    return None;
                }
                // Replay the current group so readers there start at once.
                let mut ok = true;
                let mut first = true;
                for chunk in feed.ts.gop() {
                    ok &= self.send(
                        shard,
                        ShardMsg::Ts {
                            path: path.clone(),
                            gen: feed.gen.get(),
                            chunk: chunk.0,
                            key: first,
                        },
                    );
                    first = false;
                }
                remotes.push(Remote {
                    shard,
                    need_key: !ok || first,
                });
            }
            ShardMsg::Unsubscribe { path, shard } => {
                if let Some(feed) = self.feed(&path) {
                    feed.remotes.borrow_mut().retain(|r| r.shard != shard);
                }
            }
            ShardMsg::Ts {
                path,
                gen,
                chunk,
                key,
            } => {
                let feed = self.feed(&path)?;
                if gen < feed.gen.get() || feed.local_publisher.get() {
                    self.bump(|s| s.stale += 1);
                    return None;
                }
                feed.gen.set(gen);
                feed.ts.publish(TsChunk(chunk), key);
            }
            ShardMsg::PublisherGone { path, gen, grace } => {
                if let Some(feed) = self.feed(&path) {
                    // gen 0: the publisher left before its first chunk got here.
                    let current = feed.gen.get();
                    if (current == gen || current == 0) && !feed.local_publisher.get() {
                        feed.gen.set(0);
                        feed.publisher_gone(grace);
                    }
                }
            }
            ShardMsg::Hls(HlsMsg::Reply { id, res }) => {
                if let Some(slot) = self.pending.borrow().get(&id) {
                    *slot.res.borrow_mut() = Some(res);
                    slot.ready.notify();
                }
            }
            ShardMsg::Hls(get @ HlsMsg::Get { .. }) => return Some(ShardMsg::Hls(get)),
            ShardMsg::Hls(msg) => self.hls.publish(msg),
            other @ (ShardMsg::Kick { .. } | ShardMsg::Srtla(_)) => return Some(other),
        }
        None
    }

    /// Send a message to another shard (used by the session layer for kicks).
    pub fn send_to(&self, shard: usize, msg: ShardMsg) -> bool {
        self.send(shard, msg)
    }

    /// End every feed (shutdown).
    pub fn close_all(&self) {
        let feeds: Vec<_> = self.feeds.borrow().values().cloned().collect();
        for feed in feeds {
            feed.ts.end(EndReason::Closed);
            feed.frames.end(EndReason::Closed);
        }
    }
}

/// Where the reply to an HLS request sent to another shard lands.
#[derive(Default)]
struct ReplySlot {
    res: RefCell<Option<HlsResponse>>,
    ready: Notify,
}

/// A reader's handle on a feed; dropping it leaves.
pub struct Subscription {
    hub: Rc<Hub>,
    pub feed: Rc<Feed>,
    pub reader: Reader<TsChunk>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed
            .readers
            .set(self.feed.readers.get().saturating_sub(1));
        self.hub.maybe_remove(&self.feed);
    }
}

/// A publisher's handle: frames in, TS muxed once, fanned out here and to other
/// shards. Dropping it ends the publication.
pub struct Publication {
    hub: Rc<Hub>,
    feed: Rc<Feed>,
    gen: u64,
    muxer: Option<TsMuxer>,
    has_video: bool,
    /// How long readers may wait for a new publisher when this one goes.
    grace: Duration,
    /// HLS: the tracks, and whether the path's home has been told about them.
    hls: Option<(Vec<TrackInfo>, bool)>,
    hls_seq: u64,
}

impl Publication {
    pub fn path(&self) -> &Arc<str> {
        &self.feed.path
    }

    /// False once a newer publisher took the path over.
    pub fn is_current(&self) -> bool {
        self.feed.gen.get() == self.gen
    }

    pub fn set_tracks(&mut self, tracks: &[TrackInfo]) {
        self.has_video = tracks.iter().any(|t| t.codec.is_video());
        self.muxer = Some(TsMuxer::new(tracks));
        *self.feed.tracks.borrow_mut() = tracks.to_vec();
        self.hub.registry.set_tracks(
            &self.feed.path,
            self.gen,
            tracks.iter().map(|t| t.codec).collect(),
        );
        if self.hub.hls_on.get() {
            self.hls = Some((tracks.to_vec(), false));
        }
    }

    /// Send a frame to the path's HLS home (telling it the tracks first).
    fn push_hls(&mut self, frame: &Frame, chunk: &Bytes) {
        let Some((tracks, started)) = &mut self.hls else {
            return;
        };
        let path = &self.feed.path;
        if !*started {
            let start = HlsMsg::Start {
                path: path.clone(),
                gen: self.gen,
                tracks: tracks.clone(),
            };
            *started = self.hub.hls_publish(path, start);
            if !*started {
                return;
            }
        }
        let msg = HlsMsg::Frame {
            path: path.clone(),
            gen: self.gen,
            seq: self.hls_seq,
            frame: frame.clone(),
            chunk: chunk.clone(),
        };
        // A frame that does not get there is noticed by the gap in `seq`.
        self.hub.hls_publish(path, msg);
        self.hls_seq += 1;
    }

    pub fn push(&mut self, frame: Frame) {
        if !self.is_current() {
            return;
        }
        let Some(muxer) = self.muxer.as_mut() else {
            return;
        };
        // A group starts at a video keyframe; audio-only streams start anywhere.
        let key = if self.has_video {
            frame.key && frame.codec.is_video()
        } else {
            true
        };
        let chunk = muxer.mux(&frame);
        self.push_hls(&frame, &chunk);
        self.feed.frames.publish(frame, key);
        let mut remotes = self.feed.remotes.borrow_mut();
        for remote in remotes.iter_mut() {
            if remote.need_key && !key {
                continue;
            }
            let sent = self.hub.send(
                remote.shard,
                ShardMsg::Ts {
                    path: self.feed.path.clone(),
                    gen: self.gen,
                    chunk: chunk.clone(),
                    key,
                },
            );
            remote.need_key = !sent;
            self.hub.bump(|s| {
                if sent {
                    s.forwarded += 1
                } else {
                    s.dropped += 1
                }
            });
        }
        drop(remotes);
        self.feed.ts.publish(TsChunk(chunk), key);
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let hub = &self.hub;
        if matches!(self.hls, Some((_, true))) {
            let end = HlsMsg::End {
                path: self.feed.path.clone(),
                gen: self.gen,
            };
            if !hub.hls_publish(&self.feed.path, end) {
                tracing::warn!(path = &*self.feed.path, "hls: end of stream not delivered; the playlist ends when the next publisher comes");
            }
        }
        if let Some(interest) = hub.registry.release(&self.feed.path, self.gen) {
            for shard in shards_in(interest).filter(|&s| s != hub.shard) {
                hub.send(
                    shard,
                    ShardMsg::PublisherGone {
                        path: self.feed.path.clone(),
                        gen: self.gen,
                        grace: self.grace,
                    },
                );
            }
        }
        if self.is_current() {
            self.feed.gen.set(0);
            self.feed.local_publisher.set(false);
            self.feed.remotes.borrow_mut().clear();
            self.feed.publisher_gone(self.grace);
            hub.maybe_remove(&self.feed);
        }
    }
}
