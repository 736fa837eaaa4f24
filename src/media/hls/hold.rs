//! Waiting for the codec configuration of every track before a publisher's
//! fMP4 output can start (the init segment describes all tracks at once).
//!
//! Each frame is offered to its track's [`TrackConfig::from_frame`] until the
//! track has a configuration (video needs a frame with its parameter sets,
//! audio any frame). Meanwhile frames are held, with their wall-clock time,
//! from the first one that can begin the output: a video keyframe when the
//! stream has video (the output starts at one, so earlier frames would be
//! dropped anyway), else any frame.
//!
//! The wait is bounded: a track still without configuration [`WAIT`] of media
//! after it could have given one (its first keyframe; audio, or a track that
//! sends nothing: the stream's first frame) is given up and left out of the
//! output, with one warning. A video track that sends frames but no keyframe
//! gets [`WAIT_FOR_KEYFRAME`] (a long GOP joined in its middle). Held frames
//! are capped in count and bytes, which gives up the same way. If no track
//! has a configuration when the bound hits, the held frames are dropped and
//! the wait starts over.

use std::collections::VecDeque;
use std::time::SystemTime;

use crate::media::{Frame, TrackInfo};
use crate::proto::fmp4::TrackConfig;

/// 90 kHz ticks a track may take to yield its configuration.
pub(super) const WAIT: i64 = 2 * 90_000;
/// The same for a video track that has sent no keyframe yet.
pub(super) const WAIT_FOR_KEYFRAME: i64 = 10 * 90_000;
/// Frames held at most.
const MAX_HELD_FRAMES: usize = 4096;
/// Payload bytes held at most.
const MAX_HELD_BYTES: usize = 32 << 20;

/// What a frame changed.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Still waiting (the frame was held or dropped).
    Waiting,
    /// Every remaining track has its configuration: the tracks kept (input
    /// index and configuration, in track order) and the held frames, oldest first.
    Ready {
        tracks: Vec<(u8, TrackConfig)>,
        frames: Vec<(Frame, SystemTime)>,
    },
}

/// One track waited for.
#[derive(Debug)]
struct Pending {
    info: TrackInfo,
    config: Option<TrackConfig>,
    /// Given up: left out of the output.
    dropped: bool,
    /// It sent a frame.
    seen: bool,
    /// Dts of its first keyframe (every audio frame is one).
    first_key: Option<i64>,
}

/// Frames held while track configurations are missing.
#[derive(Debug)]
pub(super) struct Hold {
    tracks: Vec<Pending>,
    held: VecDeque<(Frame, SystemTime)>,
    held_bytes: usize,
    /// Dts of the first frame seen (the wait's start).
    first_dts: Option<i64>,
}

impl Hold {
    pub(super) fn new(tracks: &[TrackInfo]) -> Self {
        Self {
            tracks: tracks
                .iter()
                .map(|info| Pending {
                    info: info.clone(),
                    config: None,
                    dropped: false,
                    seen: false,
                    first_key: None,
                })
                .collect(),
            held: VecDeque::new(),
            held_bytes: 0,
            first_dts: None,
        }
    }

    /// Payload bytes held.
    pub(super) fn memory(&self) -> usize {
        self.held_bytes
    }

    /// Offer one frame; frames of tracks not in the list are ignored.
    pub(super) fn push(&mut self, frame: &Frame, now: SystemTime) -> Outcome {
        let Some(i) = self
            .tracks
            .iter()
            .position(|p| p.info.index == frame.track && p.info.codec == frame.codec)
        else {
            return Outcome::Waiting;
        };
        let first = *self.first_dts.get_or_insert(frame.dts);
        let pending = &mut self.tracks[i];
        pending.seen = true;
        if frame.key && pending.first_key.is_none() {
            pending.first_key = Some(frame.dts);
        }
        if pending.config.is_none() {
            // A frame that yields nothing (or an error) is simply not a config:
            // the next one may be, and the wait is bounded.
            if let Ok(Some(config)) = TrackConfig::from_frame(frame.codec, frame) {
                pending.config = Some(config);
            }
        }
        if !self.tracks[i].dropped && (!self.held.is_empty() || self.can_begin(frame)) {
            self.held_bytes += frame.data.len();
            self.held.push_back((frame.clone(), now));
        }
        let full = self.held.len() > MAX_HELD_FRAMES || self.held_bytes > MAX_HELD_BYTES;
        let late = frame.dts.saturating_sub(first);
        let overdue: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| {
                let p = &self.tracks[t];
                p.config.is_none() && !p.dropped && (full || late >= self.deadline(p, first))
            })
            .collect();
        if !overdue.is_empty() {
            if self.tracks.iter().any(|p| p.config.is_some() && !p.dropped) {
                for t in overdue {
                    let p = &mut self.tracks[t];
                    p.dropped = true;
                    tracing::warn!(
                        track = p.info.index,
                        codec = p.info.codec.name(),
                        pid = p.info.source_pid,
                        "no codec configuration in time: track left out of the LL-HLS output"
                    );
                }
                self.drop_unusable_head();
            } else {
                // Nothing to output yet: start the wait over.
                self.held.clear();
                self.held_bytes = 0;
                self.first_dts = None;
                for p in &mut self.tracks {
                    p.seen = false;
                    p.first_key = None;
                }
                return Outcome::Waiting;
            }
        }
        let kept = self.tracks.iter().filter(|p| !p.dropped);
        if kept.clone().any(|p| p.config.is_none()) || kept.clone().next().is_none() {
            return Outcome::Waiting;
        }
        let tracks = kept
            .filter_map(|p| Some((p.info.index, p.config.clone()?)))
            .collect();
        self.held_bytes = 0;
        Outcome::Ready {
            tracks,
            frames: std::mem::take(&mut self.held).into(),
        }
    }

    /// Media time (from the wait's start) after which `p` is given up.
    fn deadline(&self, p: &Pending, first: i64) -> i64 {
        match p.first_key {
            Some(key) => key.saturating_sub(first).saturating_add(WAIT),
            None if p.seen && p.info.codec.is_video() => WAIT_FOR_KEYFRAME,
            None => WAIT,
        }
    }

    /// Whether the stream (as far as it is still waited for) has video.
    fn has_video(&self) -> bool {
        self.tracks
            .iter()
            .any(|p| !p.dropped && p.info.codec.is_video())
    }

    /// Whether `frame` can be the first of the output.
    fn can_begin(&self, frame: &Frame) -> bool {
        !self.has_video() || (frame.codec.is_video() && frame.key)
    }

    /// After tracks were given up: drop held frames of those tracks, and any
    /// before the first frame that can still begin the output.
    fn drop_unusable_head(&mut self) {
        let dropped: Vec<u8> = self
            .tracks
            .iter()
            .filter(|p| p.dropped)
            .map(|p| p.info.index)
            .collect();
        self.held.retain(|(f, _)| !dropped.contains(&f.track));
        while let Some((f, _)) = self.held.front() {
            if self.can_begin(f) {
                break;
            }
            self.held.pop_front();
        }
        self.held_bytes = self.held.iter().map(|(f, _)| f.data.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;
    use bytes::Bytes;

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn tracks() -> Vec<TrackInfo> {
        vec![
            TrackInfo {
                index: 0,
                codec: Codec::H264,
                source_pid: 256,
            },
            TrackInfo {
                index: 1,
                codec: Codec::Aac,
                source_pid: 257,
            },
        ]
    }

    fn video(dts: i64, key: bool, with_sps: bool) -> Frame {
        let mut v = Vec::new();
        if with_sps {
            for unit in [SPS, PPS] {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(unit);
            }
        }
        v.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }, 0x88]);
        Frame {
            track: 0,
            codec: Codec::H264,
            pts: dts,
            dts,
            key,
            data: Bytes::from(v),
        }
    }

    fn audio(dts: i64) -> Frame {
        // ADTS AAC-LC 48 kHz mono, 2 payload bytes.
        let data = vec![0xff, 0xf1, 0x4c, 0x40, 0x01, 0x3f, 0xfc, 0x21, 0x00];
        Frame {
            track: 1,
            codec: Codec::Aac,
            pts: dts,
            dts,
            key: true,
            data: Bytes::from(data),
        }
    }

    fn ready(o: Outcome) -> (Vec<u8>, Vec<Frame>) {
        match o {
            Outcome::Ready { tracks, frames } => (
                tracks.into_iter().map(|(i, _)| i).collect(),
                frames.into_iter().map(|(f, _)| f).collect(),
            ),
            Outcome::Waiting => panic!("still waiting"),
        }
    }

    #[test]
    fn holds_from_the_first_keyframe_until_every_config() {
        let now = SystemTime::UNIX_EPOCH;
        let mut h = Hold::new(&tracks());
        assert!(matches!(
            h.push(&video(0, false, false), now),
            Outcome::Waiting
        ));
        assert_eq!(h.memory(), 0, "nothing before a keyframe is held");
        let key = video(3600, true, true);
        assert!(matches!(h.push(&key, now), Outcome::Waiting));
        assert_eq!(h.memory(), key.data.len());
        let (tracks, frames) = ready(h.push(&audio(3700), now));
        assert_eq!(tracks, vec![0, 1]);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].key && frames[0].codec == Codec::H264);
    }

    #[test]
    fn gives_up_a_silent_track_after_the_bound() {
        let now = SystemTime::UNIX_EPOCH;
        let mut h = Hold::new(&tracks());
        let mut out = None;
        for i in 0..200i64 {
            if let Outcome::Ready { tracks, frames } = h.push(&video(i * 3600, i == 0, i == 0), now)
            {
                out = Some((i, tracks, frames.len()));
                break;
            }
        }
        let (i, tracks, held) = out.expect("gave up on the audio");
        assert_eq!(i, 50, "2 s of 25 fps video");
        assert_eq!(tracks.len(), 1);
        assert_eq!(held, 51);
    }

    #[test]
    fn video_without_a_keyframe_gets_longer_then_audio_goes_alone() {
        let now = SystemTime::UNIX_EPOCH;
        let mut h = Hold::new(&tracks());
        let mut ready_at = None;
        for i in 0..600i64 {
            let o = if i % 2 == 0 {
                h.push(&video(i * 1800, false, false), now)
            } else {
                h.push(&audio(i * 1800), now)
            };
            if let Outcome::Ready { tracks, frames } = o {
                ready_at = Some((i * 1800, tracks[0].0, frames.len()));
                break;
            }
        }
        let (at, track, frames) = ready_at.expect("audio alone in the end");
        assert_eq!(at, WAIT_FOR_KEYFRAME);
        assert_eq!((track, frames), (1, 0), "no keyframe, nothing was held");
    }

    #[test]
    fn no_config_at_all_starts_over_with_bounded_memory() {
        let now = SystemTime::UNIX_EPOCH;
        let mut h = Hold::new(&tracks()[..1]);
        for i in 0..2000i64 {
            // Keyframes without parameter sets: never a config.
            assert!(matches!(
                h.push(&video(i * 3600, true, false), now),
                Outcome::Waiting
            ));
            assert!(h.memory() <= 52 * 6);
        }
    }
}
