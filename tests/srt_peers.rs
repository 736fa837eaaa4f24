//! Other SRT implementations on either side: srt-live-transmit (libsrt's own
//! tool) and GStreamer's srtsink / srtsrc.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;

/// Bytes a reader capture must reach before it is stopped (~3.5 s of the
/// 320x240 test stream).
const CAPTURE_BYTES: u64 = 400_000;

fn publish_and_check(
    name: &str,
    path: &str,
    start: impl Fn(&TestDir, &str, &Source) -> Peer,
    url_opts: &str,
) {
    require_tools(&["ffmpeg", "ffprobe", "srt-live-transmit", "gst-launch-1.0"]);
    let dir = TestDir::new(name);
    let mut gw = Gateway::start(&dir);
    let mark = gw.mark();
    let src = Source::default().seconds(40.0);
    let mut publisher = start(&dir, &gw.url(&format!("publish:{path}"), url_opts), &src);
    wait_publishing(&mut gw, mark, path, &mut publisher, Duration::from_secs(15));

    let read_url = gw.url(&format!("read:{path}"), READ_OPTS);
    let p = probe(&dir, "ffprobe", &read_url, Duration::from_secs(30));
    assert_h264_aac(&gw, &p, &format!("ffprobe of {path} published by {name}"));
    decode_clean(&gw, &dir, "decode", &read_url, 5.0);
    assert!(
        publisher.is_running(),
        "the publisher stopped:\n{}",
        publisher.describe(None)
    );
    gw.assert_alive("after reading");
}

/// `ffmpeg … -f mpegts - | srt-live-transmit file://con 'srt://…?streamid=publish:live/slt'`
#[test]
fn srt_live_transmit_publishes() {
    let _cpu = light();
    publish_and_check(
        "slt_publish",
        "live/slt",
        |dir, url, src| publish_slt(dir, "publisher-slt", url, src),
        "",
    );
}

/// `ffmpeg … -f mpegts - | gst-launch-1.0 fdsrc ! srtsink uri='srt://…?streamid=publish:live/gst'`
#[test]
fn gstreamer_srtsink_publishes() {
    let _cpu = light();
    publish_and_check(
        "gst_publish",
        "live/gst",
        |dir, url, src| publish_gst(dir, "publisher-gst", url, src),
        "",
    );
}

fn start_ffmpeg_publisher(dir: &TestDir, gw: &mut Gateway, path: &str) -> Peer {
    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        dir,
        "publisher",
        &gw.url(&format!("publish:{path}"), PUBLISH_OPTS),
        &Source::default().seconds(40.0),
    );
    wait_publishing(gw, mark, path, &mut publisher, Duration::from_secs(15));
    publisher
}

/// `srt-live-transmit 'srt://…?streamid=read:live/x' file://con > out.ts`
#[test]
fn srt_live_transmit_reads() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe", "srt-live-transmit"]);
    let dir = TestDir::new("slt_read");
    let mut gw = Gateway::start(&dir);
    let _publisher = start_ffmpeg_publisher(&dir, &mut gw, "live/x");

    let out = dir.file("slt_out.ts");
    let args = vec![
        gw.url("read:live/x", "&latency=120"),
        "file://con".to_string(),
    ];
    let mut reader = Peer::spawn(
        &dir,
        "reader-slt",
        "srt-live-transmit",
        &args,
        Out::File(out.clone()),
    );
    if !wait_until(Duration::from_secs(30), || file_len(&out) >= CAPTURE_BYTES) {
        gw.fail(&format!(
            "expected srt-live-transmit to receive {CAPTURE_BYTES} bytes within 30s; it got {}\n{}",
            file_len(&out),
            reader.describe(None)
        ));
    }
    reader.kill();

    let out_s = out.to_str().unwrap();
    let p = probe(&dir, "ffprobe-file", out_s, Duration::from_secs(30));
    assert_h264_aac(&gw, &p, "ffprobe of what srt-live-transmit received");
    assert_file_decodes(&gw, &dir, "decode-file", out_s, true);
    gw.assert_alive("after the srt-live-transmit reader");
}

/// `gst-launch-1.0 srtsrc uri='srt://…?streamid=read:live/x' num-buffers=300 ! filesink location=out.ts`
#[test]
fn gstreamer_srtsrc_reads() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe", "gst-launch-1.0"]);
    let dir = TestDir::new("gst_read");
    let mut gw = Gateway::start(&dir);
    let _publisher = start_ffmpeg_publisher(&dir, &mut gw, "live/x");

    let out = dir.file("gst_out.ts");
    let args: Vec<String> = vec![
        "-q".into(),
        "srtsrc".into(),
        format!("uri={}", gw.url("read:live/x", "&latency=120")),
        "num-buffers=300".into(),
        "!".into(),
        "filesink".into(),
        format!("location={}", out.display()),
    ];
    let mut reader = Peer::spawn(&dir, "reader-gst", "gst-launch-1.0", &args, Out::Null);
    let res = reader.wait(Duration::from_secs(40));
    match &res {
        Ok(f) if f.status.success() => {}
        Ok(f) => gw.fail(&format!(
            "expected gst-launch-1.0 srtsrc to read 300 buffers and exit 0:\n{}",
            reader.describe(Some(f))
        )),
        Err(e) => gw.fail(&format!(
            "expected gst-launch-1.0 srtsrc to read 300 buffers and exit 0 (it had {} bytes): {e}",
            file_len(&out)
        )),
    }

    let out_s = out.to_str().unwrap();
    let p = probe(&dir, "ffprobe-file", out_s, Duration::from_secs(30));
    assert_h264_aac(&gw, &p, "ffprobe of what srtsrc received");
    assert_file_decodes(&gw, &dir, "decode-file", out_s, true);
    gw.assert_alive("after the srtsrc reader");
}
