//! The LL-HLS variant of one stream: an fMP4 (CMAF) init segment, segments
//! and partial segments muxed once from the stream's frames, and their
//! playlist.
//!
//! - Frames wait in a [`Hold`] until every track has its codec configuration
//!   (bounded: a track that never yields one is left out).
//! - The [`Segmenter`] cuts parts of about the part target and segments at
//!   keyframes after the target. Each part is one `moof`+`mdat` from the
//!   [`Fragmenter`], written when the part completes: the frame that begins
//!   the next part gives the leading track's last sample its exact duration,
//!   so a part's media duration is the duration the playlist states (both
//!   are differences of the leading track's 90 kHz DTS). A part that begins
//!   with a keyframe is `INDEPENDENT=YES`.
//! - Frames the muxer could not write (wrong codec, bad payload, DTS going
//!   backwards) are checked one by one as they come and left out, so one bad
//!   frame never costs a whole part.
//! - A new publisher ([`Fmp4Hls::restart`]) continues after
//!   `EXT-X-DISCONTINUITY`; its media time continues where the last one's
//!   ended. If its track configurations differ, it gets a new init segment
//!   under a new URI (`init.mp4`, then `init1.mp4`, `init2.mp4`, ...), which
//!   `EXT-X-MAP` names from its first segment on.
//!
//! Memory: the window's complete segments, the one in progress, the frames
//! of the part in progress, the init segments still referred to, and the
//! bounded hold.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use super::hold::{Hold, Outcome};
use super::HlsSettings;
use crate::media::{Frame, TrackInfo};
use crate::proto::fmp4::{init_segment, Fmp4Error, Fragmenter, TrackConfig};
use crate::proto::hls::playlist::{Blocking, Part, Playlist, Variant};
use crate::proto::hls::segmenter::{Boundary, Segmenter};

/// A publisher's last frame lasts this long when nothing better is known
/// (90 kHz: 40 ms).
const DEFAULT_FRAME_TICKS: i64 = 3600;

/// Why a frame was left out of the output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("dts {dts} before the track's previous one ({prev})")]
    Backwards { prev: i64, dts: i64 },
    #[error("dts {dts} before the output's time origin {origin}")]
    BeforeOrigin { dts: i64, origin: i64 },
    #[error(transparent)]
    Payload(#[from] Fmp4Error),
}

/// The LL-HLS (fMP4) variant of one stream.
#[derive(Debug)]
pub struct Fmp4Hls {
    settings: HlsSettings,
    playlist: Playlist,
    /// The current publisher's tracks.
    tracks: Vec<TrackInfo>,
    phase: Phase,
    /// Complete segments still in the playlist, oldest first.
    segments: VecDeque<Stored>,
    /// The segment in progress.
    building: Option<Building>,
    /// Init segments still referred to, the current one last.
    inits: Vec<Init>,
    /// Added to init segment ids in their names (see [`Fmp4Hls::starting_at`]).
    init_base: u64,
    /// Init segments made so far (the next one's number).
    init_count: u32,
    /// Fragments written so far: `mfhd` sequence numbers go on across publishers.
    fragments: u32,
    /// Media time (90 kHz) where the previous publishers' output ended.
    timeline_end: i64,
    evicted: Vec<u64>,
    dropped: u64,
}

#[derive(Debug)]
enum Phase {
    /// No publisher (after `end`).
    Idle,
    /// Waiting for the track configurations.
    Waiting(Hold),
    Live(Box<Live>),
}

/// Muxing one publisher's frames.
#[derive(Debug)]
struct Live {
    /// Input track index of each fMP4 track (fMP4 track `i` is `inputs[i]`).
    inputs: Vec<u8>,
    configs: Vec<TrackConfig>,
    segmenter: Segmenter,
    /// Made at the first fragment, whose frames fix the time origin.
    fragmenter: Option<Fragmenter>,
    /// The part in progress: (fMP4 track, frame).
    part: Vec<(u8, Frame)>,
    /// The part in progress began with a keyframe.
    independent: bool,
    /// fMP4 track of the leading track (the one the segmenter cuts on).
    leader: Option<usize>,
    /// Per fMP4 track: the last frame's dts and the interval before it.
    last: Vec<Option<(i64, i64)>>,
}

/// The segment in progress.
#[derive(Debug)]
struct Building {
    msn: u64,
    parts: Vec<Bytes>,
    init: u32,
}

/// A complete segment.
///
/// Its parts are concatenated once, when it completes, and the parts are then
/// served as zero-copy slices of that buffer: one copy per segment instead of
/// one per segment request, and the parts cost no memory of their own.
#[derive(Debug)]
struct Stored {
    msn: u64,
    bytes: Bytes,
    parts: Vec<Range<usize>>,
    init: u32,
}

/// An init segment and what it describes.
#[derive(Debug)]
struct Init {
    id: u32,
    name: String,
    configs: Vec<TrackConfig>,
    bytes: Bytes,
}

impl Live {
    fn track_of(&self, frame: &Frame) -> Option<usize> {
        self.inputs.iter().position(|&i| i == frame.track)
    }

    /// Whether fMP4 track `t` can take `frame` next.
    fn accept(&self, t: usize, frame: &Frame) -> Result<(), Refusal> {
        if let Some((prev, _)) = self.last[t] {
            if frame.dts < prev {
                return Err(Refusal::Backwards {
                    prev,
                    dts: frame.dts,
                });
            }
        }
        if let Some(origin) = self.fragmenter.as_ref().and_then(Fragmenter::origin) {
            if frame.dts < origin {
                return Err(Refusal::BeforeOrigin {
                    dts: frame.dts,
                    origin,
                });
            }
        }
        self.configs[t].check_sample(frame)?;
        Ok(())
    }

    fn record(&mut self, t: usize, dts: i64) {
        let interval = match self.last[t] {
            Some((prev, _)) if dts > prev => dts - prev,
            Some((_, interval)) => interval,
            None => 0,
        };
        self.last[t] = Some((dts, interval));
    }

    /// Where the last frame of fMP4 track `t` ends (its dts plus the interval
    /// before it).
    fn end_of(&self, t: usize) -> Option<i64> {
        let (dts, interval) = self.last.get(t).copied().flatten()?;
        let duration = if interval > 0 {
            interval
        } else {
            DEFAULT_FRAME_TICKS
        };
        Some(dts.saturating_add(duration))
    }
}

impl Fmp4Hls {
    pub fn new(settings: &HlsSettings, tracks: &[TrackInfo]) -> Self {
        Self {
            settings: settings.clone(),
            playlist: Playlist::new(
                Variant::Fmp4,
                settings.window,
                settings.target,
                settings.part_target,
            ),
            tracks: tracks.to_vec(),
            phase: Phase::Waiting(Hold::new(tracks)),
            segments: VecDeque::new(),
            building: None,
            inits: Vec::new(),
            init_base: 0,
            init_count: 0,
            fragments: 0,
            timeline_end: 0,
            evicted: Vec::new(),
            dropped: 0,
        }
    }

    /// Number the first segment `msn` (so URIs are never reused by a later
    /// stream on the same path).
    pub fn starting_at(mut self, msn: u64) -> Self {
        self.playlist = self.playlist.starting_at(msn);
        // Init segments are named after it too, so their names are never
        // reused by a later stream either (they are served as immutable).
        self.init_base = msn;
        self
    }

    /// One frame of the stream. Frames before every track's configuration is
    /// known are held (bounded: see [`super::hold`]); a track that never
    /// yields one is left out, with one warning.
    pub fn push(&mut self, frame: &Frame, now: SystemTime) {
        if matches!(self.phase, Phase::Idle) {
            // Frames after `end` without `restart`: the same tracks again.
            self.phase = Phase::Waiting(Hold::new(&self.tracks));
        }
        if let Phase::Waiting(hold) = &mut self.phase {
            if let Outcome::Ready { tracks, frames } = hold.push(frame, now) {
                self.go_live(tracks);
                for (f, at) in &frames {
                    self.feed(f, *at);
                }
            }
            return;
        }
        self.feed(frame, now);
    }

    /// The publisher went: the segment in progress is complete, and the next
    /// publisher continues after a discontinuity.
    pub fn end(&mut self) {
        if let Phase::Live(live) = &self.phase {
            let leader = live.leader;
            let end = leader.and_then(|t| live.end_of(t));
            let elapsed = end.and_then(|e| live.segmenter.elapsed(e));
            if let (Some(t), Some(end), Some((segment, part))) = (leader, end, elapsed) {
                if self.building.is_some() {
                    self.finish_part(part, Some((t, end)));
                    self.playlist.end(segment);
                }
            }
            if let Some(b) = self.building.take() {
                self.store(b);
            }
            self.mark_timeline_end();
        }
        self.phase = Phase::Idle;
        self.prune_inits();
    }

    /// A new publisher, maybe with other tracks, codecs or resolution: its
    /// first segment follows `EXT-X-DISCONTINUITY`, with a new init segment
    /// if the track configurations differ.
    pub fn restart(&mut self, tracks: &[TrackInfo]) {
        self.end();
        self.tracks = tracks.to_vec();
        self.phase = Phase::Waiting(Hold::new(tracks));
    }

    /// The media playlist.
    pub fn playlist(&self) -> String {
        self.playlist.render()
    }

    pub fn is_playable(&self) -> bool {
        self.playlist.is_playable()
    }

    /// Whether a blocking reload for `_HLS_msn=msn` (`_HLS_part=part`) can be
    /// answered now.
    pub fn check_blocking(&self, msn: u64, part: Option<usize>) -> Result<(), Blocking> {
        self.playlist.check_blocking(msn, part)
    }

    /// An init segment by its URI (`init.mp4`, `init1.mp4`, ...), while the
    /// playlist or the publisher still uses it.
    pub fn init(&self, uri_name: &str) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|i| i.name == uri_name)
            .map(|i| i.bytes.clone())
    }

    /// A complete segment still in the playlist: its parts concatenated.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|s| s.msn == msn)
            .map(|s| s.bytes.clone())
    }

    /// A part while the playlist lists it.
    pub fn part(&self, msn: u64, part: usize) -> Option<Bytes> {
        if let Some(b) = self.building.as_ref().filter(|b| b.msn == msn) {
            return b.parts.get(part).cloned();
        }
        if !self.playlist.lists_parts(msn) {
            return None;
        }
        let s = self.segments.iter().find(|s| s.msn == msn)?;
        s.parts.get(part).map(|r| s.bytes.slice(r.clone()))
    }

    /// The part the playlist's `EXT-X-PRELOAD-HINT` names: the one a client
    /// may request before it exists.
    pub fn next_part(&self) -> Option<(u64, usize)> {
        self.playlist.preload_hint()
    }

    /// Bytes held: segments, parts, the part in progress, init segments and
    /// frames waiting for track configurations.
    pub fn memory(&self) -> usize {
        let stored: usize = self.segments.iter().map(|s| s.bytes.len()).sum();
        let building = self
            .building
            .as_ref()
            .map_or(0, |b| b.parts.iter().map(Bytes::len).sum());
        let inits: usize = self.inits.iter().map(|i| i.bytes.len()).sum();
        let pending = match &self.phase {
            Phase::Idle => 0,
            Phase::Waiting(hold) => hold.memory(),
            Phase::Live(live) => live.part.iter().map(|(_, f)| f.data.len()).sum(),
        };
        stored + building + inits + pending
    }

    /// RFC 6381 codecs of the current init segment, for a master playlist's
    /// `CODECS` attribute, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> Option<String> {
        let init = self.inits.last()?;
        let list: Vec<&str> = init.configs.iter().map(TrackConfig::codec_string).collect();
        Some(list.join(","))
    }

    /// Video size of the current init segment, if it has video.
    pub fn resolution(&self) -> Option<(u16, u16)> {
        self.inits
            .last()?
            .configs
            .iter()
            .find_map(TrackConfig::dimensions)
    }

    /// Frames left out so far (bad payload, timestamps going backwards).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Every kept track has its configuration: pick (or make) the init
    /// segment and start muxing.
    fn go_live(&mut self, kept: Vec<(u8, TrackConfig)>) {
        let (inputs, configs): (Vec<u8>, Vec<TrackConfig>) = kept.into_iter().unzip();
        if !self.inits.last().is_some_and(|i| i.configs == configs) {
            let id = self.init_count;
            self.init_count += 1;
            let name = match self.init_base + u64::from(id) {
                0 => "init.mp4".to_owned(),
                n => format!("init{n}.mp4"),
            };
            self.playlist.set_map(&name);
            self.inits.push(Init {
                id,
                name,
                bytes: init_segment(&configs),
                configs: configs.clone(),
            });
            self.prune_inits();
        }
        let has_video = configs.iter().any(|c| c.codec().is_video());
        self.phase = Phase::Live(Box::new(Live {
            segmenter: Segmenter::new(self.settings.target, self.settings.part_target, has_video),
            last: vec![None; configs.len()],
            inputs,
            configs,
            fragmenter: None,
            part: Vec::new(),
            independent: false,
            leader: None,
        }));
    }

    fn feed(&mut self, frame: &Frame, now: SystemTime) {
        let Phase::Live(live) = &mut self.phase else {
            return;
        };
        let Some(t) = live.track_of(frame) else {
            return;
        };
        if let Err(why) = live.accept(t, frame) {
            self.note_drop(frame, &why);
            return;
        }
        let boundary = live.segmenter.push(frame);
        match boundary {
            // Before the first segment: nothing to add to.
            Boundary::None if self.building.is_none() => return,
            Boundary::None => {}
            Boundary::Part { part } => self.finish_part(part, Some((t, frame.dts))),
            Boundary::Segment { segment, part } => {
                if let Some(part) = part {
                    self.finish_part(part, Some((t, frame.dts)));
                }
                self.start_segment(now, segment);
            }
        }
        let Phase::Live(live) = &mut self.phase else {
            return;
        };
        if boundary != Boundary::None {
            live.independent = frame.key;
            live.leader = Some(t);
        }
        live.record(t, frame.dts);
        live.part.push((t as u8, frame.clone()));
    }

    /// Writes the part in progress as one fragment; `next` is the leading
    /// track's next dts (what ends its last sample).
    fn finish_part(&mut self, duration: Duration, next: Option<(usize, i64)>) {
        let (Phase::Live(live), Some(building)) = (&mut self.phase, self.building.as_mut()) else {
            return;
        };
        let frames = std::mem::take(&mut live.part);
        if frames.is_empty() {
            return;
        }
        let mut next_dts = vec![None; live.configs.len()];
        if let Some(slot) = next.and_then(|(t, _)| next_dts.get_mut(t)) {
            *slot = next.map(|(_, dts)| dts);
        }
        let (timeline_end, sequence) = (self.timeline_end, self.fragments.wrapping_add(1));
        let configs = &live.configs;
        let fragmenter = live.fragmenter.get_or_insert_with(|| {
            // Media time goes on from where the previous publisher ended.
            let first = frames.iter().map(|(_, f)| f.dts).min().unwrap_or(0);
            let mut f =
                Fragmenter::new(configs.clone()).with_origin(first.saturating_sub(timeline_end));
            f.set_sequence_number(sequence);
            f
        });
        let samples: Vec<(u8, &Frame)> = frames.iter().map(|(t, f)| (*t, f)).collect();
        match fragmenter.fragment(&samples, &next_dts) {
            Ok(bytes) => {
                self.fragments = self.fragments.wrapping_add(1);
                building.parts.push(bytes);
                self.playlist.add_part(Part {
                    duration,
                    independent: live.independent,
                });
            }
            Err(e) => {
                // Frames were checked one by one; only extreme timestamps
                // (32-bit overflows) get here. The part is left out.
                self.dropped += frames.len() as u64;
                tracing::warn!(error = %e, frames = frames.len(), "LL-HLS part could not be muxed");
            }
        }
    }

    /// Completes the segment in progress (if `previous` gives its duration)
    /// and begins the next one.
    fn start_segment(&mut self, now: SystemTime, previous: Option<Duration>) {
        if previous.is_none() && self.playlist.segments().next().is_some() {
            // A new publisher's first segment: a new timeline.
            self.playlist.discontinuity();
        }
        self.evicted.clear();
        let msn = self
            .playlist
            .start_segment(now, previous, &mut self.evicted);
        if let Some(done) = self.building.take() {
            if previous.is_some() {
                self.store(done);
            }
        }
        let gone = &self.evicted;
        self.segments.retain(|s| !gone.contains(&s.msn));
        let init = self.inits.last().map_or(0, |i| i.id);
        self.building = Some(Building {
            msn,
            parts: Vec::new(),
            init,
        });
        self.prune_inits();
    }

    /// Keeps a completed segment: its parts concatenated once.
    fn store(&mut self, done: Building) {
        let len = done.parts.iter().map(Bytes::len).sum();
        let mut bytes = BytesMut::with_capacity(len);
        let mut parts = Vec::with_capacity(done.parts.len());
        for p in &done.parts {
            let start = bytes.len();
            bytes.extend_from_slice(p);
            parts.push(start..bytes.len());
        }
        self.segments.push_back(Stored {
            msn: done.msn,
            bytes: bytes.freeze(),
            parts,
            init: done.init,
        });
    }

    /// Remembers where this publisher's media time ended, for the next one.
    fn mark_timeline_end(&mut self) {
        let Phase::Live(live) = &self.phase else {
            return;
        };
        let Some(origin) = live.fragmenter.as_ref().and_then(Fragmenter::origin) else {
            return;
        };
        let end = (0..live.last.len()).filter_map(|t| live.end_of(t)).max();
        if let Some(end) = end {
            self.timeline_end = self.timeline_end.max(end.saturating_sub(origin));
        }
    }

    /// Drops init segments no segment refers to, except the current one.
    fn prune_inits(&mut self) {
        let current = self.inits.last().map(|i| i.id);
        let segments = &self.segments;
        let building = &self.building;
        self.inits.retain(|i| {
            Some(i.id) == current
                || segments.iter().any(|s| s.init == i.id)
                || building.as_ref().is_some_and(|b| b.init == i.id)
        });
    }

    fn note_drop(&mut self, frame: &Frame, why: &Refusal) {
        self.dropped += 1;
        // The first drops, then ever fewer (1, 2, 4, 8, ...): bounded logging
        // without a clock.
        if self.dropped.is_power_of_two() {
            tracing::warn!(
                track = frame.track,
                codec = frame.codec.name(),
                dropped = self.dropped,
                reason = %why,
                "frame left out of the LL-HLS output"
            );
        }
    }
}

#[cfg(test)]
mod tests;
