//! Why an SRT (or SRTLA) session ended: a type, not a string, carrying what a
//! person reading the log needs: the stop's cause, the hook and its answer,
//! the panic and the last data sequence number srt-protocol was handed.

use std::net::SocketAddr;

use super::StopReason;
use crate::io::hooks::HookRefusal;
use crate::metrics::short_id;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionEnd {
    /// Told to stop from outside (shutdown, takeover, kick, reload).
    #[error("{}", .0.as_str())]
    Stopped(StopReason),
    #[error("refused: {0}")]
    Hook(#[from] HookRefusal),
    #[error("publisher already present")]
    Conflict,
    #[error("publisher gone")]
    PublisherGone,
    #[error("no publisher")]
    NoPublisher,
    #[error("stream closed")]
    StreamClosed,
    #[error("peer closed")]
    PeerClosed,
    #[error("peer timed out")]
    PeerTimedOut,
    /// A panic inside srt-protocol, contained (see [`super::contain`]).
    #[error("srt-protocol panicked{}: {panic}", at(*.seq))]
    Panicked { panic: String, seq: Option<u32> },
    #[error("srt-protocol did not settle{}", at(*.seq))]
    Unsettled { seq: Option<u32> },
}

fn at(seq: Option<u32>) -> String {
    seq.map(|s| format!(" after data packet {s}"))
        .unwrap_or_default()
}

impl SessionEnd {
    /// An end that points at a fault (ours or srt-protocol's), not at the peer.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            SessionEnd::Panicked { .. } | SessionEnd::Unsettled { .. }
        )
    }
}

/// A session's end with the session it ended.
#[derive(Debug, thiserror::Error)]
#[error("session {} ({peer}, {path}): {end}", short_id(*.session))]
pub struct SessionError {
    pub session: u64,
    pub peer: SocketAddr,
    pub path: String,
    #[source]
    pub end: SessionEnd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_name_their_context() {
        let e = SessionError {
            session: 0xabc,
            peer: SocketAddr::from(([127, 0, 0, 1], 9000)),
            path: "live/x".into(),
            end: SessionEnd::Panicked {
                panic: "index out of bounds".into(),
                seq: Some(41),
            },
        };
        let text = e.to_string();
        assert!(
            text.contains("127.0.0.1:9000") && text.contains("live/x"),
            "{text}"
        );
        assert!(
            text.ends_with("srt-protocol panicked after data packet 41: index out of bounds"),
            "{text}"
        );
        assert_eq!(
            SessionEnd::Stopped(StopReason::TakenOver).to_string(),
            StopReason::TakenOver.as_str()
        );
    }
}
