//! Process lifecycle: signals, and a reader that arrives before its publisher.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::*;

/// SIGTERM while a publisher and a reader stream: both sessions are closed
/// and the process exits 0 within 2 s.
#[test]
fn sigterm_with_sessions_exits_0_within_2s() {
    let _cpu = light();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("sigterm");
    let mut gw = Gateway::start(&dir);

    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url("publish:live/term", PUBLISH_OPTS),
        &Source::default().seconds(60.0),
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/term",
        &mut publisher,
        Duration::from_secs(15),
    );
    let _reader = start_decode(&dir, "reader", &gw.url("read:live/term", READ_OPTS), 50.0);
    gw.wait_log(mark, &["reading", "live/term"], Duration::from_secs(10));

    let closing = gw.mark();
    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    eprintln!(
        "srtgate exited {:.3}s after SIGTERM: {:?}",
        took.as_secs_f64(),
        status
    );
    match status {
        None => gw.fail("srtgate was still running 10s after SIGTERM"),
        Some(s) if s.code() != Some(0) => gw.fail(&format!(
            "expected exit code 0 after SIGTERM; srtgate exited with {}",
            describe_status(&s)
        )),
        Some(_) => {}
    }
    if took > Duration::from_secs(2) {
        gw.fail(&format!(
            "srtgate took {:.3}s to exit after SIGTERM; expected at most 2s",
            took.as_secs_f64()
        ));
    }
    let closed = gw
        .log_since(closing)
        .lines()
        .filter(|l| l.contains("closed"))
        .count();
    if closed < 2 {
        gw.fail(&format!(
            "expected the publisher's and the reader's sessions to be logged `closed` on SIGTERM; found {closed} such line(s)"
        ));
    }
}

/// SIGINT on an idle gateway: exit 0 within 2 s.
#[test]
fn sigint_idle_exits_0_within_2s() {
    let _cpu = light();
    let dir = TestDir::new("sigint");
    let mut gw = Gateway::start(&dir);
    let t0 = Instant::now();
    gw.signal(libc::SIGINT);
    let status = gw.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    eprintln!(
        "srtgate exited {:.3}s after SIGINT: {:?}",
        took.as_secs_f64(),
        status
    );
    match status {
        None => gw.fail("srtgate was still running 10s after SIGINT"),
        Some(s) if s.code() != Some(0) => gw.fail(&format!(
            "expected exit code 0 after SIGINT; srtgate exited with {}",
            describe_status(&s)
        )),
        Some(_) if took > Duration::from_secs(2) => gw.fail(&format!(
            "srtgate took {:.3}s to exit after SIGINT; expected at most 2s",
            took.as_secs_f64()
        )),
        Some(_) => {}
    }
}

/// A reader that connects 2 s before anyone publishes the path (which has
/// `wait_for_publisher: 10s`) gets the stream once it starts, from a keyframe.
#[test]
fn reader_before_publisher_waits_and_decodes() {
    let _cpu = light();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("reader_first");
    let mut gw = Gateway::start(&dir);

    let mut reader = start_decode(&dir, "reader", &gw.url("read:live/late", READ_OPTS), 4.0);
    // Give the reader's handshake time to reach the gateway first.
    let publish_at = Instant::now() + Duration::from_secs(2);
    std::thread::sleep(publish_at.saturating_duration_since(Instant::now()));
    if !reader.is_running() {
        let f = reader.wait(Duration::from_secs(1)).ok();
        gw.fail(&format!(
            "the reader gave up before the publisher came (within 2s of a 10s wait_for_publisher):\n{}",
            reader.describe(f.as_ref())
        ));
    }
    if gw.log().lines().any(|l| l.contains("publishing")) {
        gw.fail("something published before the test's publisher started");
    }

    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url("publish:live/late", PUBLISH_OPTS),
        &Source::default().seconds(40.0),
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/late",
        &mut publisher,
        Duration::from_secs(15),
    );
    let res = reader.wait(Duration::from_secs(40));
    assert_clean_decode(
        &gw,
        &reader,
        &res,
        "the reader that came before its publisher",
    );
    gw.assert_alive("after the early reader");
}
