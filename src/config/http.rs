//! The `http:` section (the HTTP server: HLS, player pages, static files) and
//! the `hls:` section (how each stream's HLS output is cut and kept).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_count, check_listen, check_range, duration, invalid, ConfigError};

/// `http:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    /// TCP addresses to listen on; non-empty when enabled, no duplicates.
    #[serde(deserialize_with = "super::null_as_default")]
    pub listen: Vec<SocketAddr>,
    /// A request head must arrive within this; also the keep-alive idle timeout.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// A response write that makes no progress for this long closes the connection.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// Open connections in the whole process; more are answered 503.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_request_head: usize,
    /// `Access-Control-Allow-Origin` of every response; empty = no CORS headers.
    pub cors_origin: String,
    /// Directory of the player pages and static files (read at start).
    pub root: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: vec![
                SocketAddr::from(([0, 0, 0, 0], 8080)),
                SocketAddr::from(([0u16; 8], 8080)),
            ],
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_request_head: 16 << 10,
            cors_origin: "*".to_owned(),
            root: "html".to_owned(),
        }
    }
}

/// Which HLS variant `/<path>/index.m3u8` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HlsDefault {
    /// LL-HLS: fMP4 segments with partial segments.
    #[default]
    Ll,
    /// MPEG-TS segments.
    Ts,
}

/// `hls:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Serve the LL-HLS (fMP4) variant at `/<path>/ll.m3u8`.
    pub ll: bool,
    /// Serve the MPEG-TS variant at `/<path>/ts.m3u8`.
    pub ts: bool,
    /// The variant `/<path>/index.m3u8` serves.
    pub default: HlsDefault,
    /// Segment target duration (segments are cut at the first keyframe after it).
    #[serde(with = "duration")]
    pub segment: Duration,
    /// Partial segment target duration (LL-HLS).
    #[serde(with = "duration")]
    pub part: Duration,
    /// Complete segments in the playlist (and in memory).
    pub window: usize,
    /// How long a stream's playlist and segments stay after its publisher
    /// left; a publisher back within it continues the playlist.
    #[serde(with = "duration")]
    pub keep_after_end: Duration,
    /// A request for a path that is published but has no segment yet waits
    /// this long for one before it is answered 404.
    #[serde(with = "duration")]
    pub wait_for_segment: Duration,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            ll: true,
            ts: true,
            default: HlsDefault::Ll,
            segment: Duration::from_secs(1),
            part: Duration::from_millis(200),
            window: 6,
            keep_after_end: Duration::from_secs(60),
            wait_for_segment: Duration::from_secs(5),
        }
    }
}

/// Bounds of the `http:` and `hls:` values.
pub const MAX_CONNECTIONS: usize = 1_000_000;
pub const HEAD_MIN: usize = 8 << 10;
pub const HEAD_MAX: usize = 1 << 20;

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.listen.is_empty() {
            return Err(invalid(
                "http.listen",
                "HTTP is enabled but has no address to listen on",
                "add an address such as 0.0.0.0:8080, or set http.enabled: false",
            ));
        }
        check_listen("http.listen", &self.listen, 8080)?;
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(3600));
        check_range("http.header_timeout", self.header_timeout, min, max)?;
        check_range("http.write_timeout", self.write_timeout, min, max)?;
        check_count(
            "http.max_connections",
            self.max_connections,
            1,
            MAX_CONNECTIONS,
        )?;
        check_count(
            "http.max_request_head",
            self.max_request_head,
            HEAD_MIN,
            HEAD_MAX,
        )?;
        if let Some(c) = self.cors_origin.chars().find(|c| c.is_control()) {
            return Err(invalid(
                "http.cors_origin",
                format!("contains {c:?}"),
                "an origin such as \"*\" or \"https://example.com\", or \"\" for no CORS headers",
            ));
        }
        if self.enabled && self.root.is_empty() {
            return Err(invalid(
                "http.root",
                "empty",
                "the directory of the player pages, e.g. html",
            ));
        }
        Ok(())
    }

    /// Connections one shard accepts (the process limit shared out).
    pub fn connections_per_shard(&self, shards: usize) -> usize {
        self.max_connections.div_ceil(shards.max(1)).max(1)
    }
}

impl HlsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let on = match self.default {
            HlsDefault::Ll => self.ll,
            HlsDefault::Ts => self.ts,
        };
        if !on && (self.ll || self.ts) {
            return Err(invalid(
                "hls.default",
                format!(
                    "{:?} is the default variant but it is turned off",
                    self.default
                )
                .to_lowercase(),
                "choose a variant that is on (ll or ts), or turn it on",
            ));
        }
        check_range(
            "hls.segment",
            self.segment,
            Duration::from_millis(200),
            Duration::from_secs(30),
        )?;
        check_range(
            "hls.part",
            self.part,
            Duration::from_millis(50),
            Duration::from_secs(2),
        )?;
        if self.part * 2 > self.segment {
            return Err(invalid(
                "hls.part",
                format!(
                    "{} is more than half of hls.segment ({})",
                    duration::Human(self.part),
                    duration::Human(self.segment)
                ),
                "parts are a fraction of a segment: e.g. segment 1s, part 200ms",
            ));
        }
        check_count("hls.window", self.window, 2, 100)?;
        check_range(
            "hls.keep_after_end",
            self.keep_after_end,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        check_range(
            "hls.wait_for_segment",
            self.wait_for_segment,
            Duration::ZERO,
            Duration::from_secs(30),
        )?;
        Ok(())
    }

    /// Is any variant on?
    pub fn enabled(&self) -> bool {
        self.ll || self.ts
    }
}
