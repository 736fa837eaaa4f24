//! The fMP4 (CMAF) muxer of LL-HLS (`srtgate::proto::fmp4`): boxes parsed
//! back ([`fragment`]), hostile input ([`fuzz`]), and real decoders judging
//! its output ([`ffmpeg`]: ffprobe / ffmpeg, and GStreamer where present);
//! Opus in fMP4 ([`opus`]); and a stream's LL-HLS output
//! (`srtgate::media::hls::Fmp4Hls`) played from files by ffmpeg ([`hls`]).

mod common;
mod ffmpeg;
mod fragment;
mod fuzz;
mod hls;
mod opus;

/// The muxer and the frame types it takes, under the names the tests use.
mod fmp4 {
    pub use srtgate::media::{Codec, Frame};
    pub use srtgate::proto::fmp4::*;
}
