//! HTTP/1.1 serving with hyper 1.x on glommio executors.
//!
//! hyper is runtime-agnostic: it needs an I/O type implementing
//! [`hyper::rt::Read`] + [`hyper::rt::Write`], and, for timeouts, a
//! [`hyper::rt::Timer`]. This module supplies those for glommio, without tokio
//! as a runtime (hyper still links tokio's `sync` feature for its internal
//! channels; no tokio reactor or scheduler is ever started):
//!
//! * [`GlommioIo`] wraps [`glommio::net::TcpStream`] (reads through a per-shard
//!   scratch buffer, vectored writes with `sendmsg`, a write-stall timeout);
//! * [`GlommioTimer`] / [`LocalExec`] are the timer and executor;
//! * [`SharedBody`] is a `!Send`, zero-copy response body over shared [`bytes::Bytes`];
//! * [`server`] binds one `SO_REUSEPORT` listener per shard and address and runs
//!   each accepted connection as one local task with hyper's HTTP/1 connection.
//!
//! Nothing here needs `Send`: the service, its state (`Rc`) and the body stay on
//! the shard that accepted the connection.

mod body;
mod io;
mod rt;
pub mod server;

pub use body::SharedBody;
pub use io::GlommioIo;
pub use rt::{GlommioSleep, GlommioTimer, LocalExec};
pub use server::{ServerConfig, ServerHandle};
