//! Path policies a user configures and then relies on: a second publisher is
//! refused or takes over, readers wait for a publisher only as long as the path
//! says, and `max_readers` holds.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::*;

const EXTRA_PATHS: &str = r#"  - name: "takeover/*"
    on_second_publisher: takeover
  - name: "now/*"
    wait_for_publisher: 0s
  - name: "brief/*"
    wait_for_publisher: 1s
  - name: "limited/*"
    max_readers: 1
  - name: "grace/*"
    publisher_grace: 6s
"#;

fn gateway(dir: &TestDir) -> Gateway {
    Gateway::start_with(dir, |port| config_with(port, "", EXTRA_PATHS))
}

/// The caller must end with a non-zero exit, and the gateway must log why.
fn expect_refused(gw: &mut Gateway, caller: &mut Peer, mark: usize, reason: &str, what: &str) {
    match caller.wait(Duration::from_secs(30)) {
        Ok(f) if !f.status.success() => {}
        Ok(f) => gw.fail(&format!(
            "expected {what} to be refused (non-zero exit); it exited 0:\n{}",
            caller.describe(Some(&f))
        )),
        Err(e) => gw.fail(&format!("expected {what} to be refused and exit; {e}")),
    }
    let line = gw.wait_refused(mark, reason, Duration::from_secs(5));
    eprintln!("{what}: refused as expected: {line}");
}

/// Starts an ffmpeg publisher of `path` (320x240, `seconds` long) and waits
/// until the gateway logs it publishing; returns its URL and the peer.
fn start_publisher(
    dir: &TestDir,
    gw: &mut Gateway,
    path: &str,
    name: &str,
    seconds: f64,
) -> (String, Peer) {
    let mark = gw.mark();
    let url = gw.url(&format!("publish:{path}"), PUBLISH_OPTS);
    let mut peer = publish_ffmpeg(dir, name, &url, &Source::default().seconds(seconds));
    wait_publishing(gw, mark, path, &mut peer, Duration::from_secs(15));
    (url, peer)
}

#[test]
fn second_publisher_is_refused_and_the_first_keeps_streaming() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("second_publisher");
    let mut gw = gateway(&dir);
    let (url, mut first) = start_publisher(&dir, &mut gw, "live/dup", "first", 40.0);

    let mark = gw.mark();
    let src = Source::default().size(640, 360).seconds(10.0);
    let mut second = publish_ffmpeg(&dir, "second", &url, &src);
    expect_refused(
        &mut gw,
        &mut second,
        mark,
        "publisher already present",
        "a second publisher",
    );

    let p = probe(
        &dir,
        "ffprobe",
        &gw.url("read:live/dup", READ_OPTS),
        Duration::from_secs(30),
    );
    assert_h264_aac(
        &gw,
        &p,
        "ffprobe of live/dup after the refused second publisher",
    );
    let v = p.video().expect("video stream");
    assert_eq!(
        (v.width, v.height),
        (Some(320), Some(240)),
        "readers must still get the first publisher's picture: {}",
        p.summary()
    );
    assert!(
        first.is_running(),
        "the first publisher stopped:\n{}",
        first.describe(None)
    );
}

#[test]
fn takeover_path_hands_the_stream_to_the_newer_publisher() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("takeover");
    let mut gw = gateway(&dir);
    let (url, mut old) = start_publisher(&dir, &mut gw, "takeover/cam", "old", 40.0);

    let mark = gw.mark();
    let src = Source::default().size(640, 360).seconds(40.0);
    let mut new = publish_ffmpeg(&dir, "new", &url, &src);
    gw.wait_log(mark, &["taking over the path"], Duration::from_secs(15));
    gw.wait_log(
        mark,
        &["closed", "taken over by a new publisher"],
        Duration::from_secs(10),
    );
    // The old encoder learns it was cut off: its SRT connection is closed.
    match old.wait(Duration::from_secs(15)) {
        Ok(f) => eprintln!("old publisher ended: {}", describe_status(&f.status)),
        Err(e) => gw.fail(&format!("the taken-over publisher kept running: {e}")),
    }

    let p = probe(
        &dir,
        "ffprobe",
        &gw.url("read:takeover/cam", READ_OPTS),
        Duration::from_secs(30),
    );
    assert_h264_aac(&gw, &p, "ffprobe of takeover/cam after the takeover");
    let v = p.video().expect("video stream");
    assert_eq!(
        (v.width, v.height),
        (Some(640), Some(360)),
        "readers must get the newer publisher's picture: {}",
        p.summary()
    );
    assert!(
        new.is_running(),
        "the new publisher stopped:\n{}",
        new.describe(None)
    );
}

#[test]
fn reader_of_an_unpublished_path_is_refused_or_waits_only_as_configured() {
    let _cpu = light();
    require_tools(&["ffprobe"]);
    let dir = TestDir::new("no_publisher");
    let mut gw = gateway(&dir);

    // wait_for_publisher: 0s — refused in the handshake.
    let mark = gw.mark();
    let p = probe(
        &dir,
        "ffprobe-now",
        &gw.url("read:now/x", READ_OPTS),
        Duration::from_secs(30),
    );
    assert!(
        p.streams.is_empty() && !p.finished.as_ref().is_ok_and(|f| f.status.success()),
        "ffprobe of a path with no publisher and no wait must fail: {}",
        p.description
    );
    gw.wait_refused(mark, "no publisher", Duration::from_secs(5));

    // wait_for_publisher: 1s — admitted, then closed when nobody comes.
    let mark = gw.mark();
    let t0 = Instant::now();
    let p = probe(
        &dir,
        "ffprobe-brief",
        &gw.url("read:brief/x", READ_OPTS),
        Duration::from_secs(30),
    );
    assert!(
        p.streams.is_empty(),
        "ffprobe of a path nobody publishes must see no streams: {}",
        p.summary()
    );
    let line = gw.wait_log(mark, &["closed", "no publisher"], Duration::from_secs(10));
    eprintln!(
        "brief wait ended after {:.1}s: {line}",
        t0.elapsed().as_secs_f64()
    );
    gw.assert_alive("after readers of unpublished paths");
}

#[test]
fn max_readers_refuses_the_reader_over_the_limit() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("max_readers");
    let mut gw = gateway(&dir);
    let (_, _publisher) = start_publisher(&dir, &mut gw, "limited/x", "publisher", 40.0);

    let mark = gw.mark();
    let mut first = start_decode(
        &dir,
        "first-reader",
        &gw.url("read:limited/x", READ_OPTS),
        8.0,
    );
    gw.wait_log(mark, &["reading", "limited/x"], Duration::from_secs(15));
    let mark = gw.mark();
    let p = probe(
        &dir,
        "ffprobe-over",
        &gw.url("read:limited/x", READ_OPTS),
        Duration::from_secs(30),
    );
    assert!(
        p.streams.is_empty(),
        "a second reader over max_readers: 1 must get nothing: {}",
        p.summary()
    );
    gw.wait_refused(mark, "reader limit", Duration::from_secs(5));
    let res = first.wait(Duration::from_secs(40));
    assert_clean_decode(&gw, &first, &res, "the reader within the limit");
}

#[test]
fn ipv6_and_ipv4_callers_share_a_stream() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("ipv6");
    let mut gw = Gateway::start_with(&dir, |port| {
        config_with(port, "", "").replace(
            &format!("listen: [\"127.0.0.1:{port}\"]"),
            &format!("listen: [\"127.0.0.1:{port}\", \"[::1]:{port}\"]"),
        )
    });
    let port = gw.port;
    let v6 = |sid: &str, opts: &str| format!("srt://[::1]:{port}?streamid={sid}{opts}");
    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher-v6",
        &v6("publish:live/six", PUBLISH_OPTS),
        &Source::default().seconds(40.0),
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/six",
        &mut publisher,
        Duration::from_secs(15),
    );
    let p = probe(
        &dir,
        "ffprobe-v4",
        &gw.url("read:live/six", READ_OPTS),
        Duration::from_secs(30),
    );
    assert_h264_aac(&gw, &p, "IPv4 reader of an IPv6 publisher");
    let p = probe(
        &dir,
        "ffprobe-v6",
        &v6("read:live/six", READ_OPTS),
        Duration::from_secs(30),
    );
    assert_h264_aac(&gw, &p, "IPv6 reader of an IPv6 publisher");
}

#[test]
fn readers_wait_out_a_publisher_reconnect_within_the_grace_period() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe", "srt-live-transmit"]);
    let dir = TestDir::new("grace");
    let mut gw = gateway(&dir);
    let mark = gw.mark();
    let (url, mut first) = start_publisher(&dir, &mut gw, "grace/cam", "first", 4.0);

    let out = dir.file("reader.ts");
    let args = vec![
        gw.url("read:grace/cam", "&latency=120"),
        "file://con".to_string(),
    ];
    let mut reader = Peer::spawn(
        &dir,
        "reader",
        "srt-live-transmit",
        &args,
        Out::File(out.clone()),
    );
    gw.wait_log(mark, &["reading", "grace/cam"], Duration::from_secs(15));

    // The publisher leaves: the reader is told to wait, not closed.
    if let Err(e) = first.wait(Duration::from_secs(20)) {
        gw.fail(&format!("the first publisher did not end: {e}"));
    }
    gw.wait_log(
        mark,
        &["publisher gone; waiting for a new one"],
        Duration::from_secs(10),
    );
    let before = file_len(&out);

    // A new publisher within the grace period: the same reader gets its stream.
    let mark2 = gw.mark();
    let src = Source::default().size(640, 360).seconds(40.0);
    let mut second = publish_ffmpeg(&dir, "second", &url, &src);
    wait_publishing(
        &mut gw,
        mark2,
        "grace/cam",
        &mut second,
        Duration::from_secs(15),
    );
    if !wait_until(Duration::from_secs(15), || {
        file_len(&out) >= before + 300_000
    }) {
        gw.fail(&format!(
            "the waiting reader got {} bytes from the new publisher; expected 300000 or more\n{}",
            file_len(&out) - before,
            reader.describe(None)
        ));
    }
    let closed_early = gw
        .log_since(mark)
        .lines()
        .any(|l| l.contains("closed") && l.contains("publisher gone"));
    assert!(
        !closed_early,
        "the reader was closed during the grace period:\n{}",
        gw.tail()
    );
    assert!(
        reader.is_running(),
        "the reader stopped:\n{}",
        reader.describe(None)
    );

    // The new publisher leaves too and nobody comes back: the reader is ended.
    let mark3 = gw.mark();
    second.kill();
    gw.wait_log(
        mark3,
        &["closed", "publisher gone"],
        Duration::from_secs(20),
    );
    let p = probe(
        &dir,
        "ffprobe-file",
        out.to_str().unwrap(),
        Duration::from_secs(30),
    );
    assert_h264_aac(&gw, &p, "what the reader received across the reconnect");
}
