//! SRT readers get the publisher's transport stream as sent: every PID (here
//! H.264, two AAC tracks and a private-data PID listed in the PMT), from a
//! keyframe on, the latest PAT/PMT first; with `remux: true` they get TS
//! muxed again from the frames instead.
//!
//! The publisher is srt-live-transmit relaying UDP datagrams that this test
//! paces in real time from a crafted file, so the bytes it sends are known
//! exactly; the reader is srt-live-transmit writing what it receives to a file.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::media::*;
use common::*;

const EXTRA_PATHS: &str = r#"  - name: "remuxed/*"
    remux: true
"#;

/// PID of the private data the test adds (stream_type 0x06 in the PMT).
const PRIVATE_PID: u16 = 0x0777;
const SECONDS: u32 = 12;

fn pid(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[1] & 0x1F, p[2]])
}

fn pusi(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

/// CRC-32/MPEG-2 of a PSI section.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// H.264 + two AAC tracks from ffmpeg, then a private-data PID: listed in
/// every PMT and carried in a packet after every 25th packet.
fn crafted_stream(dir: &TestDir) -> Vec<u8> {
    let raw = dir.file("av.ts");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000"])
        .args(["-t", &SECONDS.to_string()])
        .args(["-map", "0:v", "-map", "1:a", "-map", "2:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-f", "mpegts"])
        .arg(&raw)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the test stream");
    let ts = std::fs::read(&raw).unwrap();
    assert_eq!(ts.len() % 188, 0);
    let pmt_pid = ts
        .chunks(188)
        .find(|p| pid(p) == 0 && pusi(p))
        .map(|p| u16::from_be_bytes([p[15] & 0x1F, p[16]]))
        .expect("a PAT");
    let mut out = Vec::with_capacity(ts.len() * 26 / 25);
    let mut cc = 0u8;
    for (i, p) in ts.chunks(188).enumerate() {
        if pid(p) == pmt_pid && pusi(p) {
            out.extend_from_slice(&with_private_stream(p));
        } else {
            out.extend_from_slice(p);
        }
        if i % 25 == 24 {
            let mut q = [0u8; 188];
            q[0] = 0x47;
            q[1] = (PRIVATE_PID >> 8) as u8;
            q[2] = PRIVATE_PID as u8;
            q[3] = 0x10 | cc;
            cc = (cc + 1) & 0x0F;
            for (j, b) in q[4..].iter_mut().enumerate() {
                *b = (i + j) as u8;
            }
            out.extend_from_slice(&q);
        }
    }
    out
}

/// A single-packet PMT with one more elementary stream: private data on
/// [`PRIVATE_PID`].
fn with_private_stream(p: &[u8]) -> Vec<u8> {
    let mut q = p.to_vec();
    let start = 5 + usize::from(q[4]); // after the pointer field
    let len = usize::from(u16::from_be_bytes([q[start + 1] & 0x0F, q[start + 2]]));
    let crc_at = start + 3 + len - 4;
    let entry = [
        0x06,
        0xE0 | (PRIVATE_PID >> 8) as u8,
        PRIVATE_PID as u8,
        0xF0,
        0x00,
    ];
    q.splice(crc_at..crc_at, entry);
    q.truncate(188 + entry.len());
    let new_len = len + entry.len();
    q[start + 1] = (q[start + 1] & 0xF0) | ((new_len >> 8) as u8 & 0x0F);
    q[start + 2] = new_len as u8;
    let crc = crc32_mpeg2(&q[start..crc_at + entry.len()]);
    q[crc_at + entry.len()..crc_at + entry.len() + 4].copy_from_slice(&crc.to_be_bytes());
    q.truncate(188);
    q
}

/// Sends `ts` to `port` in 1316-byte datagrams, paced to play in real time.
fn send_paced(ts: &[u8], port: u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let chunks: Vec<&[u8]> = ts.chunks(7 * 188).collect();
    let per = Duration::from_secs(u64::from(SECONDS)) / chunks.len() as u32;
    let t0 = Instant::now();
    for (i, c) in chunks.iter().enumerate() {
        let due = t0 + per * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sock.send_to(c, ("127.0.0.1", port)).unwrap();
    }
}

/// Publishes `ts` on `path` through srt-live-transmit; reads it back with
/// another srt-live-transmit once publishing; returns what the reader got.
fn publish_and_read(dir: &TestDir, gw: &mut Gateway, ts: &[u8], path: &str) -> Vec<u8> {
    let udp = free_udp_port();
    let mark = gw.mark();
    let mut publisher = Peer::spawn(
        dir,
        "publisher",
        "srt-live-transmit",
        &[
            format!("udp://127.0.0.1:{udp}"),
            gw.url(&format!("publish:{path}"), "&latency=120"),
        ],
        Out::Null,
    );
    // srt-live-transmit connects its SRT side before it reads UDP.
    std::thread::sleep(Duration::from_millis(300));
    let sender = {
        let ts = ts.to_vec();
        std::thread::spawn(move || send_paced(&ts, udp))
    };
    wait_publishing(gw, mark, path, &mut publisher, Duration::from_secs(15));
    // Join mid-stream, a few seconds in.
    std::thread::sleep(Duration::from_secs(2));
    let out = dir.file("reader.ts");
    let mut reader = Peer::spawn(
        dir,
        "reader",
        "srt-live-transmit",
        &[
            gw.url(&format!("read:{path}"), "&latency=120"),
            "file://con".to_string(),
        ],
        Out::File(out.clone()),
    );
    sender.join().unwrap();
    // The stream's last packets need the latency to get through.
    std::thread::sleep(Duration::from_millis(800));
    reader.signal(2); // SIGINT: srt-live-transmit flushes and exits
    let _ = reader.wait(Duration::from_secs(10));
    publisher.kill();
    std::fs::read(&out).unwrap()
}

#[test]
fn srt_reader_gets_every_pid_byte_for_byte_from_a_keyframe() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe", "srt-live-transmit"]);
    let dir = TestDir::new("passthrough");
    let ts = crafted_stream(&dir);
    let mut gw = Gateway::start(&dir);
    let got = publish_and_read(&dir, &mut gw, &ts, "live/pass");
    assert!(
        got.len() > 188 * 1000,
        "the reader got only {} bytes\n{}",
        got.len(),
        gw.tail()
    );
    assert_eq!(got.len() % 188, 0, "the reader got partial packets");
    let packets: Vec<&[u8]> = got.chunks(188).collect();

    // First the publisher's PAT and PMT (its latest, as sent).
    let src: Vec<&[u8]> = ts.chunks(188).collect();
    assert_eq!(pid(packets[0]), 0, "the reader's first packet is not a PAT");
    assert!(src.contains(&packets[0]), "the PAT is not the publisher's");
    assert!(src.contains(&packets[1]), "the PMT is not the publisher's");
    let pmt_pid = u16::from_be_bytes([packets[0][15] & 0x1F, packets[0][16]]);
    assert_eq!(
        pid(packets[1]),
        pmt_pid,
        "the reader's second packet is not the PMT"
    );

    // Then the publisher's packets exactly, from the start of a keyframe's PES.
    let first = packets[2];
    let at = src
        .iter()
        .position(|p| *p == first)
        .unwrap_or_else(|| gw.fail("the reader's third packet is not one the publisher sent"));
    let rest = &got[2 * 188..];
    let expected = &ts[at * 188..(at * 188 + rest.len()).min(ts.len())];
    if rest != expected {
        let n = rest
            .chunks(188)
            .zip(expected.chunks(188))
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len() / 188);
        gw.fail(&format!(
            "the reader's packets differ from the publisher's at packet {n} of {} (reader {} bytes, left in source {})",
            rest.len() / 188,
            rest.len(),
            ts.len() - at * 188
        ));
    }
    let video_pid = pid(first);
    assert!(pusi(first), "the first media packet does not start a PES");
    // ffprobe agrees that it is video, and that every stream is there.
    let path = dir.file("reader.ts");
    let p = probe(
        &dir,
        "ffprobe",
        path.to_str().unwrap(),
        Duration::from_secs(30),
    );
    assert_eq!(
        p.streams.iter().filter(|s| s.codec_name == "aac").count(),
        2,
        "two AAC tracks expected: {:?}",
        p.streams
    );
    assert!(p.has("video", "h264"), "{}", p.summary());
    assert!(
        p.streams.iter().any(|s| s.codec_type == "data"),
        "the private-data stream is missing: {}",
        p.summary()
    );
    let pids: std::collections::BTreeSet<u16> = packets.iter().map(|p| pid(p)).collect();
    for want in [0, video_pid, PRIVATE_PID] {
        assert!(pids.contains(&want), "PID {want:#x} missing: {pids:x?}");
    }
    assert!(
        pids.len() >= 6,
        "PAT, PMT, video, 2 audio and private data expected: {pids:x?}"
    );
    // It starts at a keyframe: the first decoded video frame is a key frame.
    assert_first_frame_is_key(&gw, &path);
    gw.assert_alive("after the pass-through reader");
}

#[test]
fn remux_option_gives_h264_and_aac_muxed_again() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe", "srt-live-transmit"]);
    let dir = TestDir::new("remux");
    let ts = crafted_stream(&dir);
    let mut gw = Gateway::start_with(&dir, |port| config_with(port, "", EXTRA_PATHS));
    let got = publish_and_read(&dir, &mut gw, &ts, "remuxed/cam");
    assert!(
        got.len() > 188 * 500,
        "the reader got only {} bytes",
        got.len()
    );
    let pids: std::collections::BTreeSet<u16> = got.chunks(188).map(pid).collect();
    assert!(
        !pids.contains(&PRIVATE_PID),
        "remuxed TS still has the private PID: {pids:x?}"
    );
    let path = dir.file("reader.ts");
    let p = probe(
        &dir,
        "ffprobe",
        path.to_str().unwrap(),
        Duration::from_secs(30),
    );
    assert!(p.has("video", "h264"), "{}", p.summary());
    assert_eq!(
        p.streams.iter().filter(|s| s.codec_name == "aac").count(),
        2,
        "{}",
        p.summary()
    );
    assert_first_frame_is_key(&gw, &path);
    let log = gw.log();
    assert!(
        log.contains("remux"),
        "the publisher's log line names remux:\n{}",
        gw.tail()
    );
}

/// The first video frame ffprobe reads from `path` is a keyframe.
fn assert_first_frame_is_key(gw: &Gateway, path: &Path) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let flags = String::from_utf8_lossy(&out.stdout);
    let first = flags.lines().next().unwrap_or("");
    if !first.starts_with('K') {
        gw.fail(&format!(
            "the reader's first video packet is not a keyframe: {flags:?}"
        ));
    }
}
