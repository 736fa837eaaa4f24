//! The configuration: its types, their defaults, loading from YAML, and
//! validation of everything that can be checked without the network.
//!
//! Owns the meaning of every key in `conf/srtgate.yaml` and the rules a value
//! must satisfy. A [`Config`] that came out of [`Config::load`] or
//! [`Config::from_yaml`] has been validated; code that builds one by hand should
//! call [`Config::validate`].
//!
//! Must not: touch sockets, spawn anything, read the clock, or log (logging is
//! configured *from* this, so errors are returned, never printed). Parsing goes
//! through serde-saphyr (see `research/config.md`); error locations and hints
//! are built in [`error`], key locations for semantic errors in [`spans`].

pub mod api;
pub mod diff;
pub mod duration;
mod error;
pub mod http;
mod paths;
mod spans;
pub mod srtla;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use api::{ApiConfig, HookFailure, HookUrl, HooksConfig};
pub use error::{ConfigError, Diagnostic};
pub use http::{HlsConfig, HlsDefault, HttpConfig};
pub use paths::{
    glob_matches, validate_rule_name, validate_stream_path, Denied, Mode, MAX_PATH_LEN,
};
pub use srtla::{Network, SrtlaConfig};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Shards (executors); 0 = one per CPU.
    pub workers: usize,
    #[serde(deserialize_with = "null_as_default")]
    pub log: LogConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub srt: SrtConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub srtla: SrtlaConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub http: HttpConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub hls: HlsConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub api: ApiConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub hooks: HooksConfig,
    /// Ordered; the first rule whose name matches a path applies.
    #[serde(deserialize_with = "null_as_default")]
    pub paths: Vec<PathRule>,
}

/// `log:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// An EnvFilter directive, e.g. `info` or `info,srtgate::io=debug`.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `srt:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrtConfig {
    /// UDP addresses to listen on; non-empty, no duplicates.
    #[serde(deserialize_with = "null_as_default")]
    pub listen: Vec<SocketAddr>,
    /// Default SRT latency (TSBPD delay); 20ms..=10s.
    #[serde(with = "duration")]
    pub latency: Duration,
    /// A session whose peer sent nothing for this long is closed.
    #[serde(with = "duration")]
    pub peer_idle_timeout: Duration,
    /// Sessions in the whole process.
    pub max_sessions: usize,
    /// Pending handshakes per shard.
    pub max_handshakes: usize,
    /// A handshake not finished in this time is dropped.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    /// What a stream id without a mode (`live/x`) asks for.
    pub bare_stream_id: BareStreamId,
    /// Frames queued per reader before it is skipped to the next keyframe.
    pub reader_queue: usize,
}

/// Role of a caller whose stream id names no mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BareStreamId {
    /// Publish if nobody publishes the path yet, else read.
    #[default]
    Auto,
    Publish,
    Read,
}

/// One entry of `paths:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathRule {
    /// Exact path (`live/cam1`) or glob: `*` = any characters except '/',
    /// `**` = any characters including '/'.
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub publish: Access,
    #[serde(deserialize_with = "null_as_default")]
    pub read: Access,
    /// SRT passphrase, 10..=79 bytes; `None` = unencrypted.
    pub passphrase: Option<String>,
    /// Overrides `srt.latency`.
    #[serde(with = "duration::option")]
    pub latency: Option<Duration>,
    pub on_second_publisher: SecondPublisher,
    /// How long a reader of a path without a publisher waits; 0 = refuse at once.
    #[serde(with = "duration")]
    pub wait_for_publisher: Duration,
    /// 0 = unlimited.
    pub max_readers: usize,
    /// How long readers stay when the publisher goes, waiting for it (or
    /// another) to come back; 0 = they are ended at once.
    #[serde(with = "duration")]
    pub publisher_grace: Duration,
    /// SRT readers get TS muxed again from the frames (video and audio tracks
    /// only) instead of the publisher's own transport stream passed through.
    pub remux: bool,
}

/// What happens when a second publisher arrives on a published path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondPublisher {
    /// The newcomer is refused.
    #[default]
    Reject,
    /// The newcomer replaces the current publisher.
    Takeover,
}

/// Who may publish (or read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    /// `false`: nobody may, whatever the credentials.
    pub allow: bool,
    /// Empty: anyone may. Otherwise one of these user/pass pairs is required.
    #[serde(deserialize_with = "null_as_default")]
    pub credentials: Vec<Credential>,
}

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub user: String,
    pub pass: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("pass", &"<redacted>")
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 0,
            log: LogConfig::default(),
            srt: SrtConfig::default(),
            srtla: SrtlaConfig::default(),
            http: HttpConfig::default(),
            hls: HlsConfig::default(),
            api: ApiConfig::default(),
            hooks: HooksConfig::default(),
            paths: vec![PathRule::new("live/*")],
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 8890))],
            latency: Duration::from_millis(120),
            peer_idle_timeout: Duration::from_secs(5),
            max_sessions: 1000,
            max_handshakes: 256,
            handshake_timeout: Duration::from_secs(5),
            bare_stream_id: BareStreamId::Auto,
            reader_queue: 512,
        }
    }
}

impl Default for PathRule {
    fn default() -> Self {
        PathRule {
            name: String::new(),
            publish: Access::default(),
            read: Access::default(),
            passphrase: None,
            latency: None,
            on_second_publisher: SecondPublisher::Reject,
            wait_for_publisher: Duration::from_secs(10),
            max_readers: 0,
            publisher_grace: Duration::ZERO,
            remux: false,
        }
    }
}

impl Default for Access {
    fn default() -> Self {
        Access::anyone()
    }
}

/// Bounds shared by validation and the shipped file's comments.
pub mod limits {
    use std::time::Duration;

    pub const LATENCY_MIN: Duration = Duration::from_millis(20);
    pub const LATENCY_MAX: Duration = Duration::from_secs(10);
    pub const PASSPHRASE_MIN: usize = 10;
    pub const PASSPHRASE_MAX: usize = 79;
    pub const WORKERS_MAX: usize = 1024;
    pub const TIMEOUT_MIN: Duration = Duration::from_millis(100);
    pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
    pub const WAIT_MAX: Duration = Duration::from_secs(3600);
    pub const READER_QUEUE_MAX: usize = 1 << 20;
    pub const CREDENTIAL_MAX: usize = 100;
}

impl Config {
    /// Read, parse and validate a configuration file. Errors name the file and
    /// the line and column of the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the configuration file", path.display()))?;
        Ok(Config::from_yaml(&text, &path.display().to_string())?)
    }

    /// Parse and validate YAML text; `origin` names it in error messages. An
    /// empty document (or one with only comments) is the default configuration.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let options = serde_saphyr::options! {
            with_snippet: false,
        };
        let config: Config = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| error::from_parse_error(&e, text, origin))?;
        config.validate().map_err(|e| e.locate(text, origin))?;
        Ok(config)
    }

    /// Check every rule a value must satisfy. Errors name the key path
    /// (`paths[2].passphrase`); [`Config::from_yaml`] adds file, line and column.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use limits::*;
        if self.workers > WORKERS_MAX {
            return Err(invalid(
                "workers",
                format!("{} is more than {WORKERS_MAX}", self.workers),
                "0 = one per CPU",
            ));
        }
        check_log_level(&self.log.level)
            .map_err(|m| invalid("log.level", m, "a level (trace, debug, info, warn, error, off) or comma-separated `target=level` parts, e.g. info,srtgate::io=debug"))?;
        self.srt.validate()?;
        self.srtla.validate(&self.srt.listen)?;
        self.http.validate()?;
        self.hls.validate()?;
        self.api.validate()?;
        self.hooks.validate()?;
        if self.paths.is_empty() {
            return Err(invalid(
                "paths",
                "no path rules: nobody could publish or read",
                "add at least one rule, e.g. `- name: \"live/*\"`",
            ));
        }
        for (i, rule) in self.paths.iter().enumerate() {
            rule.validate(&format!("paths[{i}]"))?;
            for (j, earlier) in self.paths[..i].iter().enumerate() {
                if earlier.name == rule.name {
                    return Err(invalid(
                        format!("paths[{i}].name"),
                        format!("`{}` is also the name of paths[{j}]", rule.name),
                        "each rule needs its own name; the first one would always win",
                    ));
                }
                if !rule.name.contains('*') && earlier.matches(&rule.name) {
                    return Err(invalid(
                        format!("paths[{i}].name"),
                        format!("`{}` is never used: paths[{j}] (`{}`) comes first and matches it", rule.name, earlier.name),
                        "rules are tried in order and the first match wins: put the more specific rule first",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The first rule that matches `path`, if any.
    pub fn rule_for(&self, path: &str) -> Option<&PathRule> {
        self.paths.iter().find(|r| r.matches(path))
    }

    /// Number of shards: `workers`, or `cpus` (at least 1) when it is 0.
    pub fn workers_or(&self, cpus: usize) -> usize {
        if self.workers == 0 {
            cpus.max(1)
        } else {
            self.workers
        }
    }

    /// The configuration as YAML (every key, defaults included).
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        serde_saphyr::to_string(self)
    }
}

impl SrtConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        use limits::*;
        let listen_hint = "IP address and UDP port, e.g. 0.0.0.0:8890 or \"[::]:8890\"";
        if self.listen.is_empty() {
            return Err(invalid(
                "srt.listen",
                "no address to listen on",
                listen_hint,
            ));
        }
        check_listen("srt.listen", &self.listen, 8890)?;
        check_range("srt.latency", self.latency, LATENCY_MIN, LATENCY_MAX)?;
        check_range(
            "srt.peer_idle_timeout",
            self.peer_idle_timeout,
            TIMEOUT_MIN,
            TIMEOUT_MAX,
        )?;
        check_range(
            "srt.handshake_timeout",
            self.handshake_timeout,
            TIMEOUT_MIN,
            TIMEOUT_MAX,
        )?;
        check_count("srt.max_sessions", self.max_sessions, 1, usize::MAX)?;
        check_count("srt.max_handshakes", self.max_handshakes, 1, usize::MAX)?;
        check_count("srt.reader_queue", self.reader_queue, 1, READER_QUEUE_MAX)?;
        Ok(())
    }
}

impl PathRule {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        use limits::*;
        let glob_hint = "an exact path like live/cam1, or a pattern: `*` matches within one segment (live/*), `**` across segments (live/**)";
        if self.name.is_empty() {
            return Err(invalid(
                format!("{at}.name"),
                "every rule needs a name",
                glob_hint,
            ));
        }
        validate_rule_name(&self.name).map_err(|why| {
            invalid(
                format!("{at}.name"),
                format!("bad path pattern {:?}: {why}", self.name),
                glob_hint,
            )
        })?;
        if let Some(p) = &self.passphrase {
            if !(PASSPHRASE_MIN..=PASSPHRASE_MAX).contains(&p.len()) {
                return Err(invalid(
                    format!("{at}.passphrase"),
                    format!(
                        "must be {PASSPHRASE_MIN} to {PASSPHRASE_MAX} bytes long, not {}",
                        p.len()
                    ),
                    "SRT accepts passphrases of 10 to 79 bytes; set it to null (or remove the key) for an unencrypted path",
                ));
            }
        }
        if let Some(l) = self.latency {
            check_range(&format!("{at}.latency"), l, LATENCY_MIN, LATENCY_MAX)?;
        }
        if self.wait_for_publisher > WAIT_MAX {
            return Err(invalid(
                format!("{at}.wait_for_publisher"),
                format!(
                    "{} is more than {}",
                    duration::Human(self.wait_for_publisher),
                    duration::Human(WAIT_MAX)
                ),
                "0s refuses readers at once when nobody publishes",
            ));
        }
        if self.publisher_grace > WAIT_MAX {
            return Err(invalid(
                format!("{at}.publisher_grace"),
                format!(
                    "{} is more than {}",
                    duration::Human(self.publisher_grace),
                    duration::Human(WAIT_MAX)
                ),
                "0s ends readers as soon as their publisher goes",
            ));
        }
        for (mode, access) in [("publish", &self.publish), ("read", &self.read)] {
            for (j, c) in access.credentials.iter().enumerate() {
                let here = format!("{at}.{mode}.credentials[{j}]");
                for (key, value) in [("user", &c.user), ("pass", &c.pass)] {
                    check_credential(value).map_err(|m| {
                        invalid(format!("{here}.{key}"), m, "1 to 100 characters, without ':', ',' or control characters (stream ids cannot carry them)")
                    })?;
                }
                if access.credentials[..j].iter().any(|o| o.user == c.user) {
                    return Err(invalid(
                        format!("{here}.user"),
                        format!("user {:?} is listed twice", c.user),
                        "give each user one entry",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// No address twice, and no wildcard overlapping a specific address.
fn check_listen(key: &str, list: &[SocketAddr], port: u16) -> Result<(), ConfigError> {
    for (i, a) in list.iter().enumerate() {
        for (j, b) in list[..i].iter().enumerate() {
            if a.port() == 0 || a.port() != b.port() || a.is_ipv4() != b.is_ipv4() {
                continue;
            }
            if a == b {
                return Err(invalid(
                    format!("{key}[{i}]"),
                    format!("{a} is listed twice (also {key}[{j}])"),
                    "list each address once",
                ));
            }
            if a.ip().is_unspecified() || b.ip().is_unspecified() {
                return Err(invalid(
                    format!("{key}[{i}]"),
                    format!("{a} overlaps {key}[{j}] ({b}): a wildcard address already covers this port"),
                    &format!("keep either the wildcard address or the specific ones (e.g. 0.0.0.0:{port})"),
                ));
            }
        }
    }
    Ok(())
}

/// A section or list left empty (`log:` with every key commented out) is
/// YAML null: read it as the default rather than refusing it.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn invalid(key: impl Into<String>, message: impl Into<String>, hint: &str) -> ConfigError {
    ConfigError::Invalid(Box::new(Diagnostic {
        key: Some(key.into()),
        message: message.into(),
        hint: Some(hint.to_owned()),
        ..Diagnostic::default()
    }))
}

fn check_range(key: &str, d: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    use duration::Human;
    if d < min || d > max {
        let hint = format!(
            "between {} and {}; {}",
            Human(min),
            Human(max),
            duration::FORMS
        );
        return Err(invalid(key, format!("{} is out of range", Human(d)), &hint));
    }
    Ok(())
}

fn check_count(key: &str, n: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if n < min || n > max {
        let hint = if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(invalid(key, format!("{n} is out of range"), &hint));
    }
    Ok(())
}

fn check_credential(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > limits::CREDENTIAL_MAX {
        return Err(format!("longer than {} characters", limits::CREDENTIAL_MAX));
    }
    if let Some(c) = s.chars().find(|c| matches!(c, ':' | ',') || c.is_control()) {
        return Err(format!("contains {c:?}"));
    }
    Ok(())
}

/// `level` or `target=level` parts separated by commas, as tracing's EnvFilter
/// reads them (span and field filters are not accepted here).
fn check_log_level(directive: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s));
    if directive.trim().is_empty() {
        return Err("empty log level".into());
    }
    for part in directive.split(',').map(str::trim) {
        let (target, level) = match part.split_once('=') {
            Some((t, l)) => (Some(t.trim()), l.trim()),
            None => (None, part),
        };
        if let Some(t) = target {
            let ok = !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'));
            if !ok {
                return Err(format!("bad target {t:?} in {part:?}"));
            }
        }
        if part.is_empty() {
            return Err("empty part (stray comma?)".into());
        }
        if !is_level(level) {
            return Err(format!("unknown level {level:?} in {part:?}"));
        }
    }
    Ok(())
}
