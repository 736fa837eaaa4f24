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
    /// Stop a session (a publisher taken over by a newer one).
    Kick { session: u64 },
    /// For the shard's SRTLA shell.
    Srtla(crate::io::srtla::SrtlaMsg),
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
    registry: Arc<Registry>,
    peers: Option<Senders<ShardMsg>>,
    feeds: RefCell<HashMap<Arc<str>, Rc<Feed>>>,
    reader_queue: Cell<usize>,
    stats: Cell<RelayStats>,
}

impl Hub {
    pub fn new(
        shard: usize,
        registry: Arc<Registry>,
        peers: Option<Senders<ShardMsg>>,
        reader_queue: usize,
    ) -> Rc<Self> {
        Rc::new(Self {
            shard,
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

    /// Handle a relay message from another shard (all but `Kick` and `Srtla`, which the
    /// session layer owns; it is returned).
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
