//! Media plumbing shared by every protocol: frames, per-shard buses with GOP
//! caches, the process-wide path registry and the cross-shard relay.
//!
//! Nothing here touches a socket. Ingest sessions push [`Frame`]s into a
//! [`hub::Publication`]; output sessions read a format produced once per stream
//! (today: MPEG-TS chunks) from a [`hub::Subscription`].

pub mod bus;
pub mod frame;
pub mod hls;
pub mod hub;
pub mod registry;

pub use frame::{Codec, Frame, TrackInfo};

use bytes::Bytes;

/// FNV-1a, a fast and stable (across runs and builds) non-cryptographic
/// hash: a path's HLS home shard, static files' validators.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// MPEG-TS for one frame (a whole number of 188-byte packets), muxed once per
/// stream and shared by every TS reader.
#[derive(Debug, Clone)]
pub struct TsChunk(pub Bytes);

impl bus::BusItem for TsChunk {
    fn byte_len(&self) -> usize {
        self.0.len()
    }
}

impl bus::BusItem for Frame {
    fn byte_len(&self) -> usize {
        self.data.len()
    }
}
