//! The frame: the one currency between protocols.
//!
//! Every ingest demuxes its container into [`Frame`]s once; every output consumes
//! frames (or a format produced once per stream from them). A frame's payload is a
//! refcounted [`Bytes`], so handing it to many readers, or to another shard, never
//! copies media.

use bytes::Bytes;

/// Elementary stream codecs srtgate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC, payload is one Annex-B access unit.
    H264,
    /// H.265 / HEVC, payload is one Annex-B access unit.
    H265,
    /// AAC, payload is one ADTS frame (header included).
    Aac,
    /// Opus as carried in MPEG-TS (ETSI TS 102 366 framing), one PES payload.
    Opus,
}

impl Codec {
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::H265)
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::H265 => "H265",
            Codec::Aac => "AAC",
            Codec::Opus => "Opus",
        }
    }
}

/// One elementary stream of a published stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Index of the track within its stream (0, 1, ...), stable for the stream's life.
    pub index: u8,
    pub codec: Codec,
    /// The PID it had in the publisher's transport stream (for logs only).
    pub source_pid: u16,
}

/// One access unit (video) or one audio frame.
///
/// Timestamps are in 90 kHz ticks, unwrapped from MPEG-TS's 33 bits so that they
/// only move forward (they may start anywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// [`TrackInfo::index`] of its track.
    pub track: u8,
    pub codec: Codec,
    pub pts: i64,
    pub dts: i64,
    /// A random access point: IDR/IRAP for video; every audio frame is one.
    pub key: bool,
    pub data: Bytes,
}
