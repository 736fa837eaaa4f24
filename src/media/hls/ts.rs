//! The MPEG-TS HLS variant of one stream: its segments are the TS chunks the
//! stream's HLS output muxed once from its frames (PAT/PMT before every
//! keyframe), concatenated between segment boundaries, so each segment
//! starts with PAT, PMT and a keyframe.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use super::HlsSettings;
use crate::media::Frame;
use crate::proto::hls::playlist::{Blocking, Playlist, Variant};
use crate::proto::hls::segmenter::{Boundary, Segmenter};

/// The MPEG-TS HLS variant of one stream.
#[derive(Debug)]
pub struct TsHls {
    playlist: Playlist,
    segmenter: Segmenter,
    /// Complete segments still in the playlist, oldest first.
    segments: VecDeque<(u64, Bytes)>,
    /// The segment being built, once the first keyframe came.
    building: Option<(u64, BytesMut)>,
    last_dts: Option<i64>,
    evicted: Vec<u64>,
    /// Counts playlist changes (segments started, the end).
    version: u64,
}

impl TsHls {
    pub fn new(settings: &HlsSettings, has_video: bool) -> Self {
        Self {
            playlist: Playlist::new(
                Variant::Ts,
                settings.window,
                settings.target,
                settings.part_target,
            ),
            segmenter: Segmenter::new(settings.target, settings.part_target, has_video),
            segments: VecDeque::new(),
            building: None,
            last_dts: None,
            evicted: Vec::new(),
            version: 0,
        }
    }

    /// Number the first segment `msn`.
    pub fn starting_at(mut self, msn: u64) -> Self {
        self.playlist = self.playlist.starting_at(msn);
        self
    }

    /// Changes whenever the playlist does.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Add one frame and the TS muxed for it.
    pub fn push(&mut self, frame: &Frame, chunk: &[u8], now: SystemTime) {
        if let Boundary::Segment { segment, .. } = self.segmenter.push(frame) {
            if segment.is_none() && self.playlist.is_playable() {
                // A new timeline after the publisher came back.
                self.playlist.discontinuity();
            }
            self.evicted.clear();
            self.version += 1;
            let msn = self.playlist.start_segment(now, segment, &mut self.evicted);
            if let Some((done, bytes)) = self.building.take() {
                if segment.is_some() {
                    self.segments.push_back((done, bytes.freeze()));
                }
            }
            let gone = &self.evicted;
            self.segments.retain(|(m, _)| !gone.contains(m));
            self.building = Some((msn, BytesMut::with_capacity(256 * 1024)));
        }
        if let Some((_, buf)) = &mut self.building {
            buf.extend_from_slice(chunk);
            self.last_dts = Some(frame.dts);
        }
    }

    /// The publisher went: the segment in progress is complete, and the next
    /// publisher continues after a discontinuity.
    pub fn end(&mut self) {
        if let (Some((msn, bytes)), Some(dts)) = (self.building.take(), self.last_dts) {
            let (segment, _) = self.segmenter.elapsed(dts).unwrap_or_default();
            // The last frame's own duration is unknown; one frame at 25 fps is close.
            let segment = segment + Duration::from_millis(40);
            self.playlist.end(segment);
            self.version += 1;
            self.segments.push_back((msn, bytes.freeze()));
        }
        self.segmenter.reset();
    }

    pub fn playlist(&self) -> String {
        self.playlist.render()
    }

    pub fn is_playable(&self) -> bool {
        self.playlist.is_playable()
    }

    pub fn check_blocking(&self, msn: u64) -> Result<(), Blocking> {
        self.playlist.check_blocking(msn, None)
    }

    /// A complete segment still in the playlist.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|(m, _)| *m == msn)
            .map(|(_, b)| b.clone())
    }

    /// Bytes held (complete segments and the one being built).
    pub fn memory(&self) -> usize {
        self.segments.iter().map(|(_, b)| b.len()).sum::<usize>()
            + self.building.as_ref().map_or(0, |(_, b)| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, TrackInfo};
    use crate::proto::ts::TsMuxer;

    fn frames(n: usize, gop: usize) -> Vec<Frame> {
        let mut v = Vec::new();
        for i in 0..n {
            let dts = 900_000 + i as i64 * 3600;
            let mut au = vec![0, 0, 0, 1, if i % gop == 0 { 0x65 } else { 0x41 }];
            au.extend(std::iter::repeat_n(0xAB, 2000));
            v.push(Frame {
                track: 0,
                codec: Codec::H264,
                pts: dts,
                dts,
                key: i % gop == 0,
                data: Bytes::from(au),
            });
        }
        v
    }

    #[test]
    fn ts_segments_start_with_pat_and_slide() {
        let tracks = [TrackInfo {
            index: 0,
            codec: Codec::H264,
            source_pid: 256,
        }];
        let mut mux = TsMuxer::new(&tracks);
        let settings = HlsSettings {
            window: 3,
            ..HlsSettings::default()
        };
        let mut hls = TsHls::new(&settings, true);
        let t0 = SystemTime::now();
        assert!(!hls.is_playable());
        for (i, f) in frames(25 * 6 + 1, 25).iter().enumerate() {
            let chunk = mux.mux(f);
            hls.push(f, &chunk, t0 + Duration::from_millis(40 * i as u64));
        }
        let text = hls.playlist();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{text}");
        for msn in 3..6 {
            let seg = hls.segment(msn).expect("segment in the window");
            assert_eq!(seg.len() % 188, 0);
            assert_eq!(seg[0], 0x47);
            // PID 0 (PAT) first.
            assert_eq!((seg[1] & 0x1f, seg[2]), (0, 0));
            assert!(text.contains(&format!("seg{msn}.ts")), "{text}");
        }
        assert!(hls.segment(2).is_none(), "evicted");
        assert!(hls.memory() < 5 * 25 * 2200 + 64 * 1024);
        assert_eq!(hls.check_blocking(6), Err(Blocking::Wait));
        assert_eq!(hls.check_blocking(5), Ok(()));

        hls.end();
        assert!(
            hls.segment(6).is_some(),
            "the last segment is kept at the end"
        );
        assert_eq!(
            hls.check_blocking(7),
            Ok(()),
            "an ended stream answers at once"
        );
        // A new publisher continues the playlist after a discontinuity.
        for f in frames(26, 25) {
            hls.push(&f, &mux.mux(&f), t0);
        }
        let text = hls.playlist();
        assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(text.contains("seg7.ts"), "{text}");
    }
}
