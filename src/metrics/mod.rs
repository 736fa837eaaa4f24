//! Counters the API and the metrics endpoint read.
//!
//! Sessions keep plain counters on their own task and publish them here once a
//! second and when they close ([`SessionInfo::counters`]), so the data path never
//! touches shared memory per packet. Gateway-wide counters (refusals, malformed
//! packets, contained panics) are rare events and are plain atomics.

pub mod prometheus;
pub mod ratelimit;
pub mod srtla;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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

/// How long an HLS viewer counts after its last request.
pub const HLS_VIEWER_IDLE: Duration = Duration::from_secs(15);
/// Viewers tracked at most (the oldest are forgotten first).
const HLS_VIEWERS_MAX: usize = 20_000;

/// The process-wide table of sessions and counters.
#[derive(Debug)]
pub struct Metrics {
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    paths: Mutex<HashMap<String, PathBytes>>,
    hls_viewers: Mutex<HashMap<u64, HlsViewer>>,
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
            hls_viewers: Mutex::default(),
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

    /// An HLS request of `path` by `peer` with `user_agent` was answered with
    /// `bytes` of body.
    pub fn hls_seen(&self, path: &str, peer: SocketAddr, user_agent: &str, bytes: u64) {
        let mut key = crate::media::fnv1a(path.as_bytes());
        key ^= crate::media::fnv1a(peer.ip().to_string().as_bytes()).rotate_left(21);
        key ^= crate::media::fnv1a(user_agent.as_bytes()).rotate_left(42);
        let now = Instant::now();
        let mut viewers = lock(&self.hls_viewers);
        if let Some(v) = viewers.get_mut(&key) {
            v.last_seen = now;
            v.bytes_out += bytes;
            return;
        }
        if viewers.len() >= HLS_VIEWERS_MAX {
            viewers.retain(|_, v| now.duration_since(v.last_seen) < HLS_VIEWER_IDLE);
            if viewers.len() >= HLS_VIEWERS_MAX {
                return;
            }
        }
        viewers.insert(
            key,
            HlsViewer {
                id: key,
                path: path.to_owned(),
                peer,
                user_agent: user_agent.chars().take(200).collect(),
                started: SystemTime::now(),
                last_seen: now,
                bytes_out: bytes,
            },
        );
    }

    /// HLS viewers seen in the last [`HLS_VIEWER_IDLE`]; older ones are forgotten.
    pub fn hls_viewers(&self) -> Vec<HlsViewer> {
        let now = Instant::now();
        let mut viewers = lock(&self.hls_viewers);
        viewers.retain(|_, v| now.duration_since(v.last_seen) < HLS_VIEWER_IDLE);
        let mut v: Vec<_> = viewers.values().cloned().collect();
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
