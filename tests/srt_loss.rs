//! Loss on the publisher's link, emulated by a userspace relay: SRT's
//! retransmission must hide it from readers, and srtgate must count what it
//! saw (loss, retransmissions, RTT), which srt-protocol leaves to the shell.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::media::*;
use common::relay::LossyRelay;
use common::*;

/// The value of `key=` in a log line, as a number.
fn field(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn five_percent_loss_is_repaired_and_counted() {
    let _cpu = light();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("loss");
    let mut gw = Gateway::start(&dir);
    let relay = LossyRelay::start(format!("127.0.0.1:{}", gw.port).parse().unwrap(), 0.05, 42);

    let mark = gw.mark();
    let url = format!(
        "srt://127.0.0.1:{}?streamid=publish:live/lossy&latency=400000",
        relay.port
    );
    let mut publisher = publish_ffmpeg(&dir, "publisher", &url, &Source::default().seconds(10.0));
    wait_publishing(
        &mut gw,
        mark,
        "live/lossy",
        &mut publisher,
        Duration::from_secs(15),
    );

    // A reader behind a clean link decodes without error while the
    // publisher's link loses 5 % of its data packets.
    decode_clean(
        &gw,
        &dir,
        "decode",
        &gw.url("read:live/lossy", READ_OPTS),
        5.0,
    );

    match publisher.wait(Duration::from_secs(30)) {
        Ok(f) => assert!(
            f.status.success(),
            "the publisher failed through the lossy relay:\n{}",
            publisher.describe(Some(&f))
        ),
        Err(e) => gw.fail(&format!("the publisher did not finish: {e}")),
    }
    let dropped = relay.dropped.load(Ordering::Relaxed) as f64;
    assert!(
        dropped > 0.0,
        "the relay dropped nothing; the test proves nothing"
    );

    // The publisher's session closes with its figures.
    let line = gw.wait_line_since(
        mark,
        "the publisher's `closed` line",
        Duration::from_secs(10),
        |l| {
            l.contains("closed")
                && l.contains("live/lossy")
                && field(l, "bytes_in").is_some_and(|b| b > 1e6)
        },
    );
    let lost = field(&line, "lost").expect("lost=");
    let retransmits = field(&line, "retransmits").expect("retransmits=");
    let rtt = field(&line, "rtt_ms").expect("rtt_ms=");
    eprintln!(
        "relay dropped {dropped}; srtgate saw lost={lost} retransmits={retransmits} rtt_ms={rtt}"
    );
    assert!(
        lost > 0.0 && lost <= dropped,
        "srtgate counted {lost} lost packets; the relay dropped {dropped}: {line}"
    );
    assert!(
        retransmits >= lost * 0.9,
        "srtgate saw {retransmits} retransmissions for {lost} lost packets: {line}"
    );
    assert!(rtt >= 0.0, "no RTT measured (rtt_ms={rtt}): {line}");
    gw.assert_alive("after the lossy publisher");
}
