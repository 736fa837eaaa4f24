//! Many readers of one stream; many streams at once.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;

/// 20 ffmpeg readers decode 5 s of one stream at the same time; every one
/// exits 0 with no decode error.
#[test]
fn twenty_concurrent_readers_decode_cleanly() {
    let _cpu = heavy();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("fanout20");
    let mut gw = Gateway::start(&dir);

    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url("publish:live/fan", PUBLISH_OPTS),
        &Source::default().seconds(60.0),
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/fan",
        &mut publisher,
        Duration::from_secs(15),
    );

    let url = gw.url("read:live/fan", READ_OPTS);
    let mut readers: Vec<Peer> = (0..20)
        .map(|i| start_decode(&dir, &format!("reader{i:02}"), &url, 5.0))
        .collect();

    let mut failures = Vec::new();
    for r in readers.iter_mut() {
        match r.wait(Duration::from_secs(60)) {
            Ok(f) if f.status.success() && f.stderr.trim().is_empty() => {}
            Ok(f) => {
                let libsrt = f.stderr.lines().filter(|l| is_libsrt_log(l)).count();
                let note = if libsrt > 0 {
                    format!("[{libsrt} of the stderr lines below are libsrt connection warnings] ")
                } else {
                    String::new()
                };
                failures.push(format!("{note}{}", r.describe(Some(&f))));
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        gw.fail(&format!(
            "{} of 20 concurrent readers did not decode cleanly (exit 0, nothing on stderr):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
    assert!(
        publisher.is_running(),
        "the publisher stopped while 20 readers read it:\n{}",
        publisher.describe(None)
    );
    gw.assert_alive("after 20 readers");
}

/// 5 publishers on 5 paths at once, each with its own picture size; every
/// path reads back as H.264 + AAC with its own publisher's picture size, and
/// decodes cleanly.
#[test]
fn five_publishers_on_five_paths_read_back() {
    let _cpu = heavy();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("fanin5");
    let mut gw = Gateway::start(&dir);

    let sizes = [(320, 240), (352, 288), (256, 144), (384, 216), (416, 240)];
    let mut publishers = Vec::new();
    for (i, (w, h)) in sizes.iter().enumerate() {
        let path = format!("live/multi{i}");
        let mark = gw.mark();
        let src = Source::default()
            .size(*w, *h)
            .tone(300 + 100 * i as u32)
            .seconds(60.0);
        let mut p = publish_ffmpeg(
            &dir,
            &format!("publisher{i}"),
            &gw.url(&format!("publish:{path}"), PUBLISH_OPTS),
            &src,
        );
        wait_publishing(&mut gw, mark, &path, &mut p, Duration::from_secs(15));
        publishers.push(p);
    }

    let probes: Vec<ProbeRun> = (0..sizes.len())
        .map(|i| {
            start_probe(
                &dir,
                &format!("ffprobe{i}"),
                &gw.url(&format!("read:live/multi{i}"), READ_OPTS),
            )
        })
        .collect();
    for (i, run) in probes.into_iter().enumerate() {
        let p = run.finish(Duration::from_secs(40));
        let path = format!("live/multi{i}");
        assert_h264_aac(&gw, &p, &format!("ffprobe of {path}"));
        let (w, h) = sizes[i];
        let v = p.video().unwrap();
        if (v.width, v.height) != (Some(w), Some(h)) {
            gw.fail(&format!(
                "{path}: expected the picture of its own publisher, {w}x{h}; ffprobe saw {}",
                p.summary()
            ));
        }
    }

    let mut decoders: Vec<Peer> = (0..sizes.len())
        .map(|i| {
            start_decode(
                &dir,
                &format!("decode{i}"),
                &gw.url(&format!("read:live/multi{i}"), READ_OPTS),
                3.0,
            )
        })
        .collect();
    for (i, d) in decoders.iter_mut().enumerate() {
        let res = d.wait(Duration::from_secs(40));
        assert_clean_decode(&gw, d, &res, &format!("decode of live/multi{i}"));
    }
    for p in publishers.iter_mut() {
        assert!(p.is_running(), "a publisher stopped:\n{}", p.describe(None));
    }
    gw.assert_alive("after 5 publishers");
}
