//! HLS, sans-IO (issue 4, in progress): [`segmenter`] decides where segments
//! and partial segments begin; [`playlist`] renders media playlists for the
//! MPEG-TS and the LL-HLS (fMP4 with parts) variants and decides when a
//! blocking playlist reload can be answered. The fMP4 muxer is
//! [`crate::proto::fmp4`]; one stream's outputs built from these are in
//! [`crate::media::hls`].

pub mod playlist;
pub mod segmenter;
