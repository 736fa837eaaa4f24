//! srtgate: a live media gateway. SRT and SRTLA ingest; SRT and HLS / LL-HLS
//! outputs (RTMP and WebRTC come next, as outputs of the same core), on
//! glommio's thread-per-core executors.
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
//!        publisher: each SRT payload ─┬─▶ proto::ts::passthrough (cut at keyframes)
//!                                     └─▶ proto::ts::TsDemuxer → media::Frame
//!                          ▼
//!         io::hub::Publication (publisher's shard): media::describe (the
//!            │ stream's description), TS chunks + frames to the local
//!            │ media::stream::Stream and, by io::mesh::RelayMsg, to every
//!            │ shard whose consumers want them (TS, frames or both)
//!            ▼
//!   media::stream::Stream on each shard with consumers: Bus<TsChunk>, Bus<Frame>,
//!            │ GOP caches, the description
//!            ├─ SRT readers (io::srt::session): the shared TS chunks as sent
//!            └─ outputs (frames): io::hls on the path's home shard, muxing
//!                 media::hls::{TsHls, Fmp4Hls} once for every viewer
//!  HTTP clients ──tcp──▶ io::http (hyper, per shard) ──▶ io::http::routes ──▶
//!                 io::hls on the home shard (directly or over io::mesh)
//! ```
//!
//! # Outputs: the pattern
//!
//! An output turns a stream's frames into one format, **once per stream**, and
//! shares the bytes with every consumer of that format. To add one (RTMP,
//! WebRTC, ...):
//!
//! 1. A muxer or packetizer under `proto/` if the format needs one: sans-IO,
//!    frames and [`media::describe::Description`] in, bytes out.
//! 2. One module under `io/` that owns the output's life: created on the shard
//!    it lives on when its first consumer arrives (a request, a viewer, a
//!    forward target), it calls [`io::hub::Hub::subscribe_frames`] and reads
//!    the [`io::hub::Subscription`]: frames from the GOP cache's keyframe on,
//!    the description on `subscription.stream`, and the bus's signals
//!    ([`media::bus::EndReason::Restarted`]: start over after a discontinuity;
//!    `Paused`/`PublisherGone`: the publisher left, linger or end). It drops
//!    the subscription when its last consumer leaves, or after a linger.
//! 3. Its consumers share its output through their own bounded queues.
//!
//! The publisher's code never changes for a new output: [`io::hub`] relays what
//! each shard's subscriptions want, and nothing else. SRT readers are the one
//! consumer of TS; they get the publisher's own packets (pass-through) unless
//! the path asks for `remux`, or the ingest carries no TS, when the publication
//! muxes TS from frames (once per stream, only while someone reads TS).
//!
//! # Invariants
//!
//! - **Sans-IO cores.** `proto` and `media` never touch sockets, threads or the
//!   clock; time comes in as an argument. `io` is the only layer with sockets,
//!   executors and the cross-shard mesh (`tests/layering.rs` checks `media`
//!   and `proto` import none of glommio, sockets or `crate::io`).
//! - **Never block a shard.** No blocking calls on an executor; no locks on the
//!   data path (the registry and session table locks are taken only when a
//!   session starts or ends).
//! - **Mux once, fan out bytes.** SRT readers share the publisher's own TS
//!   chunks; each other output muxes once per stream. A reader costs a queue,
//!   not a muxer.
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
