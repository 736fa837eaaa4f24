//! HTTP/1.1 serving with hyper 1.x on glommio shards: HLS, the player pages
//! and static files.
//!
//! hyper is runtime-agnostic: it needs an I/O type implementing
//! [`hyper::rt::Read`] + [`hyper::rt::Write`] and, for timeouts, a
//! [`hyper::rt::Timer`]. This module supplies those for glommio, without tokio
//! as a runtime (hyper links tokio's `sync` feature for its internal channels
//! only; no tokio reactor or scheduler runs):
//!
//! * [`GlommioIo`] wraps [`glommio::net::TcpStream`] (reads through a per-shard
//!   scratch buffer, vectored writes with `sendmsg`, a write-stall timeout);
//! * [`GlommioTimer`] is the timer;
//! * [`SharedBody`] is a `!Send`, zero-copy response body over shared [`bytes::Bytes`];
//! * [`server`] runs one shard's listeners and connections;
//! * [`routes`] is srtgate's handler: which URL serves what;
//! * [`files`] holds the static files, read once at start.
//!
//! Nothing here needs `Send`: the service, its state (`Rc`) and the body stay on
//! the shard that accepted the connection. See `research/spikes/http-glommio`.

mod body;
pub mod files;
mod io;
pub mod routes;
mod rt;
pub mod server;

pub use body::SharedBody;
pub use io::GlommioIo;
pub use rt::{GlommioSleep, GlommioTimer};
