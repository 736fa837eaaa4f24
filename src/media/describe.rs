//! A stream's description: its tracks with their codec configuration (H.264
//! SPS/PPS, H.265 VPS/SPS/PPS, AAC AudioSpecificConfig, Opus head), video size,
//! frame rate and whether B-frames are used, audio sample rate and channels.
//!
//! Built once per stream, on the publisher's shard, by a [`Describer`] that
//! looks at the frames as they pass (video keyframes for parameter sets, the
//! first audio frame of a configuration, timestamps for frame rate and
//! B-frames). Every output reads it instead of tracking parameter sets of its
//! own; the API and the dashboard show it. A new [`Description`] is made only
//! when something in it changes, so outputs can compare by [`Description::version`].
//!
//! Sans-IO: frames in, descriptions out; no clock.

use std::sync::Arc;

use bytes::Bytes;

use super::frame::{Codec, Frame, TrackInfo};
use crate::proto::fmp4::TrackConfig;

/// Video frames over which the frame rate is measured.
const RATE_WINDOW: usize = 32;

/// One track of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackDescription {
    pub info: TrackInfo,
    /// Codec configuration, once a frame carried it.
    pub config: Option<TrackConfig>,
    /// Frames per second (video), measured from decoding timestamps.
    pub frame_rate: Option<f64>,
    /// Presentation order differs from decoding order (B-frames).
    pub bframes: bool,
}

impl TrackDescription {
    pub fn codec(&self) -> Codec {
        self.info.codec
    }

    /// Display size of a video track.
    pub fn dimensions(&self) -> Option<(u16, u16)> {
        self.config.as_ref().and_then(TrackConfig::dimensions)
    }

    /// Sample rate of an audio track.
    pub fn sample_rate(&self) -> Option<u32> {
        let c = self.config.as_ref()?;
        (!c.codec().is_video()).then(|| c.timescale())
    }

    pub fn channels(&self) -> Option<u16> {
        self.config.as_ref().and_then(TrackConfig::channels)
    }

    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`, ...).
    pub fn codec_string(&self) -> Option<&str> {
        self.config.as_ref().map(TrackConfig::codec_string)
    }

    /// The `avcC`/`hvcC` record, AudioSpecificConfig or `dOps` payload.
    pub fn decoder_config(&self) -> Option<&[u8]> {
        self.config.as_ref().map(TrackConfig::decoder_config)
    }

    /// Video parameter sets (NAL units without start codes).
    pub fn parameter_sets(&self) -> &[Bytes] {
        self.config
            .as_ref()
            .map_or(&[], TrackConfig::parameter_sets)
    }
}

/// What is known of a stream's tracks; immutable, shared (`Arc`) across shards.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The publisher generation it describes.
    pub gen: u64,
    /// Counts changes of the track list within a generation: outputs that
    /// build on the track list (an init segment) start over when it changes.
    pub epoch: u64,
    /// Counts every change.
    pub version: u64,
    pub tracks: Vec<TrackDescription>,
}

impl Description {
    pub fn track(&self, index: u8) -> Option<&TrackDescription> {
        self.tracks.iter().find(|t| t.info.index == index)
    }

    pub fn has_video(&self) -> bool {
        self.tracks.iter().any(|t| t.info.codec.is_video())
    }

    /// Every track has its codec configuration.
    pub fn is_complete(&self) -> bool {
        self.tracks.iter().all(|t| t.config.is_some())
    }

    pub fn infos(&self) -> Vec<TrackInfo> {
        self.tracks.iter().map(|t| t.info.clone()).collect()
    }
}

/// Per-track measuring state.
#[derive(Debug, Default)]
struct Watch {
    dts: Vec<i64>,
    last_pts: Option<i64>,
    /// The AAC fixed header last configured from (cheap change check).
    adts_fixed: Option<[u8; 4]>,
}

/// Builds a stream's [`Description`] from its tracks and frames.
#[derive(Debug)]
pub struct Describer {
    current: Arc<Description>,
    watch: Vec<Watch>,
}

impl Describer {
    pub fn new(gen: u64) -> Self {
        Self {
            current: Arc::new(Description {
                gen,
                epoch: 0,
                version: 0,
                tracks: Vec::new(),
            }),
            watch: Vec::new(),
        }
    }

    pub fn current(&self) -> &Arc<Description> {
        &self.current
    }

    /// The publisher's track list (a PMT); returns the new description.
    pub fn set_tracks(&mut self, tracks: &[TrackInfo]) -> Arc<Description> {
        let old = &self.current;
        let tracks: Vec<TrackDescription> = tracks
            .iter()
            .map(|info| {
                // A track that stays (same index and codec) keeps what is known.
                old.track(info.index)
                    .filter(|t| t.info.codec == info.codec)
                    .map(|t| TrackDescription {
                        info: info.clone(),
                        ..t.clone()
                    })
                    .unwrap_or(TrackDescription {
                        info: info.clone(),
                        config: None,
                        frame_rate: None,
                        bframes: false,
                    })
            })
            .collect();
        self.watch = tracks.iter().map(|_| Watch::default()).collect();
        self.current = Arc::new(Description {
            gen: old.gen,
            epoch: old.epoch + 1,
            version: old.version + 1,
            tracks,
        });
        self.current.clone()
    }

    /// Look at one frame; returns a new description if the frame changed it.
    pub fn frame(&mut self, frame: &Frame) -> Option<Arc<Description>> {
        let i = self
            .current
            .tracks
            .iter()
            .position(|t| t.info.index == frame.track)?;
        let track = &self.current.tracks[i];
        let watch = &mut self.watch[i];
        let mut changed: Option<TrackDescription> = None;
        // Codec configuration: video keyframes carry it; audio when its header changes.
        let look = match frame.codec {
            Codec::H264 | Codec::H265 => frame.key,
            Codec::Aac => {
                let fixed = adts_fixed(&frame.data);
                let new = fixed.is_some() && fixed != watch.adts_fixed;
                if new {
                    watch.adts_fixed = fixed;
                }
                new
            }
            Codec::Opus => track.config.is_none(),
        };
        if look {
            if let Ok(Some(config)) = TrackConfig::from_frame(track.info.codec, frame) {
                if track.config.as_ref() != Some(&config) {
                    changed.get_or_insert_with(|| track.clone()).config = Some(config);
                }
            }
        }
        if frame.codec.is_video() {
            if watch.last_pts.is_some_and(|p| frame.pts < p) && !track.bframes {
                changed.get_or_insert_with(|| track.clone()).bframes = true;
            }
            watch.last_pts = Some(frame.pts);
            if watch.dts.len() == RATE_WINDOW {
                watch.dts.remove(0);
            }
            watch.dts.push(frame.dts);
            if let Some(rate) = measured_rate(&watch.dts) {
                let old = track.frame_rate.unwrap_or(0.0);
                if (rate - old).abs() > old * 0.01 {
                    changed.get_or_insert_with(|| track.clone()).frame_rate = Some(rate);
                }
            }
        }
        let new_track = changed?;
        let mut d = (*self.current).clone();
        d.tracks[i] = new_track;
        d.version += 1;
        self.current = Arc::new(d);
        Some(self.current.clone())
    }
}

/// Frames per second over a full window of decoding timestamps, rounded to 1/100.
fn measured_rate(dts: &[i64]) -> Option<f64> {
    if dts.len() < RATE_WINDOW {
        return None;
    }
    let span = dts[dts.len() - 1] - dts[0];
    if span <= 0 {
        return None;
    }
    let rate = (dts.len() - 1) as f64 * 90_000.0 / span as f64;
    Some((rate * 100.0).round() / 100.0)
}

/// The ADTS fixed-header bits that make up the AudioSpecificConfig.
fn adts_fixed(data: &[u8]) -> Option<[u8; 4]> {
    let h = data.get(..4)?;
    (h[0] == 0xFF && h[1] & 0xF0 == 0xF0).then(|| [h[0], h[1], h[2], h[3] & 0xC0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ts::tests::{av_frames, av_tracks};
    use rand::SeedableRng;

    #[test]
    fn description_follows_tracks_and_frames() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let frames = av_frames(&mut rng, 0, 80);
        let mut d = Describer::new(5);
        let first = d.set_tracks(&av_tracks());
        assert_eq!((first.gen, first.epoch, first.tracks.len()), (5, 1, 2));
        assert!(!first.is_complete());
        let mut versions = 0;
        for f in &frames {
            if d.frame(f).is_some() {
                versions += 1;
            }
        }
        let desc = d.current();
        assert!(desc.is_complete(), "{desc:?}");
        let video = desc.track(0).unwrap();
        // av_frames: 25 fps, PTS out of order on odd frames.
        assert_eq!(video.frame_rate, Some(25.0));
        assert!(video.bframes);
        assert_eq!(video.parameter_sets().len(), 2);
        let audio = desc.track(1).unwrap();
        assert!(audio.sample_rate().is_some() && audio.channels().is_some());
        assert!(audio.codec_string().unwrap().starts_with("mp4a.40."));
        // A handful of changes, not one per frame.
        assert!(versions < 12, "{versions} descriptions");
        // The same PMT again keeps what is known, in a new epoch.
        let again = d.set_tracks(&av_tracks());
        assert_eq!(again.epoch, 2);
        assert!(again.is_complete());
    }
}
