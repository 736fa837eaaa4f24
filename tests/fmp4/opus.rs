//! Opus in fMP4: the `Opus` sample entry and its `dOps`, one sample per MPEG-TS
//! access unit with durations from the TOC (synthetic frames read back), hostile
//! Opus payloads, and ffmpeg decoding what the muxer made of real libopus streams.

use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{all, be32, be64, boxes, demux_srtgate, find};
use crate::ffmpeg::{has_encoder, probe_flat, run, scratch, tools_available};
use crate::fmp4::{init_segment, Codec, Fmp4Error, Fragmenter, Frame, TrackConfig};

const T0: i64 = 8_000_000_000;

/// TOC bytes: CELT fullband 20 ms stereo / mono, 10 ms stereo, and 5 ms stereo
/// with frame count code 3.
const TOC_20MS: u8 = (31 << 3) | 0x04;
const TOC_20MS_MONO: u8 = 31 << 3;
const TOC_10MS: u8 = (30 << 3) | 0x04;
const TOC_5MS_CODE3: u8 = (29 << 3) | 0x04 | 3;

/// An Opus packet: `toc`, then `extra` header bytes, then filler to `len` bytes.
fn packet(toc: u8, extra: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![toc];
    p.extend_from_slice(extra);
    p.resize(len, 0x5A);
    p
}

/// One MPEG-TS Opus access unit: control header (start trim when asked) + packet.
fn au(packet: &[u8], start_trim: bool) -> Vec<u8> {
    let mut v = vec![0x7F, if start_trim { 0xF0 } else { 0xE0 }];
    let mut n = packet.len();
    while n >= 255 {
        v.push(0xFF);
        n -= 255;
    }
    v.push(n as u8);
    if start_trim {
        v.extend_from_slice(&312u16.to_be_bytes());
    }
    v.extend_from_slice(packet);
    v
}

fn frame(dts: i64, packets: &[Vec<u8>]) -> Frame {
    let data: Vec<u8> = packets.iter().flat_map(|p| au(p, false)).collect();
    Frame {
        track: 0,
        codec: Codec::Opus,
        pts: dts,
        dts,
        key: true,
        data: Bytes::from(data),
    }
}

fn config(toc: u8) -> TrackConfig {
    let f = frame(T0, &[packet(toc, &[], 10)]);
    TrackConfig::from_frame(Codec::Opus, &f).unwrap().unwrap()
}

/// The single `traf` of a fragment: (tfdt, durations, sample payloads).
fn read_back(fragment: &[u8]) -> (u64, Vec<u32>, Vec<Vec<u8>>) {
    let top = boxes(fragment);
    assert_eq!((&top[0].fourcc, &top[1].fourcc), (b"moof", b"mdat"));
    let trafs = all(top[0].body, "traf");
    assert_eq!(trafs.len(), 1);
    let tfdt = be64(find(trafs[0], &["tfdt"]).unwrap(), 4);
    let trun = find(trafs[0], &["trun"]).unwrap();
    assert_eq!(
        be32(trun, 0),
        0x0000_0701,
        "trun v0: offset, duration, size, flags"
    );
    let count = be32(trun, 4) as usize;
    let mut pos = be32(trun, 8) as usize;
    let mut durations = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..count {
        let e = 12 + i * 12;
        durations.push(be32(trun, e));
        let size = be32(trun, e + 4) as usize;
        assert_eq!(
            be32(trun, e + 8),
            0x0200_0000,
            "every Opus sample is a sync sample"
        );
        payloads.push(fragment[pos..pos + size].to_vec());
        pos += size;
    }
    assert_eq!(pos, fragment.len(), "samples fill the mdat");
    (tfdt, durations, payloads)
}

#[test]
fn opus_sample_entry_and_dops() {
    let stereo = config(TOC_20MS);
    assert_eq!(
        (stereo.timescale(), stereo.channels(), stereo.codec_string()),
        (48_000, Some(2), "opus")
    );
    assert_eq!(config(TOC_20MS_MONO).channels(), Some(1), "TOC stereo flag");
    let dops = [0, 2, 0, 0, 0, 0, 0xBB, 0x80, 0, 0, 0];
    assert_eq!(stereo.decoder_config(), dops);

    let init = init_segment(&[stereo]);
    let moov = boxes(&init)[1].body;
    let trak = all(moov, "trak")[0];
    assert_eq!(be32(find(trak, &["mdia", "mdhd"]).unwrap(), 12), 48_000);
    assert_eq!(&find(trak, &["mdia", "hdlr"]).unwrap()[8..12], b"soun");
    let stsd = ["mdia", "minf", "stbl", "stsd"];
    let entry = find(trak, &[&stsd[..], &["Opus"]].concat()).unwrap();
    assert_eq!(
        u16::from_be_bytes([entry[16], entry[17]]),
        2,
        "channelcount"
    );
    assert_eq!(u16::from_be_bytes([entry[18], entry[19]]), 16, "samplesize");
    assert_eq!(be32(entry, 24) >> 16, 48_000, "samplerate");
    assert_eq!(
        find(trak, &[&stsd[..], &["Opus", "dOps"]].concat()).unwrap(),
        dops
    );
}

#[test]
fn one_sample_per_access_unit_with_toc_durations() {
    let mut m = Fragmenter::new(vec![config(TOC_20MS)]);
    let p = [
        packet(TOC_20MS, &[], 30),
        packet(TOC_10MS, &[], 20),
        packet(TOC_5MS_CODE3, &[4], 25), // four 5 ms frames
    ];
    // 50 ms in one PES, then a 20 ms one.
    let a = frame(T0, &p);
    let b = frame(T0 + 4500, &[packet(TOC_20MS, &[], 300)]);
    let frag = m.fragment(&[(0, &a), (0, &b)], &[Some(T0 + 6300)]).unwrap();
    let (tfdt, durations, payloads) = read_back(&frag);
    assert_eq!(tfdt, 0);
    assert_eq!(durations, [960, 480, 960, 960]);
    assert_eq!(payloads[..3], p, "control headers stripped");
    assert_eq!(payloads[3].len(), 300, "au_size 0xFF 0x2D");

    // Without a next dts the TOC still knows the duration.
    let c = frame(T0 + 6300, &[packet(TOC_10MS, &[], 9)]);
    let (tfdt, durations, _) = read_back(&m.fragment(&[(0, &c)], &[None]).unwrap());
    assert_eq!((tfdt, durations), (3360, vec![480]));

    // A gap before the next frame: the last packet reaches it (no hole).
    let d = frame(T0 + 9000, &[packet(TOC_20MS, &[], 9)]);
    let (tfdt, durations, _) =
        read_back(&m.fragment(&[(0, &d)], &[Some(T0 + 9000 + 2700)]).unwrap());
    assert_eq!((tfdt, durations), (4800, vec![1440]));

    // Packets running past the next frame's dts keep their TOC durations.
    let e = frame(
        T0 + 11_700,
        &[packet(TOC_20MS, &[], 9), packet(TOC_20MS, &[], 9)],
    );
    let (_, durations, _) =
        read_back(&m.fragment(&[(0, &e)], &[Some(T0 + 11_700 + 1800)]).unwrap());
    assert_eq!(durations, [960, 960]);
}

#[test]
fn broken_opus_frames_are_errors() {
    let cfg = config(TOC_20MS);
    let mut m = Fragmenter::new(vec![cfg.clone()]);
    let good = frame(T0, &[packet(TOC_20MS, &[], 10)]);
    let mut cut = good.data.to_vec();
    cut.pop();
    let cases = [
        Bytes::new(),
        Bytes::from(cut),
        Bytes::from_static(&[0xFC, 1, 2, 3]), // no control header
        Bytes::from_static(&[0x7F, 0xE0, 0]), // empty access unit
        Bytes::from_static(&[0x7F, 0xE0, 2, 0xFF, 0]), // code 3 with no frames
    ];
    for data in cases {
        let bad = Frame {
            data,
            ..good.clone()
        };
        assert!(matches!(
            TrackConfig::from_frame(Codec::Opus, &bad),
            Err(Fmp4Error::MalformedOpus(_))
        ));
        assert!(matches!(
            cfg.check_sample(&bad),
            Err(Fmp4Error::MalformedOpus(_))
        ));
        assert!(matches!(
            m.fragment(&[(0, &bad)], &[]),
            Err(Fmp4Error::MalformedOpus(_))
        ));
    }
    assert_eq!(cfg.check_sample(&good), Ok(()));
    assert!(m.fragment(&[(0, &good)], &[]).is_ok());
}

#[test]
fn mutated_opus_never_panics_and_check_sample_agrees_with_fragment() {
    let mut rng = StdRng::seed_from_u64(7);
    let cfg = config(TOC_20MS);
    let mut accepted = 0;
    for i in 0..20_000i64 {
        let n = rng.gen_range(1..4);
        let packets: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let toc = rng.gen();
                let extra = [rng.gen()];
                packet(toc, &extra, rng.gen_range(1..400))
            })
            .collect();
        let mut data = frame(0, &packets).data.to_vec();
        for _ in 0..rng.gen_range(0..3) {
            let at = rng.gen_range(0..data.len());
            data[at] = rng.gen();
        }
        if rng.gen_bool(0.2) {
            data.truncate(rng.gen_range(0..data.len()));
        }
        let f = Frame {
            data: Bytes::from(data),
            ..frame(T0 + i * 1800, &[])
        };
        let _ = TrackConfig::from_frame(Codec::Opus, &f);
        let mut m = Fragmenter::new(vec![cfg.clone()]);
        let written = m.fragment(&[(0, &f)], &[Some(f.dts + 1800)]);
        assert_eq!(cfg.check_sample(&f).is_ok(), written.is_ok(), "{f:?}");
        accepted += usize::from(written.is_ok());
    }
    assert!(accepted > 1000, "{accepted} valid frames survived");
}

// ---------------------------------------------------------------------------------------
// Real streams, judged by ffmpeg
// ---------------------------------------------------------------------------------------

/// Encodes 4 s of Opus (48 kHz, `channels`), with 25 fps H.264 if `video`, into MPEG-TS.
pub(crate) fn opus_input(name: &str, channels: u32, video: bool) -> Option<PathBuf> {
    if !tools_available() {
        return None;
    }
    let path = scratch(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-y", "-v", "error"]);
    if video {
        assert!(has_encoder("libx264"), "this ffmpeg has no libx264");
        cmd.args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]);
    }
    cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "4"]);
    if video {
        cmd.args(["-c:v", "libx264", "-g", "25", "-bf", "2"]);
    }
    if has_encoder("libopus") {
        cmd.args(["-c:a", "libopus", "-b:a", "64k"]);
    } else {
        // FFmpeg's own (experimental) encoder: stereo only.
        assert!(has_encoder(" opus "), "this ffmpeg has no Opus encoder");
        assert_eq!(channels, 2, "the native Opus encoder makes stereo only");
        cmd.args(["-c:a", "opus", "-strict", "-2"]);
    }
    cmd.args(["-ac", &channels.to_string(), "-f", "mpegts", &path]);
    run(&mut cmd)?;
    Some(PathBuf::from(path))
}

/// Muxes `frames` into init + ~200 ms fragments (cut on the first track's dts, and at
/// video key frames), with the next fragment's dts per track given. Returns the file
/// and the samples written per track.
fn mux(tracks: &[srtgate::media::TrackInfo], frames: &[Frame]) -> (Vec<u8>, Vec<usize>) {
    let configs: Vec<TrackConfig> = tracks
        .iter()
        .map(|t| {
            let f = frames
                .iter()
                .find(|f| f.track == t.index && (f.key || !f.codec.is_video()))
                .expect("a frame for every track");
            TrackConfig::from_frame(t.codec, f)
                .unwrap()
                .expect("config")
        })
        .collect();
    let lead = tracks[0].index;
    let first_key = frames
        .iter()
        .position(|f| f.key && f.track == lead)
        .unwrap();
    let frames = &frames[first_key..];
    let mut groups: Vec<Vec<&Frame>> = Vec::new();
    let mut start = i64::MIN;
    for f in frames {
        let begins = f.track == lead && (f.dts - start >= 18_000 || (f.codec.is_video() && f.key));
        if begins || groups.is_empty() {
            if f.track == lead {
                start = f.dts;
            }
            groups.push(Vec::new());
        }
        groups.last_mut().unwrap().push(f);
    }
    let mut muxer = Fragmenter::new(configs);
    let mut file = muxer.init_segment().to_vec();
    let mut samples_written = vec![0; tracks.len()];
    for (k, g) in groups.iter().enumerate() {
        let next: Vec<Option<i64>> = tracks
            .iter()
            .map(|t| {
                groups[k + 1..]
                    .iter()
                    .flatten()
                    .find(|f| f.track == t.index)
                    .map(|f| f.dts)
            })
            .collect();
        let samples: Vec<(u8, &Frame)> = g
            .iter()
            .map(|f| {
                let t = tracks.iter().position(|t| t.index == f.track).unwrap();
                (t as u8, *f)
            })
            .collect();
        let fragment = muxer.fragment(&samples, &next).expect("fragment");
        for traf in all(boxes(&fragment)[0].body, "traf") {
            let track_id = be32(find(traf, &["tfhd"]).unwrap(), 4) as usize;
            samples_written[track_id - 1] += be32(find(traf, &["trun"]).unwrap(), 4) as usize;
        }
        file.extend_from_slice(&fragment);
    }
    (file, samples_written)
}

/// Opus packets ffprobe finds in `path`'s first audio stream.
fn audio_packets(path: &std::path::Path) -> usize {
    let s = probe_flat(
        path,
        &["-select_streams", "a:0", "-count_packets", "-show_streams"],
    );
    s["streams.stream.0.nb_read_packets"].parse().unwrap()
}

fn decode_check(name: &str, channels: u32, video: bool) {
    let Some(input) = opus_input(&format!("{name}.ts"), channels, video) else {
        return;
    };
    let (tracks, frames) = demux_srtgate(&std::fs::read(&input).unwrap());
    let want_tracks = if video {
        vec![Codec::H264, Codec::Opus]
    } else {
        vec![Codec::Opus]
    };
    assert_eq!(
        tracks.iter().map(|t| t.codec).collect::<Vec<_>>(),
        want_tracks
    );
    let opus_track = tracks
        .iter()
        .find(|t| t.codec == Codec::Opus)
        .unwrap()
        .index;
    let opus_frames = frames.iter().filter(|f| f.track == opus_track).count();
    let in_packets = audio_packets(&input);
    assert!(
        in_packets > opus_frames,
        "several access units per PES ({in_packets} in {opus_frames})"
    );

    let (file, samples) = mux(&tracks, &frames);
    let out = PathBuf::from(scratch(&format!("{name}.mp4")));
    std::fs::write(&out, &file).unwrap();
    let video_frames = frames.iter().filter(|f| f.codec.is_video()).count();
    let opus_pos = tracks.iter().position(|t| t.index == opus_track).unwrap();
    // With video the output starts at its first key frame: audio before it is cut.
    let opus_samples = samples[opus_pos];
    if video {
        assert!(
            opus_samples + 5 >= in_packets,
            "{opus_samples} of {in_packets}"
        );
    } else {
        assert_eq!(opus_samples, in_packets, "one sample per access unit");
    }

    let s = probe_flat(&out, &["-show_streams", "-count_frames"]);
    let a = if video { 1 } else { 0 };
    let stream = |i: usize, k: &str| s[&format!("streams.stream.{i}.{k}")].clone();
    assert_eq!(stream(a, "codec_name"), "opus");
    assert_eq!(stream(a, "sample_rate"), "48000");
    assert_eq!(stream(a, "channels"), channels.to_string());
    let decoded: usize = stream(a, "nb_read_frames").parse().unwrap();
    assert_eq!(decoded, opus_samples, "decoded Opus frames");
    if video {
        assert_eq!(stream(0, "codec_name"), "h264");
        assert_eq!(stream(0, "nb_read_frames"), video_frames.to_string());
    }

    let (_, errors) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"]))
    .unwrap();
    assert!(errors.trim().is_empty(), "decoder complained: {errors}");

    // Every packet decodes to its TOC duration (libopus: 20 ms).
    let pcm = out.with_extension("pcm");
    run(Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-i"])
        .arg(&out)
        .args(["-map", "0:a", "-f", "s16le", "-ac", &channels.to_string()])
        .arg(&pcm))
    .unwrap();
    let pcm_samples = std::fs::metadata(&pcm).unwrap().len() as usize / (2 * channels as usize);
    let _ = std::fs::remove_file(&pcm);
    assert_eq!(pcm_samples, decoded * 960, "samples decoded");
    let seconds = pcm_samples as f64 / 48_000.0;
    assert!((seconds - 4.0).abs() < 0.1, "{seconds} s of audio");
    eprintln!(
        "{}: {in_packets} Opus packets in {opus_frames} PES, {decoded} decoded, {seconds:.3} s, \
         {video_frames} video frames",
        out.display()
    );
}

#[test]
fn ffmpeg_decodes_stereo_opus() {
    decode_check("opus-stereo", 2, false);
}

#[test]
fn ffmpeg_decodes_mono_opus() {
    if has_encoder("libopus") {
        decode_check("opus-mono", 1, false);
    }
}

#[test]
fn ffmpeg_decodes_h264_with_opus() {
    decode_check("opus-h264", 2, true);
}
