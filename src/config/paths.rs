//! Path rules: which stream paths a rule covers, and who may publish or read.
//!
//! Owns the shape of stream paths ([`validate_stream_path`]), the shape of rule
//! names (exact paths or globs, [`validate_rule_name`]), glob matching, and the
//! credential check. Matching and checking never allocate: a rule name is
//! matched in place, segment rules included, with a fixed-size state set.
//!
//! It must not know about the network, sessions or live state (whether a path
//! has a publisher, how many readers it has): that is admission's job
//! (`io::srt::access`). It must not log passwords.

use std::time::Duration;

use super::{Access, PathRule};

/// What a caller asks to do on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Publish,
    Read,
}

/// Why [`PathRule::check`] refused a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Denied {
    /// The rule has `allow: false` for this mode: nobody may.
    #[error("forbidden")]
    Forbidden,
    /// The rule wants credentials and they were missing or wrong.
    #[error("unauthorized")]
    Unauthorized,
}

/// Longest stream path (and rule name), in bytes.
pub const MAX_PATH_LEN: usize = 200;

/// Stream paths coming from the network: 1..=200 chars of [A-Za-z0-9_.~/-], no
/// leading or trailing '/', no empty segment, no "." or ".." segment.
pub fn validate_stream_path(p: &str) -> Result<(), &'static str> {
    check_shape(p, false)
}

/// Rule names: an exact stream path, or a glob where `*` matches any run of
/// characters except '/' and `**` any run including '/'. Three or more stars in
/// a row are refused, as is everything [`validate_stream_path`] refuses.
pub fn validate_rule_name(name: &str) -> Result<(), &'static str> {
    if name.contains("***") {
        return Err("`***` is not a pattern: use `*` (within one segment) or `**` (any depth)");
    }
    check_shape(name, true)
}

fn check_shape(p: &str, stars: bool) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty path");
    }
    if p.len() > MAX_PATH_LEN {
        return Err("longer than 200 characters");
    }
    let ok_char = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'.' | b'~' | b'/' | b'-')
            || (stars && b == b'*')
    };
    if !p.bytes().all(ok_char) {
        return Err(if stars {
            "invalid character (allowed: A-Z a-z 0-9 _ . ~ - / and * in patterns)"
        } else {
            "invalid character (allowed: A-Z a-z 0-9 _ . ~ - /)"
        });
    }
    if p.starts_with('/') {
        return Err("starts with '/'");
    }
    if p.ends_with('/') {
        return Err("ends with '/'");
    }
    for segment in p.split('/') {
        match segment {
            "" => return Err("empty segment ('//')"),
            "." | ".." => return Err("'.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Does `pattern` (a valid rule name) match `path`? `*` matches within one
/// segment, `**` across segments. Runs in O(len(pattern) * len(path)) without
/// allocating: the set of pattern positions reachable so far is a bitset.
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    let p = pattern.as_bytes();
    if !p.contains(&b'*') {
        return pattern == path;
    }
    if p.len() > MAX_PATH_LEN {
        return false;
    }
    let mut states = States::default();
    states.insert_closed(p, 0);
    for &c in path.as_bytes() {
        let mut next = States::default();
        for i in states.iter(p.len()) {
            match p.get(i) {
                Some(b'*') if p.get(i + 1) == Some(&b'*') => next.insert_closed(p, i),
                Some(b'*') if c != b'/' => next.insert_closed(p, i),
                Some(&lit) if lit == c && lit != b'*' => next.insert_closed(p, i + 1),
                _ => {}
            }
        }
        if next.is_empty() {
            return false;
        }
        states = next;
    }
    states.contains(p.len())
}

/// Pattern positions 0..=MAX_PATH_LEN.
#[derive(Default, Clone, Copy)]
struct States([u64; MAX_PATH_LEN / 64 + 1]);

impl States {
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Insert `i` and the positions reachable from it without input: a star
    /// (single or double) may match nothing.
    fn insert_closed(&mut self, p: &[u8], mut i: usize) {
        loop {
            self.0[i / 64] |= 1 << (i % 64);
            match p.get(i) {
                Some(b'*') if p.get(i + 1) == Some(&b'*') => i += 2,
                Some(b'*') => i += 1,
                _ => return,
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn iter(&self, max: usize) -> impl Iterator<Item = usize> + '_ {
        (0..=max).filter(|i| self.contains(*i))
    }
}

/// Equal contents, in a time that depends only on the longer length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl Access {
    /// Anyone may, without credentials.
    pub fn anyone() -> Access {
        Access {
            allow: true,
            credentials: Vec::new(),
        }
    }

    /// Nobody may.
    pub fn nobody() -> Access {
        Access {
            allow: false,
            credentials: Vec::new(),
        }
    }

    fn check(&self, user: Option<&str>, pass: Option<&str>) -> Result<(), Denied> {
        if !self.allow {
            return Err(Denied::Forbidden);
        }
        if self.credentials.is_empty() {
            return Ok(());
        }
        let (Some(user), Some(pass)) = (user, pass) else {
            return Err(Denied::Unauthorized);
        };
        // Every credential is compared, so timing does not tell which one matched.
        let mut ok = false;
        for c in &self.credentials {
            let user_ok = constant_time_eq(c.user.as_bytes(), user.as_bytes());
            let pass_ok = constant_time_eq(c.pass.as_bytes(), pass.as_bytes());
            ok |= user_ok & pass_ok;
        }
        if ok {
            Ok(())
        } else {
            Err(Denied::Unauthorized)
        }
    }
}

impl PathRule {
    /// A rule for `name` with every other field at its default.
    pub fn new(name: impl Into<String>) -> PathRule {
        PathRule {
            name: name.into(),
            ..PathRule::default()
        }
    }

    /// Does this rule cover `path`? Exact names compare equal; globs match as
    /// described in [`validate_rule_name`]. Does not allocate.
    pub fn matches(&self, path: &str) -> bool {
        glob_matches(&self.name, path)
    }

    /// May a caller with these credentials `mode` on this rule's paths?
    /// Passwords are compared in constant time.
    pub fn check(&self, mode: Mode, user: Option<&str>, pass: Option<&str>) -> Result<(), Denied> {
        match mode {
            Mode::Publish => self.publish.check(user, pass),
            Mode::Read => self.read.check(user, pass),
        }
    }

    /// The rule's latency, or `default` (normally `srt.latency`).
    pub fn latency_or(&self, default: Duration) -> Duration {
        self.latency.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credential;

    #[test]
    fn stream_paths() {
        for ok in [
            "live/x",
            "a",
            "live/cam-1_2.3~x",
            "a/b/c/d",
            "x..y/z",
            ".hidden/a",
        ] {
            assert_eq!(validate_stream_path(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(201);
        let max = "a".repeat(200);
        assert_eq!(validate_stream_path(&max), Ok(()));
        for bad in [
            "",
            "/live/x",
            "live/x/",
            "live//x",
            "live/../x",
            "live/./x",
            "..",
            ".",
            "live/x y",
            "live/x:y",
            "live/é",
            "live/\0x",
            "live/*",
            "live\\x",
            "/",
            "//",
            &long,
        ] {
            assert!(validate_stream_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rule_names() {
        for ok in [
            "live/*",
            "live/**",
            "**",
            "*",
            "live/cam*",
            "a/*/b",
            "a/**/b",
            "a**b",
        ] {
            assert_eq!(validate_rule_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "live/***",
            "/live/*",
            "live/*/",
            "live//*",
            "live/../*",
            "live/ *",
            "***",
        ] {
            assert!(validate_rule_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn single_star_stays_in_one_segment() {
        assert!(glob_matches("live/*", "live/x"));
        assert!(glob_matches("live/*", "live/cam-1"));
        assert!(!glob_matches("live/*", "live/x/y"));
        assert!(!glob_matches("live/*", "live"));
        assert!(!glob_matches("live/*", "other/x"));
        assert!(glob_matches("live/cam*", "live/cam"));
        assert!(glob_matches("live/cam*", "live/cam12"));
        assert!(!glob_matches("live/cam*", "live/ca"));
        assert!(glob_matches("*/x", "a/x"));
        assert!(!glob_matches("*/x", "a/b/x"));
        assert!(glob_matches("a/*/c", "a/b/c"));
        assert!(glob_matches("*", "abc"));
        assert!(!glob_matches("*", "a/b"));
        assert!(glob_matches("*a*b", "xxaxxb"));
        assert!(!glob_matches("*a*b", "xxaxxbx"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(glob_matches("live/**", "live/x"));
        assert!(glob_matches("live/**", "live/x/y/z"));
        assert!(!glob_matches("live/**", "live"));
        assert!(glob_matches("**", "a/b/c"));
        assert!(glob_matches("a/**/z", "a/b/c/z"));
        assert!(glob_matches("a/**/z", "a/b/z"));
        assert!(!glob_matches("a/**/z", "a/z"));
        assert!(glob_matches("a/**z", "a/z"));
        assert!(glob_matches("**/*.ts", "x/y/seg.ts"));
        assert!(!glob_matches("**/*.ts", "seg.ts"));
    }

    #[test]
    fn exact_names_compare_equal() {
        let r = PathRule::new("live/cam1");
        assert!(r.matches("live/cam1"));
        assert!(!r.matches("live/cam10"));
        assert!(!r.matches("live/cam"));
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let pattern = "**a**a**a**a**a**a**a**a**a**a**b";
        let path = "a".repeat(200);
        let start = std::time::Instant::now();
        assert!(!glob_matches(pattern, &path));
        assert!(start.elapsed() < std::time::Duration::from_millis(200));
    }

    fn cred(user: &str, pass: &str) -> Credential {
        Credential {
            user: user.into(),
            pass: pass.into(),
        }
    }

    #[test]
    fn access_checks() {
        let mut r = PathRule::new("live/*");
        assert_eq!(r.check(Mode::Publish, None, None), Ok(()));
        assert_eq!(r.check(Mode::Read, Some("x"), Some("y")), Ok(()));
        r.read = Access::nobody();
        assert_eq!(r.check(Mode::Read, None, None), Err(Denied::Forbidden));
        r.publish.credentials = vec![cred("alice", "s3cret"), cred("bob", "hunter22")];
        assert_eq!(
            r.check(Mode::Publish, Some("alice"), Some("s3cret")),
            Ok(())
        );
        assert_eq!(
            r.check(Mode::Publish, Some("bob"), Some("hunter22")),
            Ok(())
        );
        assert_eq!(
            r.check(Mode::Publish, Some("alice"), Some("hunter22")),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            r.check(Mode::Publish, Some("alice"), Some("s3cre")),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            r.check(Mode::Publish, Some("alice"), Some("s3cret!")),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            r.check(Mode::Publish, Some("alice"), None),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            r.check(Mode::Publish, None, Some("s3cret")),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            r.check(Mode::Publish, Some(""), Some("")),
            Err(Denied::Unauthorized)
        );
        // Forbidden wins over credentials.
        r.publish.allow = false;
        assert_eq!(
            r.check(Mode::Publish, Some("alice"), Some("s3cret")),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab\0", b"ab"));
    }

    #[test]
    fn latency_override() {
        let mut r = PathRule::new("x");
        assert_eq!(
            r.latency_or(Duration::from_millis(120)),
            Duration::from_millis(120)
        );
        r.latency = Some(Duration::from_millis(500));
        assert_eq!(
            r.latency_or(Duration::from_millis(120)),
            Duration::from_millis(500)
        );
    }
}
