//! One shard's streams, and the relay that carries them between shards.
//!
//! A stream is owned by its publisher's shard. A [`Publication`] there takes
//! the publisher's TS payloads (passed through, cut at keyframes by
//! [`crate::proto::ts::passthrough`]) and frames, keeps the stream's
//! [`Description`], and fans each item out to the local [`Stream`] and to every
//! other shard whose consumers want it: TS chunks where SRT readers are, frames
//! where other outputs are, one message per (item, shard), refcounted, never
//! copied. The receiving shard publishes it to its own [`Stream`], where its
//! readers and outputs share it. Forwarding never waits: a full channel drops
//! the item, and that shard's relay goes on at the next keyframe after a gap
//! its consumers are told of; drops are counted in [`RelayStats`].
//!
//! Where there is no TS to pass (an ingest of another protocol) or the path
//! asks for it (`remux`), the publication muxes TS from the frames, once per
//! stream and only while someone wants TS.
//!
//! Consumers subscribe here ([`Hub::subscribe_ts`], [`Hub::subscribe_frames`])
//! and start at the latest keyframe from the GOP cache. The publisher's code
//! does not know which outputs exist.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::io::mesh::{Mesh, RelayMsg};
use crate::media::bus::{BusItem, Reader};
use crate::media::describe::{Describer, Description};
use crate::media::registry::{shards_in, Publisher, Registry, Wants};
use crate::media::stream::Stream;
use crate::media::{Frame, TrackInfo, TsChunk};
use crate::proto::ts::passthrough::Splitter;
use crate::proto::ts::TsMuxer;

/// Relay counters of one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Items sent to other shards.
    pub forwarded: u64,
    /// Items dropped on a full channel (that shard went on at the next keyframe).
    pub dropped: u64,
    /// Items received for a publisher that had already been replaced.
    pub stale: u64,
}

/// What one other shard gets of a kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Off,
    /// Wanted, but the next item sent must be a keyframe (after a drop).
    NeedKey,
    On,
}

impl Want {
    fn from(wanted: bool, was: Want) -> Want {
        match (wanted, was) {
            (false, _) => Want::Off,
            (true, Want::Off) => Want::NeedKey,
            (true, w) => w,
        }
    }
}

#[derive(Debug)]
struct Remote {
    shard: usize,
    ts: Want,
    frames: Want,
}

/// The shards a local publication feeds.
struct Relay {
    gen: u64,
    grace: Duration,
    remotes: RefCell<Vec<Remote>>,
}

/// The per-shard directory of streams and the relay endpoints.
pub struct Hub {
    pub shard: usize,
    /// Number of shards.
    pub shards: usize,
    registry: Arc<Registry>,
    mesh: Rc<Mesh>,
    streams: RefCell<HashMap<Arc<str>, Rc<Stream>>>,
    /// What this shard last told the registry it wants, per path.
    told: RefCell<HashMap<Arc<str>, Wants>>,
    /// Relays of the publications on this shard.
    relays: RefCell<HashMap<Arc<str>, Rc<Relay>>>,
    reader_queue: Cell<usize>,
    stats: Cell<RelayStats>,
}

impl Hub {
    pub fn new(
        shard: usize,
        shards: usize,
        registry: Arc<Registry>,
        mesh: Rc<Mesh>,
        reader_queue: usize,
    ) -> Rc<Self> {
        Rc::new(Self {
            shard,
            shards: shards.max(1),
            registry,
            mesh,
            streams: RefCell::new(HashMap::new()),
            told: RefCell::new(HashMap::new()),
            relays: RefCell::new(HashMap::new()),
            reader_queue: Cell::new(reader_queue),
            stats: Cell::new(RelayStats::default()),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn mesh(&self) -> &Rc<Mesh> {
        &self.mesh
    }

    pub fn stats(&self) -> RelayStats {
        self.stats.get()
    }

    pub fn set_reader_queue(&self, n: usize) {
        self.reader_queue.set(n);
    }

    pub fn stream(&self, path: &str) -> Option<Rc<Stream>> {
        self.streams.borrow().get(path).cloned()
    }

    fn stream_or_create(&self, path: &str) -> Rc<Stream> {
        if let Some(s) = self.stream(path) {
            return s;
        }
        let path: Arc<str> = Arc::from(path);
        let s = Rc::new(Stream::new(path.clone(), self.reader_queue.get()));
        self.streams.borrow_mut().insert(path, s.clone());
        s
    }

    fn bump(&self, f: impl FnOnce(&mut RelayStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Start publishing `path` from this shard. `remux`: readers get TS muxed
    /// from the frames instead of the publisher's own.
    pub fn publish(
        self: &Rc<Self>,
        path: &str,
        session: u64,
        takeover: bool,
        grace: Duration,
        remux: bool,
    ) -> Result<(Publication, Option<Publisher>), Publisher> {
        let claim = self.registry.claim(path, self.shard, session, takeover)?;
        let stream = self.stream_or_create(path);
        stream.begin(claim.gen);
        stream.set_local_publisher(true);
        let relay = Rc::new(Relay {
            gen: claim.gen,
            grace,
            remotes: RefCell::new(
                claim
                    .interest
                    .iter()
                    .filter(|(s, _)| *s != self.shard)
                    .map(|&(shard, w)| Remote {
                        shard,
                        ts: Want::from(w.ts, Want::Off),
                        frames: Want::from(w.frames, Want::Off),
                    })
                    .collect(),
            ),
        });
        self.relays
            .borrow_mut()
            .insert(stream.path.clone(), relay.clone());
        let publication = Publication {
            hub: self.clone(),
            stream,
            relay,
            gen: claim.gen,
            splitter: Splitter::new(claim.follows),
            describer: Describer::new(claim.gen),
            has_video: false,
            remux,
            muxer: None,
            chunks: Vec::new(),
        };
        Ok((publication, claim.replaced))
    }

    /// Read `path` as MPEG-TS on this shard (SRT readers).
    pub fn subscribe_ts(self: &Rc<Self>, path: &str) -> Subscription<TsChunk> {
        let stream = self.stream_or_create(path);
        stream.count(true, 1);
        let reader = stream.ts.subscribe();
        self.update_interest(&stream);
        Subscription {
            hub: self.clone(),
            stream,
            reader,
            ts: true,
        }
    }

    /// Read `path`'s frames on this shard (every output but SRT); the
    /// stream's description is on [`Subscription::stream`].
    pub fn subscribe_frames(self: &Rc<Self>, path: &str) -> Subscription<Frame> {
        let stream = self.stream_or_create(path);
        stream.count(false, 1);
        let reader = stream.frames.subscribe();
        self.update_interest(&stream);
        Subscription {
            hub: self.clone(),
            stream,
            reader,
            ts: false,
        }
    }

    /// Tell the registry (and the publisher's shard) what this shard wants
    /// of a stream now; forget the stream once nobody here uses it.
    fn update_interest(&self, stream: &Rc<Stream>) {
        let wants = stream.wants();
        let told = self
            .told
            .borrow()
            .get(&stream.path)
            .copied()
            .unwrap_or_default();
        if wants != told {
            if wants.any() {
                self.told.borrow_mut().insert(stream.path.clone(), wants);
            } else {
                self.told.borrow_mut().remove(&stream.path);
            }
            let owner = self.registry.set_interest(&stream.path, self.shard, wants);
            if let Some(owner) = owner.filter(|o| o.shard != self.shard) {
                let msg = RelayMsg::Interest {
                    path: stream.path.clone(),
                    shard: self.shard,
                    wants,
                };
                if !self.mesh.try_send(owner.shard, msg) {
                    tracing::warn!(
                        path = &*stream.path,
                        "relay: interest not delivered to the publisher's shard"
                    );
                }
            }
        }
        if stream.is_unused() {
            self.streams.borrow_mut().remove(&stream.path);
        }
    }

    /// A relay message from another shard.
    pub fn handle(&self, msg: RelayMsg) {
        match msg {
            RelayMsg::Interest { path, shard, wants } => self.on_interest(&path, shard, wants),
            RelayMsg::Describe {
                path,
                gen,
                description,
            } => {
                let Some(stream) = self.remote_stream(&path, gen) else {
                    return;
                };
                let epoch_changed = stream
                    .description()
                    .is_some_and(|d| d.gen == gen && d.epoch != description.epoch);
                stream.set_description(description);
                if epoch_changed {
                    stream.frames.restart();
                }
            }
            RelayMsg::Ts {
                path,
                gen,
                chunk,
                gap,
            } => {
                let Some(stream) = self.remote_stream(&path, gen) else {
                    return;
                };
                if gap {
                    stream.ts.restart();
                }
                let key = chunk.key;
                stream.ts.publish(chunk, key);
            }
            RelayMsg::Frame {
                path,
                gen,
                frame,
                key,
                gap,
            } => {
                let Some(stream) = self.remote_stream(&path, gen) else {
                    return;
                };
                if gap {
                    stream.frames.restart();
                }
                stream.frames.publish(frame, key);
            }
            RelayMsg::PublisherGone { path, gen, grace } => {
                if let Some(stream) = self.stream(&path) {
                    if !stream.has_local_publisher() {
                        stream.publisher_gone(gen, grace);
                    }
                }
            }
        }
    }

    /// The stream that media of generation `gen` from another shard is for.
    fn remote_stream(&self, path: &str, gen: u64) -> Option<Rc<Stream>> {
        let stream = self.stream(path)?;
        if stream.has_local_publisher() || !stream.begin(gen) {
            self.bump(|s| s.stale += 1);
            return None;
        }
        Some(stream)
    }

    /// Another shard's consumers want something else of a stream published here.
    fn on_interest(&self, path: &str, shard: usize, wants: Wants) {
        let Some(relay) = self.relays.borrow().get(path).cloned() else {
            return;
        };
        let Some(stream) = self.stream(path) else {
            return;
        };
        let mut remotes = relay.remotes.borrow_mut();
        if !wants.any() {
            remotes.retain(|r| r.shard != shard);
            return;
        }
        let i = match remotes.iter().position(|r| r.shard == shard) {
            Some(i) => i,
            None => {
                remotes.push(Remote {
                    shard,
                    ts: Want::Off,
                    frames: Want::Off,
                });
                remotes.len() - 1
            }
        };
        let r = &mut remotes[i];
        let path = &stream.path;
        // The description first, then the current group of what is newly wanted.
        if let Some(description) = stream.description() {
            self.mesh.try_send(
                shard,
                RelayMsg::Describe {
                    path: path.clone(),
                    gen: relay.gen,
                    description,
                },
            );
        }
        if wants.ts && r.ts == Want::Off {
            let gop = stream.ts.gop();
            let sent = !gop.is_empty()
                && gop.into_iter().enumerate().all(|(i, chunk)| {
                    let gap = i == 0;
                    self.mesh.try_send(
                        shard,
                        RelayMsg::Ts {
                            path: path.clone(),
                            gen: relay.gen,
                            chunk,
                            gap,
                        },
                    )
                });
            r.ts = if sent { Want::On } else { Want::NeedKey };
        } else if !wants.ts {
            r.ts = Want::Off;
        }
        if wants.frames && r.frames == Want::Off {
            let gop = stream.frames.gop();
            let sent = !gop.is_empty()
                && gop.into_iter().enumerate().all(|(i, frame)| {
                    self.mesh.try_send(
                        shard,
                        RelayMsg::Frame {
                            path: path.clone(),
                            gen: relay.gen,
                            frame,
                            key: i == 0,
                            gap: i == 0,
                        },
                    )
                });
            r.frames = if sent { Want::On } else { Want::NeedKey };
        } else if !wants.frames {
            r.frames = Want::Off;
        }
    }

    /// End every stream (shutdown).
    pub fn close_all(&self) {
        let streams: Vec<_> = self.streams.borrow().values().cloned().collect();
        for s in streams {
            s.close();
        }
    }

    /// Paths with a stream on this shard (for tests and diagnostics).
    pub fn stream_count(&self) -> usize {
        self.streams.borrow().len()
    }
}

/// A consumer's handle on a stream; dropping it leaves.
pub struct Subscription<T: BusItem> {
    hub: Rc<Hub>,
    pub stream: Rc<Stream>,
    pub reader: Reader<T>,
    ts: bool,
}

impl<T: BusItem> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.stream.count(self.ts, -1);
        self.hub.update_interest(&self.stream);
    }
}

/// A publisher's handle: its TS payloads and frames in; the stream's TS
/// chunks, frames and description out, here and to the other shards.
/// Dropping it ends the publication.
pub struct Publication {
    hub: Rc<Hub>,
    stream: Rc<Stream>,
    relay: Rc<Relay>,
    gen: u64,
    splitter: Splitter,
    describer: Describer,
    has_video: bool,
    /// Readers get TS muxed from the frames.
    remux: bool,
    muxer: Option<TsMuxer>,
    chunks: Vec<TsChunk>,
}

impl Publication {
    pub fn path(&self) -> &Arc<str> {
        &self.stream.path
    }

    /// False once a newer publisher took the path over.
    pub fn is_current(&self) -> bool {
        self.stream.gen() == self.gen
    }

    /// The stream's description as the publication knows it.
    pub fn description(&self) -> &Arc<Description> {
        self.describer.current()
    }

    /// Counters of the pass-through splitter.
    pub fn passthrough_stats(&self) -> crate::proto::ts::passthrough::PassStats {
        self.splitter.stats()
    }

    /// The publisher's track list changed (a PMT): `pmt_pid` is where its
    /// PMT travels (for the pass-through's prelude).
    pub fn set_tracks(&mut self, tracks: &[TrackInfo], pmt_pid: Option<u16>) {
        if !self.is_current() {
            return;
        }
        self.has_video = tracks.iter().any(|t| t.codec.is_video());
        let video = tracks
            .iter()
            .find(|t| t.codec.is_video())
            .map(|t| (t.source_pid, t.codec));
        self.splitter.set_program(pmt_pid, video);
        self.muxer = None;
        let first = self.describer.current().epoch == 0;
        let d = self.describer.set_tracks(tracks);
        if !first {
            // Outputs built on the track list start over (remote ones see the epoch change).
            self.stream.frames.restart();
        }
        self.describe(d);
    }

    fn describe(&self, d: Arc<Description>) {
        self.stream.set_description(d.clone());
        self.hub
            .registry
            .set_description(&self.stream.path, self.gen, d.clone());
        for r in self.relay.remotes.borrow().iter() {
            self.hub.mesh.try_send(
                r.shard,
                RelayMsg::Describe {
                    path: self.stream.path.clone(),
                    gen: self.gen,
                    description: d.clone(),
                },
            );
        }
    }

    /// One payload of the publisher's transport stream, as it came.
    pub fn push_ts(&mut self, payload: Bytes) {
        if self.remux || !self.is_current() {
            return;
        }
        let mut chunks = std::mem::take(&mut self.chunks);
        self.splitter.push(payload, &mut chunks);
        for chunk in chunks.drain(..) {
            self.fan_ts(chunk);
        }
        self.chunks = chunks;
    }

    /// One frame demuxed from the publisher's stream.
    pub fn push_frame(&mut self, frame: Frame) {
        if !self.is_current() {
            return;
        }
        if let Some(d) = self.describer.frame(&frame) {
            self.describe(d);
        }
        // A group starts at a video keyframe; audio-only streams start anywhere.
        let key = if self.has_video {
            frame.key && frame.codec.is_video()
        } else {
            true
        };
        if self.remux && self.wants_ts() {
            let tracks = self.describer.current().infos();
            let muxer = self.muxer.get_or_insert_with(|| TsMuxer::new(&tracks));
            let data = muxer.mux(&frame);
            if !data.is_empty() {
                self.fan_ts(TsChunk::muxed(data, key));
            }
        } else {
            self.muxer = None;
        }
        self.fan_frame(frame, key);
    }

    fn wants_ts(&self) -> bool {
        self.stream.wants().ts
            || self
                .relay
                .remotes
                .borrow()
                .iter()
                .any(|r| r.ts != Want::Off)
    }

    fn fan_ts(&self, chunk: TsChunk) {
        let key = chunk.key;
        for r in self.relay.remotes.borrow_mut().iter_mut() {
            if r.ts == Want::Off || (r.ts == Want::NeedKey && !key) {
                continue;
            }
            let msg = RelayMsg::Ts {
                path: self.stream.path.clone(),
                gen: self.gen,
                chunk: chunk.clone(),
                gap: r.ts == Want::NeedKey,
            };
            r.ts = self.sent(r.shard, msg);
        }
        self.stream.ts.publish(chunk, key);
    }

    fn fan_frame(&self, frame: Frame, key: bool) {
        for r in self.relay.remotes.borrow_mut().iter_mut() {
            if r.frames == Want::Off || (r.frames == Want::NeedKey && !key) {
                continue;
            }
            let msg = RelayMsg::Frame {
                path: self.stream.path.clone(),
                gen: self.gen,
                frame: frame.clone(),
                key,
                gap: r.frames == Want::NeedKey,
            };
            r.frames = self.sent(r.shard, msg);
        }
        self.stream.frames.publish(frame, key);
    }

    /// Send to another shard; what that shard's relay needs next.
    fn sent(&self, shard: usize, msg: RelayMsg) -> Want {
        let ok = self.hub.mesh.try_send(shard, msg);
        self.hub
            .bump(|s| if ok { s.forwarded += 1 } else { s.dropped += 1 });
        if ok {
            Want::On
        } else {
            Want::NeedKey
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let hub = self.hub.clone();
        let path = self.stream.path.clone();
        if self.is_current() {
            let mut chunks = std::mem::take(&mut self.chunks);
            self.splitter.flush(&mut chunks);
            for chunk in chunks {
                self.fan_ts(chunk);
            }
        }
        if let Some(interest) = hub.registry.release(&path, self.gen) {
            for shard in shards_in(interest).filter(|&s| s != hub.shard) {
                hub.mesh.try_send(
                    shard,
                    RelayMsg::PublisherGone {
                        path: path.clone(),
                        gen: self.gen,
                        grace: self.relay.grace,
                    },
                );
            }
        }
        {
            let mut relays = hub.relays.borrow_mut();
            if relays.get(&path).is_some_and(|r| r.gen == self.gen) {
                relays.remove(&path);
            }
        }
        if self.is_current() {
            self.stream.set_local_publisher(false);
            self.stream.publisher_gone(self.gen, self.relay.grace);
            hub.update_interest(&self.stream);
        }
    }
}

#[cfg(test)]
mod tests;
