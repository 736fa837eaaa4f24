//! Spike: HTTP/1.1 with hyper 1.x on glommio 0.9 executors (thread-per-core,
//! io_uring), the way the live-media gateway will serve HLS.
//!
//! * [`io::http`] is the part meant to move into the gateway as `src/io/http/`:
//!   the hyper I/O adapter, executor and timer for glommio, a `!Send`
//!   zero-copy body, and the per-shard server (listeners, limits, timeouts).
//! * [`demo`] is the demo handler (`/hello`, `/big`, `/wait`, 404 JSON).

pub mod demo;
pub mod io;
