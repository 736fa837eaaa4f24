//! srtgate: a live media gateway. SRT and SRTLA ingest, SRT / HLS / WebRTC /
//! RTMP outputs, on glommio's thread-per-core executors.
//!
//! # Architecture map
//!
//! ```text
//!  SRT callers ──udp──▶ io::srt::listener (per shard, per address)
//!                          │ handshake: io::srt::accept (srt-protocol `Listen`,
//!                          │ admission by io::srt::access)
//!  SRTLA links ──udp──▶ io::srtla (per shard; a group's links go to its home
//!                          │ shard; proto::srtla::groups: registration, ACKs,
//!                          │ routing back; one virtual SRT caller per group)
//!                          ▼
//!                  io::srt::session (one task per caller or group; bonded
//!                          │ groups resequence data first: proto::srtla::reseq)
//!        publisher: SRT payloads → proto::ts::TsDemuxer → media::Frame
//!                          │
//!                          ▼
//!         media::hub::Publication (owner shard): frames bus, TS muxed once
//!            │ local media::bus::Bus<TsChunk>      │ ShardMsg::Ts to shards with readers
//!            ▼                                     ▼
//!   reader sessions on this shard       media::hub::Feed on other shards → their readers
//!            │
//!            └─ each frame + its TS chunk ──▶ io::hls (the path's HLS home shard):
//!                 media::hls::{TsHls, Fmp4Hls} build segments and parts once
//!  HTTP clients ──tcp──▶ io::http (hyper, per shard) ──▶ io::http::routes ──▶
//!                 io::hls on the home shard (directly or over the mesh)
//! ```
//!
//! # Invariants
//!
//! - **Sans-IO cores.** `proto` and `media` never touch sockets, threads or the
//!   clock; time comes in as an argument. `io` is the only layer with sockets.
//! - **Never block a shard.** No blocking calls on an executor; no locks on the
//!   data path (the registry and session table locks are taken only when a
//!   session starts or ends).
//! - **Mux once, fan out bytes.** One TS muxer per stream; readers share its
//!   refcounted chunks. A reader costs a queue, not a muxer.
//! - **Publishers never wait.** Each reader has a bounded queue; a reader that
//!   falls behind skips to the next keyframe and the skip is counted.
//! - **Contain third-party faults.** Every call into srt-protocol goes through
//!   [`io::srt::contain`]; a panic ends one handshake or session, never a shard.
//! - **Bad input is counted and logged, rate-limited** ([`metrics`]).
#![forbid(clippy::print_stdout)]

pub mod config;
pub mod io;
pub mod media;
pub mod metrics;
pub mod proto;
