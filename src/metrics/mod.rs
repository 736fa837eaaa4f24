//! Counters the API and the metrics endpoint read.
//!
//! Sessions keep plain counters on their own task and publish them here once a
//! second and when they close ([`SessionInfo::counters`]), so the data path never
//! touches shared memory per packet. Gateway-wide counters (refusals, malformed
//! packets, contained panics) are rare events and are plain atomics.

pub mod ratelimit;
pub mod srtla;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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

/// The process-wide table of sessions and counters.
#[derive(Debug)]
pub struct Metrics {
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
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
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
