//! The I/O shells: glommio executors (shards), sockets, clocks, one task per
//! session. Protocol decisions live in [`crate::proto`] and [`crate::media`];
//! this layer moves bytes and time in and out of them.

pub mod api;
pub mod bond;
pub mod clock;
pub mod control;
pub mod hls;
pub mod hooks;
pub mod http;
pub mod hub;
pub mod mesh;
pub mod reload;
pub mod runtime;
pub mod shard;
pub mod srt;
pub mod srtla;
pub mod stopper;
pub mod udp;
