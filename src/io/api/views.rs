//! The API's JSON views of the live state: streams from the registry,
//! sessions and SRTLA groups from [`crate::metrics`], HLS viewers; and the
//! kick. Shapes are documented in `html/openapi.yaml`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{clip, error, json_response};
use crate::io::control::Control;
use crate::io::http::SharedBody;
use crate::io::shard::Shard;
use crate::io::srt::StopReason;
use crate::media::describe::{Description, TrackDescription};
use crate::metrics::srtla::GroupInfo;
use crate::metrics::{short_id, HlsViewer, SessionInfo};

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn id_str(id: u64) -> String {
    format!("{id:016x}")
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

pub fn health(shard: &Shard, control: &Control) -> Value {
    let (gen, config) = control.current();
    let ports = |list: Vec<std::net::SocketAddr>| {
        let mut p: Vec<u16> = list.iter().map(|a| a.port()).collect();
        p.dedup();
        p
    };
    let relay = shard.metrics.relay_stats();
    json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "relay": {
            "forwarded": relay.forwarded,
            "dropped": relay.dropped,
            "stale": relay.stale,
        },
        "uptime_s": control.started.elapsed().as_secs_f64(),
        "workers": shard.count,
        "config_generation": gen,
        "config_file": control.file().display().to_string(),
        "ports": {
            "srt": ports(config.srt.listen.clone()),
            "srtla": ports(crate::io::runtime::srtla_addresses(&config)),
            "http": ports(crate::io::runtime::http_addresses(&config)),
            "api": ports(crate::io::runtime::api_addresses(&config)),
        },
    })
}

fn group_json(g: &GroupInfo) -> Value {
    let c = &g.counters;
    let links: Vec<Value> = g
        .links()
        .iter()
        .map(|l| {
            json!({
                "addr": l.addr.to_string(),
                "packets": l.packets,
                "bytes": l.bytes,
                "share": l.share,
                "last_seen_ms": l.last_seen_ago.as_millis() as u64,
                "naks": l.naks,
                "rtt_ms": l.rtt.map(|r| r.as_secs_f64() * 1000.0),
            })
        })
        .collect();
    let (path, session) = match &*g.path.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((p, s)) => (Some(p.clone()), Some(id_str(*s))),
        None => (None, None),
    };
    json!({
        "id": id_str(g.id),
        "short": format!("{:08x}", g.short),
        "peer": g.peer.to_string(),
        "shard": g.shard,
        "started_unix_ms": unix_ms(g.started),
        "path": path,
        "session": session,
        "links": links,
        "packets_received": c.packets_received.load(Relaxed),
        "bytes_received": c.bytes_received.load(Relaxed),
        "packets_forwarded": c.packets_forwarded.load(Relaxed),
        "bytes_forwarded": c.bytes_forwarded.load(Relaxed),
        "reordered": c.reordered.load(Relaxed),
        "lost": c.lost.load(Relaxed),
        "naks_sent": c.naks_sent.load(Relaxed),
        "hold_ms": ms(c.hold_us.load(Relaxed)),
    })
}

fn session_json(s: &SessionInfo, groups: &[Arc<GroupInfo>]) -> Value {
    let c = &s.counters;
    let group = (s.protocol == "srtla")
        .then(|| {
            groups.iter().find(|g| {
                g.path
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .is_some_and(|(_, id)| *id == s.id)
            })
        })
        .flatten()
        .map(|g| group_json(g));
    let now = SystemTime::now();
    json!({
        "id": id_str(s.id),
        "short": short_id(s.id),
        "protocol": s.protocol,
        "role": s.role,
        "path": s.path,
        "peer": s.peer.to_string(),
        "user": s.user,
        "shard": s.shard,
        "started_unix_ms": unix_ms(s.started),
        "uptime_s": now.duration_since(s.started).map_or(0.0, |d| d.as_secs_f64()),
        "stats": {
            "packets_in": c.packets_in.load(Relaxed),
            "packets_out": c.packets_out.load(Relaxed),
            "bytes_in": c.bytes_in.load(Relaxed),
            "bytes_out": c.bytes_out.load(Relaxed),
            "lost": c.lost.load(Relaxed),
            "retransmits": c.retransmits.load(Relaxed),
            "naks": c.naks.load(Relaxed),
            "rtt_ms": ms(c.rtt_us.load(Relaxed)),
            "rtt_var_ms": ms(c.rtt_var_us.load(Relaxed)),
            "bitrate_bps": c.bitrate_bps.load(Relaxed),
            "frames": c.frames.load(Relaxed),
            "ts_errors": c.ts_errors.load(Relaxed),
            "skips": c.skips.load(Relaxed),
        },
        "srtla": group,
    })
}

fn viewer_json(v: &HlsViewer) -> Value {
    json!({
        "id": format!("hls-{:016x}", v.id),
        "protocol": "hls",
        "role": "read",
        "path": v.path,
        "peer": v.peer.ip().to_string(),
        "user_agent": v.user_agent,
        "started_unix_ms": unix_ms(v.started),
        "last_seen_ms_ago": v.last_seen.elapsed().as_millis() as u64,
        "bytes_out": v.bytes_out,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn track_json(t: &TrackDescription) -> Value {
    let dims = t.dimensions();
    json!({
        "index": t.info.index,
        "codec": t.codec().name(),
        "pid": t.info.source_pid,
        "codec_string": t.codec_string(),
        "width": dims.map(|d| d.0),
        "height": dims.map(|d| d.1),
        "frame_rate": t.frame_rate,
        "bframes": t.bframes,
        "sample_rate": t.sample_rate(),
        "channels": t.channels(),
        "config": t.decoder_config().map(hex),
        "parameter_sets": t.parameter_sets().iter().map(|p| hex(p)).collect::<Vec<_>>(),
    })
}

/// What the views read, taken once per request.
struct Live {
    sessions: Vec<Arc<SessionInfo>>,
    groups: Vec<Arc<GroupInfo>>,
    viewers: Vec<HlsViewer>,
    paths: Vec<(String, crate::metrics::PathBytes)>,
    srt_port: Option<u16>,
    config: Arc<crate::config::Config>,
}

impl Live {
    fn take(shard: &Shard) -> Self {
        let m = &shard.metrics;
        Live {
            sessions: m.sessions(),
            groups: m.srtla.groups(),
            viewers: m.hls_viewers(),
            paths: m.path_bytes(),
            srt_port: shard.with_config(|c| c.srt.listen.first().map(|a| a.port())),
            config: shard.config(),
        }
    }

    /// Whether the path's SRT readers get remuxed TS.
    fn remux(&self, path: &str) -> bool {
        self.config.rule_for(path).is_some_and(|r| r.remux)
    }

    /// One live path: tracks, publisher, readers by kind, bytes, URLs.
    fn stream(&self, path: &str, description: Option<&Description>, publisher: u64) -> Value {
        let tracks: Vec<&TrackDescription> = description
            .map(|d| d.tracks.iter().collect())
            .unwrap_or_default();
        let publisher = self.sessions.iter().find(|s| s.id == publisher);
        let readers = |proto: &str| {
            self.sessions
                .iter()
                .filter(|s| s.path == path && s.role == "read" && s.protocol == proto)
                .count()
        };
        let (srt, srtla) = (readers("srt"), readers("srtla"));
        let hls = self.viewers.iter().filter(|v| v.path == path).count();
        let totals = self
            .paths
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| *b)
            .unwrap_or_default();
        json!({
            "path": path,
            "tracks": tracks.iter().map(|t| t.codec().name()).collect::<Vec<_>>(),
            "description": tracks.iter().map(|t| track_json(t)).collect::<Vec<_>>(),
            "ts_output": if self.remux(path) { "remux" } else { "passthrough" },
            "publisher": publisher.map(|s| session_json(s, &self.groups)),
            "bitrate_bps": publisher.map_or(0, |s| s.counters.bitrate_bps.load(Relaxed)),
            "ts_errors": publisher.map_or(0, |s| s.counters.ts_errors.load(Relaxed)),
            "bytes_in": totals.bytes_in,
            "bytes_out": totals.bytes_out,
            "readers": {"srt": srt, "srtla": srtla, "hls": hls, "total": srt + srtla + hls},
            "urls": {
                "player": format!("/{path}/"),
                "hls": format!("/{path}/index.m3u8"),
                "srt": self.srt_port.map(|p| format!("srt://HOST:{p}?streamid=read:{path}")),
            },
        })
    }
}

pub fn streams(shard: &Shard) -> Value {
    let live = Live::take(shard);
    let list: Vec<Value> = shard
        .hub
        .registry()
        .live()
        .iter()
        .map(|(path, p, d)| live.stream(path, d.as_deref(), p.session))
        .collect();
    json!({ "streams": list })
}

pub fn stream(shard: &Shard, path: &str) -> Option<Value> {
    let published = shard.hub.registry().live();
    let (path, p, d) = published.iter().find(|(name, ..)| name == path)?;
    let live = Live::take(shard);
    let mut v = live.stream(path, d.as_deref(), p.session);
    let mine: Vec<Value> = live
        .sessions
        .iter()
        .filter(|s| s.path == *path)
        .map(|s| session_json(s, &live.groups))
        .collect();
    let hls: Vec<Value> = live
        .viewers
        .iter()
        .filter(|w| w.path == *path)
        .map(viewer_json)
        .collect();
    if let Value::Object(o) = &mut v {
        o.insert("sessions".into(), Value::Array(mine));
        o.insert("hls_viewers".into(), Value::Array(hls));
    }
    Some(v)
}

pub fn sessions(shard: &Shard) -> Value {
    let mut sessions = shard.metrics.sessions();
    sessions.sort_by(|a, b| a.path.cmp(&b.path).then(a.started.cmp(&b.started)));
    let groups = shard.metrics.srtla.groups();
    json!({
        "sessions": sessions.iter().map(|s| session_json(s, &groups)).collect::<Vec<_>>(),
        "srtla_groups": groups.iter().map(|g| group_json(g)).collect::<Vec<_>>(),
        "hls_viewers": shard.metrics.hls_viewers().iter().map(viewer_json).collect::<Vec<_>>(),
    })
}

/// A session, an SRTLA group or an HLS viewer by id.
pub fn session(shard: &Shard, id: &str) -> Option<Value> {
    if let Some(hex) = id.strip_prefix("hls-") {
        let n = u64::from_str_radix(hex, 16).ok()?;
        return shard
            .metrics
            .hls_viewers()
            .iter()
            .find(|v| v.id == n)
            .map(viewer_json);
    }
    let n = u64::from_str_radix(id, 16).ok()?;
    let groups = shard.metrics.srtla.groups();
    if let Some(s) = shard.metrics.sessions().iter().find(|s| s.id == n) {
        return Some(session_json(s, &groups));
    }
    groups.iter().find(|g| g.id == n).map(|g| group_json(g))
}

/// `DELETE /v1/sessions/{id}`: stop a session (or an SRTLA group's session).
pub fn kick(shard: &Shard, id: &str) -> Response<SharedBody> {
    if id.starts_with("hls-") {
        return error(
            StatusCode::CONFLICT,
            "HLS viewers have no connection to close (HTTP is stateless); restrict the path's read credentials instead",
        );
    }
    let Some(n) = u64::from_str_radix(id, 16).ok().filter(|_| id.len() <= 16) else {
        return error(StatusCode::NOT_FOUND, format!("no session {:?}", clip(id)));
    };
    let sessions = shard.metrics.sessions();
    let target = sessions
        .iter()
        .find(|s| s.id == n)
        .map(|s| (s.shard, s.id))
        .or_else(|| {
            shard
                .metrics
                .srtla
                .groups()
                .iter()
                .find(|g| g.id == n)
                .and_then(|g| {
                    let session = g.path.lock().unwrap_or_else(|e| e.into_inner()).as_ref()?.1;
                    sessions
                        .iter()
                        .find(|s| s.id == session)
                        .map(|s| (s.shard, s.id))
                })
        });
    match target {
        Some((home, session)) => {
            tracing::info!(id = %short_id(session), "api: kicking session");
            shard.kick(home, session, StopReason::Kicked);
            json_response(StatusCode::ACCEPTED, &json!({ "kicked": id_str(session) }))
        }
        None => error(StatusCode::NOT_FOUND, format!("no session {:?}", clip(id))),
    }
}
