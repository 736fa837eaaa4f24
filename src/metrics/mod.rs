//! Counters the API and the metrics endpoint read.
//!
//! Sessions keep plain counters on their own task and publish them here once a
//! second and when they close ([`SessionInfo::counters`]), so the data path never
//! touches shared memory per packet. Gateway-wide counters (refusals, malformed
//! packets, contained panics) are rare events and are plain atomics.

pub mod prometheus;
pub mod ratelimit;
pub mod srtla;
pub mod viewers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// A session's figures, as last published by its task.
#[derive(Debug, Default)]
pub struct SessionCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Data packets seen missing (publishers) or reported lost by the peer (readers).
    pub lost: AtomicU64,
    /// Retransmitted data packets received (publishers) or sent (readers).
    pub retransmits: AtomicU64,
    pub naks: AtomicU64,
    pub rtt_us: AtomicU64,
    pub rtt_var_us: AtomicU64,
    pub bitrate_bps: AtomicU64,
    /// Readers: times the queue overflowed and skipped to a keyframe; items dropped.
    pub skips: AtomicU64,
    pub skipped_items: AtomicU64,
    /// Publishers: demux figures.
    pub frames: AtomicU64,
    pub ts_errors: AtomicU64,
}

/// One live session.
#[derive(Debug)]
pub struct SessionInfo {
    pub id: u64,
    pub protocol: &'static str,
    pub role: &'static str,
    pub path: String,
    pub user: Option<String>,
    pub peer: SocketAddr,
    pub shard: usize,
    pub started: SystemTime,
    pub counters: SessionCounters,
}

impl SessionInfo {
    /// The short id used in logs.
    pub fn short_id(&self) -> String {
        short_id(self.id)
    }
}

pub fn short_id(id: u64) -> String {
    format!("{:06x}", id & 0xff_ffff)
}

/// Gateway-wide counters of rare events.
#[derive(Debug, Default)]
pub struct GatewayCounters {
    pub srt_refused: AtomicU64,
    pub srt_accepted: AtomicU64,
    pub srt_malformed: AtomicU64,
    pub srt_unknown_peer: AtomicU64,
    pub srt_oversized: AtomicU64,
    pub srt_handshake_limit: AtomicU64,
    pub srt_handshake_timeouts: AtomicU64,
    pub srt_mailbox_overflow: AtomicU64,
    /// SRTLA datagrams refused or dropped (unknown links, bad registrations,
    /// limits, allow-list).
    pub srtla_refused: AtomicU64,
    pub srtla_malformed: AtomicU64,
    /// SRTLA datagrams that could not be handed to their group's home shard.
    pub srtla_forward_dropped: AtomicU64,
    pub panics_contained: AtomicU64,
}

impl GatewayCounters {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

/// HTTP server counters (all shards).
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    /// Connections answered 503 because the connection limit was reached.
    pub refused_busy: AtomicU64,
    /// Connections closed for a malformed or oversized request head.
    pub bad_requests: AtomicU64,
    /// Connections closed by the header (idle) timeout or a stalled write.
    pub timed_out: AtomicU64,
    /// Requests answered, by class.
    pub requests: AtomicU64,
    pub not_found: AtomicU64,
    /// Requests refused: traversal attempts, bad paths, methods, credentials.
    pub refused: AtomicU64,
    /// HLS requests handed to another shard, and those that got no answer.
    pub hls_forwarded: AtomicU64,
    pub hls_forward_failed: AtomicU64,
    /// Bytes of response bodies for HLS segments, parts and playlists.
    pub hls_bytes: AtomicU64,
}

/// Bytes in and out of one path, all protocols, since the process started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathBytes {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One HLS viewer: a client address and user agent fetching a path's
/// playlists and segments. HTTP has no sessions; a viewer not seen for
/// [`HLS_VIEWER_IDLE`] is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsViewer {
    pub id: u64,
    pub path: String,
    pub peer: SocketAddr,
    pub user_agent: String,
    pub started: SystemTime,
    pub last_seen: Instant,
    pub bytes_out: u64,
}

pub use viewers::{ViewerTable, HLS_VIEWER_IDLE};

/// Snapshots of one shard's HLS viewers, and its relay counters.
#[derive(Debug, Default)]
struct ShardFigures {
    viewers: Vec<HlsViewer>,
    untracked: u64,
    relay: crate::io::hub::RelayStats,
}

/// The process-wide table of sessions and counters.
#[derive(Debug)]
pub struct Metrics {
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    paths: Mutex<HashMap<String, PathBytes>>,
    /// Per shard, published by the shard itself (see [`viewers`]).
    shards: Mutex<Vec<ShardFigures>>,
    /// Refusals by (protocol, reason).
    refusals: Mutex<HashMap<(&'static str, &'static str), u64>>,
    next_id: AtomicU64,
    id_seed: u64,
    pub gateway: GatewayCounters,
    pub srtla: srtla::SrtlaTable,
    pub http: HttpCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            paths: Mutex::default(),
            shards: Mutex::default(),
            refusals: Mutex::default(),
            next_id: AtomicU64::new(0),
            // Ids differ between runs, so logs of two runs are not confused.
            id_seed: rand::random(),
            gateway: GatewayCounters::default(),
            srtla: srtla::SrtlaTable::default(),
            http: HttpCounters::default(),
        }
    }
}

impl Metrics {
    /// A process-unique session id; consecutive ids differ visibly in their short form.
    pub fn next_session_id(&self) -> u64 {
        let n = self.next_id.fetch_add(1, Relaxed) + 1;
        // An odd multiplier is a bijection on u64, so ids never repeat.
        (n ^ self.id_seed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    pub fn open(&self, info: SessionInfo) -> Arc<SessionInfo> {
        let info = Arc::new(info);
        self.lock().insert(info.id, info.clone());
        info
    }

    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    pub fn readers_of(&self, path: &str) -> usize {
        self.lock()
            .values()
            .filter(|s| s.role == "read" && s.path == path)
            .count()
    }

    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionInfo>>> {
        lock(&self.sessions)
    }

    /// Count bytes of `path` (sessions add theirs once a second).
    pub fn add_path_bytes(&self, path: &str, bytes_in: u64, bytes_out: u64) {
        if bytes_in == 0 && bytes_out == 0 {
            return;
        }
        let mut paths = lock(&self.paths);
        match paths.get_mut(path) {
            Some(p) => {
                p.bytes_in += bytes_in;
                p.bytes_out += bytes_out;
            }
            None => {
                paths.insert(
                    path.to_owned(),
                    PathBytes {
                        bytes_in,
                        bytes_out,
                    },
                );
            }
        }
    }

    pub fn path_bytes(&self) -> Vec<(String, PathBytes)> {
        let mut v: Vec<_> = lock(&self.paths)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A shard's snapshot of its HLS viewers (and the HLS bytes it served per path).
    pub fn publish_viewers(&self, shard: usize, table: &mut ViewerTable, now: Instant) {
        let (viewers, bytes) = table.snapshot(now);
        for (path, n) in bytes {
            self.add_path_bytes(&path, 0, n);
        }
        let mut shards = lock(&self.shards);
        if shards.len() <= shard {
            shards.resize_with(shard + 1, ShardFigures::default);
        }
        shards[shard].viewers = viewers;
        shards[shard].untracked = table.untracked;
    }

    /// A shard's relay counters (published once a second).
    pub fn set_relay_stats(&self, shard: usize, stats: crate::io::hub::RelayStats) {
        let mut shards = lock(&self.shards);
        if shards.len() <= shard {
            shards.resize_with(shard + 1, ShardFigures::default);
        }
        shards[shard].relay = stats;
    }

    /// Relay counters summed over the shards.
    pub fn relay_stats(&self) -> crate::io::hub::RelayStats {
        let shards = lock(&self.shards);
        let mut t = crate::io::hub::RelayStats::default();
        for s in shards.iter() {
            t.forwarded += s.relay.forwarded;
            t.dropped += s.relay.dropped;
            t.stale += s.relay.stale;
        }
        t
    }

    /// New HLS viewers not tracked because a shard's table was full.
    pub fn hls_untracked(&self) -> u64 {
        lock(&self.shards).iter().map(|s| s.untracked).sum()
    }

    /// HLS viewers seen in the last [`HLS_VIEWER_IDLE`], merged over the
    /// shards (a viewer whose connections landed on two shards is one).
    pub fn hls_viewers(&self) -> Vec<HlsViewer> {
        let now = Instant::now();
        let mut merged: HashMap<u64, HlsViewer> = HashMap::new();
        for s in lock(&self.shards).iter() {
            for v in &s.viewers {
                if now.duration_since(v.last_seen) >= HLS_VIEWER_IDLE {
                    continue;
                }
                match merged.get_mut(&v.id) {
                    Some(m) => {
                        m.bytes_out += v.bytes_out;
                        m.started = m.started.min(v.started);
                        m.last_seen = m.last_seen.max(v.last_seen);
                    }
                    None => {
                        merged.insert(v.id, v.clone());
                    }
                }
            }
        }
        let mut v: Vec<_> = merged.into_values().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path).then(a.started.cmp(&b.started)));
        v
    }

    /// A session or request refused, by protocol and reason (a short
    /// snake_case label: `forbidden`, `wrong_passphrase`, `hook`, ...).
    pub fn refused(&self, protocol: &'static str, reason: &'static str) {
        *lock(&self.refusals).entry((protocol, reason)).or_insert(0) += 1;
    }

    pub fn refusals(&self) -> Vec<((&'static str, &'static str), u64)> {
        let mut v: Vec<_> = lock(&self.refusals).iter().map(|(k, n)| (*k, *n)).collect();
        v.sort();
        v
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
