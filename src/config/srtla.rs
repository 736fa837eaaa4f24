//! The `srtla:` section: the bonded-ingest listener, its limits, the source
//! networks allowed to register, and the resequencing bound.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_count, check_listen, check_range, duration, invalid, limits, ConfigError};

/// `srtla:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrtlaConfig {
    pub enabled: bool,
    /// UDP addresses to listen on; non-empty when enabled, no duplicates.
    #[serde(deserialize_with = "super::null_as_default")]
    pub listen: Vec<SocketAddr>,
    pub max_groups: usize,
    pub max_links_per_group: usize,
    /// A link heard from for this long is dropped from its group.
    #[serde(with = "duration")]
    pub link_timeout: Duration,
    /// A group none of whose links was heard for this long is closed.
    #[serde(with = "duration")]
    pub group_timeout: Duration,
    /// Source networks allowed to register; empty = anyone.
    #[serde(deserialize_with = "super::null_as_default")]
    pub allow: Vec<Network>,
    /// Upper bound of the adaptive hold for out-of-order packets; 0 = off.
    #[serde(with = "duration")]
    pub max_reorder_hold: Duration,
}

impl Default for SrtlaConfig {
    fn default() -> Self {
        SrtlaConfig {
            enabled: true,
            listen: vec![
                SocketAddr::from(([0, 0, 0, 0], 5000)),
                SocketAddr::from(([0u16; 8], 5000)),
            ],
            max_groups: 200,
            max_links_per_group: 16,
            link_timeout: Duration::from_secs(10),
            group_timeout: Duration::from_secs(10),
            allow: Vec::new(),
            max_reorder_hold: Duration::from_millis(500),
        }
    }
}

/// Bounds of the `srtla:` values.
pub const MAX_GROUPS: usize = 100_000;
pub const MAX_LINKS: usize = 64;
pub const HOLD_MAX: Duration = Duration::from_secs(2);

impl SrtlaConfig {
    pub(super) fn validate(&self, srt_listen: &[SocketAddr]) -> Result<(), ConfigError> {
        if self.enabled && self.listen.is_empty() {
            return Err(invalid(
                "srtla.listen",
                "SRTLA is enabled but has no address to listen on",
                "add an address such as 0.0.0.0:5000, or set srtla.enabled: false",
            ));
        }
        check_listen("srtla.listen", &self.listen, 5000)?;
        if self.enabled {
            for (i, a) in self.listen.iter().enumerate() {
                if let Some(j) = srt_listen.iter().position(|b| overlaps(a, b)) {
                    return Err(invalid(
                        format!("srtla.listen[{i}]"),
                        format!(
                            "{a} is also where SRT listens (srt.listen[{j}] is {})",
                            srt_listen[j]
                        ),
                        "SRT and SRTLA need ports of their own; SRTLA's usual port is 5000",
                    ));
                }
            }
        }
        check_count("srtla.max_groups", self.max_groups, 1, MAX_GROUPS)?;
        check_count(
            "srtla.max_links_per_group",
            self.max_links_per_group,
            1,
            MAX_LINKS,
        )?;
        let (min, max) = (limits::TIMEOUT_MIN, limits::TIMEOUT_MAX);
        check_range("srtla.link_timeout", self.link_timeout, min, max)?;
        check_range("srtla.group_timeout", self.group_timeout, min, max)?;
        check_range(
            "srtla.max_reorder_hold",
            self.max_reorder_hold,
            Duration::ZERO,
            HOLD_MAX,
        )?;
        Ok(())
    }

    /// Whether a source address may use SRTLA.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip))
    }
}

/// Two listen addresses that would receive the same datagrams.
fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// An IP network written `ADDRESS/PREFIX` (or a bare address: one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("prefix {p:?} is not 0 to {max}")),
            },
        };
        Ok(Network { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: String| {
            serde::de::Error::custom(format!(
                "bad network {s:?}: {e} (write ADDRESS/PREFIX, e.g. 10.0.0.0/8 or 2001:db8::/32)"
            ))
        })
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_match_by_prefix() {
        let n: Network = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.1.200.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(n.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped peers match");
        let v6: Network = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.1.0.1")));
        let host: Network = "127.0.0.2".parse().unwrap();
        assert_eq!(host.prefix, 32);
        assert!(host.contains(ip("127.0.0.2")) && !host.contains(ip("127.0.0.3")));
        let any: Network = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("192.0.2.1")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("ten/8".parse::<Network>().is_err());
    }

    #[test]
    fn allow_list_empty_means_anyone() {
        let mut c = SrtlaConfig::default();
        assert!(c.allows(ip("203.0.113.9")));
        c.allow = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(c.allows(ip("127.0.0.3")) && !c.allows(ip("203.0.113.9")));
    }
}
