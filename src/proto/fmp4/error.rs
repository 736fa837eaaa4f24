//! The single error type of the fMP4 muxer.

use crate::media::frame::Codec;

/// Everything that can go wrong while building a track configuration or a fragment.
///
/// No input (however malformed) makes the muxer panic; it returns one of these instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fmp4Error {
    /// The codec cannot be muxed. Every [`Codec`] is supported today; kept for
    /// codecs to come.
    #[error("codec {0:?} is not supported yet")]
    UnsupportedCodec(Codec),
    /// The frame's codec differs from the one it was passed for / its track's codec.
    #[error("codec mismatch: expected {expected:?}, found {found:?}")]
    CodecMismatch { expected: Codec, found: Codec },
    /// A key frame did not carry a parameter set needed to build the sample entry.
    #[error("{codec:?} key frame carries no {what}")]
    MissingParameterSet { codec: Codec, what: &'static str },
    /// A parameter set (SPS/PPS/VPS) could not be parsed or does not fit the config record.
    #[error("malformed {codec:?} {what}: {reason}")]
    MalformedParameterSet {
        codec: Codec,
        what: &'static str,
        reason: &'static str,
    },
    /// The AAC payload is not one well-formed ADTS frame.
    #[error("malformed ADTS frame: {0}")]
    MalformedAdts(&'static str),
    /// The Opus payload is not a whole number of well-formed MPEG-TS Opus
    /// access units (control header + packet with a valid TOC).
    #[error("malformed Opus access unit: {0}")]
    MalformedOpus(&'static str),
    /// A video payload has no usable Annex-B NAL units.
    #[error("invalid Annex-B access unit: {0}")]
    InvalidAnnexB(&'static str),
    /// A sample refers to a track index that is not in the track list.
    #[error("sample refers to unknown track index {0}")]
    UnknownTrack(u8),
    /// `fragment` was called without samples.
    #[error("fragment has no samples")]
    NoSamples,
    /// Decode timestamps of a track went backwards (within or across fragments).
    #[error("track {track}: dts went backwards ({dts} after {prev})")]
    NonMonotonicDts { track: u8, prev: i64, dts: i64 },
    /// A timestamp lies before the fragmenter's time origin (tfdt is unsigned).
    #[error("track {track}: timestamp {ts} precedes time origin {origin}")]
    TimestampBeforeOrigin { track: u8, ts: i64, origin: i64 },
    /// A duration or composition offset does not fit its 32-bit `trun` field.
    #[error("track {track}: duration or composition offset overflows 32 bits")]
    TimestampOverflow { track: u8 },
    /// The fragment would exceed the 32-bit box size limit.
    #[error("fragment exceeds 4 GiB")]
    FragmentTooLarge,
}
