//! Codec helpers for the elementary streams carried in MPEG-TS.
//!
//! Owns the small, allocation-free bitstream inspections the TS demuxer and muxer
//! need: Annex-B NAL unit iteration and keyframe detection for H.264 / H.265, and
//! ADTS header parsing for AAC. It must not decode media, allocate per NAL or per
//! frame, or panic on any input: every function here accepts arbitrary bytes.

pub mod aac;
pub mod h264;
pub mod h265;

pub use aac::{AdtsError, AdtsFrames, AdtsHeader};
pub use h264::{nal_units, NalUnits};
