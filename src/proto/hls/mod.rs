//! HLS, sans-IO (issue 4, in progress): [`playlist`] renders media playlists
//! for the MPEG-TS and the LL-HLS (fMP4 with parts) variants and decides when
//! a blocking playlist reload can be answered. The segmenter, the fMP4 muxer
//! and the HTTP shell are still to come.

pub mod playlist;
