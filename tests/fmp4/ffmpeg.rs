//! Real decoder checks: encode a 4 s H.264 (or H.265) + AAC MPEG-TS with ffmpeg, demux
//! it with the test-only TS demuxer, mux it to fMP4 and let ffprobe/ffmpeg judge the
//! result. A missing ffmpeg, ffprobe or encoder fails the test (`make test` installs
//! them); GStreamer, a second opinion, is used where present.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fmp4::{Codec, Fragmenter, Frame, TrackConfig};

/// Timestamps are shifted to start near this value (unwrapped 90 kHz clock).
const SHIFT: i64 = 8_000_000_000;
const FRAMES: usize = 100;

pub(crate) fn run(cmd: &mut Command) -> Option<(String, String)> {
    let out = cmd.output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        panic!("{cmd:?} failed: {stderr}");
    }
    Some((stdout, stderr))
}

/// The decoders are the test's judges: without them it fails (`make test`
/// installs them).
pub(crate) fn tools_available() -> bool {
    let ok = |tool: &str| Command::new(tool).arg("-version").output().is_ok();
    assert!(
        ok("ffmpeg") && ok("ffprobe"),
        "ffmpeg/ffprobe not found: `make test` installs them (Debian package ffmpeg)"
    );
    true
}

pub(crate) fn has_encoder(name: &str) -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(name))
        .unwrap_or(false)
}

/// The generated test inputs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// libx264 (B-frames) + AAC 48 kHz mono.
    H264,
    /// libx265 (B-frames) + AAC 48 kHz mono.
    H265,
    /// libx264 + AAC 44.1 kHz stereo (1024 samples are not a whole number of 90 kHz ticks).
    H264Aac44k,
}

/// A file in this test run's own scratch directory (runs in parallel never
/// share files).
pub(crate) fn scratch(name: &str) -> String {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("srtgate-fmp4-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the scratch directory");
        d
    });
    dir.join(name).to_string_lossy().into_owned()
}

impl Input {
    fn path(self) -> String {
        scratch(match self {
            Input::H264 => "fmp4-in.ts",
            Input::H265 => "fmp4-in-hevc.ts",
            Input::H264Aac44k => "fmp4-in-44k.ts",
        })
    }

    fn audio(self) -> (i64, usize) {
        match self {
            Input::H264Aac44k => (44_100, 2),
            _ => (48_000, 1),
        }
    }

    fn video_codec(self) -> &'static str {
        if self == Input::H265 {
            "hevc"
        } else {
            "h264"
        }
    }
}

/// Generates (once per test binary) the input TS; `None` if it cannot be made.
pub(crate) fn input(which: Input) -> Option<&'static Path> {
    static CELLS: [OnceLock<Option<PathBuf>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    CELLS[which as usize]
        .get_or_init(|| {
            if !tools_available() {
                return None;
            }
            let hevc = which == Input::H265;
            let encoder = if hevc { "libx265" } else { "libx264" };
            assert!(
                has_encoder(encoder),
                "this ffmpeg has no {encoder} encoder (Debian's ffmpeg has it)"
            );
            let (rate, channels) = which.audio();
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-y", "-v", "error", "-f", "lavfi", "-i"])
                .arg("testsrc2=size=320x240:rate=25")
                .args(["-f", "lavfi", "-i"])
                .arg(format!("sine=frequency=440:sample_rate={rate}"))
                .args(["-t", "4", "-c:v", encoder]);
            if hevc {
                cmd.args([
                    "-x265-params",
                    "keyint=25:min-keyint=25:bframes=2:log-level=error",
                ]);
            } else {
                cmd.args(["-g", "25", "-bf", "2"]);
            }
            cmd.args(["-c:a", "aac", "-ac", &channels.to_string()]);
            cmd.args(["-f", "mpegts", &which.path()]);
            run(&mut cmd)?;
            Some(PathBuf::from(which.path()))
        })
        .as_deref()
}

/// How the frames are cut into fragments.
#[derive(Clone, Copy)]
struct Plan {
    /// Max video frames per fragment; fragments also start at every key frame.
    part_frames: usize,
    /// Pass the next fragment's dts per track (else the muxer guesses last durations).
    hint_next_dts: bool,
}

/// Muxes `frames` into init + fragments; returns the file and (fragments, fragments not
/// starting with a key frame).
fn mux(frames: &[Frame], plan: Plan) -> (Vec<u8>, usize, usize) {
    let video: Vec<&Frame> = frames.iter().filter(|f| f.track == 0).collect();
    let mut audio: Vec<&Frame> = frames.iter().filter(|f| f.track == 1).collect();
    audio.sort_by_key(|f| f.dts);

    // Fragment boundaries on the video timeline.
    let mut starts = Vec::new();
    let mut in_part = 0;
    for (i, f) in video.iter().enumerate() {
        if i == 0 || f.key || in_part == plan.part_frames {
            starts.push(i);
            in_part = 0;
        }
        in_part += 1;
    }
    let mut groups: Vec<Vec<&Frame>> = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let e = starts.get(k + 1).copied().unwrap_or(video.len());
        let lo = if k == 0 { i64::MIN } else { video[s].dts };
        let hi = if e == video.len() {
            i64::MAX
        } else {
            video[e].dts
        };
        let mut g: Vec<&Frame> = video[s..e].to_vec();
        g.extend(audio.iter().filter(|a| a.dts >= lo && a.dts < hi));
        g.sort_by_key(|f| (f.dts, f.track)); // interleave tracks by decode time
        groups.push(g);
    }

    let first_of = |t: u8| frames.iter().find(|f| f.track == t && (t == 1 || f.key));
    let configs: Vec<TrackConfig> = [0, 1]
        .iter()
        .map(|&t| {
            let f = first_of(t).expect("track present");
            TrackConfig::from_frame(f.codec, f)
                .unwrap()
                .expect("config")
        })
        .collect();
    let mut muxer = Fragmenter::new(configs);
    let mut file = muxer.init_segment().to_vec();
    let mut non_key_parts = 0;
    for (k, g) in groups.iter().enumerate() {
        let next: Vec<Option<i64>> = (0..2u8)
            .map(|t| {
                let later = groups[k + 1..].iter().flatten().find(|f| f.track == t);
                later.filter(|_| plan.hint_next_dts).map(|f| f.dts)
            })
            .collect();
        let samples: Vec<(u8, &Frame)> = g.iter().map(|f| (f.track, *f)).collect();
        if !g.iter().any(|f| f.track == 0 && f.key) {
            non_key_parts += 1;
        }
        file.extend_from_slice(&muxer.fragment(&samples, &next).expect("fragment"));
    }
    (file, groups.len(), non_key_parts)
}

#[derive(Debug, Clone, PartialEq)]
struct Packet {
    pts: i64,
    dts: i64,
    key: bool,
}

/// ffprobe's packet list per codec type.
fn packets(path: &Path) -> HashMap<String, Vec<Packet>> {
    let (out, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts,dts,flags",
        ])
        .args(["-of", "compact=p=0"])
        .arg(path))
    .unwrap();
    let mut map: HashMap<String, Vec<Packet>> = HashMap::new();
    for line in out.lines() {
        let kv: HashMap<&str, &str> = line.split('|').filter_map(|p| p.split_once('=')).collect();
        let Some(kind) = kv.get("codec_type") else {
            continue; // blank separator lines (TS side data)
        };
        map.entry(kind.to_string()).or_default().push(Packet {
            pts: kv["pts"].parse().unwrap(),
            dts: kv["dts"].parse().unwrap(),
            key: kv["flags"].starts_with('K'),
        });
    }
    map
}

/// `key=value` pairs of `ffprobe -of flat` for one section.
pub(crate) fn probe_flat(path: &Path, args: &[&str]) -> HashMap<String, String> {
    let (out, _) = run(Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "flat"])
        .arg(path))
    .unwrap();
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Runs every decoder check on `out` against `input`; returns a summary line.
fn check(which: Input, out: &Path) -> String {
    let input_path = which.path();
    let input = Path::new(&input_path);
    let video_codec = which.video_codec();
    let (rate, channels) = which.audio();
    // Streams.
    let s = probe_flat(out, &["-show_streams", "-count_frames"]);
    let stream = |i: usize, k: &str| s[&format!("streams.stream.{i}.{k}")].clone();
    assert_eq!(stream(0, "codec_name"), video_codec);
    assert_eq!(
        (stream(0, "width"), stream(0, "height")),
        ("320".into(), "240".into())
    );
    assert_eq!(stream(1, "codec_name"), "aac");
    assert_eq!(stream(1, "sample_rate"), rate.to_string());
    assert_eq!(stream(1, "channels"), channels.to_string());
    let video_frames: usize = stream(0, "nb_read_frames").parse().unwrap();
    let audio_frames: usize = stream(1, "nb_read_frames").parse().unwrap();
    assert_eq!(video_frames, FRAMES, "decoded video frames");

    // Full decode must be silent.
    let (_, errors) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(out)
        .args(["-f", "null", "-"]))
    .unwrap();
    assert!(errors.trim().is_empty(), "decoder complained: {errors}");

    // Timestamps.
    let inp = packets(input);
    let got = packets(out);
    let origin = inp.values().map(|p| p[0].dts).min().unwrap();
    let (vin, vout) = (&inp["video"], &got["video"]);
    assert_eq!(vin.len(), vout.len());
    for (i, (a, b)) in vin.iter().zip(vout).enumerate() {
        let want = Packet {
            pts: a.pts - origin,
            dts: a.dts - origin,
            key: a.key,
        };
        assert_eq!(*b, want, "video packet {i}");
    }
    let (ain, aout) = (&inp["audio"], &got["audio"]);
    assert_eq!(ain.len(), aout.len());
    assert_eq!(audio_frames, ain.len(), "decoded audio frames");
    let mut max_err = 0f64;
    for (i, (a, b)) in ain.iter().zip(aout).enumerate() {
        for (x, y) in [(a.pts, b.pts), (a.dts, b.dts)] {
            let want = (x - origin) as f64 * rate as f64 / 90_000.0;
            let err = (y as f64 - want).abs();
            max_err = max_err.max(err);
            assert!(err <= 1.0, "audio packet {i}: got {y}, want {want}");
        }
    }
    let vout_cto = vout.iter().filter(|p| p.pts != p.dts).count();
    assert!(
        vout_cto > FRAMES / 2,
        "B-frames expected to exercise composition offsets"
    );

    // Duration.
    let f = probe_flat(out, &["-show_format"]);
    let duration: f64 = f["format.duration"].parse().unwrap();
    assert!((duration - 4.0).abs() < 0.1, "duration {duration}");

    format!(
        "{}: {video_codec} {video_frames} frames ({vout_cto} with pts!=dts), aac {audio_frames} \
         frames, max audio ts error {max_err:.3} ticks@{rate}, duration {duration:.3}s",
        out.display()
    )
}

/// Second opinion from GStreamer: qtdemux and the libav decoders (`avdec_h264`,
/// `avdec_h265`, `avdec_aac`, from gstreamer1.0-libav, which the Makefile installs),
/// named explicitly so that every machine decodes with the same ones (`decodebin`
/// picks `faad` where it is present, which upmixes mono and drops the first frame).
/// Decodes to raw video/audio and counts frames and samples.
fn gstreamer_check(out: &Path, which: Input, audio_frames: usize) -> String {
    for element in [
        "qtdemux",
        "h264parse",
        "h265parse",
        "aacparse",
        "avdec_h264",
        "avdec_h265",
        "avdec_aac",
    ] {
        let present = Command::new("gst-inspect-1.0")
            .arg(element)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            present,
            "GStreamer element {element} is missing: install gstreamer1.0-libav and              gstreamer1.0-plugins-good (make test does)"
        );
    }
    let video_decoder = match which.video_codec() {
        "hevc" => "h265parse ! avdec_h265",
        _ => "h264parse ! avdec_h264",
    };
    let (yuv, pcm) = (out.with_extension("yuv"), out.with_extension("pcm"));
    let pipeline = format!(
        "filesrc location={} ! qtdemux name=d \
         d.video_0 ! queue ! {video_decoder} ! videoconvert ! video/x-raw,format=I420 ! filesink location={} \
         d.audio_0 ! queue ! aacparse ! avdec_aac ! audioconvert ! audio/x-raw,format=S16LE ! filesink location={}",
        out.display(),
        yuv.display(),
        pcm.display(),
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    run(Command::new("gst-launch-1.0").arg("-q").args(&args)).unwrap();
    let frames = std::fs::metadata(&yuv).unwrap().len() as usize / (320 * 240 * 3 / 2);
    let (_, channels) = which.audio();
    let samples = std::fs::metadata(&pcm).unwrap().len() as usize / (2 * channels);
    let _ = (std::fs::remove_file(yuv), std::fs::remove_file(pcm));
    assert_eq!(frames, FRAMES, "gstreamer video frames");
    assert_eq!(samples, audio_frames * 1024, "gstreamer audio samples");
    format!("gstreamer: {frames} video frames, {samples} audio samples")
}

fn run_case(which: Input, plan: Plan, out: &str) {
    let Some(input) = input(which) else { return };
    let ts = std::fs::read(input).unwrap();
    let frames = crate::common::demux_ts(&ts, SHIFT);
    assert_eq!(frames.iter().filter(|f| f.track == 0).count(), FRAMES);
    let audio_frames = frames.iter().filter(|f| f.track == 1).count();
    let (file, fragments, non_key) = mux(&frames, plan);
    let out = Path::new(out);
    std::fs::write(out, &file).unwrap();
    let summary = check(which, out);
    let gst = gstreamer_check(out, which, audio_frames);
    eprintln!("{summary}; {fragments} fragments ({non_key} not starting with a key frame); {gst}");
}

/// ~200 ms LL-HLS parts (5 frames @ 25 fps), most not starting with a key frame.
#[test]
fn h264_aac_parts() {
    let plan = Plan {
        part_frames: 5,
        hint_next_dts: true,
    };
    run_case(Input::H264, plan, &scratch("fmp4-out.mp4"));
}

/// One fragment per 1 s GOP (segment-sized fragments).
#[test]
fn h264_aac_gop_fragments() {
    let plan = Plan {
        part_frames: usize::MAX,
        hint_next_dts: true,
    };
    run_case(Input::H264, plan, &scratch("fmp4-out-gop.mp4"));
}

/// Parts without knowing the next dts: last-sample durations are guessed, tfdt stays exact.
#[test]
fn h264_aac_parts_without_next_dts() {
    let plan = Plan {
        part_frames: 5,
        hint_next_dts: false,
    };
    run_case(Input::H264, plan, &scratch("fmp4-out-nohint.mp4"));
}

/// H.265 (hvc1) + AAC in ~200 ms parts.
#[test]
fn hevc_aac_parts() {
    let plan = Plan {
        part_frames: 5,
        hint_next_dts: true,
    };
    run_case(Input::H265, plan, &scratch("fmp4-out-hevc.mp4"));
}

/// 44.1 kHz stereo AAC: real rounding between the 90 kHz and the audio clock.
#[test]
fn h264_aac44k_stereo_parts() {
    let plan = Plan {
        part_frames: 5,
        hint_next_dts: true,
    };
    run_case(Input::H264Aac44k, plan, &scratch("fmp4-out-44k.mp4"));
}

/// The config built from the real stream matches what the encoder was told.
#[test]
fn track_configs_from_real_stream() {
    let Some(input) = input(Input::H264) else {
        return;
    };
    let frames = crate::common::demux_ts(&std::fs::read(input).unwrap(), SHIFT);
    let key = frames.iter().find(|f| f.key).unwrap();
    let v = TrackConfig::from_frame(Codec::H264, key).unwrap().unwrap();
    assert_eq!(v.dimensions(), Some((320, 240)));
    assert!(
        v.codec_string().starts_with("avc1.64"),
        "{}",
        v.codec_string()
    );
    let a = frames.iter().find(|f| f.codec == Codec::Aac).unwrap();
    let a = TrackConfig::from_frame(Codec::Aac, a).unwrap().unwrap();
    assert_eq!((a.timescale(), a.channels()), (48_000, Some(1)));
    assert_eq!(a.codec_string(), "mp4a.40.2");
    let non_key = frames.iter().find(|f| f.track == 0 && !f.key).unwrap();
    assert_eq!(TrackConfig::from_frame(Codec::H264, non_key), Ok(None));
}
