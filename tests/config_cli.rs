//! The command line: `--check-config`, and startup failures a user must be
//! able to read.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Runs `srtgate ARGS` to completion (bounded) and returns (exit code, stdout, stderr).
fn run_srtgate(dir: &TestDir, name: &str, args: &[String]) -> (Option<i32>, String, String) {
    let out = dir.file(&format!("{name}.stdout"));
    let mut p = Peer::spawn(dir, name, srtgate_bin(), args, Out::File(out.clone()));
    let f = p
        .wait(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("srtgate {args:?} did not finish: {e}"));
    (f.status.code(), read_lossy(&out), strip_ansi(&f.stderr))
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let _cpu = light();
    let dir = TestDir::new("check_shipped");
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/srtgate.yaml");
    assert!(
        conf.is_file(),
        "the shipped config {} is missing (`make run` starts srtgate with it)",
        conf.display()
    );
    let conf_s = conf.to_str().unwrap().to_string();
    let (code, stdout, stderr) = run_srtgate(
        &dir,
        "check",
        &["--check-config".to_string(), conf_s.clone()],
    );
    assert_eq!(
        code,
        Some(0),
        "srtgate --check-config {conf_s} should exit 0\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains(&format!("{conf_s}: ok")),
        "srtgate --check-config should print `{conf_s}: ok`; stdout was: {stdout:?}"
    );
}

/// The configuration every other test runs with must itself be valid.
#[test]
fn check_config_accepts_the_test_config() {
    let _cpu = light();
    let dir = TestDir::new("check_test_conf");
    let path = dir.file("test.yaml");
    std::fs::write(&path, default_config(free_udp_port())).unwrap();
    let p = path.to_str().unwrap().to_string();
    let (code, stdout, stderr) =
        run_srtgate(&dir, "check", &["--check-config".to_string(), p.clone()]);
    assert_eq!(
        code,
        Some(0),
        "the integration tests' config should validate\n{}\nstdout: {stdout}\nstderr: {stderr}",
        default_config(0)
    );
}

/// An unknown key: exit 1, and stderr points at FILE:LINE:COLUMN of the key.
#[test]
fn check_config_rejects_unknown_key_with_its_location() {
    let _cpu = light();
    let dir = TestDir::new("check_unknown");
    let path = dir.file("bad.yaml");
    // Line 5, column 3: the unknown key `bogus_option` inside `srt:`.
    let text = "workers: 2\n\
                srt:\n  \
                listen: [\"127.0.0.1:20999\"]\n  \
                latency: 120ms\n  \
                bogus_option: 1\n\
                paths:\n  \
                - name: \"live/*\"\n";
    assert_eq!(text.lines().nth(4), Some("  bogus_option: 1"));
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap().to_string();
    let (code, stdout, stderr) =
        run_srtgate(&dir, "check", &["--check-config".to_string(), p.clone()]);
    assert_eq!(
        code,
        Some(1),
        "an unknown key must fail validation with exit code 1\nstdout: {stdout}\nstderr: {stderr}"
    );
    let prefix = format!("{p}:5:");
    let located = stderr.lines().any(|l| {
        l.find(&prefix)
            .map(|i| {
                let rest = &l[i + prefix.len()..];
                let col: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                !col.is_empty() && rest[col.len()..].starts_with(':')
            })
            .unwrap_or(false)
    });
    assert!(
        located,
        "stderr should name the unknown key's place as `{p}:5:COLUMN: message`; it was:\n{stderr}"
    );
    assert!(
        stderr.contains("bogus_option"),
        "stderr should name the unknown key `bogus_option`; it was:\n{stderr}"
    );
}

/// The SRT port is already taken: exit 1 and stderr names the address.
#[test]
fn port_in_use_exits_1_and_names_the_port() {
    let _cpu = light();
    let dir = TestDir::new("port_in_use");
    let port = free_udp_port();
    let _squatter = UdpSocket::bind(("127.0.0.1", port)).expect("bind the port first");
    let mut gw = Gateway::spawn(&dir, port, &default_config(port));
    let status = gw.wait_exit(Duration::from_secs(10));
    let log = gw.log();
    match status {
        None => gw.fail(&format!(
            "srtgate kept running although 127.0.0.1:{port} was taken; expected exit code 1"
        )),
        Some(s) if s.code() != Some(1) => gw.fail(&format!(
            "expected exit code 1 when 127.0.0.1:{port} is taken; got {}",
            describe_status(&s)
        )),
        Some(_) => {}
    }
    let addr = format!("127.0.0.1:{port}");
    if !log
        .lines()
        .any(|l| l.contains(&addr) && l.to_lowercase().contains("in use"))
    {
        gw.fail(&format!(
            "expected stderr to say that {addr} is in use (one line naming the address and `in use`)"
        ));
    }
}
