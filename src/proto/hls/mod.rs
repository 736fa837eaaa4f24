//! HLS, sans-IO (issue 4, in progress): [`segmenter`] decides where segments
//! and partial segments begin; [`playlist`] renders media playlists for the
//! MPEG-TS and the LL-HLS (fMP4 with parts) variants and decides when a
//! blocking playlist reload can be answered. The fMP4 muxer, the per-stream
//! muxer and the HTTP shell are still to come.

pub mod playlist;
pub mod segmenter;
