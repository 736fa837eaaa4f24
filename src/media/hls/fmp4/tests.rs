//! `Fmp4Hls` fed with synthetic H.264 (real x264 SPS/PPS), AAC (ADTS) and
//! Opus (MPEG-TS framing) frames; fragments read back box by box.

use super::*;
use crate::media::Codec;

/// x264 baseline 320x240 SPS and its PPS.
const SPS_240: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
/// x264 high profile 1920x1080 SPS.
const SPS_1080: &[u8] = &[
    0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03,
    0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

const T0: i64 = 900_000;
const VIDEO_BYTES: usize = 2000;

fn track(index: u8, codec: Codec) -> TrackInfo {
    TrackInfo {
        index,
        codec,
        source_pid: 256 + u16::from(index),
    }
}

fn av_tracks() -> Vec<TrackInfo> {
    vec![track(0, Codec::H264), track(1, Codec::Aac)]
}

fn video(dts: i64, key: bool, sps: &[u8]) -> Frame {
    let mut data = Vec::new();
    if key {
        for unit in [sps, PPS] {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(unit);
        }
    }
    data.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
    data.extend(std::iter::repeat_n(0xAB, VIDEO_BYTES));
    Frame {
        track: 0,
        codec: Codec::H264,
        pts: dts + 7200,
        dts,
        key,
        data: Bytes::from(data),
    }
}

/// ADTS AAC-LC, 48 kHz (or 44.1 kHz), mono, 20 payload bytes.
fn aac(dts: i64, rate_index: u8) -> Frame {
    let len = 27usize;
    let mut data = vec![
        0xff,
        0xf1,
        (1 << 6) | (rate_index << 2),
        (1 << 6) | ((len >> 11) as u8 & 3),
        (len >> 3) as u8,
        ((len as u8 & 7) << 5) | 0x1f,
        0xfc,
    ];
    data.resize(len, 0x21);
    Frame {
        track: 1,
        codec: Codec::Aac,
        pts: dts,
        dts,
        key: true,
        data: Bytes::from(data),
    }
}

/// Two 20 ms CELT stereo access units (MPEG-TS Opus framing) in one frame.
fn opus(dts: i64) -> Frame {
    let mut data = Vec::new();
    for _ in 0..2 {
        data.extend_from_slice(&[0x7F, 0xE0, 40, 0xFC]);
        data.extend(std::iter::repeat_n(0x5A, 39));
    }
    Frame {
        track: 0,
        codec: Codec::Opus,
        pts: dts,
        dts,
        key: true,
        data: Bytes::from(data),
    }
}

/// 25 fps H.264 (a keyframe every `gop` frames) and 48 kHz AAC from `start`,
/// in dts order.
fn av(start: i64, video_frames: usize, gop: usize, sps: &[u8]) -> Vec<Frame> {
    let end = start + video_frames as i64 * 3600;
    let mut frames: Vec<Frame> = (0..video_frames)
        .map(|i| video(start + i as i64 * 3600, i % gop == 0, sps))
        .collect();
    frames.extend(
        (0..)
            .map(|k| start + k * 1920)
            .take_while(|&d| d < end)
            .map(|d| aac(d, 3)),
    );
    frames.sort_by_key(|f| (f.dts, f.track));
    frames
}

fn wall(dts: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(1_795_000_000)
        + Duration::from_micros(dts as u64 * 100 / 9)
}

fn feed(hls: &mut Fmp4Hls, frames: &[Frame]) {
    for f in frames {
        hls.push(f, wall(f.dts));
    }
}

/// Top-level boxes: (fourcc, body).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= data.len() {
        let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && i + size <= data.len(), "bad box size at {i}");
        out.push((
            data[i + 4..i + 8].try_into().unwrap(),
            &data[i + 8..i + size],
        ));
        i += size;
    }
    assert_eq!(i, data.len(), "trailing bytes");
    out
}

fn child<'a>(data: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// One traf read back.
#[derive(Debug)]
struct Traf {
    track_id: u32,
    tfdt: u64,
    durations: Vec<u32>,
    first_flags: u32,
}

/// A part must be exactly `moof` + `mdat`; its trafs.
fn trafs(part: &[u8]) -> Vec<Traf> {
    let top = boxes(part);
    assert_eq!(top.len(), 2);
    assert_eq!((&top[0].0, &top[1].0), (b"moof", b"mdat"));
    boxes(top[0].1)
        .into_iter()
        .filter(|(n, _)| n == b"traf")
        .map(|(_, traf)| {
            let tfhd = child(traf, b"tfhd").unwrap();
            let tfdt = child(traf, b"tfdt").unwrap();
            let trun = child(traf, b"trun").unwrap();
            let flags = be32(trun, 0) & 0xff_ffff;
            let entry = if flags & 0x800 != 0 { 16 } else { 12 };
            let count = be32(trun, 4) as usize;
            Traf {
                track_id: be32(tfhd, 4),
                tfdt: u64::from_be_bytes(tfdt[4..12].try_into().unwrap()),
                durations: (0..count).map(|i| be32(trun, 12 + i * entry)).collect(),
                first_flags: be32(trun, 12 + 8),
            }
        })
        .collect()
}

fn parts(hls: &Fmp4Hls, msn: u64) -> Vec<Bytes> {
    (0..).map_while(|p| hls.part(msn, p)).collect()
}

/// The `DURATION` the playlist gives part `p` of segment `msn`.
fn listed_part(text: &str, msn: u64, p: usize) -> Option<(f64, bool)> {
    let uri = format!("URI=\"seg{msn}.{p}.m4s\"");
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PART:") && l.contains(&uri))?;
    let d = line.split("DURATION=").nth(1)?.split(',').next()?;
    Some((d.parse().ok()?, line.ends_with(",INDEPENDENT=YES")))
}

#[test]
fn playlist_lists_parts_of_the_last_segments_and_hints_the_next() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    assert!(!hls.is_playable());
    assert_eq!(hls.next_part(), None);
    feed(&mut hls, &av(T0, 76, 25, SPS_240));
    let text = hls.playlist();
    assert!(hls.is_playable());
    assert!(
        text.contains("#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("#EXT-X-MAP:URI=\"init.mp4\"\n").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-18T"),
        "{text}"
    );
    for msn in 0..3 {
        assert!(
            text.contains(&format!("#EXTINF:1.000,\nseg{msn}.m4s\n")),
            "{text}"
        );
    }
    // Segments 1, 2 and the one in progress (3) list their parts, 0 does not.
    assert_eq!(listed_part(&text, 0, 0), None, "{text}");
    for msn in 1..3 {
        for p in 0..5 {
            assert_eq!(listed_part(&text, msn, p), Some((0.2, p == 0)), "{text}");
        }
        assert_eq!(listed_part(&text, msn, 5), None);
    }
    assert!(
        text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg3.0.m4s\"\n"),
        "{text}"
    );
    assert_eq!(hls.next_part(), Some((3, 0)));
    assert!(hls.part(3, 0).is_none(), "not there yet");
    assert!(hls.part(0, 0).is_none(), "no longer listed");
    assert!(hls.part(1, 0).is_some());
    assert!(hls.segment(3).is_none(), "in progress");
    assert_eq!(hls.codecs().as_deref(), Some("avc1.42c00d,mp4a.40.2"));
    assert_eq!(hls.resolution(), Some((320, 240)));
    let init = hls.init("init.mp4").expect("init segment");
    let names: Vec<[u8; 4]> = boxes(&init).iter().map(|(n, _)| *n).collect();
    assert_eq!(names, [*b"ftyp", *b"moov"]);
    assert!(hls.init("init1.mp4").is_none());
}

#[test]
fn parts_are_fragments_whose_durations_match_the_playlist() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    feed(&mut hls, &av(T0, 76, 25, SPS_240));
    let text = hls.playlist();
    let mut next_tfdt = None;
    for msn in 1..3 {
        let parts = parts(&hls, msn);
        assert_eq!(parts.len(), 5);
        let concat: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(hls.segment(msn).unwrap(), concat, "segment = its parts");
        for (p, part) in parts.iter().enumerate() {
            let t = trafs(part);
            assert_eq!(t.iter().map(|t| t.track_id).collect::<Vec<_>>(), [1, 2]);
            let v = &t[0];
            if let Some(want) = next_tfdt {
                assert_eq!(v.tfdt, want, "video timeline continues");
            }
            let ticks: u32 = v.durations.iter().sum();
            next_tfdt = Some(v.tfdt + u64::from(ticks));
            let (listed, independent) = listed_part(&text, msn, p).unwrap();
            assert_eq!(f64::from(ticks) / 90_000.0, listed, "part {msn}.{p}");
            assert_eq!(independent, v.first_flags == 0x0200_0000);
            assert_eq!(v.durations.len(), 5);
            // 200 ms of 48 kHz AAC, give or take the frame straddling a cut.
            let audio: u32 = t[1].durations.iter().sum();
            assert!((8192..=10240).contains(&audio), "{audio}");
        }
    }
    assert_eq!(next_tfdt, Some(3 * 90_000), "seg 1 and 2 after seg 0");
}

#[test]
fn window_evicts_segments_and_parts_and_bounds_memory() {
    let settings = HlsSettings {
        window: 3,
        ..HlsSettings::default()
    };
    let mut hls = Fmp4Hls::new(&settings, &av_tracks());
    let segment_bytes = 25 * VIDEO_BYTES + 50 * 20;
    let mut most = 0;
    for (i, f) in av(T0, 20 * 25 + 1, 25, SPS_240).iter().enumerate() {
        hls.push(f, wall(f.dts));
        if i % 7 == 0 {
            most = most.max(hls.memory());
        }
    }
    let text = hls.playlist();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:17\n"), "{text}");
    assert!(hls.segment(16).is_none(), "evicted");
    for msn in 17..20 {
        assert!(hls.segment(msn).is_some(), "{msn} in the window");
    }
    assert!(hls.part(17, 0).is_none(), "listed without parts");
    assert!(hls.part(18, 4).is_some() && hls.part(19, 0).is_some());
    assert!(hls.memory() >= 3 * segment_bytes, "{}", hls.memory());
    // The window, the segment in progress, boxes and one init segment.
    let bound = (3 + 1) * segment_bytes * 11 / 10 + 4096;
    assert!(most <= bound, "{most} > {bound}");
}

#[test]
fn a_new_publisher_with_other_codecs_gets_a_new_init_after_a_discontinuity() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    feed(&mut hls, &av(T0, 51, 25, SPS_240));
    hls.end();
    assert!(
        hls.segment(2).is_some(),
        "the last segment completes at the end"
    );
    let end_tfdt = {
        let p = parts(&hls, 2);
        let v = &trafs(p.last().unwrap())[0];
        v.tfdt + u64::from(v.durations.iter().sum::<u32>())
    };
    assert_eq!(
        end_tfdt,
        51 * 3600,
        "the last frame lasts as long as the one before"
    );
    assert!(hls.playlist().contains("#EXTINF:0.040,\nseg2.m4s\n"));

    // Another encoder: 1080p, timestamps from elsewhere.
    hls.restart(&av_tracks());
    feed(&mut hls, &av(50_000_000, 51, 25, SPS_1080));
    let text = hls.playlist();
    assert!(
        text.contains("seg2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:"),
        "{text}"
    );
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
    assert!(text.starts_with("#EXTM3U") && text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
    assert!(
        hls.init("init.mp4").is_some(),
        "still used by segments 0..2"
    );
    assert_ne!(hls.init("init1.mp4"), hls.init("init.mp4"));
    assert_eq!(hls.resolution(), Some((1920, 1080)));
    assert!(hls.codecs().unwrap().starts_with("avc1.640028,"));
    // Media time goes on where the first publisher's ended.
    let v = &trafs(&hls.part(3, 0).unwrap())[0];
    assert!((end_tfdt..end_tfdt + 3600).contains(&v.tfdt), "{}", v.tfdt);

    // The same encoder again: the same init segment, no new EXT-X-MAP.
    hls.restart(&av_tracks());
    feed(&mut hls, &av(90_000_000, 26, 25, SPS_1080));
    let text = hls.playlist();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{text}");
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
    assert!(hls.init("init2.mp4").is_none());

    // Once the first publisher's segments left the window, so did its init.
    feed(&mut hls, &av(90_000_000 + 26 * 3600, 8 * 25, 25, SPS_1080));
    let text = hls.playlist();
    assert!(hls.init("init.mp4").is_none());
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:"), "{text}");
    assert_eq!(
        text.matches("#EXT-X-MAP:URI=\"init1.mp4\"").count(),
        1,
        "{text}"
    );
}

#[test]
fn blocking_reloads_wait_for_parts_and_end_with_the_publisher() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    assert_eq!(hls.check_blocking(0, None), Err(Blocking::Wait));
    let frames = av(T0, 26, 25, SPS_240);
    let fifth = frames.iter().position(|f| f.dts == T0 + 5 * 3600).unwrap();
    feed(&mut hls, &frames[..fifth]);
    assert_eq!(hls.check_blocking(0, Some(0)), Err(Blocking::Wait));
    assert_eq!(hls.next_part(), Some((0, 0)));
    feed(&mut hls, &frames[fifth..fifth + 1]);
    assert_eq!(hls.check_blocking(0, Some(0)), Ok(()));
    assert_eq!(hls.check_blocking(0, Some(1)), Err(Blocking::Wait));
    assert_eq!(hls.check_blocking(0, None), Err(Blocking::Wait));
    assert_eq!(hls.check_blocking(3, None), Err(Blocking::TooFarAhead));
    assert_eq!(hls.next_part(), Some((0, 1)));
    feed(&mut hls, &frames[fifth + 1..]);
    assert_eq!(hls.check_blocking(0, None), Ok(()));
    assert_eq!(hls.check_blocking(1, Some(0)), Err(Blocking::Wait));
    hls.end();
    assert_eq!(
        hls.check_blocking(2, Some(0)),
        Ok(()),
        "nothing more is coming"
    );
    assert_eq!(hls.next_part(), None);
    assert!(!hls.playlist().contains("PRELOAD-HINT"));
}

#[test]
fn a_track_without_configuration_is_left_out_after_the_bound() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    let frames: Vec<Frame> = (0..76)
        .map(|i| video(T0 + i * 3600, i % 25 == 0, SPS_240))
        .collect();
    feed(&mut hls, &frames[..50]);
    assert!(hls.codecs().is_none(), "still waiting for the audio");
    assert!(hls.memory() >= 50 * VIDEO_BYTES, "held");
    feed(&mut hls, &frames[50..]);
    assert_eq!(hls.codecs().as_deref(), Some("avc1.42c00d"));
    let init = hls.init("init.mp4").unwrap();
    assert_eq!(init.windows(4).filter(|w| w == b"trak").count(), 1);
    // The held frames were not lost: the output starts at the first frame.
    assert!(hls.playlist().contains("#EXTINF:1.000,\nseg0.m4s\n"));
    assert_eq!(trafs(&hls.part(1, 0).unwrap())[0].tfdt, 90_000);
}

#[test]
fn opus_audio_only_cuts_by_time_with_a_sample_per_access_unit() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &[track(0, Codec::Opus)]);
    let frames: Vec<Frame> = (0..76).map(|i| opus(T0 + i * 3600)).collect();
    feed(&mut hls, &frames);
    assert_eq!(hls.codecs().as_deref(), Some("opus"));
    assert_eq!(hls.resolution(), None);
    let text = hls.playlist();
    assert!(text.contains("#EXTINF:1.000,\nseg0.m4s\n"), "{text}");
    for p in 0..5 {
        assert_eq!(listed_part(&text, 1, p), Some((0.2, true)), "{text}");
        let t = trafs(&hls.part(1, p).unwrap());
        assert_eq!(t[0].durations, vec![960; 10], "two packets per frame");
    }
    let init = hls.init("init.mp4").unwrap();
    assert!(init.windows(4).any(|w| w == b"dOps"));
}

#[test]
fn bad_frames_are_left_out_without_losing_parts() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    let mut frames = av(T0, 51, 25, SPS_240);
    let at = |frames: &[Frame], dts: i64| frames.iter().position(|f| f.dts > dts).unwrap();
    let i = at(&frames, T0 + 7 * 3600);
    frames.insert(
        i,
        Frame {
            data: Bytes::from_static(&[1, 2, 3]),
            ..video(T0 + 7 * 3600 + 1, false, SPS_240)
        },
    );
    let i = at(&frames, T0 + 9 * 3600);
    frames.insert(i, aac(T0 + 9 * 3600, 4)); // 44.1 kHz: not this track's configuration
    let i = at(&frames, T0 + 12 * 3600);
    frames.insert(i, video(T0, false, SPS_240)); // dts going backwards
    feed(&mut hls, &frames);
    assert_eq!(hls.dropped_frames(), 3);
    let text = hls.playlist();
    for p in 0..5 {
        assert_eq!(listed_part(&text, 0, p).map(|l| l.0), Some(0.2), "{text}");
    }
    assert!(text.contains("#EXTINF:1.000,\nseg1.m4s\n"), "{text}");
}

#[test]
fn numbering_can_start_anywhere() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks()).starting_at(100);
    feed(&mut hls, &av(T0, 26, 25, SPS_240));
    assert!(hls.playlist().contains("#EXT-X-MEDIA-SEQUENCE:100\n"));
    assert!(hls.segment(100).is_some() && hls.part(101, 0).is_none());
    assert_eq!(hls.next_part(), Some((101, 0)));
}

#[test]
fn frames_after_end_without_restart_continue_after_a_discontinuity() {
    let mut hls = Fmp4Hls::new(&HlsSettings::default(), &av_tracks());
    feed(&mut hls, &av(T0, 26, 25, SPS_240));
    hls.end();
    feed(&mut hls, &av(T0 + 26 * 3600, 26, 25, SPS_240));
    let text = hls.playlist();
    assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
    assert!(hls.segment(2).is_some(), "{text}");
}
