//! Where a stream's HLS segments and partial segments begin, decided frame by
//! frame, sans-IO.
//!
//! A segment begins at a video keyframe once the segment in progress has
//! reached the target duration (so every segment starts decodable, and a
//! stream whose keyframes are further apart than the target gets longer
//! segments rather than broken ones). Parts begin every part target of media
//! time, at any frame of the leading track; a part that begins with a
//! keyframe is independent. Streams without video cut by time on their
//! audio. Durations come from the leading track's decode timestamps
//! (90 kHz), so they add up exactly to the media's own timeline.

use std::time::Duration;

use crate::media::frame::Frame;

/// 90 kHz ticks per second.
const HZ: i64 = 90_000;

/// What a frame begins, decided before it is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// It continues the part in progress.
    None,
    /// It begins a new part; the previous part lasted `part`.
    Part { part: Duration },
    /// It begins a new segment (and part); the previous segment lasted
    /// `segment` and its last part `part` (both `None` for the very first).
    Segment {
        segment: Option<Duration>,
        part: Option<Duration>,
    },
}

/// Segment and part boundaries of one stream.
#[derive(Debug, Clone)]
pub struct Segmenter {
    target: i64,
    part_target: i64,
    /// The track that leads: the first video track, else the first track.
    leader: Option<u8>,
    has_video: bool,
    segment_start: Option<i64>,
    part_start: i64,
    /// The leading track's last DTS and its frame interval.
    last_dts: Option<i64>,
    interval: i64,
}

fn ticks(d: Duration) -> i64 {
    (d.as_micros() as i64 * HZ / 1_000_000).max(1)
}

fn duration(ticks: i64) -> Duration {
    Duration::from_micros((ticks.max(0) as u64) * 1_000_000 / HZ as u64)
}

impl Segmenter {
    /// `has_video`: the stream has a video track (cut at its keyframes).
    pub fn new(target: Duration, part_target: Duration, has_video: bool) -> Self {
        Self {
            target: ticks(target),
            part_target: ticks(part_target),
            leader: None,
            has_video,
            segment_start: None,
            part_start: 0,
            last_dts: None,
            interval: 0,
        }
    }

    /// Decide what `frame` begins. Frames of other tracks never begin
    /// anything: they go into the part in progress.
    pub fn push(&mut self, frame: &Frame) -> Boundary {
        if self.has_video != frame.codec.is_video() {
            return Boundary::None;
        }
        match self.leader {
            Some(t) if t != frame.track => return Boundary::None,
            Some(_) => {}
            None => {
                // The first segment starts at a keyframe of the leading track.
                if !frame.key {
                    return Boundary::None;
                }
                self.leader = Some(frame.track);
            }
        }
        let Some(start) = self.segment_start else {
            self.last_dts = Some(frame.dts);
            self.segment_start = Some(frame.dts);
            self.part_start = frame.dts;
            return Boundary::Segment {
                segment: None,
                part: None,
            };
        };
        let in_segment = frame.dts - start;
        let in_part = frame.dts - self.part_start;
        if let Some(last) = self.last_dts.replace(frame.dts) {
            self.interval = (frame.dts - last).max(0);
        }
        if frame.key && in_segment >= self.target {
            self.segment_start = Some(frame.dts);
            self.part_start = frame.dts;
            return Boundary::Segment {
                segment: Some(duration(in_segment)),
                part: Some(duration(in_part)),
            };
        }
        // A part never exceeds the part target (PART-TARGET is a maximum):
        // it ends here if the next frame would take it past the target.
        if in_part > 0
            && (in_part >= self.part_target || in_part + self.interval > self.part_target)
        {
            self.part_start = frame.dts;
            return Boundary::Part {
                part: duration(in_part),
            };
        }
        Boundary::None
    }

    /// The media time since the segment in progress began, up to `dts`
    /// (to complete the last segment when the stream ends).
    pub fn elapsed(&self, dts: i64) -> Option<(Duration, Duration)> {
        let start = self.segment_start?;
        Some((duration(dts - start), duration(dts - self.part_start)))
    }

    /// Forget the timeline (a new publisher starts a new one).
    pub fn reset(&mut self) {
        self.leader = None;
        self.segment_start = None;
        self.last_dts = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::Codec;
    use bytes::Bytes;

    fn frame(track: u8, codec: Codec, dts: i64, key: bool) -> Frame {
        Frame {
            track,
            codec,
            pts: dts,
            dts,
            key,
            data: Bytes::new(),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    /// 25 fps video with a keyframe every `gop` frames, and AAC between.
    fn run(seg: &mut Segmenter, frames: usize, gop: usize) -> Vec<(usize, Boundary)> {
        let mut out = Vec::new();
        let start = 8_000_000_000i64;
        for i in 0..frames {
            let dts = start + i as i64 * 3600;
            let b = seg.push(&frame(0, Codec::H264, dts, i % gop == 0));
            if b != Boundary::None {
                out.push((i, b));
            }
            assert_eq!(
                seg.push(&frame(1, Codec::Aac, dts + 100, true)),
                Boundary::None
            );
        }
        out
    }

    #[test]
    fn segments_begin_at_keyframes_after_the_target() {
        let mut s = Segmenter::new(Duration::from_secs(1), 200 * MS, true);
        let cuts = run(&mut s, 101, 25);
        let segments: Vec<usize> = cuts
            .iter()
            .filter(|(_, b)| matches!(b, Boundary::Segment { .. }))
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(segments, vec![0, 25, 50, 75, 100]);
        assert_eq!(
            cuts[0].1,
            Boundary::Segment {
                segment: None,
                part: None
            }
        );
        let second = cuts.iter().find(|(i, _)| *i == 25).unwrap().1;
        assert_eq!(
            second,
            Boundary::Segment {
                segment: Some(1000 * MS),
                part: Some(200 * MS)
            }
        );
        // Parts every 5 frames (200 ms at 25 fps).
        let parts = cuts
            .iter()
            .filter(|(i, b)| *i < 25 && matches!(b, Boundary::Part { .. }))
            .count();
        assert_eq!(parts, 4);
    }

    #[test]
    fn sparse_keyframes_make_longer_segments() {
        let mut s = Segmenter::new(Duration::from_secs(1), 200 * MS, true);
        let cuts = run(&mut s, 101, 50);
        let durations: Vec<Duration> = cuts
            .iter()
            .filter_map(|(_, b)| match b {
                Boundary::Segment {
                    segment: Some(d), ..
                } => Some(*d),
                _ => None,
            })
            .collect();
        assert_eq!(durations, vec![2000 * MS, 2000 * MS]);
    }

    #[test]
    fn nothing_begins_before_the_first_keyframe() {
        let mut s = Segmenter::new(Duration::from_secs(1), 200 * MS, true);
        assert_eq!(s.push(&frame(0, Codec::H264, 0, false)), Boundary::None);
        assert!(s.elapsed(0).is_none());
        assert!(matches!(
            s.push(&frame(0, Codec::H264, 3600, true)),
            Boundary::Segment { segment: None, .. }
        ));
        assert_eq!(s.elapsed(3600 + 9000), Some((100 * MS, 100 * MS)));
        s.reset();
        assert_eq!(s.push(&frame(0, Codec::H264, 7200, false)), Boundary::None);
    }

    #[test]
    fn audio_only_streams_cut_by_time() {
        let mut s = Segmenter::new(Duration::from_secs(1), 200 * MS, false);
        let mut segments = 0;
        // AAC at 48 kHz: 1024 samples = 1920 ticks.
        for i in 0..200i64 {
            if let Boundary::Segment { .. } = s.push(&frame(0, Codec::Aac, i * 1920, true)) {
                segments += 1;
            }
        }
        // 200 frames = 4.27 s: segments at 0, ~1, ~2, ~3, ~4 s.
        assert_eq!(segments, 5);
    }

    #[test]
    fn parts_never_exceed_the_part_target_at_any_frame_rate() {
        // 24 fps and 29.97 fps: whole frames do not add up to 200 ms.
        for interval in [3750i64, 3003] {
            let mut s = Segmenter::new(Duration::from_secs(1), 200 * MS, true);
            let mut parts = Vec::new();
            for i in 0..240 {
                let b = s.push(&frame(0, Codec::H264, i * interval, i % 48 == 0));
                match b {
                    Boundary::Part { part }
                    | Boundary::Segment {
                        part: Some(part), ..
                    } => parts.push(part),
                    _ => {}
                }
            }
            assert!(parts.len() > 30, "{interval}: {parts:?}");
            assert!(
                parts.iter().all(|p| *p <= 200 * MS),
                "{interval}: {parts:?}"
            );
            assert!(parts.iter().filter(|p| **p >= 160 * MS).count() > parts.len() * 3 / 4);
        }
    }
}
