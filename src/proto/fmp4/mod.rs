//! Sans-IO fragmented MP4 (CMAF) muxer for LL-HLS.
//!
//! This module turns [`Frame`](crate::media::Frame)s (Annex-B H.264/H.265 access
//! units, ADTS AAC frames, MPEG-TS Opus access units, with 90 kHz timestamps) into an
//! init segment and `moof`+`mdat` fragments. It does no I/O and keeps no clock: the
//! caller decides what goes into each part / segment.
//!
//! ```no_run
//! # use srtgate::proto::fmp4::{Fragmenter, TrackConfig};
//! # use srtgate::media::{Codec, Frame};
//! # fn demo(video_key: &Frame, audio: &Frame) -> Result<(), srtgate::proto::fmp4::Fmp4Error> {
//! let v = TrackConfig::from_frame(Codec::H264, video_key)?.expect("key frame with SPS/PPS");
//! let a = TrackConfig::from_frame(Codec::Aac, audio)?.expect("ADTS frame");
//! let mut muxer = Fragmenter::new(vec![v, a]);
//! let init = muxer.init_segment();
//! let part = muxer.fragment(&[(0, video_key), (1, audio)], &[None, None])?;
//! # let _ = (init, part); Ok(()) }
//! ```
//!
//! See [`mux`] for the box layout and timing rules.

mod aac;
mod avc;
mod bits;
mod boxes;
mod error;
mod hevc;
pub mod mux;
mod opus;

pub use error::Fmp4Error;
pub use mux::{init_segment, Fragmenter, TrackConfig, VIDEO_TIMESCALE};
