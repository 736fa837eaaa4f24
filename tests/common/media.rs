//! The real peers: command lines for ffmpeg / ffprobe, srt-live-transmit and
//! GStreamer, and the checks a user would make on what they receive.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{describe_status, indent, Finished, Gateway, Out, Peer, TestDir};

/// Options every libsrt reader URL gets: 120 ms latency (ffmpeg takes
/// microseconds) and a 5 s socket I/O timeout so a silent gateway cannot hang
/// the reader (the harness also bounds every peer's run time).
pub const READ_OPTS: &str = "&latency=120000&timeout=5000000";
/// Options for ffmpeg publishers.
pub const PUBLISH_OPTS: &str = "&latency=120000";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A synthetic live source: lavfi test pattern + sine tone, H.264 + AAC.
#[derive(Clone, Debug)]
pub struct Source {
    pub width: u32,
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    /// How long the encoder runs.
    pub seconds: f64,
    pub tone_hz: u32,
}

impl Default for Source {
    fn default() -> Source {
        Source {
            width: 320,
            height: 240,
            fps: 25,
            gop: 50,
            seconds: 30.0,
            tone_hz: 440,
        }
    }
}

impl Source {
    pub fn seconds(mut self, s: f64) -> Source {
        self.seconds = s;
        self
    }
    pub fn size(mut self, w: u32, h: u32) -> Source {
        self.width = w;
        self.height = h;
        self
    }
    pub fn gop(mut self, g: u32) -> Source {
        self.gop = g;
        self
    }
    pub fn tone(mut self, hz: u32) -> Source {
        self.tone_hz = hz;
        self
    }

    /// ffmpeg arguments up to (not including) the output URL: real-time paced
    /// test pattern and tone, cheap H.264 (ultrafast, zerolatency) and AAC,
    /// muxed as MPEG-TS.
    pub fn ffmpeg_args(&self) -> Vec<String> {
        let mut a = s(&["-nostdin", "-hide_banner", "-loglevel", "error"]);
        a.extend(s(&["-re", "-f", "lavfi", "-i"]));
        a.push(format!(
            "testsrc2=size={}x{}:rate={}",
            self.width, self.height, self.fps
        ));
        a.extend(s(&["-re", "-f", "lavfi", "-i"]));
        a.push(format!("sine=frequency={}:sample_rate=48000", self.tone_hz));
        a.extend(s(&["-t", &format!("{}", self.seconds)]));
        a.extend(s(&["-map", "0:v", "-map", "1:a"]));
        a.extend(s(&[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &self.gop.to_string(),
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "mpegts",
        ]));
        a
    }
}

/// Upper bound on a publisher's run time: its source length plus slack.
pub fn publisher_timeout(src: &Source) -> Duration {
    Duration::from_secs_f64(src.seconds + 20.0)
}

// ------------------------------------------------------------------ publishers

/// `ffmpeg … -f mpegts 'srt://…'` (libsrt caller).
pub fn publish_ffmpeg(dir: &TestDir, name: &str, url: &str, src: &Source) -> Peer {
    let mut args = src.ffmpeg_args();
    args.push(url.to_string());
    Peer::spawn(dir, name, "ffmpeg", &args, Out::Null)
}

/// `ffmpeg … -f mpegts - | srt-live-transmit file://con 'srt://…'`.
pub fn publish_slt(dir: &TestDir, name: &str, url: &str, src: &Source) -> Peer {
    let mut ff = src.ffmpeg_args();
    ff.extend(s(&["-flush_packets", "1", "-"]));
    let slt = vec!["file://con".to_string(), url.to_string()];
    Peer::pipeline(
        dir,
        name,
        &[("ffmpeg", ff), ("srt-live-transmit", slt)],
        Out::Null,
    )
}

/// `ffmpeg … -f mpegts - | gst-launch-1.0 -q fdsrc ! srtsink uri='srt://…' wait-for-connection=false`.
pub fn publish_gst(dir: &TestDir, name: &str, uri: &str, src: &Source) -> Peer {
    let mut ff = src.ffmpeg_args();
    ff.extend(s(&["-flush_packets", "1", "-"]));
    let gst = vec![
        "-q".to_string(),
        "fdsrc".to_string(),
        "fd=0".to_string(),
        "!".to_string(),
        "srtsink".to_string(),
        format!("uri={uri}"),
        "wait-for-connection=false".to_string(),
    ];
    Peer::pipeline(
        dir,
        name,
        &[("ffmpeg", ff), ("gst-launch-1.0", gst)],
        Out::Null,
    )
}

/// Waits until the gateway logs `publishing` for `path` (after `mark`); fails
/// early, with the publisher's stderr, if the publisher exits first.
#[track_caller]
pub fn wait_publishing(
    gw: &mut Gateway,
    mark: usize,
    path: &str,
    publisher: &mut Peer,
    timeout: Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let log = gw.log_since(mark);
        if log
            .lines()
            .any(|l| l.contains("publishing") && l.contains(path))
        {
            return;
        }
        if !publisher.is_running() {
            let f = publisher.wait(Duration::from_secs(1)).ok();
            gw.fail(&format!(
                "expected srtgate to log `publishing` for {path}, but the publisher exited first:\n{}",
                publisher.describe(f.as_ref())
            ));
        }
        gw.assert_alive(&format!("waiting for the publisher of {path}"));
        if std::time::Instant::now() >= deadline {
            gw.fail(&format!(
                "expected srtgate to log a line with `publishing` and `{path}` within {:.0}s; it did not.\n{}",
                timeout.as_secs_f64(),
                publisher.describe(None)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------ ffprobe

#[derive(Debug, Clone, Default)]
pub struct StreamInfo {
    pub index: String,
    pub codec_type: String,
    pub codec_name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

pub struct Probe {
    pub streams: Vec<StreamInfo>,
    pub finished: Result<Finished, String>,
    pub description: String,
}

impl Probe {
    pub fn has(&self, codec_type: &str, codec_name: &str) -> bool {
        self.streams
            .iter()
            .any(|s| s.codec_type == codec_type && s.codec_name == codec_name)
    }

    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.codec_type == "video")
    }

    pub fn summary(&self) -> String {
        if self.streams.is_empty() {
            return "no streams".to_string();
        }
        self.streams
            .iter()
            .map(|s| match (s.width, s.height) {
                (Some(w), Some(h)) => format!("{}:{} {}x{}", s.codec_type, s.codec_name, w, h),
                _ => format!("{}:{}", s.codec_type, s.codec_name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses ffprobe's default writer output: `[STREAM]` … `key=value` … `[/STREAM]`
/// blocks (a program's streams repeat them; they are merged by index).
pub fn parse_streams(text: &str) -> Vec<StreamInfo> {
    let mut by_index: BTreeMap<String, StreamInfo> = BTreeMap::new();
    let mut cur: Option<StreamInfo> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "[STREAM]" {
            cur = Some(StreamInfo::default());
        } else if line == "[/STREAM]" {
            if let Some(st) = cur.take() {
                by_index.entry(st.index.clone()).or_insert(st);
            }
        } else if let (Some(st), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
            match k {
                "index" => st.index = v.to_string(),
                "codec_type" => st.codec_type = v.to_string(),
                "codec_name" => st.codec_name = v.to_string(),
                "width" => st.width = v.parse().ok(),
                "height" => st.height = v.parse().ok(),
                _ => {}
            }
        }
    }
    by_index.into_values().collect()
}

/// A running ffprobe.
pub struct ProbeRun {
    peer: Peer,
    out: std::path::PathBuf,
}

/// Starts `ffprobe -v error -show_entries stream=… TARGET` (a URL or a file).
pub fn start_probe(dir: &TestDir, name: &str, target: &str) -> ProbeRun {
    let out = dir.file(&format!("{name}.stdout"));
    let args = s(&[
        "-v",
        "error",
        "-show_entries",
        "stream=index,codec_type,codec_name,width,height",
        target,
    ]);
    let peer = Peer::spawn(dir, name, "ffprobe", &args, Out::File(out.clone()));
    ProbeRun { peer, out }
}

impl ProbeRun {
    pub fn finish(mut self, timeout: Duration) -> Probe {
        let finished = self.peer.wait(timeout);
        let streams = parse_streams(&super::read_lossy(&self.out));
        let description = match &finished {
            Ok(f) => self.peer.describe(Some(f)),
            Err(e) => e.clone(),
        };
        Probe {
            streams,
            finished,
            description,
        }
    }
}

/// Runs ffprobe on TARGET (a URL or a file) and collects what it saw.
pub fn probe(dir: &TestDir, name: &str, target: &str, timeout: Duration) -> Probe {
    start_probe(dir, name, target).finish(timeout)
}

/// Fails unless ffprobe exited 0 and saw an H.264 video and an AAC audio stream.
#[track_caller]
pub fn assert_h264_aac(gw: &Gateway, p: &Probe, what: &str) {
    let ok_exit = matches!(&p.finished, Ok(f) if f.status.success());
    if !(ok_exit && p.has("video", "h264") && p.has("audio", "aac")) {
        gw.fail(&format!(
            "{what}: expected ffprobe to exit 0 and see video:h264 and audio:aac; it saw [{}]\n{}",
            p.summary(),
            p.description
        ));
    }
}

// ------------------------------------------------------------------ decoding

/// `ffmpeg -v error [IN_OPTS] -i INPUT [-t SECS] -f null -`.
pub fn decode_args(input: &str, in_opts: &[String], out_seconds: Option<f64>) -> Vec<String> {
    let mut a = s(&["-nostdin", "-hide_banner", "-v", "error"]);
    a.extend(in_opts.iter().cloned());
    a.extend(s(&["-i", input]));
    if let Some(t) = out_seconds {
        a.extend(s(&["-t", &format!("{t}")]));
    }
    a.extend(s(&["-f", "null", "-"]));
    a
}

/// Starts a live decode of `seconds` of `url`.
pub fn start_decode(dir: &TestDir, name: &str, url: &str, seconds: f64) -> Peer {
    Peer::spawn(
        dir,
        name,
        "ffmpeg",
        &decode_args(url, &[], Some(seconds)),
        Out::Null,
    )
}

/// True for a line libsrt itself logged (`HH:MM:SS.micros/SRT:…`), as
/// opposed to one from ffmpeg.
pub fn is_libsrt_log(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 9
        && b[2] == b':'
        && b[5] == b':'
        && line
            .split_once('/')
            .map(|(t, rest)| {
                t.chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '.')
                    && rest.starts_with("SRT:")
            })
            .unwrap_or(false)
}

/// Fails unless the decoder exited 0 with nothing on stderr (`-v error`
/// prints every decode error, and ffmpeg exits 0 despite them). Warnings
/// that libsrt itself prints (handshake trouble) fail it too, reported apart.
#[track_caller]
pub fn assert_clean_decode(gw: &Gateway, peer: &Peer, res: &Result<Finished, String>, what: &str) {
    match res {
        Ok(f) if f.status.success() && f.stderr.trim().is_empty() => {}
        Ok(f) => {
            let (srt, other): (Vec<&str>, Vec<&str>) =
                f.stderr.lines().partition(|l| is_libsrt_log(l));
            let mut why = Vec::new();
            if !f.status.success() {
                why.push(format!("it exited with {}", describe_status(&f.status)));
            }
            if !other.is_empty() {
                why.push(format!("ffmpeg printed {} error line(s)", other.len()));
            }
            if !srt.is_empty() {
                why.push(format!(
                    "libsrt in the reader logged {} warning line(s) about the connection",
                    srt.len()
                ));
            }
            gw.fail(&format!(
                "{what}: expected the decode to exit 0 with nothing on stderr; {}\n{}",
                why.join(", "),
                peer.describe(Some(f))
            ))
        }
        Err(e) => gw.fail(&format!("{what}: {e}")),
    }
}

/// Decodes `seconds` of `url` live and asserts a clean decode.
#[track_caller]
pub fn decode_clean(gw: &Gateway, dir: &TestDir, name: &str, url: &str, seconds: f64) {
    let mut peer = start_decode(dir, name, url, seconds);
    let res = peer.wait(Duration::from_secs_f64(seconds + 20.0));
    assert_clean_decode(gw, &peer, &res, &format!("{name} ({url})"));
}

/// Duration of a media file according to ffprobe, in seconds.
pub fn file_duration(dir: &TestDir, file: &str) -> Option<f64> {
    let out = dir.file("duration.stdout");
    let args = s(&[
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "default=nw=1:nk=1",
        file,
    ]);
    let mut peer = Peer::spawn(dir, "duration", "ffprobe", &args, Out::File(out.clone()));
    peer.wait(Duration::from_secs(30)).ok()?;
    super::read_lossy(&out).trim().parse().ok()
}

/// Decodes a captured TS file and fails on any decode error. With
/// `cut_off` (a capture the harness ended by killing the reader), the last
/// second is left out: such a file ends inside a PES packet, and decoding
/// that torn last frame reports an error that says nothing about the gateway.
#[track_caller]
pub fn assert_file_decodes(gw: &Gateway, dir: &TestDir, name: &str, file: &str, cut_off: bool) {
    let dur = file_duration(dir, file).unwrap_or(0.0);
    if dur < 1.5 {
        gw.fail(&format!(
            "{name}: captured file {file} holds {dur:.2}s of media by ffprobe's count; expected at least 1.5s ({} bytes)",
            super::file_len(std::path::Path::new(file))
        ));
    }
    let in_opts = if cut_off {
        s(&["-t", &format!("{:.2}", dur - 1.0)])
    } else {
        Vec::new()
    };
    let mut peer = Peer::spawn(
        dir,
        name,
        "ffmpeg",
        &decode_args(file, &in_opts, None),
        Out::Null,
    );
    let res = peer.wait(Duration::from_secs(60));
    assert_clean_decode(gw, &peer, &res, &format!("{name} (decode of {file})"));
}

/// Lines ffprobe prints for `entries` of the first video stream of `file`.
fn ffprobe_video_entries(dir: &TestDir, name: &str, entries: &str, file: &str) -> String {
    let out = dir.file(&format!("{name}.stdout"));
    let args = s(&[
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        entries,
        "-of",
        "compact=p=0",
        file,
    ]);
    let mut p = Peer::spawn(dir, name, "ffprobe", &args, Out::File(out.clone()));
    let _ = p.wait(Duration::from_secs(30));
    super::read_lossy(&out)
}

/// First video packet's flags and first decoded video frame's `key_frame`, from
/// a file.
pub fn first_video_packet_and_frame(dir: &TestDir, file: &str) -> (String, String, String) {
    let packets = ffprobe_video_entries(dir, "packets", "packet=pts_time,flags", file);
    let first_packet = packets.lines().next().unwrap_or("").to_string();
    let frames = ffprobe_video_entries(dir, "frames", "frame=key_frame,pict_type", file);
    let first_frame = frames.lines().next().unwrap_or("").to_string();
    let head = frames.lines().take(3).collect::<Vec<_>>().join("\n");
    (first_packet, first_frame, indent(&head))
}
