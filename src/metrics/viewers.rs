//! HLS viewers, counted per shard without a lock on the request path.
//!
//! HTTP has no sessions: a viewer is a (path, client address, user agent)
//! seen in the last [`HLS_VIEWER_IDLE`]. Each shard keeps its own bounded
//! [`ViewerTable`] (a plain map, touched only by that shard: O(1) per request).
//! A full table tracks no new viewers until the periodic sweep expires idle
//! ones (counted as `untracked`), so a client rotating its user agent costs a
//! hash lookup per request, never a scan. The shard publishes a snapshot of its
//! table into [`super::Metrics`] at most every [`PUBLISH_EVERY`] and at each
//! sweep; the API and `/metrics` merge the shards' snapshots. Per-path HLS
//! bytes are gathered here too and handed on with each snapshot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use super::HlsViewer;

/// How long an HLS viewer counts after its last request.
pub const HLS_VIEWER_IDLE: Duration = Duration::from_secs(15);
/// Viewers one shard tracks at most.
pub const VIEWERS_PER_SHARD: usize = 20_000;
/// Snapshots are published at most this often (and at every sweep).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// One shard's HLS viewers.
#[derive(Debug, Default)]
pub struct ViewerTable {
    map: HashMap<u64, HlsViewer>,
    /// HLS body bytes per path since the last snapshot.
    path_bytes: HashMap<Box<str>, u64>,
    dirty: bool,
    published_at: Option<Instant>,
    /// New viewers not tracked because the table was full.
    pub untracked: u64,
}

/// A viewer's key: FNV-1a over path, address bytes and user agent (no allocation).
fn key(path: &str, ip: IpAddr, user_agent: &str) -> u64 {
    let mut h = crate::media::fnv1a(path.as_bytes());
    let ip = match ip {
        IpAddr::V4(a) => crate::media::fnv1a(&a.octets()),
        IpAddr::V6(a) => crate::media::fnv1a(&a.octets()),
    };
    h ^= ip.rotate_left(21);
    h ^ crate::media::fnv1a(user_agent.as_bytes()).rotate_left(42)
}

impl ViewerTable {
    /// An HLS request of `path` by `peer` with `user_agent` was answered with
    /// `bytes` of body. Returns true when a snapshot is due.
    pub fn seen(
        &mut self,
        path: &str,
        peer: SocketAddr,
        user_agent: &str,
        bytes: u64,
        now: Instant,
    ) -> bool {
        match self.path_bytes.get_mut(path) {
            Some(b) => *b += bytes,
            None => {
                self.path_bytes.insert(path.into(), bytes);
            }
        }
        let k = key(path, peer.ip(), user_agent);
        if let Some(v) = self.map.get_mut(&k) {
            v.last_seen = now;
            v.bytes_out += bytes;
        } else if self.map.len() < VIEWERS_PER_SHARD {
            self.map.insert(
                k,
                HlsViewer {
                    id: k,
                    path: path.to_string(),
                    peer,
                    user_agent: user_agent.chars().take(200).collect(),
                    started: SystemTime::now(),
                    last_seen: now,
                    bytes_out: bytes,
                },
            );
        } else {
            self.untracked += 1;
        }
        self.dirty = true;
        self.published_at
            .is_none_or(|t| now.duration_since(t) >= PUBLISH_EVERY)
    }

    /// Forget idle viewers; the live ones and the path bytes gathered since
    /// the last snapshot.
    pub fn snapshot(&mut self, now: Instant) -> (Vec<HlsViewer>, Vec<(Box<str>, u64)>) {
        self.map
            .retain(|_, v| now.duration_since(v.last_seen) < HLS_VIEWER_IDLE);
        self.dirty = false;
        self.published_at = Some(now);
        (
            self.map.values().cloned().collect(),
            self.path_bytes.drain().collect(),
        )
    }

    /// Something changed since the last snapshot.
    pub fn is_dirty(&self) -> bool {
        self.dirty || !self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_o1_when_full() {
        let mut t = ViewerTable::default();
        let path = "live/x";
        let peer = SocketAddr::from(([10, 0, 0, 1], 5));
        let now = Instant::now();
        for i in 0..VIEWERS_PER_SHARD + 500 {
            t.seen(path, peer, &format!("ua-{i}"), 1, now);
        }
        assert_eq!(t.len(), VIEWERS_PER_SHARD);
        assert_eq!(t.untracked, 500);
        // A known viewer is still counted when the table is full.
        t.seen(path, peer, "ua-7", 10, now);
        let (viewers, bytes) = t.snapshot(now);
        assert_eq!(
            viewers
                .iter()
                .find(|v| v.user_agent == "ua-7")
                .unwrap()
                .bytes_out,
            11
        );
        assert_eq!(bytes, vec![(path.into(), (VIEWERS_PER_SHARD + 510) as u64)]);
        // Idle viewers are forgotten at the sweep, making room.
        let (viewers, _) = t.snapshot(now + HLS_VIEWER_IDLE);
        assert!(viewers.is_empty() && t.is_empty());
        assert!(t.seen(path, peer, "new", 1, now + HLS_VIEWER_IDLE * 2));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn same_client_and_agent_is_one_viewer() {
        let mut t = ViewerTable::default();
        let path = "live/x";
        let now = Instant::now();
        assert!(t.seen(path, SocketAddr::from(([10, 0, 0, 1], 5)), "ua", 1, now));
        let _ = t.snapshot(now);
        // Snapshots are not due again at once.
        assert!(!t.seen(path, SocketAddr::from(([10, 0, 0, 1], 6)), "ua", 1, now));
        t.seen(path, SocketAddr::from(([10, 0, 0, 2], 6)), "ua", 1, now);
        assert_eq!(t.len(), 2);
    }
}
