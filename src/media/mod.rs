//! Media plumbing shared by every protocol: frames, per-shard buses with GOP
//! caches, the process-wide path registry and the cross-shard relay.
//!
//! Nothing here touches a socket. Ingest sessions push [`Frame`]s into a
//! [`hub::Publication`]; output sessions read a format produced once per stream
//! (today: MPEG-TS chunks) from a [`hub::Subscription`].

pub mod bus;
pub mod describe;
pub mod frame;
pub mod hls;
pub mod registry;
pub mod stream;

pub use frame::{Codec, Frame, TrackInfo};

use bytes::Bytes;

/// FNV-1a, a fast and stable (across runs and builds) non-cryptographic
/// hash: a path's HLS home shard, static files' validators.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// MPEG-TS for SRT readers, shared by all of them: a whole number of 188-byte
/// packets, either passed through from the publisher (a slice of one of its
/// payloads, see [`crate::proto::ts::passthrough`]) or muxed once from frames.
#[derive(Debug, Clone)]
pub struct TsChunk {
    pub data: Bytes,
    /// It begins a keyframe's PES: a reader may start here.
    pub key: bool,
    /// What a reader starting here sends first: the PAT and PMT (with
    /// discontinuity markers after another publisher).
    pub start: Option<Bytes>,
    /// The first keyframe of a publisher that followed another: readers that
    /// carry on send [`TsChunk::start`] too.
    pub discontinuity: bool,
}

impl TsChunk {
    /// Muxed TS (no prelude: the muxer repeats PAT/PMT before keyframes).
    pub fn muxed(data: Bytes, key: bool) -> Self {
        Self {
            data,
            key,
            start: None,
            discontinuity: false,
        }
    }
}

impl bus::BusItem for TsChunk {
    fn byte_len(&self) -> usize {
        self.data.len()
    }
}

impl bus::BusItem for Frame {
    fn byte_len(&self) -> usize {
        self.data.len()
    }
}
