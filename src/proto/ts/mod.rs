//! MPEG-TS: the demuxer (publisher ingest) and the muxer (reader output).
//!
//! Owns the transport stream container: packets, PSI, PES, and the mapping to
//! and from [`crate::media::frame::Frame`]. Sans-IO: callers hand in bytes or
//! frames and get events or bytes back; nothing here does I/O, reads clocks,
//! spawns tasks or panics on input. The tests here run both directions together
//! and against ffmpeg when it is installed.

pub mod demux;
pub mod mux;
pub mod passthrough;
pub mod pes;
pub mod psi;

pub use demux::{DemuxEvent, DemuxStats, TsDemuxer, TS_PACKET_SIZE};
pub use mux::TsMuxer;
pub use pes::PesError;
pub use psi::PsiError;

/// Tests across demuxer and muxer, and the shared synthetic stream helpers.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::frame::{Codec, Frame, TrackInfo};
    use crate::proto::codec::{aac, h264, h265};
    use crate::proto::ts::mux::{section_packets, PMT_PID};
    use crate::proto::ts::psi::{Pat, PatProgram, Pmt, PmtStream, PAT_PID};
    use bytes::Bytes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::path::Path;
    use std::process::Command;

    pub(crate) fn av_tracks() -> Vec<TrackInfo> {
        vec![
            TrackInfo {
                index: 0,
                codec: Codec::H264,
                source_pid: 0x100,
            },
            TrackInfo {
                index: 1,
                codec: Codec::Aac,
                source_pid: 0x101,
            },
        ]
    }

    /// Random bytes without zeros, so they never form start codes.
    fn body(rng: &mut StdRng, len: usize) -> Vec<u8> {
        (0..len).map(|_| rng.gen_range(1..=255u8)).collect()
    }

    fn nal(v: &mut Vec<u8>, header: u8, body: &[u8]) {
        v.extend_from_slice(&[0, 0, 0, 1, header]);
        v.extend_from_slice(body);
    }

    /// H.264 + AAC frames in DTS order (video first on ties): 25 fps with a GOP
    /// of 10 and B-frame-like PTS offsets, AAC at 48 kHz.
    pub(crate) fn av_frames(rng: &mut StdRng, start: i64, video_frames: usize) -> Vec<Frame> {
        let mut frames = Vec::new();
        for i in 0..video_frames {
            let key = i % 10 == 0;
            let mut au = Vec::new();
            if i % 3 == 1 {
                au.extend_from_slice(&h264::AUD); // some already have a delimiter
            }
            if key {
                nal(&mut au, 0x67, &body(rng, 12));
                nal(&mut au, 0x68, &body(rng, 4));
                let n = rng.gen_range(2000..30000);
                nal(&mut au, 0x65, &body(rng, n));
            } else {
                // Sizes around packet boundaries, tiny and large.
                let n = match i % 5 {
                    0 => rng.gen_range(1..4),
                    1 => 184 - 19 - 5 - 6 + rng.gen_range(0..4),
                    _ => rng.gen_range(100..6000),
                };
                nal(&mut au, 0x41, &body(rng, n));
            }
            let dts = start + i as i64 * 3600;
            let pts = dts + if key { 0 } else { 7200 * (i as i64 % 2) };
            frames.push(Frame {
                track: 0,
                codec: Codec::H264,
                pts,
                dts,
                key,
                data: Bytes::from(au),
            });
        }
        let audio_frames = video_frames * 3600 / 1920;
        for i in 0..audio_frames {
            let ts = start + i as i64 * 1920;
            let n = rng.gen_range(1..700);
            frames.push(Frame {
                track: 1,
                codec: Codec::Aac,
                pts: ts,
                dts: ts,
                key: true,
                data: Bytes::from(aac::test_frame(3, 2, &body(rng, n))),
            });
        }
        frames.sort_by_key(|f| (f.dts, f.track));
        frames
    }

    pub(crate) fn mux_all(tracks: &[TrackInfo], frames: &[Frame]) -> Vec<u8> {
        let mut mux = TsMuxer::new(tracks);
        let mut ts = Vec::new();
        for f in frames {
            let b = mux.mux(f);
            assert_eq!(b.len() % TS_PACKET_SIZE, 0);
            ts.extend_from_slice(&b);
        }
        ts
    }

    /// Demuxes `ts` pushed in random-sized pieces; returns tracks events and frames.
    pub(crate) fn demux_split(
        ts: &[u8],
        rng: &mut StdRng,
        max_piece: usize,
    ) -> (TsDemuxer, Vec<Vec<TrackInfo>>, Vec<Frame>) {
        let mut demux = TsDemuxer::new();
        let mut events = Vec::new();
        let mut pos = 0;
        while pos < ts.len() {
            let n = rng.gen_range(1..=max_piece).min(ts.len() - pos);
            demux.push(&ts[pos..pos + n], &mut events);
            pos += n;
        }
        demux.flush(&mut events);
        let mut tracks = Vec::new();
        let mut frames = Vec::new();
        for e in events {
            match e {
                DemuxEvent::Tracks(t) => tracks.push(t),
                DemuxEvent::Frame(f) => frames.push(f),
            }
        }
        (demux, tracks, frames)
    }

    /// What the demuxer should return for a muxed frame: the AUD the muxer adds.
    pub(crate) fn expected(f: &Frame) -> Frame {
        let mut f = f.clone();
        let aud: &[u8] = match f.codec {
            Codec::H264 if !h264::starts_with_aud(&f.data) => &h264::AUD,
            Codec::H265 if !h265::starts_with_aud(&f.data) => &h265::AUD,
            _ => &[],
        };
        if !aud.is_empty() {
            f.data = Bytes::from([aud, &f.data[..]].concat());
        }
        f
    }

    pub(crate) fn by_track(frames: &[Frame], track: u8) -> Vec<Frame> {
        frames
            .iter()
            .filter(|f| f.track == track)
            .cloned()
            .collect()
    }

    #[test]
    fn round_trip_random_splits() {
        let mut rng = StdRng::seed_from_u64(1);
        let tracks = av_tracks();
        let frames = av_frames(&mut rng, 90_000, 120);
        let ts = mux_all(&tracks, &frames);
        for max_piece in [1, 7, 188, 1316, 5000, 70_000] {
            let (demux, got_tracks, got) = demux_split(&ts, &mut rng, max_piece);
            assert_eq!(got_tracks, vec![tracks.clone()], "max_piece {max_piece}");
            for t in 0..2 {
                let want: Vec<Frame> = by_track(&frames, t).iter().map(expected).collect();
                assert_eq!(by_track(&got, t), want, "track {t}, max_piece {max_piece}");
            }
            let s = demux.stats();
            assert_eq!(s.frames as usize, frames.len());
            assert_eq!(
                (s.cc_errors, s.pes_errors, s.resyncs, s.bytes_discarded),
                (0, 0, 0, 0),
                "{s:?}"
            );
            assert_eq!(s.packets as usize, ts.len() / TS_PACKET_SIZE);
        }
    }

    #[test]
    fn timestamps_unwrap_across_2_pow_33() {
        let mut rng = StdRng::seed_from_u64(2);
        let tracks = av_tracks();
        let start = (1i64 << 33) - 3 * 90_000;
        let frames = av_frames(&mut rng, start, 150); // 6 s: crosses the wrap
        assert!(frames.last().unwrap().dts > 1 << 33);
        let ts = mux_all(&tracks, &frames);
        let (_, _, got) = demux_split(&ts, &mut rng, 1316);
        for t in 0..2 {
            let want: Vec<Frame> = by_track(&frames, t).iter().map(expected).collect();
            assert_eq!(by_track(&got, t), want);
        }
    }

    fn run(cmd: &mut Command) -> std::process::Output {
        let out = cmd.output().expect("spawn");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Demuxes a file made by ffmpeg, remuxes it, and has ffprobe / ffmpeg read it.
    #[test]
    fn real_ffmpeg_peer() {
        if Command::new("ffmpeg").arg("-version").output().is_err() {
            eprintln!("SKIPPED real_ffmpeg_peer: ffmpeg is not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("srtgate-ts-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("x.ts");
        let output = dir.join("out.ts");
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .args([
                "testsrc2=size=320x240:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-c:a",
                "aac",
                "-f",
                "mpegts",
            ])
            .arg(path(&input)));
        let ts = std::fs::read(&input).unwrap();

        let mut demux = TsDemuxer::new();
        let mut events = Vec::new();
        for chunk in ts.chunks(7 * TS_PACKET_SIZE) {
            demux.push(chunk, &mut events);
        }
        demux.flush(&mut events);
        let tracks = demux.tracks().to_vec();
        let codecs: Vec<Codec> = tracks.iter().map(|t| t.codec).collect();
        assert_eq!(codecs, vec![Codec::H264, Codec::Aac]);
        let frames: Vec<Frame> = events
            .into_iter()
            .filter_map(|e| match e {
                DemuxEvent::Frame(f) => Some(f),
                DemuxEvent::Tracks(_) => None,
            })
            .collect();
        let video = by_track(&frames, tracks[0].index);
        let audio = by_track(&frames, tracks[1].index);
        let keys: Vec<usize> = (0..video.len()).filter(|&i| video[i].key).collect();
        eprintln!(
            "ffmpeg file: {} video frames, keyframes at {keys:?}, {} AAC frames",
            video.len(),
            audio.len()
        );
        assert!(video.len() >= 45, "{} video frames", video.len());
        assert_eq!(keys, (0..video.len()).step_by(25).collect::<Vec<_>>());
        assert!(
            (90..=100).contains(&audio.len()),
            "{} AAC frames",
            audio.len()
        );
        for w in audio.windows(2) {
            assert!((w[1].pts - w[0].pts - 1920).abs() <= 1, "AAC frame spacing");
        }
        for w in video.windows(2) {
            assert_eq!(w[1].dts - w[0].dts, 3600);
        }
        let s = demux.stats();
        assert_eq!((s.cc_errors, s.pes_errors, s.resyncs), (0, 0, 0), "{s:?}");

        let remuxed = mux_all(&tracks, &frames);
        std::fs::write(&output, &remuxed).unwrap();
        let probe = run(Command::new("ffprobe")
            .args(["-v", "error", "-show_streams"])
            .arg(path(&output)));
        let probe = String::from_utf8_lossy(&probe.stdout);
        assert!(probe.contains("codec_name=h264"), "{probe}");
        assert!(probe.contains("codec_name=aac"), "{probe}");
        let decode = run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path(&output))
            .args(["-f", "null", "-"]));
        let errors = String::from_utf8_lossy(&decode.stderr);
        assert!(errors.trim().is_empty(), "ffmpeg errors: {errors}");

        // Our own output demuxes back to the same frames.
        let mut rng = StdRng::seed_from_u64(5);
        let (_, _, again) = demux_split(&remuxed, &mut rng, 1316);
        assert_eq!(by_track(&again, 0), video);
        assert_eq!(by_track(&again, 1), audio);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Per-frame byte offsets of a muxed stream.
    fn mux_with_offsets(tracks: &[TrackInfo], frames: &[Frame]) -> (Vec<u8>, Vec<usize>) {
        let mut mux = TsMuxer::new(tracks);
        let (mut ts, mut offsets) = (Vec::new(), Vec::new());
        for f in frames {
            offsets.push(ts.len());
            ts.extend_from_slice(&mux.mux(f));
        }
        (ts, offsets)
    }

    pub(crate) fn pid_of(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[1] & 0x1F, p[2]])
    }

    /// `got` is `want` with some elements missing, in order.
    pub(crate) fn is_subsequence(got: &[Frame], want: &[Frame]) -> bool {
        let mut it = want.iter();
        got.iter().all(|g| it.any(|w| w == g))
    }

    #[test]
    fn garbage_flips_and_truncation_then_recovery() {
        let mut rng = StdRng::seed_from_u64(8);
        let tracks = av_tracks();
        let frames = av_frames(&mut rng, 90_000, 200);
        let want: Vec<Frame> = frames.iter().map(expected).collect();
        let (ts, offsets) = mux_with_offsets(&tracks, &frames);
        // Corrupt everything before the 90th video frame; expect exact frames
        // from the 100th (a keyframe) on.
        let video_at = |n: usize| {
            (0..frames.len())
                .filter(|&i| frames[i].track == 0)
                .nth(n)
                .unwrap()
        };
        let (cut, intact_dts) = (offsets[video_at(90)], frames[video_at(100)].dts);
        let mut bad = Vec::new();
        let mut garbage = 0;
        for (k, p) in ts[..cut].chunks(TS_PACKET_SIZE).enumerate() {
            match k % 23 {
                3 => {
                    let n = rng.gen_range(1..400);
                    bad.extend((0..n).map(|_| rng.gen::<u8>() & 0x3F)); // never 0x47
                    garbage += n;
                    bad.extend_from_slice(p);
                }
                9 => bad.extend_from_slice(&p[..rng.gen_range(1..TS_PACKET_SIZE)]),
                15 => {
                    let mut p = p.to_vec();
                    p[rng.gen_range(1..TS_PACKET_SIZE)] ^= 1 << rng.gen_range(0..8);
                    bad.extend_from_slice(&p);
                }
                _ => bad.extend_from_slice(p),
            }
        }
        bad.extend_from_slice(&ts[cut..]);
        let (demux, tracks_seen, got) = demux_split(&bad, &mut rng, 2000);
        let s = demux.stats();
        assert!(
            s.resyncs > 0 && s.bytes_discarded >= garbage as u64,
            "{s:?}"
        );
        assert!(s.cc_errors > 0 && s.frames > 0, "{s:?}");
        assert_eq!(tracks_seen, vec![tracks]);
        for t in 0..2 {
            let tail = |v: &[Frame]| -> Vec<Frame> {
                v.iter()
                    .filter(|f| f.track == t && f.dts >= intact_dts)
                    .cloned()
                    .collect()
            };
            assert_eq!(tail(&got), tail(&want), "track {t}");
            assert!(tail(&want).len() > 50);
        }
    }

    #[test]
    fn fuzz_random_buffers() {
        let mut rng = StdRng::seed_from_u64(9);
        let valid = mux_all(&av_tracks(), &av_frames(&mut rng, 0, 30));
        let psi = valid[..2 * TS_PACKET_SIZE].to_vec(); // PAT + PMT
        let pids = [0x0000, 0x1000, 0x100, 0x101, 0x1FFF];
        let mut demux = TsDemuxer::new();
        let mut out = Vec::new();
        let mut max_footprint = 0;
        for i in 0..10_000 {
            let len = rng.gen_range(0..4000);
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf[..]);
            if i % 4 != 0 {
                // Packet-shaped: sync bytes, likely PIDs, often a PES start.
                for p in buf.chunks_mut(TS_PACKET_SIZE) {
                    p[0] = 0x47;
                    if p.len() >= 10 {
                        let pid: u16 = pids[rng.gen_range(0..pids.len())];
                        p[1] = (p[1] & 0xE0) | (pid >> 8) as u8;
                        p[2] = pid as u8;
                        if rng.gen_bool(0.5) {
                            p[4..8].copy_from_slice(&[0, 0, 1, 0xE0]);
                        }
                    }
                }
            }
            if i % 4 == 2 {
                // Mutated real stream.
                let start = rng.gen_range(0..valid.len());
                buf = valid[start..(start + len).min(valid.len())].to_vec();
                for _ in 0..=len / 64 {
                    if let Some(b) = buf.get_mut(rng.gen_range(0..len.max(1))) {
                        *b = rng.gen();
                    }
                }
            }
            if i % 50 == 0 {
                demux.push(&psi, &mut out);
            }
            demux.push(&buf, &mut out);
            out.clear();
            max_footprint = max_footprint.max(demux.footprint());
        }
        let s = demux.stats();
        eprintln!("fuzz: {s:?}, max footprint {max_footprint} bytes");
        assert!(s.frames > 0 && s.pes_errors > 0 && s.cc_errors > 0 && s.resyncs > 0);
        assert!(max_footprint < 2 << 20, "{max_footprint}");
    }

    /// One packet, padded with adaptation-field stuffing.
    fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x47,
            (u8::from(pusi) << 6) | (pid >> 8) as u8,
            pid as u8,
            0x10 | cc,
        ];
        let stuffing = 184 - payload.len();
        if stuffing > 0 {
            p[3] |= 0x20;
            p.push(stuffing as u8 - 1);
            p.resize(4 + stuffing, 0xFF);
            if stuffing > 1 {
                p[5] = 0;
            }
        }
        p.extend_from_slice(payload);
        p
    }

    fn pat() -> Vec<u8> {
        let programs = vec![PatProgram {
            number: 1,
            pmt_pid: PMT_PID,
        }];
        let pat = Pat {
            transport_stream_id: 1,
            version: 0,
            programs,
        };
        section_packets(PAT_PID, &pat.to_section())
    }

    fn pmt(version: u8, cc: u8, streams: &[(u8, u16)]) -> Vec<u8> {
        let streams = streams
            .iter()
            .map(|&(stream_type, pid)| PmtStream {
                stream_type,
                pid,
                descriptors: vec![],
            })
            .collect();
        let pmt = Pmt {
            program_number: 1,
            version,
            pcr_pid: 0x1FFF,
            program_info: vec![],
            streams,
        };
        let mut p = section_packets(PMT_PID, &pmt.to_section());
        p[3] |= cc;
        p
    }

    fn track(index: u8, codec: Codec, source_pid: u16) -> TrackInfo {
        TrackInfo {
            index,
            codec,
            source_pid,
        }
    }

    #[test]
    fn pmt_changes_keep_indices_and_count_unsupported() {
        let mut d = TsDemuxer::new();
        let mut out = Vec::new();
        let a = [(0x1B, 0x100), (0x0F, 0x101)];
        let b = [(0x0F, 0x101), (0x24, 0x102), (0x86, 0x103)];
        let mut ts = [pat(), pmt(0, 0, &a), pmt(0, 1, &a), pmt(1, 2, &b)].concat();
        ts.extend(packet(0x103, true, 0, &[1; 10]));
        ts.extend(packet(0x103, false, 1, &[2; 10]));
        ts.extend(pmt(2, 3, &a));
        d.push(&ts, &mut out);
        let av = vec![track(0, Codec::H264, 0x100), track(1, Codec::Aac, 0x101)];
        let b_tracks = vec![track(0, Codec::H265, 0x102), track(1, Codec::Aac, 0x101)];
        let expected: Vec<DemuxEvent> = [av.clone(), b_tracks, av.clone()]
            .into_iter()
            .map(DemuxEvent::Tracks)
            .collect();
        assert_eq!(out, expected);
        assert_eq!(d.tracks(), &av[..]);
        assert_eq!(d.stats().unsupported_packets, 2);
    }

    #[test]
    fn malformed_packets_and_split_pes_header() {
        let mut d = TsDemuxer::new();
        let mut out = Vec::new();
        let mut ts = [pat(), pmt(0, 0, &[(0x1B, 0x100)])].concat();
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        pes.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        // PES 1: header split after 4 bytes; PES 2 ends it.
        ts.extend(packet(0x100, true, 0, &pes[..4]));
        ts.extend(packet(0x100, false, 1, &pes[4..]));
        ts.extend(packet(0x100, true, 2, &pes));
        // adaptation_field_length 200 drops PES 2; a TEI packet then a CC gap.
        let mut bad = packet(0x100, false, 3, &[9; 100]);
        bad[4] = 200;
        ts.extend(bad);
        ts.extend(packet(0x100, true, 3, &pes));
        let mut tei = packet(0x100, false, 4, &[7; 50]);
        tei[1] |= 0x80;
        ts.extend(tei);
        ts.extend(packet(0x100, true, 5, &pes));
        ts.extend(packet(0x100, true, 6, &pes[..9])); // header cut short
        ts.extend(packet(0x100, true, 7, &pes));
        d.push(&ts, &mut out);
        d.flush(&mut out);
        let frames: Vec<&Frame> = out
            .iter()
            .filter_map(|e| {
                if let DemuxEvent::Frame(f) = e {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        // Each PES here ends in a stuffed packet, so it is complete (and
        // emitted) before the damage that follows it: only the PES whose
        // header was cut short is lost.
        assert_eq!(frames.len(), 5, "{frames:?}");
        for f in frames {
            assert_eq!((f.pts, f.dts, f.key), (0, 0, true));
            assert_eq!(&f.data[..], &pes[14..]);
        }
        let s = d.stats();
        assert_eq!((s.cc_errors, s.pes_errors, s.frames), (1, 1, 5), "{s:?}");
    }

    #[test]
    fn stuffing_ends_a_video_pes_at_once_unless_the_muxer_pads_mid_pes() {
        let mut d = TsDemuxer::new();
        let mut out = Vec::new();
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        pes.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        let mut ts = [pat(), pmt(0, 0, &[(0x1B, 0x100)])].concat();
        ts.extend(packet(0x100, true, 0, &pes));
        d.push(&ts, &mut out);
        let frames = |out: &Vec<DemuxEvent>| {
            out.iter()
                .filter(|e| matches!(e, DemuxEvent::Frame(_)))
                .count()
        };
        // Out before the next packet start arrives.
        assert_eq!(frames(&out), 1);
        // A muxer that pads inside a PES: the continuation costs that frame once,
        // then PES packets end at packet starts again.
        let mut ts = packet(0x100, true, 1, &pes[..16]);
        ts.extend(packet(0x100, false, 2, &pes[16..]));
        ts.extend(packet(0x100, true, 3, &pes[..16]));
        ts.extend(packet(0x100, false, 4, &pes[16..]));
        ts.extend(packet(0x100, true, 5, &pes));
        out.clear();
        d.push(&ts, &mut out);
        let got: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::Frame(f) => Some(f.data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![2, pes.len() - 14], "{got:?}");
    }
}
