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
