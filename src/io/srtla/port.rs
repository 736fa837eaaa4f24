//! How an SRT session bonded over SRTLA reaches its sender: each packet goes
//! out over the group's links as the receiver routes it (ACKs to every link,
//! the rest to the link heard from last), from the home shard's sockets.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SrtlaShard;
use crate::metrics::srtla::GroupInfo;
use crate::proto::srtla::groups::Handle;
use crate::proto::srtla::reseq::ReseqStats;

/// A session's way out through its group.
pub struct GroupPort {
    srtla: Rc<SrtlaShard>,
    group: Handle,
    info: Arc<GroupInfo>,
    max_hold: Duration,
}

impl GroupPort {
    pub(super) fn new(
        srtla: Rc<SrtlaShard>,
        group: Handle,
        info: Arc<GroupInfo>,
        max_hold: Duration,
    ) -> Self {
        Self {
            srtla,
            group,
            info,
            max_hold,
        }
    }

    /// Upper bound of the resequencing hold (`srtla.max_reorder_hold`).
    pub fn max_hold(&self) -> Duration {
        self.max_hold
    }

    /// The group's short id, for the session's logs.
    pub fn short(&self) -> u32 {
        self.info.short
    }

    /// Send one SRT datagram to the sender.
    pub async fn send(&self, datagram: &[u8]) {
        self.srtla
            .send_routed(Instant::now(), self.group, datagram)
            .await;
    }

    /// The session was admitted for `path`.
    pub fn set_path(&self, path: &str, session: u64) {
        self.info.set_path(path, session);
    }

    /// Publish the session's resequencing figures and retransmission requests.
    pub fn publish(&self, reseq: ReseqStats, hold: Duration, naks_sent: u64) {
        let c = &self.info.counters;
        c.reordered.store(reseq.reordered, Relaxed);
        c.held.store(reseq.held, Relaxed);
        c.lost.store(reseq.gaps_given_up, Relaxed);
        c.late.store(reseq.late_after_give_up, Relaxed);
        c.naks_sent.store(naks_sent, Relaxed);
        c.hold_us.store(hold.as_micros() as u64, Relaxed);
    }
}
