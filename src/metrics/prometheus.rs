//! `/metrics`: every counter of [`Metrics`] in the Prometheus text format
//! (version 0.0.4), plus the process figures Prometheus clients
//! conventionally export (`process_*`, from procfs).
//!
//! Rendering reads the tables once per scrape; nothing here runs per packet.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use super::srtla::escape;
use super::{Metrics, SessionInfo};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out<'a>(&'a mut String);

impl Out<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.value(name, &[], v);
    }
}

/// Render every family into `out`.
pub fn render(metrics: &Metrics, started_at: SystemTime, out: &mut String) {
    let mut o = Out(out);
    let g = &metrics.gateway;
    let sessions = metrics.sessions();
    let srt: Vec<_> = sessions
        .iter()
        .filter(|s| matches!(s.protocol, "srt" | "srtla"))
        .collect();

    o.single(
        "srt_connections_total",
        "counter",
        "SRT connections accepted (plain SRT and over SRTLA).",
        g.srt_accepted.load(Relaxed),
    );
    o.family(
        "srt_connections_current",
        "gauge",
        "Open SRT connections by mode.",
    );
    for mode in ["publish", "read"] {
        let n = srt.iter().filter(|s| s.role == mode).count();
        o.value("srt_connections_current", &[("mode", mode)], n);
    }
    session_families(&mut o, &srt);

    for (name, help, c) in [
        (
            "srt_packets_malformed_total",
            "SRT datagrams that did not parse.",
            &g.srt_malformed,
        ),
        (
            "srt_packets_unknown_peer_total",
            "SRT datagrams from peers with no session or handshake.",
            &g.srt_unknown_peer,
        ),
        (
            "srt_packets_oversized_total",
            "SRT datagrams larger than any SRT packet.",
            &g.srt_oversized,
        ),
        (
            "srt_handshakes_over_limit_total",
            "Handshakes dropped by srt.max_handshakes.",
            &g.srt_handshake_limit,
        ),
        (
            "srt_handshake_timeouts_total",
            "Handshakes that did not finish in srt.handshake_timeout.",
            &g.srt_handshake_timeouts,
        ),
        (
            "srt_mailbox_overflow_total",
            "SRT packets dropped because their session fell behind.",
            &g.srt_mailbox_overflow,
        ),
        (
            "srtla_packets_refused_total",
            "SRTLA datagrams refused (unknown links, bad registrations, limits, allow-list).",
            &g.srtla_refused,
        ),
        (
            "srtla_packets_malformed_total",
            "SRTLA datagrams that did not parse.",
            &g.srtla_malformed,
        ),
        (
            "srtgate_panics_contained_total",
            "Panics inside a protocol state machine that ended one session only.",
            &g.panics_contained,
        ),
    ] {
        o.single(name, "counter", help, c.load(Relaxed));
    }
    metrics.srtla.prometheus(o.0);

    o.family(
        "srtgate_refusals_total",
        "counter",
        "Sessions and requests refused, by protocol and reason.",
    );
    for ((protocol, reason), n) in metrics.refusals() {
        o.value(
            "srtgate_refusals_total",
            &[("protocol", protocol), ("reason", reason)],
            n,
        );
    }

    let viewers = metrics.hls_viewers();
    o.family(
        "hls_viewers",
        "gauge",
        "HLS viewers (client address and user agent) seen in the last 15 s, by path.",
    );
    let mut by_path: Vec<(&str, usize)> = Vec::new();
    for v in &viewers {
        match by_path.iter_mut().find(|(p, _)| *p == v.path) {
            Some(e) => e.1 += 1,
            None => by_path.push((&v.path, 1)),
        }
    }
    for (path, n) in by_path {
        o.value("hls_viewers", &[("path", path)], n);
    }

    o.family(
        "hls_viewers_untracked_total",
        "counter",
        "New HLS viewers not tracked because a shard's viewer table was full.",
    );
    o.value("hls_viewers_untracked_total", &[], metrics.hls_untracked());

    let relay = metrics.relay_stats();
    o.family(
        "srtgate_relay_items_total",
        "counter",
        "Stream items (TS chunks, frames) between shards: forwarded; dropped on a full channel (that shard went on at the next keyframe); stale (for a publisher already replaced).",
    );
    for (outcome, n) in [
        ("forwarded", relay.forwarded),
        ("dropped", relay.dropped),
        ("stale", relay.stale),
    ] {
        o.value("srtgate_relay_items_total", &[("outcome", outcome)], n);
    }

    let paths = metrics.path_bytes();
    o.family(
        "srtgate_path_bytes_received_total",
        "counter",
        "Bytes received from publishers of the path.",
    );
    for (p, b) in &paths {
        o.value(
            "srtgate_path_bytes_received_total",
            &[("path", p)],
            b.bytes_in,
        );
    }
    o.family(
        "srtgate_path_bytes_sent_total",
        "counter",
        "Bytes sent to readers of the path (SRT, SRTLA and HLS).",
    );
    for (p, b) in &paths {
        o.value("srtgate_path_bytes_sent_total", &[("path", p)], b.bytes_out);
    }

    let h = &metrics.http;
    for (name, kind, help, v) in [
        (
            "http_connections_total",
            "counter",
            "HTTP connections accepted (HLS and API ports).",
            &h.accepted,
        ),
        (
            "http_connections_current",
            "gauge",
            "Open HTTP connections.",
            &h.open,
        ),
        (
            "http_connections_refused_total",
            "counter",
            "HTTP connections refused by max_connections.",
            &h.refused_busy,
        ),
        (
            "http_bad_requests_total",
            "counter",
            "HTTP connections closed for a malformed or oversized request head.",
            &h.bad_requests,
        ),
        (
            "http_timeouts_total",
            "counter",
            "HTTP connections closed by a header or write timeout.",
            &h.timed_out,
        ),
        (
            "http_requests_total",
            "counter",
            "HTTP requests answered.",
            &h.requests,
        ),
        (
            "http_not_found_total",
            "counter",
            "HTTP requests answered 404.",
            &h.not_found,
        ),
        (
            "hls_bytes_sent_total",
            "counter",
            "Bytes of HLS playlists, segments and parts sent.",
            &h.hls_bytes,
        ),
    ] {
        o.single(name, kind, help, v.load(Relaxed));
    }

    process_families(&mut o, started_at);
}

fn session_families(o: &mut Out<'_>, sessions: &[&std::sync::Arc<SessionInfo>]) {
    type Get = fn(&SessionInfo) -> f64;
    let families: [(&str, &str, &str, Get); 12] = [
        (
            "srt_session_packets_received_total",
            "counter",
            "Packets received by the session.",
            |s| s.counters.packets_in.load(Relaxed) as f64,
        ),
        (
            "srt_session_packets_sent_total",
            "counter",
            "Packets sent by the session.",
            |s| s.counters.packets_out.load(Relaxed) as f64,
        ),
        (
            "srt_session_bytes_received_total",
            "counter",
            "Bytes received by the session (SRT packets on the wire).",
            |s| s.counters.bytes_in.load(Relaxed) as f64,
        ),
        (
            "srt_session_bytes_sent_total",
            "counter",
            "Bytes sent by the session.",
            |s| s.counters.bytes_out.load(Relaxed) as f64,
        ),
        (
            "srt_session_packets_lost_total",
            "counter",
            "Data packets seen missing (publishers) or reported lost by the peer (readers).",
            |s| s.counters.lost.load(Relaxed) as f64,
        ),
        (
            "srt_session_packets_retransmitted_total",
            "counter",
            "Retransmitted data packets received (publishers) or sent (readers).",
            |s| s.counters.retransmits.load(Relaxed) as f64,
        ),
        (
            "srt_session_naks_total",
            "counter",
            "Loss reports (NAKs) sent and received.",
            |s| s.counters.naks.load(Relaxed) as f64,
        ),
        (
            "srt_session_rtt_seconds",
            "gauge",
            "Round-trip time.",
            |s| s.counters.rtt_us.load(Relaxed) as f64 / 1e6,
        ),
        (
            "srt_session_rtt_variance_seconds",
            "gauge",
            "Round-trip time variance.",
            |s| s.counters.rtt_var_us.load(Relaxed) as f64 / 1e6,
        ),
        (
            "srt_session_bitrate_bits_per_second",
            "gauge",
            "Bits per second in and out over the last second.",
            |s| s.counters.bitrate_bps.load(Relaxed) as f64,
        ),
        (
            "srt_session_reader_skips_total",
            "counter",
            "Times a reader fell behind and skipped to a keyframe.",
            |s| s.counters.skips.load(Relaxed) as f64,
        ),
        (
            "srt_session_ts_errors_total",
            "counter",
            "MPEG-TS continuity and PES errors in a publisher's stream.",
            |s| s.counters.ts_errors.load(Relaxed) as f64,
        ),
    ];
    let ids: Vec<String> = sessions.iter().map(|s| format!("{:016x}", s.id)).collect();
    for (name, kind, help, get) in families {
        o.family(name, kind, help);
        for (s, id) in sessions.iter().zip(&ids) {
            o.value(
                name,
                &[
                    ("id", id),
                    ("path", &s.path),
                    ("mode", s.role),
                    ("protocol", s.protocol),
                ],
                get(s),
            );
        }
    }
}

/// `process_*` from /proc/self (procfs reads are served from memory).
fn process_families(o: &mut Out<'_>, started_at: SystemTime) {
    let start = started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    o.single(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch.",
        start,
    );
    // SAFETY: sysconf has no preconditions.
    let (tick, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which is in parentheses).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // rest[0] is field 3 (state): utime 14, stime 15, threads 20, vsize 23, rss 24.
        if tick > 0 {
            o.single(
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time.",
                (num(11) + num(12)) / tick as f64,
            );
        }
        o.single("process_threads", "gauge", "Threads.", num(17));
        o.single(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size.",
            num(20),
        );
        o.single(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size.",
            num(21) * page.max(1) as f64,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        o.single(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            dir.count(),
        );
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        o.single(
            "process_max_fds",
            "gauge",
            "Limit on open file descriptors.",
            lim.rlim_cur,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn families_have_help_type_and_labels() {
        let m = Metrics::default();
        let info = m.open(SessionInfo {
            id: 0xabc,
            protocol: "srt",
            role: "publish",
            path: "live/\"q\"".into(),
            user: None,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            shard: 0,
            started: SystemTime::now(),
            counters: Default::default(),
        });
        info.counters.rtt_us.store(25_000, Relaxed);
        m.refused("srt", "forbidden");
        m.refused("srt", "forbidden");
        m.add_path_bytes("live/x", 10, 20);
        let mut table = crate::metrics::ViewerTable::default();
        let now = std::time::Instant::now();
        table.seen(
            "live/x",
            SocketAddr::from(([127, 0, 0, 1], 2)),
            "ua",
            5,
            now,
        );
        m.publish_viewers(0, &mut table, now);
        let mut out = String::new();
        render(&m, SystemTime::now(), &mut out);
        for want in [
            "srt_connections_current{mode=\"publish\"} 1\n",
            "srt_connections_current{mode=\"read\"} 0\n",
            "srt_session_rtt_seconds{id=\"0000000000000abc\",path=\"live/\\\"q\\\"\",mode=\"publish\",protocol=\"srt\"} 0.025\n",
            "srtgate_refusals_total{protocol=\"srt\",reason=\"forbidden\"} 2\n",
            "srtgate_path_bytes_sent_total{path=\"live/x\"} 25\n",
            "hls_viewers{path=\"live/x\"} 1\n",
            "# TYPE process_cpu_seconds_total counter\n",
            "srtla_groups 0\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        // Every sample line belongs to a family announced before it.
        let mut typed = std::collections::HashSet::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{name} has no TYPE line");
            }
        }
    }
}
