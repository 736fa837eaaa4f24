//! The single error type of the crate.

use std::fmt;

use crate::media::frame::Codec;

/// Everything that can go wrong while building a track configuration or a fragment.
///
/// No input (however malformed) makes the muxer panic; it returns one of these instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fmp4Error {
    /// The codec cannot be muxed (yet). Currently only Opus.
    UnsupportedCodec(Codec),
    /// The frame's codec differs from the one it was passed for / its track's codec.
    CodecMismatch { expected: Codec, found: Codec },
    /// A key frame did not carry a parameter set needed to build the sample entry.
    MissingParameterSet { codec: Codec, what: &'static str },
    /// A parameter set (SPS/PPS/VPS) could not be parsed or does not fit the config record.
    MalformedParameterSet {
        codec: Codec,
        what: &'static str,
        reason: &'static str,
    },
    /// The AAC payload is not one well-formed ADTS frame.
    MalformedAdts(&'static str),
    /// A video payload has no usable Annex-B NAL units.
    InvalidAnnexB(&'static str),
    /// A sample refers to a track index that is not in the track list.
    UnknownTrack(u8),
    /// `fragment` was called without samples.
    NoSamples,
    /// Decode timestamps of a track went backwards (within or across fragments).
    NonMonotonicDts { track: u8, prev: i64, dts: i64 },
    /// A timestamp lies before the fragmenter's time origin (tfdt is unsigned).
    TimestampBeforeOrigin { track: u8, ts: i64, origin: i64 },
    /// A duration or composition offset does not fit its 32-bit `trun` field.
    TimestampOverflow { track: u8 },
    /// The fragment would exceed the 32-bit box size limit.
    FragmentTooLarge,
}

impl fmt::Display for Fmp4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedCodec(c) => write!(f, "codec {c:?} is not supported yet"),
            Self::CodecMismatch { expected, found } => {
                write!(f, "codec mismatch: expected {expected:?}, found {found:?}")
            }
            Self::MissingParameterSet { codec, what } => {
                write!(f, "{codec:?} key frame carries no {what}")
            }
            Self::MalformedParameterSet {
                codec,
                what,
                reason,
            } => write!(f, "malformed {codec:?} {what}: {reason}"),
            Self::MalformedAdts(reason) => write!(f, "malformed ADTS frame: {reason}"),
            Self::InvalidAnnexB(reason) => write!(f, "invalid Annex-B access unit: {reason}"),
            Self::UnknownTrack(t) => write!(f, "sample refers to unknown track index {t}"),
            Self::NoSamples => f.write_str("fragment has no samples"),
            Self::NonMonotonicDts { track, prev, dts } => {
                write!(f, "track {track}: dts went backwards ({dts} after {prev})")
            }
            Self::TimestampBeforeOrigin { track, ts, origin } => {
                write!(
                    f,
                    "track {track}: timestamp {ts} precedes time origin {origin}"
                )
            }
            Self::TimestampOverflow { track } => {
                write!(
                    f,
                    "track {track}: duration or composition offset overflows 32 bits"
                )
            }
            Self::FragmentTooLarge => f.write_str("fragment exceeds 4 GiB"),
        }
    }
}

impl std::error::Error for Fmp4Error {}
