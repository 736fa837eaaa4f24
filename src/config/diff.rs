//! What a configuration reload changes (groundwork for live reload): the
//! difference between the running [`Config`] and a new one, as the actions
//! the runtime must take. Unchanged listeners and sessions live on; only what
//! differs is touched.
//!
//! Pure: two configurations in, a [`Changes`] out.

use std::net::SocketAddr;

use super::{Config, PathRule};

/// Listener addresses to open and to close for one protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebind {
    pub open: Vec<SocketAddr>,
    pub close: Vec<SocketAddr>,
}

impl Rebind {
    fn between(old: &[SocketAddr], new: &[SocketAddr]) -> Self {
        Rebind {
            open: new.iter().filter(|a| !old.contains(a)).copied().collect(),
            close: old.iter().filter(|a| !new.contains(a)).copied().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.close.is_empty()
    }
}

/// Everything a reload from one configuration to another must do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `workers` differs: needs a restart (shards are fixed at start).
    pub restart_needed: Vec<&'static str>,
    pub log: bool,
    pub srt_listen: Rebind,
    /// SRT settings other than the addresses (apply to new sessions).
    pub srt_settings: bool,
    pub srtla_listen: Rebind,
    /// SRTLA limits, allow-list, timeouts (read live by the shells).
    pub srtla_settings: bool,
    pub http_listen: Rebind,
    pub http_settings: bool,
    pub hls: bool,
    /// Path rules that are new, changed, or gone (by name): sessions on
    /// paths they cover must be checked again against the new rules.
    pub rules_added: Vec<String>,
    pub rules_changed: Vec<String>,
    pub rules_removed: Vec<String>,
    /// The order of the rules changed (which rule matches a path may differ).
    pub rules_reordered: bool,
}

impl Changes {
    /// The changes from `old` to `new`.
    pub fn between(old: &Config, new: &Config) -> Self {
        let mut c = Changes::default();
        if old.workers != new.workers {
            c.restart_needed.push("workers");
        }
        c.log = old.log != new.log;
        c.srt_listen = Rebind::between(&old.srt.listen, &new.srt.listen);
        c.srt_settings = {
            let mut a = old.srt.clone();
            a.listen = new.srt.listen.clone();
            a != new.srt
        };
        let on =
            |enabled: bool, list: &[SocketAddr]| if enabled { list.to_vec() } else { Vec::new() };
        c.srtla_listen = Rebind::between(
            &on(old.srtla.enabled, &old.srtla.listen),
            &on(new.srtla.enabled, &new.srtla.listen),
        );
        c.srtla_settings = {
            let mut a = old.srtla.clone();
            a.listen = new.srtla.listen.clone();
            a.enabled = new.srtla.enabled;
            a != new.srtla
        };
        c.http_listen = Rebind::between(
            &on(old.http.enabled, &old.http.listen),
            &on(new.http.enabled, &new.http.listen),
        );
        c.http_settings = {
            let mut a = old.http.clone();
            a.listen = new.http.listen.clone();
            a.enabled = new.http.enabled;
            a != new.http
        };
        c.hls = old.hls != new.hls;
        let find = |rules: &[PathRule], name: &str| rules.iter().position(|r| r.name == name);
        for rule in &new.paths {
            match find(&old.paths, &rule.name) {
                None => c.rules_added.push(rule.name.clone()),
                Some(i) if old.paths[i] != *rule => c.rules_changed.push(rule.name.clone()),
                Some(_) => {}
            }
        }
        for rule in &old.paths {
            if find(&new.paths, &rule.name).is_none() {
                c.rules_removed.push(rule.name.clone());
            }
        }
        let kept = |from: &[PathRule], other: &[PathRule]| -> Vec<String> {
            from.iter()
                .filter(|r| find(other, &r.name).is_some())
                .map(|r| r.name.clone())
                .collect()
        };
        c.rules_reordered = kept(&old.paths, &new.paths) != kept(&new.paths, &old.paths);
        c
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Whether a session on `path` must be checked again against the new
    /// rules (its rule may have changed, gone, or been shadowed).
    pub fn affects_path(&self, old: &Config, new: &Config, path: &str) -> bool {
        if self.rules_reordered || !self.rules_added.is_empty() {
            // A new or moved rule may now match first.
            return old.rule_for(path).map(|r| &r.name) != new.rule_for(path).map(|r| &r.name)
                || self.rule_touched(old, path);
        }
        self.rule_touched(old, path)
    }

    fn rule_touched(&self, old: &Config, path: &str) -> bool {
        old.rule_for(path).is_some_and(|r| {
            self.rules_changed.contains(&r.name) || self.rules_removed.contains(&r.name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, "test.yaml").unwrap()
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let a = Config::default();
        assert!(Changes::between(&a, &a.clone()).is_empty());
    }

    #[test]
    fn listeners_rebind_only_what_differs() {
        let old = config(
            "srt: { listen: [\"0.0.0.0:8890\", \"127.0.0.1:9000\"] }\nhttp: { enabled: false }\n",
        );
        let new = config("srt: { listen: [\"0.0.0.0:8890\", \"127.0.0.1:9001\"] }\nhttp: { listen: [\"127.0.0.1:8080\"] }\n");
        let c = Changes::between(&old, &new);
        assert_eq!(c.srt_listen.open, vec!["127.0.0.1:9001".parse().unwrap()]);
        assert_eq!(c.srt_listen.close, vec!["127.0.0.1:9000".parse().unwrap()]);
        assert!(!c.srt_settings, "only addresses changed");
        assert_eq!(c.http_listen.open, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert!(c.http_listen.close.is_empty());
        assert!(c.srtla_listen.is_empty());
        assert!(c.restart_needed.is_empty());
    }

    #[test]
    fn settings_and_rules() {
        let old = Config::default();
        let mut new = old.clone();
        new.srtla.max_groups = 5;
        new.hls.segment = Duration::from_secs(2);
        new.workers = 3;
        new.paths[0].read.allow = false;
        new.paths.insert(0, PathRule::new("live/special"));
        let c = Changes::between(&old, &new);
        assert!(c.srtla_settings && c.hls && !c.http_settings && !c.log);
        assert_eq!(c.restart_needed, vec!["workers"]);
        assert_eq!(c.rules_added, vec!["live/special".to_owned()]);
        assert_eq!(c.rules_changed, vec!["live/*".to_owned()]);
        assert!(c.rules_removed.is_empty());
        assert!(!c.rules_reordered, "live/* is still the only common rule");
        assert!(
            c.affects_path(&old, &new, "live/special"),
            "a new rule matches first"
        );
        assert!(c.affects_path(&old, &new, "live/cam"), "its rule changed");
        assert!(
            !c.affects_path(&old, &new, "other/x"),
            "no rule before or after"
        );
    }

    #[test]
    fn removed_and_reordered_rules() {
        let old = Config {
            paths: vec![
                PathRule::new("a/*"),
                PathRule::new("b/*"),
                PathRule::new("**"),
            ],
            ..Config::default()
        };
        let mut new = old.clone();
        new.paths = vec![PathRule::new("**"), PathRule::new("a/*")];
        let c = Changes::between(&old, &new);
        assert_eq!(c.rules_removed, vec!["b/*".to_owned()]);
        assert!(c.rules_reordered);
        assert!(c.affects_path(&old, &new, "b/x"));
        assert!(c.affects_path(&old, &new, "a/x"), "`**` now matches first");
    }
}
