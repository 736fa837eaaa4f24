//! SRT in, SRT out with ffmpeg / ffprobe (libsrt) on both sides.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::*;

/// ffmpeg publishes H.264 + AAC; ffprobe reads the stream back over SRT and
/// sees both tracks; a 5 s ffmpeg decode of the read-back prints no error.
#[test]
fn ffmpeg_publishes_ffprobe_and_ffmpeg_read_back() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("ffmpeg_rw");
    let mut gw = Gateway::start(&dir);

    let mark = gw.mark();
    let src = Source::default().seconds(40.0);
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url("publish:live/a", PUBLISH_OPTS),
        &src,
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/a",
        &mut publisher,
        Duration::from_secs(15),
    );

    let read_url = gw.url("read:live/a", READ_OPTS);
    let p = probe(&dir, "ffprobe", &read_url, Duration::from_secs(30));
    assert_h264_aac(&gw, &p, "ffprobe of read:live/a");
    gw.wait_log(mark, &["reading", "live/a"], Duration::from_secs(5));

    decode_clean(&gw, &dir, "decode", &read_url, 5.0);

    assert!(
        publisher.is_running(),
        "the publisher stopped while being read:\n{}",
        publisher.describe(None)
    );
    gw.assert_alive("after reading live/a");
}

/// The other stream-id forms of the contract: `#!::r=…,m=publish` /
/// `m=request`, and a bare path (publish when nobody publishes, else read).
#[test]
fn streamid_access_control_and_bare_forms() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("streamid_forms");
    let mut gw = Gateway::start(&dir);
    let src = Source::default().seconds(40.0);

    let mark = gw.mark();
    let mut p1 = publish_ffmpeg(
        &dir,
        "publisher-acl",
        &gw.url("#!::r=live/b,m=publish", PUBLISH_OPTS),
        &src,
    );
    wait_publishing(&mut gw, mark, "live/b", &mut p1, Duration::from_secs(15));
    let p = probe(
        &dir,
        "ffprobe-acl",
        &gw.url("#!::r=live/b,m=request", READ_OPTS),
        Duration::from_secs(30),
    );
    assert_h264_aac(&gw, &p, "ffprobe of #!::r=live/b,m=request");

    let mark = gw.mark();
    let mut p2 = publish_ffmpeg(
        &dir,
        "publisher-bare",
        &gw.url("live/c", PUBLISH_OPTS),
        &src,
    );
    wait_publishing(&mut gw, mark, "live/c", &mut p2, Duration::from_secs(15));
    let p = probe(
        &dir,
        "ffprobe-bare",
        &gw.url("live/c", READ_OPTS),
        Duration::from_secs(30),
    );
    assert_h264_aac(
        &gw,
        &p,
        "ffprobe of bare `live/c` while a publisher is present (must be a read)",
    );
    assert!(
        p2.is_running(),
        "the bare-id publisher stopped when a bare-id reader came (was the reader taken for a second publisher?):\n{}",
        p2.describe(None)
    );
    gw.assert_alive("after the stream-id forms");
}

/// A reader that joins 3.2 s into a stream with a 2 s GOP receives MPEG-TS
/// that starts at a keyframe: the first video packet carries the key flag,
/// the first decoded frame is a keyframe, and the capture decodes cleanly.
#[test]
fn reader_joining_mid_stream_starts_at_keyframe() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("midstream");
    let mut gw = Gateway::start(&dir);

    let mark = gw.mark();
    let src = Source::default().gop(50).seconds(40.0);
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url("publish:live/mid", PUBLISH_OPTS),
        &src,
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/mid",
        &mut publisher,
        Duration::from_secs(15),
    );
    // Join between two keyframes (they come at 0 s, 2 s, 4 s … of the stream).
    let join_at = Instant::now() + Duration::from_millis(3200);
    std::thread::sleep(join_at.saturating_duration_since(Instant::now()));

    let out = dir.file("mid.ts");
    let out_s = out.to_str().unwrap().to_string();
    let url = gw.url("read:live/mid", READ_OPTS);
    // -copyinkf: ffmpeg would otherwise drop leading non-key frames itself
    // and hide a gateway that starts readers mid-GOP.
    let args: Vec<String> = [
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-i",
        &url,
        "-map",
        "0",
        "-c",
        "copy",
        "-copyinkf",
        "-t",
        "3",
        "-f",
        "mpegts",
        &out_s,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cap = Peer::spawn(&dir, "capture", "ffmpeg", &args, Out::Null);
    let res = cap.wait(Duration::from_secs(30));
    match &res {
        Ok(f) if f.status.success() => {}
        Ok(f) => gw.fail(&format!(
            "capture of read:live/mid failed:\n{}",
            cap.describe(Some(f))
        )),
        Err(e) => gw.fail(&format!("capture of read:live/mid: {e}")),
    }

    let (first_packet, first_frame, head) = first_video_packet_and_frame(&dir, &out_s);
    if !first_packet.contains("flags=K") {
        gw.fail(&format!(
            "expected the reader's first video packet to be a keyframe (flags=K…); ffprobe -show_packets says `{first_packet}`"
        ));
    }
    if !first_frame.contains("key_frame=1") {
        gw.fail(&format!(
            "expected the reader's first decoded video frame to be a keyframe; ffprobe -show_frames starts with:\n{head}"
        ));
    }
    assert_file_decodes(&gw, &dir, "decode-capture", &out_s, false);
    gw.assert_alive("after the mid-stream reader");
}
