//! The `api:` section (the control API, metrics and dashboard) and the
//! `hooks:` section (HTTP callbacks that may refuse publishers and readers).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_count, check_listen, check_range, duration, invalid, ConfigError};

/// `api:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    /// TCP addresses; loopback by default.
    #[serde(deserialize_with = "super::null_as_default")]
    pub listen: Vec<SocketAddr>,
    /// Bearer token for writes and `GET /v1/config`; without one, writes are
    /// accepted from loopback clients only.
    pub token: Option<String>,
    /// Reads (`/v1/...`, `/metrics`) need the token too.
    pub auth_reads: bool,
    /// Largest request body in bytes (a configuration sent with PUT).
    pub max_body: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: vec![
                SocketAddr::from(([127, 0, 0, 1], 9997)),
                SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 9997)),
            ],
            token: None,
            auth_reads: false,
            max_body: 1 << 20,
        }
    }
}

/// What a hook that cannot be asked (down, timed out, a broken answer) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFailure {
    /// Refuse the session (as SRS does).
    #[default]
    Deny,
    /// Let the session in and log the failure.
    Allow,
}

/// `hooks:` section: URLs called with a JSON POST; a non-2xx answer to
/// `on_publish` or `on_read` refuses the session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    pub on_publish: Option<String>,
    pub on_unpublish: Option<String>,
    pub on_read: Option<String>,
    pub on_read_end: Option<String>,
    /// Time for the whole call (connect, request, answer).
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub on_failure: HookFailure,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            on_publish: None,
            on_unpublish: None,
            on_read: None,
            on_read_end: None,
            timeout: Duration::from_secs(2),
            on_failure: HookFailure::Deny,
        }
    }
}

impl HooksConfig {
    /// The hooks by name, for validation and logs.
    pub fn all(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("on_publish", self.on_publish.as_deref()),
            ("on_unpublish", self.on_unpublish.as_deref()),
            ("on_read", self.on_read.as_deref()),
            ("on_read_end", self.on_read_end.as_deref()),
        ]
    }
}

/// A hook URL taken apart: `http://HOST:PORT/PATH` (no TLS; hooks are local
/// services). The host is an IP address or `localhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    pub addr: SocketAddr,
    /// `Host:` header value.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl HookUrl {
    pub fn parse(url: &str) -> Result<HookUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("must start with http:// (hooks are called over plain HTTP)")?;
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if target.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the path contains spaces or control characters".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port: u16 = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        };
        let ip: std::net::IpAddr = if host.eq_ignore_ascii_case("localhost") {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            host.parse()
                .map_err(|_| format!("host {host:?} is not an IP address or localhost"))?
        };
        Ok(HookUrl {
            addr: SocketAddr::new(ip, port),
            authority: authority.to_owned(),
            target: target.to_owned(),
        })
    }
}

/// Connections the API accepts in the whole process.
pub const API_MAX_CONNECTIONS: usize = 256;

impl super::Config {
    /// The HTTP server settings of the API listeners: the `http:` section's
    /// timeouts and head limit, the API's addresses, no CORS.
    pub fn api_http(&self) -> super::HttpConfig {
        super::HttpConfig {
            enabled: self.api.enabled,
            listen: self.api.listen.clone(),
            header_timeout: self.http.header_timeout,
            write_timeout: self.http.write_timeout,
            max_connections: API_MAX_CONNECTIONS,
            max_request_head: self.http.max_request_head,
            cors_origin: String::new(),
            root: self.http.root.clone(),
        }
    }
}

impl ApiConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.listen.is_empty() {
            return Err(invalid(
                "api.listen",
                "empty while the API is enabled",
                "e.g. [\"127.0.0.1:9997\", \"[::1]:9997\"], or set api.enabled: false",
            ));
        }
        check_listen("api.listen", &self.listen, 9997)?;
        if let Some(t) = &self.token {
            if t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "api.token",
                    "must be 16 to 256 printable ASCII characters without spaces",
                    "e.g. the output of `openssl rand -hex 24`; null (or no key) for no token",
                ));
            }
        }
        check_count("api.max_body", self.max_body, 1024, 64 << 20)?;
        Ok(())
    }
}

impl HooksConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (name, url) in self.all() {
            if let Some(url) = url {
                HookUrl::parse(url).map_err(|m| {
                    invalid(
                        format!("hooks.{name}"),
                        m,
                        "http://HOST:PORT/PATH with an IP address or localhost, or null",
                    )
                })?;
            }
        }
        check_range(
            "hooks.timeout",
            self.timeout,
            Duration::from_millis(100),
            Duration::from_secs(30),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls() {
        let u = HookUrl::parse("http://127.0.0.1:8085/hooks/publish?x=1").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8085".parse().unwrap());
        assert_eq!(u.target, "/hooks/publish?x=1");
        assert_eq!(u.authority, "127.0.0.1:8085");
        let u = HookUrl::parse("http://[::1]:9/").unwrap();
        assert_eq!(u.addr, "[::1]:9".parse().unwrap());
        assert_eq!(HookUrl::parse("http://localhost").unwrap().addr.port(), 80);
        for bad in [
            "https://127.0.0.1/",
            "http://example.com/",
            "http://127.0.0.1:99999/",
            "http://[::1/",
            "http://127.0.0.1/a b",
        ] {
            assert!(HookUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
