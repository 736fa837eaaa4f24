//! One stream's HLS output, built once and shared by every viewer: segments
//! (and, for LL-HLS, partial segments) held in memory for the playlist's
//! window, plus the playlist itself. Sans-IO: frames and wall-clock time go
//! in, playlist text and segment bytes come out.
//!
//! Two variants: [`TsHls`] (MPEG-TS segments cut from the stream's TS chunks,
//! for players without LL-HLS) and [`Fmp4Hls`] (LL-HLS: fMP4 init segment,
//! segments and partial segments muxed from the frames). Each path's pair
//! lives on its home shard ([`crate::io::hls`]), which feeds them and
//! answers HTTP requests from them.

mod fmp4;
mod hold;
mod ts;

use std::time::Duration;

pub use crate::proto::hls::playlist::Blocking;
pub use fmp4::Fmp4Hls;
pub use ts::TsHls;

/// HLS settings of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsSettings {
    pub target: Duration,
    pub part_target: Duration,
    /// Complete segments in the playlist.
    pub window: usize,
}

impl Default for HlsSettings {
    fn default() -> Self {
        Self {
            target: Duration::from_secs(1),
            part_target: Duration::from_millis(200),
            window: 6,
        }
    }
}
