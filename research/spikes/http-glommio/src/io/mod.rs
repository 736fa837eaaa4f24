//! I/O layers.

pub mod http;
