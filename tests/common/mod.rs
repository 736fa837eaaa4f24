//! Harness for the real-peer integration tests.
//!
//! Every test starts its own `srtgate` (the binary cargo built for this crate)
//! on a free loopback port with a config written into a per-test directory,
//! then drives it with software nobody here wrote: ffmpeg / ffprobe (libsrt),
//! srt-live-transmit and GStreamer's srtsrc / srtsink.
//!
//! Rules the harness enforces so that a failing test explains itself:
//! - every child process runs in its own process group, with stdout/stderr in
//!   files of the test directory, and is killed (whole group) and reaped when
//!   its handle drops;
//! - every wait has a deadline; a missed deadline fails with what was expected,
//!   the peer's command line and stderr, and the last lines of the gateway's
//!   stderr;
//! - the test directory is removed when the test passes and kept (its path
//!   printed) when it fails.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

pub mod craft;
pub mod hls;
pub mod http;
pub mod media;
pub mod openapi;
pub mod relay;

/// How long a gateway may take to log `srtgate ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of gateway stderr shown when a test fails.
pub const TAIL_LINES: usize = 40;
/// Poll interval of every wait loop.
const POLL: Duration = Duration::from_millis(20);

// ------------------------------------------------------------------ scheduling

/// Tests of one test binary run in parallel (two threads on the 2-core
/// machine). A test that loads the CPU heavily (many decoders or encoders)
/// takes this lock exclusively; every other test takes it shared. This keeps
/// the heavy ones from starving each other's real-time peers.
static CPU: RwLock<()> = RwLock::new(());

pub enum CpuGuard {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

/// Run alongside other light tests.
pub fn light() -> CpuGuard {
    CpuGuard::Shared(CPU.read().unwrap_or_else(|p| p.into_inner()))
}

/// Run alone within this test binary.
pub fn heavy() -> CpuGuard {
    CpuGuard::Exclusive(CPU.write().unwrap_or_else(|p| p.into_inner()))
}

// ------------------------------------------------------------------ tools

/// Fails (with the fix) when a peer program is missing from PATH.
pub fn require_tools(tools: &[&str]) {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "test peers missing from PATH: {missing:?}. `make test` installs them \
         (Debian packages ffmpeg srt-tools gstreamer1.0-tools gstreamer1.0-plugins-base \
         gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)"
    );
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

// ------------------------------------------------------------------ test directory

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A per-test scratch directory, removed if the test passes, kept if it panics.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("srtgate-test-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create test dir {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ------------------------------------------------------------------ ports

static PORT_SEQ: AtomicU32 = AtomicU32::new(0);
const PORT_LO: u32 = 20000;
const PORT_SPAN: u32 = 10000;

/// A UDP port on 127.0.0.1 that is free right now. Candidates come from a
/// process-wide counter over 20000–29999, offset by the pid so that test
/// binaries running at the same time start far apart; each candidate is
/// checked by binding it (and releasing it at once).
pub fn free_udp_port() -> u16 {
    let offset = (std::process::id() * 37) % PORT_SPAN;
    for _ in 0..PORT_SPAN {
        let n = PORT_SEQ.fetch_add(1, Ordering::Relaxed);
        let port = (PORT_LO + (offset + n) % PORT_SPAN) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP port in {PORT_LO}..{}", PORT_LO + PORT_SPAN);
}

/// A TCP port on 127.0.0.1 (and, where the host has IPv6, ::1) that is free
/// right now, from the same sequence as [`free_udp_port`].
pub fn free_tcp_port() -> u16 {
    for _ in 0..PORT_SPAN {
        let port = free_udp_port();
        let v4 = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let v6 = std::net::TcpListener::bind(("::1", port)).is_ok()
            || std::net::TcpListener::bind(("::1", 0)).is_err();
        if v4 && v6 {
            return port;
        }
    }
    panic!("no free TCP port in {PORT_LO}..{}", PORT_LO + PORT_SPAN);
}

// ------------------------------------------------------------------ processes

/// Where a child's stdout goes.
pub enum Out {
    /// Discarded.
    Null,
    /// Into this file (created or truncated).
    File(PathBuf),
}

/// One or more external programs started together (a pipeline when more than
/// one: each one's stdout feeds the next one's stdin). Killed and reaped when
/// dropped.
pub struct Peer {
    pub name: String,
    cmdlines: Vec<String>,
    children: Vec<Child>,
    stderr_paths: Vec<PathBuf>,
    statuses: Vec<Option<ExitStatus>>,
    started: Instant,
}

/// How a peer ended.
pub struct Finished {
    /// Exit status of the last program of the pipeline.
    pub status: ExitStatus,
    /// Every program's exit status, in pipeline order.
    pub statuses: Vec<ExitStatus>,
    pub elapsed: Duration,
    /// All programs' stderr (each under a header when there are several).
    pub stderr: String,
}

pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

pub fn cmdline(program: &str, args: &[String]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

impl Peer {
    /// Starts one program.
    pub fn spawn(dir: &TestDir, name: &str, program: &str, args: &[String], out: Out) -> Peer {
        Peer::pipeline(dir, name, &[(program, args.to_vec())], out)
    }

    /// Starts `stages` as a shell-like pipeline; `out` receives the last
    /// stage's stdout.
    pub fn pipeline(dir: &TestDir, name: &str, stages: &[(&str, Vec<String>)], out: Out) -> Peer {
        assert!(!stages.is_empty());
        let mut peer = Peer {
            name: name.to_string(),
            cmdlines: Vec::new(),
            children: Vec::new(),
            stderr_paths: Vec::new(),
            statuses: Vec::new(),
            started: Instant::now(),
        };
        let mut upstream: Option<std::process::ChildStdout> = None;
        for (i, (program, args)) in stages.iter().enumerate() {
            let last = i + 1 == stages.len();
            let short = Path::new(program)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let err_path = dir.file(&format!("{name}.{i}.{short}.stderr"));
            let err = File::create(&err_path)
                .unwrap_or_else(|e| panic!("create {}: {e}", err_path.display()));
            let mut cmd = Command::new(program);
            cmd.args(args)
                .stderr(Stdio::from(err))
                .process_group(0)
                .env("NO_COLOR", "1")
                .env("AV_LOG_FORCE_NOCOLOR", "1");
            match upstream.take() {
                Some(up) => cmd.stdin(Stdio::from(up)),
                None => cmd.stdin(Stdio::null()),
            };
            if !last {
                cmd.stdout(Stdio::piped());
            } else {
                match &out {
                    Out::Null => cmd.stdout(Stdio::null()),
                    Out::File(p) => cmd.stdout(Stdio::from(
                        File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display())),
                    )),
                };
            }
            let line = cmdline(program, args);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("{name}: cannot start `{line}`: {e}"));
            if !last {
                upstream = child.stdout.take();
            }
            peer.cmdlines.push(line);
            peer.children.push(child);
            peer.stderr_paths.push(err_path);
            peer.statuses.push(None);
        }
        peer
    }

    pub fn cmdline(&self) -> String {
        self.cmdlines.join(" | ")
    }

    pub fn pid(&self, stage: usize) -> u32 {
        self.children[stage].id()
    }

    fn poll(&mut self) -> bool {
        let mut all_done = true;
        for (child, status) in self.children.iter_mut().zip(self.statuses.iter_mut()) {
            if status.is_none() {
                match child.try_wait() {
                    Ok(Some(s)) => *status = Some(s),
                    Ok(None) => all_done = false,
                    Err(_) => all_done = false,
                }
            }
        }
        all_done
    }

    /// True while any program of the peer is still running.
    pub fn is_running(&mut self) -> bool {
        !self.poll()
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.stderr_paths.iter().enumerate() {
            let text = read_lossy(p);
            if self.stderr_paths.len() > 1 {
                let _ = writeln!(s, "[{}]", self.cmdlines[i]);
            }
            s.push_str(&text);
        }
        s
    }

    fn finished(&self) -> Finished {
        let statuses: Vec<ExitStatus> = self.statuses.iter().map(|s| s.unwrap()).collect();
        Finished {
            status: *statuses.last().unwrap(),
            statuses,
            elapsed: self.started.elapsed(),
            stderr: self.stderr(),
        }
    }

    /// Waits until every program has exited. On timeout, kills them and
    /// returns a description of what was still running.
    pub fn wait(&mut self, timeout: Duration) -> Result<Finished, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.poll() {
                return Ok(self.finished());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "{} did not exit within {:.1}s (killed)\n  command: {}\n  stderr:\n{}",
                    self.name,
                    timeout.as_secs_f64(),
                    self.cmdline(),
                    indent(&last_lines(&self.stderr(), TAIL_LINES)),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` to every program's process group.
    pub fn signal(&mut self, signal: i32) {
        self.poll();
        for (child, status) in self.children.iter().zip(self.statuses.iter()) {
            if status.is_none() {
                // SAFETY: plain kill(2) on the process group we created.
                unsafe {
                    libc::kill(-(child.id() as i32), signal);
                }
            }
        }
    }

    /// Kills every program (whole process groups) and reaps them.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        for (child, status) in self.children.iter_mut().zip(self.statuses.iter_mut()) {
            if status.is_none() {
                let _ = child.kill();
                if let Ok(s) = child.wait() {
                    *status = Some(s);
                }
            }
        }
    }

    /// A one-paragraph description for failure messages.
    pub fn describe(&self, finished: Option<&Finished>) -> String {
        let mut s = format!("{}\n  command: {}\n", self.name, self.cmdline());
        if let Some(f) = finished {
            let _ = writeln!(
                s,
                "  exit: {} after {:.1}s",
                f.statuses
                    .iter()
                    .map(describe_status)
                    .collect::<Vec<_>>()
                    .join(" | "),
                f.elapsed.as_secs_f64()
            );
        }
        let _ = write!(
            s,
            "  stderr:\n{}",
            indent(&last_lines(&self.stderr(), TAIL_LINES))
        );
        s
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn describe_status(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{s}"),
    }
}

// ------------------------------------------------------------------ text helpers

pub fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Removes ANSI escape sequences (CSI `ESC [ … final-byte`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

pub fn indent(s: &str) -> String {
    if s.trim().is_empty() {
        return "    (empty)".to_string();
    }
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------ gateway

pub fn srtgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_srtgate")
}

/// The test configuration of the issue, listening on `port`.
pub fn default_config(port: u16) -> String {
    config_with(port, "", "")
}

/// The test configuration with extra `srt:` keys (indented two spaces, one per
/// line) and extra path rules (YAML list items, inserted before the others so
/// they take precedence). SRTLA is off (tests/srtla.rs configures its own).
pub fn config_with(port: u16, extra_srt: &str, extra_paths: &str) -> String {
    format!(
        r#"workers: 2
log: {{ level: "info" }}
srt:
  listen: ["127.0.0.1:{port}"]
  latency: 120ms
{extra_srt}srtla:
  enabled: false
http:
  enabled: false
api:
  enabled: false
paths:
{extra_paths}  - name: "secure/aes128"
    passphrase: "0123456789abcdef"
  - name: "private/*"
    publish: {{ allow: true, credentials: [ {{ user: "alice", pass: "s3cret" }} ] }}
    read: {{ allow: true, credentials: [ {{ user: "bob", pass: "hunter22" }} ] }}
  - name: "readonly/*"
    publish: {{ allow: false }}
  - name: "live/*"
    wait_for_publisher: 10s
"#
    )
}

/// A running srtgate. Killed and reaped on drop.
pub struct Gateway {
    child: Child,
    status: Option<ExitStatus>,
    pub port: u16,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub started: Instant,
}

impl Gateway {
    /// Starts srtgate with the default test config and waits for `srtgate ready`.
    #[track_caller]
    pub fn start(dir: &TestDir) -> Gateway {
        Gateway::start_with(dir, default_config)
    }

    /// Starts srtgate with the config `make_config(port)` and waits until ready.
    #[track_caller]
    pub fn start_with(dir: &TestDir, make_config: impl Fn(u16) -> String) -> Gateway {
        let port = free_udp_port();
        let mut gw = Gateway::spawn(dir, port, &make_config(port));
        gw.wait_ready();
        gw
    }

    /// Writes `config` and starts `srtgate -c` on it, without waiting.
    pub fn spawn(dir: &TestDir, port: u16, config: &str) -> Gateway {
        let config_path = dir.file("srtgate.yaml");
        fs::write(&config_path, config).expect("write config");
        let log_path = dir.file("srtgate.stderr");
        let out_path = dir.file("srtgate.stdout");
        let child = Command::new(srtgate_bin())
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&out_path).expect("create stdout")))
            .stderr(Stdio::from(File::create(&log_path).expect("create stderr")))
            .env("NO_COLOR", "1")
            .env_remove("SRTGATE_LOG")
            .env_remove("RUST_LOG")
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", srtgate_bin()));
        Gateway {
            child,
            status: None,
            port,
            config_path,
            log_path,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gateway's stderr so far, without ANSI colours.
    pub fn log(&self) -> String {
        strip_ansi(&read_lossy(&self.log_path))
    }

    /// A position in the log; `*_since` helpers look only at what follows it.
    pub fn mark(&self) -> usize {
        self.log().len()
    }

    pub fn log_since(&self, mark: usize) -> String {
        let log = self.log();
        log.get(mark..).unwrap_or("").to_string()
    }

    pub fn tail(&self) -> String {
        last_lines(&self.log(), TAIL_LINES)
    }

    /// Panics with `msg` followed by the last lines of the gateway's stderr.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n--- last {TAIL_LINES} lines of srtgate stderr ({}) ---\n{}\n--- end of srtgate stderr ---",
            self.log_path.display(),
            self.tail()
        );
    }

    /// Exit status, if the gateway has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    #[track_caller]
    pub fn assert_alive(&mut self, context: &str) {
        if let Some(s) = self.exited() {
            self.fail(&format!(
                "srtgate is not running any more ({context}): it exited with {}",
                describe_status(&s)
            ));
        }
    }

    /// Waits for a log line (after `mark`) satisfying `pred`; returns it.
    #[track_caller]
    pub fn wait_line_since(
        &mut self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_since(mark);
            if let Some(line) = log.lines().find(|l| pred(l)) {
                return line.to_string();
            }
            if let Some(s) = self.exited() {
                self.fail(&format!(
                    "expected srtgate to log {what}, but it exited with {}",
                    describe_status(&s)
                ));
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "expected srtgate to log {what} within {:.1}s; it did not",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for a log line containing every one of `needles`.
    #[track_caller]
    pub fn wait_log(&mut self, mark: usize, needles: &[&str], timeout: Duration) -> String {
        let what = format!("a line containing {needles:?}");
        self.wait_line_since(mark, &what, timeout, |l| {
            needles.iter().all(|n| l.contains(n))
        })
    }

    /// Waits for `srtgate ready` (every listener is up).
    #[track_caller]
    pub fn wait_ready(&mut self) {
        self.wait_log(0, &["srtgate ready"], READY_TIMEOUT);
    }

    /// Waits until the path is being published (`publishing` + path logged).
    #[track_caller]
    pub fn wait_publishing(&mut self, mark: usize, path: &str, timeout: Duration) -> String {
        self.wait_log(mark, &["publishing", path], timeout)
    }

    /// Waits for a refusal with `reason` logged after `mark`.
    #[track_caller]
    pub fn wait_refused(&mut self, mark: usize, reason: &str, timeout: Duration) -> String {
        let what = format!("a WARN line containing `refused` and `reason=\"{reason}…\"`");
        self.wait_line_since(mark, &what, timeout, |l| {
            l.contains("WARN") && l.contains("refused") && refusal_reason(l).starts_with(reason)
        })
    }

    /// Sends a signal to the gateway process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our child.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for the gateway to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `srt://127.0.0.1:PORT?streamid=SID` plus extra `&k=v` options.
    pub fn url(&self, streamid: &str, extra: &str) -> String {
        srt_url(self.port, streamid, extra)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of a log line's `reason="…"` field (empty if it has none).
pub fn refusal_reason(line: &str) -> &str {
    match line.find("reason=\"") {
        Some(i) => {
            let rest = &line[i + 8..];
            rest.find('"').map(|j| &rest[..j]).unwrap_or(rest)
        }
        None => "",
    }
}

/// An SRT caller URL for libsrt-based peers. `extra` is appended as is
/// (e.g. `&passphrase=...`).
pub fn srt_url(port: u16, streamid: &str, extra: &str) -> String {
    format!("srt://127.0.0.1:{port}?streamid={streamid}{extra}")
}

// ------------------------------------------------------------------ misc

/// Waits until `cond` holds, polling; returns false on timeout.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Resident memory of process `pid`, KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
