//! Sans-IO protocol cores: plain synchronous code, no sockets, no clocks.

pub mod codec;
pub mod fmp4;
pub mod hls;
pub mod srtla;
pub mod streamid;
pub mod ts;
