//! Tests of loading and validating whole configurations, and of the shipped
//! `conf/srtgate.yaml`. Unit tests of durations, rules and spans live beside
//! their code.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const SHIPPED: &str = include_str!("../../conf/srtgate.yaml");

fn err(yaml: &str) -> String {
    Config::from_yaml(yaml, "test.yaml")
        .expect_err("should be refused")
        .to_string()
}

fn first_line(yaml: &str) -> String {
    err(yaml).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn shipped_file_is_the_default_and_serves_live() {
    let c = Config::from_yaml(SHIPPED, "conf/srtgate.yaml").expect("shipped config parses");
    assert_eq!(c, Config::default());
    let rule = c.rule_for("live/x").expect("live/x has a rule");
    assert_eq!(rule.check(Mode::Publish, None, None), Ok(()));
    assert_eq!(rule.check(Mode::Read, None, None), Ok(()));
    assert_eq!(rule.latency_or(c.srt.latency), Duration::from_millis(120));
    assert!(c.rule_for("other/x").is_none());
    assert!(c.rule_for("live/a/b").is_none());
    assert_eq!(c.srt.listen, vec![SocketAddr::from(([0, 0, 0, 0], 8890))]);
}

#[test]
fn shipped_file_mentions_every_key() {
    let yaml = Config::default().to_yaml().unwrap();
    for line in yaml.lines() {
        let key = line
            .trim_start()
            .trim_start_matches("- ")
            .split(':')
            .next()
            .unwrap_or_default();
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
            assert!(
                SHIPPED.contains(&format!("{key}:")),
                "shipped file lacks `{key}`"
            );
        }
    }
}

#[test]
fn empty_document_is_the_default() {
    assert_eq!(Config::from_yaml("", "x").unwrap(), Config::default());
    assert_eq!(
        Config::from_yaml("# only a comment\n\n", "x").unwrap(),
        Config::default()
    );
    assert_eq!(
        Config::from_yaml("srt: {}\n", "x").unwrap(),
        Config::default()
    );
    // Sections whose keys are all commented out are null: defaults too.
    let c = Config::from_yaml(
        "log:\n  # level: debug\nsrt:\npaths:\n  - name: \"live/*\"\n    publish:\n    read:\n",
        "x",
    );
    assert_eq!(c.unwrap(), Config::default());
    assert_eq!(
        first_line("paths:\n"),
        "test.yaml:1:1: paths: no path rules: nobody could publish or read"
    );
    assert_eq!(
        first_line("srt:\n  listen:\n"),
        "test.yaml:2:3: srt.listen: no address to listen on"
    );
}

#[test]
fn round_trips_through_yaml() {
    let c = Config::default();
    let yaml = c.to_yaml().unwrap();
    assert_eq!(Config::from_yaml(&yaml, "ser").unwrap(), c);

    let mut c = Config {
        workers: 3,
        log: LogConfig {
            level: "info,srtgate::io=debug".into(),
            format: LogFormat::Json,
        },
        ..Config::default()
    };
    c.srt.listen = vec![
        "127.0.0.1:9000".parse().unwrap(),
        "[::1]:9000".parse().unwrap(),
    ];
    c.srt.latency = Duration::from_millis(1500);
    c.srt.bare_stream_id = BareStreamId::Read;
    let mut rule = PathRule::new("secure/**");
    rule.passphrase = Some("0123456789abcdef".into());
    rule.latency = Some(Duration::from_millis(300));
    rule.on_second_publisher = SecondPublisher::Takeover;
    rule.wait_for_publisher = Duration::ZERO;
    rule.max_readers = 7;
    rule.read = Access::nobody();
    rule.publish.credentials = vec![Credential {
        user: "alice".into(),
        pass: "0123".into(),
    }];
    c.paths.insert(0, rule);
    c.validate().unwrap();
    let yaml = c.to_yaml().unwrap();
    assert_eq!(Config::from_yaml(&yaml, "ser").unwrap(), c, "{yaml}");
}

#[test]
fn first_matching_rule_wins() {
    let c = Config::from_yaml("paths:\n  - name: live/special\n    max_readers: 1\n  - name: \"live/*\"\n  - name: \"**\"\n    read: { allow: false }\n", "x").unwrap();
    assert_eq!(c.rule_for("live/special").unwrap().max_readers, 1);
    assert_eq!(c.rule_for("live/other").unwrap().name, "live/*");
    assert_eq!(c.rule_for("a/b/c").unwrap().name, "**");
}

#[test]
fn workers_default_to_cpus() {
    let mut c = Config::default();
    assert_eq!(c.workers_or(8), 8);
    assert_eq!(c.workers_or(0), 1);
    c.workers = 3;
    assert_eq!(c.workers_or(8), 3);
}

#[test]
fn unknown_key_names_file_line_column_and_valid_keys() {
    let e = err("workers: 1\nsrt:\n  latency: 120ms\n  latncy: 3\n");
    assert!(
        e.starts_with("test.yaml:4:3: unknown key `latncy` in `srt`"),
        "{e}"
    );
    assert!(e.contains("valid keys in `srt`: listen, latency, peer_idle_timeout, max_sessions, max_handshakes, handshake_timeout, bare_stream_id, reader_queue"), "{e}");
    assert!(e.contains("did you mean `latency`?"), "{e}");
    assert!(e.contains(" 4 |   latncy: 3\n   |   ^"), "{e}");

    let e = err("srtt:\n  latency: 120ms\n");
    assert!(
        e.starts_with("test.yaml:1:1: unknown top-level key `srtt`"),
        "{e}"
    );
    assert!(
        e.contains("valid top-level keys: workers, log, srt, srtla, http, hls, api, hooks, paths"),
        "{e}"
    );

    let e = err("paths:\n  - name: a\n  - name: b\n    pasphrase: 0123456789\n");
    assert!(
        e.starts_with("test.yaml:4:5: unknown key `pasphrase` in `paths[1]`"),
        "{e}"
    );
    assert!(e.contains("did you mean `passphrase`?"), "{e}");

    let e = err("paths:\n  - name: a\n    publish:\n      alow: false\n");
    assert!(
        e.starts_with("test.yaml:4:7: unknown key `alow` in `paths[0].publish`"),
        "{e}"
    );
    assert!(
        e.contains("valid keys in `paths[0].publish`: allow, credentials"),
        "{e}"
    );
}

#[test]
fn bad_values_show_the_accepted_forms() {
    let e = err("srt:\n  latency: 5 sec\n");
    assert!(
        e.starts_with("test.yaml:2:12: srt.latency: invalid duration \"5 sec\""),
        "{e}"
    );
    assert!(e.contains("hint: a number and a unit, e.g. 120ms"), "{e}");

    let e = err("paths:\n  - name: a\n    wait_for_publisher: 10\n");
    assert!(
        e.starts_with(
            "test.yaml:3:25: paths[0].wait_for_publisher: invalid duration 10: missing unit"
        ),
        "{e}"
    );

    let e = err("srt:\n  listen: [\"0.0.0.0:8890\", \"nope\"]\n");
    assert!(
        e.starts_with("test.yaml:2:28: srt.listen[1]: invalid socket address"),
        "{e}"
    );
    assert!(
        e.contains("hint: a list of IP address and UDP port pairs"),
        "{e}"
    );

    let e = err("srt:\n  bare_stream_id: maybe\n");
    assert!(
        e.starts_with("test.yaml:2:19: srt.bare_stream_id: unknown value `maybe`"),
        "{e}"
    );
    assert!(e.contains("accepted values: auto, publish, read"), "{e}");

    let e = err("workers: -1\n");
    assert!(e.starts_with("test.yaml:1:10: workers:"), "{e}");
    assert!(e.contains("a whole number"), "{e}");

    let e = err("workers: 1\nworkers: 2\n");
    assert!(
        e.starts_with("test.yaml:2:1: key `workers` appears twice"),
        "{e}"
    );

    let e = err("- a\n- b\n");
    assert!(
        e.starts_with("test.yaml:1:1: the top level must be a mapping"),
        "{e}"
    );

    let e = err("srt: [\n");
    assert!(e.starts_with("test.yaml:"), "{e}");
}

#[test]
fn validation_errors_point_at_the_key() {
    let e = err("paths:\n  - name: \"live/*\"\n    passphrase: short\n");
    assert!(
        e.starts_with("test.yaml:3:5: paths[0].passphrase: must be 10 to 79 bytes long, not 5"),
        "{e}"
    );
    assert!(e.contains(" 3 |     passphrase: short\n   |     ^"), "{e}");

    let long = "x".repeat(80);
    let e = first_line(&format!("paths:\n  - name: a\n    passphrase: {long}\n"));
    assert_eq!(
        e,
        "test.yaml:3:5: paths[0].passphrase: must be 10 to 79 bytes long, not 80"
    );

    let e = err("paths:\n  - name: a\n  - name: \"live/***\"\n");
    assert!(
        e.starts_with("test.yaml:3:5: paths[1].name: bad path pattern \"live/***\""),
        "{e}"
    );
    assert!(e.contains("hint: an exact path"), "{e}");

    assert_eq!(
        first_line("paths:\n  - name: \"\"\n"),
        "test.yaml:2:5: paths[0].name: every rule needs a name"
    );
    // Without a name key, the error points at the rule.
    assert_eq!(
        first_line("paths:\n  - max_readers: 3\n"),
        "test.yaml:2:5: paths[0].name: every rule needs a name"
    );
    assert_eq!(
        first_line("paths:\n  - name: /live\n").split(": ").nth(1),
        Some("paths[0].name")
    );
    assert_eq!(
        first_line("paths: []\n"),
        "test.yaml:1:1: paths: no path rules: nobody could publish or read"
    );
}

#[test]
fn semantic_rules() {
    let cases: &[(&str, &str)] = &[
        ("srt:\n  listen: []\n", "test.yaml:2:3: srt.listen: no address to listen on"),
        ("srt:\n  listen: [\"0.0.0.0:1\", \"0.0.0.0:1\"]\n", "test.yaml:2:25: srt.listen[1]: 0.0.0.0:1 is listed twice (also srt.listen[0])"),
        ("srt:\n  listen:\n    - \"0.0.0.0:1\"\n    - \"127.0.0.1:1\"\n", "test.yaml:4:7: srt.listen[1]: 127.0.0.1:1 overlaps srt.listen[0] (0.0.0.0:1): a wildcard address already covers this port"),
        ("srt:\n  latency: 0\n", "test.yaml:2:3: srt.latency: 0s is out of range"),
        ("srt:\n  latency: 11s\n", "test.yaml:2:3: srt.latency: 11s is out of range"),
        ("srt:\n  max_sessions: 0\n", "test.yaml:2:3: srt.max_sessions: 0 is out of range"),
        ("srt:\n  reader_queue: 0\n", "test.yaml:2:3: srt.reader_queue: 0 is out of range"),
        ("srt:\n  handshake_timeout: 0s\n", "test.yaml:2:3: srt.handshake_timeout: 0s is out of range"),
        ("workers: 5000\n", "test.yaml:1:1: workers: 5000 is more than 1024"),
        ("log:\n  level: \"\"\n", "test.yaml:2:3: log.level: empty log level"),
        ("log:\n  level: loud\n", "test.yaml:2:3: log.level: unknown level \"loud\" in \"loud\""),
        ("log:\n  level: \"info,,x=debug\"\n", "test.yaml:2:3: log.level: empty part (stray comma?)"),
        ("log:\n  level: \"info,a b=debug\"\n", "test.yaml:2:3: log.level: bad target \"a b\" in \"a b=debug\""),
        ("paths:\n  - name: a\n    latency: 5ms\n", "test.yaml:3:5: paths[0].latency: 5ms is out of range"),
        ("paths:\n  - name: a\n    wait_for_publisher: 2h\n", "test.yaml:3:5: paths[0].wait_for_publisher: 2h is more than 1h"),
        ("paths:\n  - name: a\n  - name: a\n", "test.yaml:3:5: paths[1].name: `a` is also the name of paths[0]"),
        ("paths:\n  - name: \"live/*\"\n  - name: live/x\n", "test.yaml:3:5: paths[1].name: `live/x` is never used: paths[0] (`live/*`) comes first and matches it"),
        ("paths:\n  - name: a\n    read:\n      credentials:\n        - { user: \"bo:b\", pass: x }\n", "test.yaml:5:13: paths[0].read.credentials[0].user: contains ':'"),
        ("paths:\n  - name: a\n    read:\n      credentials:\n        - { user: bob, pass: \"\" }\n", "test.yaml:5:24: paths[0].read.credentials[0].pass: must not be empty"),
        ("paths:\n  - name: a\n    publish:\n      credentials:\n        - { user: bob, pass: x }\n        - { user: bob, pass: y }\n", "test.yaml:6:13: paths[0].publish.credentials[1].user: user \"bob\" is listed twice"),
    ];
    for (yaml, want) in cases {
        assert_eq!(&first_line(yaml), want, "for {yaml:?}");
    }
    // Accepted edge values.
    for ok in [
        "srt:\n  latency: 20ms\n",
        "srt:\n  latency: 10s\n",
        "srt:\n  listen: [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n",
        "srt:\n  listen: [\"0.0.0.0:1\", \"[::]:1\", \"127.0.0.1:2\"]\n",
        "log:\n  level: \"WARN, srtgate::io::srt=trace\"\n",
        "paths:\n  - name: a\n    passphrase: \"0123456789\"\n    latency: ~\n",
        "paths:\n  - name: \"live/*\"\n  - name: live/a/b\n",
        "paths:\n  - name: a\n    publish: { allow: false, credentials: [ { user: u, pass: p } ] }\n",
    ] {
        Config::from_yaml(ok, "ok.yaml").unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}

#[test]
fn validate_alone_names_the_key_path() {
    let mut c = Config::default();
    c.paths.push(PathRule::new("x"));
    c.paths[1].passphrase = Some("short".into());
    let e = c.validate().unwrap_err();
    assert!(matches!(e, ConfigError::Invalid(_)));
    assert_eq!(e.diagnostic().key.as_deref(), Some("paths[1].passphrase"));
    assert!(
        e.to_string()
            .starts_with("paths[1].passphrase: must be 10 to 79 bytes long, not 5\n  hint: "),
        "{e}"
    );
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("srtgate-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.yaml");
    let e = format!("{:#}", Config::load(&missing).unwrap_err());
    assert!(
        e.starts_with(&format!("{}: cannot read", missing.display())),
        "{e}"
    );

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "srt:\n  latency: 1 s\n").unwrap();
    let e = format!("{:#}", Config::load(&bad).unwrap_err());
    assert!(
        e.starts_with(&format!(
            "{}:2:12: srt.latency: invalid duration",
            bad.display()
        )),
        "{e}"
    );

    let good = dir.join("good.yaml");
    std::fs::write(&good, SHIPPED).unwrap();
    assert_eq!(Config::load(&good).unwrap(), Config::default());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn number_like_strings_are_kept_verbatim() {
    let c = Config::from_yaml(
        "paths:\n  - name: a\n    passphrase: 01234567890\n    publish:\n      credentials: [{user: 007, pass: 0123}]\n",
        "x",
    )
    .unwrap();
    let rule = &c.paths[0];
    assert_eq!(rule.passphrase.as_deref(), Some("01234567890"));
    assert_eq!(rule.check(Mode::Publish, Some("007"), Some("0123")), Ok(()));
}

#[test]
fn one_document_only() {
    assert_eq!(
        first_line("workers: 2\n---\nworkers: 3\n"),
        "test.yaml:3:1: only one YAML document is allowed (found a second one after `---`)"
    );
}

#[test]
fn credentials_are_not_printed() {
    let c = Credential {
        user: "alice".into(),
        pass: "s3cret".into(),
    };
    let shown = format!("{c:?}");
    assert!(
        shown.contains("alice") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[test]
fn srtla_section_is_checked() {
    let e = err("srtla:\n  max_groups: 0\n");
    assert!(
        e.contains("srtla.max_groups") && e.contains("out of range"),
        "{e}"
    );
    let e = err("srtla:\n  allow: [\"10.0.0.0/40\"]\n");
    assert!(e.contains("bad network") && e.contains("prefix"), "{e}");
    let e = err("srt:\n  listen: [\"0.0.0.0:5000\"]\n");
    assert!(
        e.contains("srtla.listen[0]") && e.contains("also where SRT listens"),
        "{e}"
    );
    let e = err("srtla:\n  listen: []\n");
    assert!(e.contains("no address to listen on"), "{e}");
    let c = Config::from_yaml(
        "srtla:\n  enabled: false\n  listen: []\n  allow: [\"127.0.0.0/8\", \"::1\"]\n",
        "t",
    )
    .expect("disabled SRTLA needs no address");
    assert_eq!(c.srtla.allow.len(), 2);
    let e = err("srtla:\n  lisen: []\n");
    assert!(e.contains("did you mean `listen`?"), "{e}");
}
