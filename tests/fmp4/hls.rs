//! A stream's LL-HLS output (`srtgate::media::hls::Fmp4Hls`) written out as
//! files (playlist, init segments, segments) and played by ffmpeg's HLS
//! demuxer, which reads the local playlist (and ignores the part tags): no
//! decoder error, the right streams, every frame.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use srtgate::media::hls::{Fmp4Hls, HlsSettings};
use srtgate::media::TrackInfo;

use crate::common::demux_srtgate;
use crate::ffmpeg::{input, probe_flat, run, scratch, Input};
use crate::fmp4::{Codec, Frame};

/// Wall-clock time of a frame: the media time after a fixed start.
fn wall(frame: &Frame, first_dts: i64) -> SystemTime {
    let micros = (frame.dts - first_dts).max(0) as u64 * 100 / 9;
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000) + Duration::from_micros(micros)
}

/// A publisher: its tracks, and its frames with timestamps moved by `shift`.
fn publisher(ts: &Path, shift: i64) -> (Vec<TrackInfo>, Vec<Frame>) {
    let (tracks, mut frames) = demux_srtgate(&std::fs::read(ts).unwrap());
    for f in &mut frames {
        f.pts += shift;
        f.dts += shift;
    }
    (tracks, frames)
}

/// Frames of `codec` the output keeps: those that arrive from the first video
/// keyframe on.
fn kept(frames: &[Frame], codec: Codec) -> usize {
    let start = frames
        .iter()
        .position(|f| f.codec.is_video() && f.key)
        .unwrap();
    frames[start..].iter().filter(|f| f.codec == codec).count()
}

/// Writes the playlist (closed with `EXT-X-ENDLIST`, as a recording) and every
/// file it names into `dir`; returns the playlist's path.
fn write_out(hls: &Fmp4Hls, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = hls.playlist();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let name = rest.trim_end_matches('"');
            std::fs::write(dir.join(name), hls.init(name).expect("init segment")).unwrap();
        } else if !line.starts_with('#') {
            let msn: u64 = line
                .strip_prefix("seg")
                .and_then(|l| l.strip_suffix(".m4s"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected URI {line}"));
            let segment = hls.segment(msn).expect("listed segment");
            // A complete segment is its parts, while they are listed.
            let parts: Vec<u8> = (0..)
                .map_while(|p| hls.part(msn, p))
                .flat_map(|p| p.to_vec())
                .collect();
            assert!(parts.is_empty() || parts == segment, "seg{msn}");
            std::fs::write(dir.join(line), segment).unwrap();
        }
    }
    let path = dir.join("index.m3u8");
    std::fs::write(&path, format!("{text}#EXT-X-ENDLIST\n")).unwrap();
    path
}

/// ffprobe's streams of the playlist by codec type: (codec, decoded frames, fields).
fn streams(playlist: &Path) -> HashMap<String, HashMap<String, String>> {
    let flat = probe_flat(playlist, &["-show_streams", "-count_frames"]);
    let mut by_index: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (k, v) in flat {
        let Some(rest) = k.strip_prefix("streams.stream.") else {
            continue;
        };
        if let Some((i, field)) = rest.split_once('.') {
            by_index
                .entry(i.to_owned())
                .or_default()
                .insert(field.to_owned(), v);
        }
    }
    by_index
        .into_values()
        .map(|s| (s["codec_type"].clone(), s))
        .collect()
}

fn assert_silent_decode(playlist: &Path) {
    let (_, errors) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(playlist)
        .args(["-f", "null", "-"]))
    .unwrap();
    assert!(errors.trim().is_empty(), "decoder complained: {errors}");
}

/// Feeds each publisher in turn (restarting in between) and ends the last one.
fn play(publishers: &[(Vec<TrackInfo>, Vec<Frame>)]) -> Fmp4Hls {
    let settings = HlsSettings {
        window: 20,
        ..HlsSettings::default()
    };
    let mut hls = Fmp4Hls::new(&settings, &publishers[0].0);
    for (i, (tracks, frames)) in publishers.iter().enumerate() {
        if i > 0 {
            hls.restart(tracks);
        }
        let first = frames[0].dts;
        for f in frames {
            hls.push(f, wall(f, first));
        }
    }
    hls.end();
    assert_eq!(hls.dropped_frames(), 0);
    hls
}

#[test]
fn ffmpeg_plays_the_ll_hls_output() {
    let Some(ts) = input(Input::H264) else {
        return;
    };
    let (tracks, frames) = publisher(ts, 8_000_000_000);
    let hls = play(&[(tracks, frames.clone())]);
    let text = hls.playlist();
    assert_eq!(
        text.matches("#EXTINF:").count(),
        4,
        "4 s in 1 s segments: {text}"
    );
    assert!(text.contains(",INDEPENDENT=YES\n"), "{text}");
    let codecs = hls.codecs().unwrap();
    assert!(
        codecs.starts_with("avc1.64") && codecs.ends_with(",mp4a.40.2"),
        "{codecs}"
    );
    let total: f64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((total - 4.0).abs() < 0.01, "{total}");

    let playlist = write_out(&hls, Path::new(&scratch("hls-single")));
    let s = streams(&playlist);
    assert_eq!(s["video"]["codec_name"], "h264");
    assert_eq!(
        (&s["video"]["width"][..], &s["video"]["height"][..]),
        ("320", "240")
    );
    assert_eq!(s["video"]["nb_read_frames"], "100");
    assert_eq!(s["audio"]["codec_name"], "aac");
    assert_eq!(s["audio"]["sample_rate"], "48000");
    assert_eq!(
        s["audio"]["nb_read_frames"],
        kept(&frames, Codec::Aac).to_string()
    );
    assert_silent_decode(&playlist);
}

#[test]
fn ffmpeg_plays_two_publishers_across_a_discontinuity() {
    let Some(ts) = input(Input::H264) else {
        return;
    };
    let first = publisher(ts, 8_000_000_000);
    // The second publisher's clock is elsewhere; its media time continues.
    let second = publisher(ts, 1_000);
    let audio = kept(&first.1, Codec::Aac) + kept(&second.1, Codec::Aac);
    let hls = play(&[first, second]);
    let text = hls.playlist();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    assert_eq!(
        text.matches("#EXT-X-MAP:").count(),
        1,
        "same encoder, same init"
    );

    let playlist = write_out(&hls, Path::new(&scratch("hls-two")));
    let s = streams(&playlist);
    assert_eq!(s["video"]["nb_read_frames"], "200");
    assert_eq!(s["audio"]["nb_read_frames"], audio.to_string());
    assert_silent_decode(&playlist);
}

#[test]
fn ffmpeg_plays_h264_with_opus() {
    let Some(ts) = crate::opus::opus_input("hls-opus-h264.ts", 2, true) else {
        return;
    };
    let (tracks, frames) = publisher(&ts, 0);
    let hls = play(&[(tracks, frames.clone())]);
    assert!(hls.codecs().unwrap().ends_with(",opus"));
    let playlist = write_out(&hls, Path::new(&scratch("hls-opus")));
    let s = streams(&playlist);
    assert_eq!(s["video"]["nb_read_frames"], "100");
    assert_eq!(s["audio"]["codec_name"], "opus");
    assert_eq!(s["audio"]["channels"], "2");
    // One decoded frame per access unit (several per PES).
    let packets = probe_flat(
        &ts,
        &["-select_streams", "a:0", "-count_packets", "-show_streams"],
    )["streams.stream.0.nb_read_packets"]
        .parse::<usize>()
        .unwrap();
    let decoded: usize = s["audio"]["nb_read_frames"].parse().unwrap();
    assert!(
        decoded > kept(&frames, Codec::Opus),
        "access units, not PES"
    );
    assert!(
        decoded <= packets && decoded + 10 >= packets,
        "{decoded} of {packets}"
    );
    assert_silent_decode(&playlist);
}
