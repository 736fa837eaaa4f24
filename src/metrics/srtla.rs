//! SRTLA figures the API and the metrics endpoint read: one [`GroupInfo`] per
//! bonded group, published once a second by the group's home shard (links,
//! bytes) and by its SRT session (resequencing, retransmission requests).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A group's counters, as last published.
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// Every datagram of the group's links, SRTLA packets included.
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// SRT packets handed to the group's SRT session.
    pub packets_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    /// Data packets that arrived after a later one (out of order across links).
    pub reordered: AtomicU64,
    /// Data packets held back to restore their order.
    pub held: AtomicU64,
    /// Sequence numbers given up as lost when the hold ran out.
    pub lost: AtomicU64,
    /// Packets that came after their gap was given up.
    pub late: AtomicU64,
    /// Retransmission requests (SRT NAKs) sent to the sender.
    pub naks_sent: AtomicU64,
    /// The current adaptive hold, in microseconds.
    pub hold_us: AtomicU64,
}

/// One link, as last published.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    pub addr: SocketAddr,
    pub packets: u64,
    pub bytes: u64,
    /// This link's part of the group's SRT packets, 0..=1.
    pub share: f64,
    pub last_seen_ago: Duration,
    /// Retransmission requests routed to the sender over this link.
    pub naks: u64,
    pub rtt: Option<Duration>,
}

/// One bonded group.
#[derive(Debug)]
pub struct GroupInfo {
    /// Process-unique.
    pub id: u64,
    /// The id in logs: the first four bytes of the SRTLA group id.
    pub short: u32,
    pub shard: usize,
    /// Where the REG1 came from: the group's address as an SRT caller.
    pub peer: SocketAddr,
    pub started: SystemTime,
    /// The stream path and SRT session, once its SRT handshake is accepted.
    pub path: Mutex<Option<(String, u64)>>,
    pub counters: GroupCounters,
    pub links: Mutex<Vec<LinkInfo>>,
}

impl GroupInfo {
    pub fn new(id: u64, short: u32, shard: usize, peer: SocketAddr) -> Self {
        Self {
            id,
            short,
            shard,
            peer,
            started: SystemTime::now(),
            path: Mutex::new(None),
            counters: GroupCounters::default(),
            links: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> Option<String> {
        lock(&self.path).as_ref().map(|(p, _)| p.clone())
    }

    pub fn set_path(&self, path: &str, session: u64) {
        *lock(&self.path) = Some((path.to_owned(), session));
    }

    pub fn links(&self) -> Vec<LinkInfo> {
        lock(&self.links).clone()
    }

    pub fn set_links(&self, links: Vec<LinkInfo>) {
        *lock(&self.links) = links;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process-wide table of groups; touched when a group opens or closes and
/// when figures are read, never per packet.
#[derive(Debug, Default)]
pub struct SrtlaTable {
    groups: Mutex<Vec<Arc<GroupInfo>>>,
    next_id: AtomicU64,
    /// Groups registered or being registered, on every shard.
    reserved: AtomicUsize,
}

impl SrtlaTable {
    /// Take a place for a new group if fewer than `max` exist.
    pub fn try_reserve(&self, max: usize) -> bool {
        self.reserved
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    /// Give back a place taken by [`SrtlaTable::try_reserve`].
    pub fn release(&self) {
        let _ = self
            .reserved
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed) + 1
    }

    pub fn open(&self, info: GroupInfo) -> Arc<GroupInfo> {
        let info = Arc::new(info);
        lock(&self.groups).push(info.clone());
        info
    }

    pub fn close(&self, id: u64) {
        lock(&self.groups).retain(|g| g.id != id);
    }

    pub fn groups(&self) -> Vec<Arc<GroupInfo>> {
        lock(&self.groups).clone()
    }

    /// The `srtla_*` families in Prometheus text format, labelled by path
    /// (groups whose SRT session has not started yet count only in
    /// `srtla_groups`).
    pub fn prometheus(&self, out: &mut String) {
        let groups = self.groups();
        let mut by_path: Vec<PathFigures> = Vec::new();
        for g in &groups {
            let Some(path) = g.path() else { continue };
            let c = &g.counters;
            let links = lock(&g.links).len() as u64;
            let (rx, fw) = (
                c.bytes_received.load(Relaxed),
                c.bytes_forwarded.load(Relaxed),
            );
            match by_path.iter_mut().find(|(p, ..)| *p == path) {
                Some(e) => {
                    e.1 += links;
                    e.2 += rx;
                    e.3 += fw;
                }
                None => by_path.push((path, links, rx, fw)),
            }
        }
        by_path.sort();
        let _ = writeln!(out, "# HELP srtla_groups Bonded SRTLA groups registered.");
        let _ = writeln!(out, "# TYPE srtla_groups gauge");
        let _ = writeln!(out, "srtla_groups {}", groups.len());
        let families: [Family; 3] = [
            (
                "srtla_group_links_active",
                "gauge",
                "Links of the bonded group publishing the path.",
                |e| e.1,
            ),
            (
                "srtla_group_bytes_received",
                "counter",
                "Bytes received on the links of the bonded group publishing the path.",
                |e| e.2,
            ),
            (
                "srtla_group_bytes_forwarded",
                "counter",
                "SRT bytes handed from the bonded group to its SRT session.",
                |e| e.3,
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for e in &by_path {
                let _ = writeln!(out, "{name}{{path=\"{}\"}} {}", escape(&e.0), value(e));
            }
        }
    }
}

/// Name, type, help, and the value of one path's figures.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PathFigures) -> u64,
);
/// A path's links, bytes received and bytes forwarded.
type PathFigures = (String, u64, u64, u64);

/// A Prometheus label value: backslash, quote and newline escaped.
pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_families_are_labelled_by_path() {
        let t = SrtlaTable::default();
        let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
        let a = t.open(GroupInfo::new(t.next_id(), 1, 0, peer));
        a.set_path("live/bond", 7);
        a.counters.bytes_received.store(1000, Relaxed);
        a.counters.bytes_forwarded.store(900, Relaxed);
        let link = LinkInfo {
            addr: peer,
            packets: 1,
            bytes: 1,
            share: 1.0,
            last_seen_ago: Duration::ZERO,
            naks: 0,
            rtt: None,
        };
        a.set_links(vec![link.clone(), link]);
        let b = t.open(GroupInfo::new(t.next_id(), 2, 1, peer));
        let mut out = String::new();
        t.prometheus(&mut out);
        assert!(out.contains("srtla_groups 2\n"), "{out}");
        assert!(
            out.contains("srtla_group_links_active{path=\"live/bond\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("srtla_group_bytes_received{path=\"live/bond\"} 1000\n"),
            "{out}"
        );
        assert!(
            out.contains("srtla_group_bytes_forwarded{path=\"live/bond\"} 900\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE srtla_group_bytes_received counter"),
            "{out}"
        );
        t.close(b.id);
        t.close(a.id);
        out.clear();
        t.prometheus(&mut out);
        assert!(
            out.contains("srtla_groups 0\n") && !out.contains("path="),
            "{out}"
        );
    }
}
