//! Structural tests of the init segment and fragments, parsed back box by box.

use crate::common::{aac, all, annexb, be32, be64, boxes, find, h264, PPS, SPS};
use crate::fmp4::{init_segment, Codec, Fmp4Error, Fragmenter, Frame, TrackConfig};
use bytes::Bytes;

const T0: i64 = 8_000_000_000;

fn configs() -> Vec<TrackConfig> {
    let v = TrackConfig::from_frame(Codec::H264, &h264(T0, T0, true))
        .unwrap()
        .unwrap();
    let a = TrackConfig::from_frame(Codec::Aac, &aac(T0, 3))
        .unwrap()
        .unwrap();
    vec![v, a]
}

/// One `traf` as read back.
#[derive(Debug)]
struct Traf {
    track_id: u32,
    tfdt: u64,
    data_offset: usize,
    /// (duration, size, flags, composition offset)
    samples: Vec<(u32, u32, u32, i32)>,
}

/// Parses `moof`+`mdat`: (sequence number, trafs).
fn parse(fragment: &[u8]) -> (u32, Vec<Traf>) {
    let top = boxes(fragment);
    assert_eq!(top.len(), 2);
    assert_eq!(&top[0].fourcc, b"moof");
    assert_eq!(&top[1].fourcc, b"mdat");
    assert_eq!(top[0].start, 0);
    let moof = top[0].body;
    let seq = be32(find(moof, &["mfhd"]).unwrap(), 4);
    let trafs = all(moof, "traf")
        .into_iter()
        .map(|traf| {
            let tfhd = find(traf, &["tfhd"]).unwrap();
            assert_eq!(be32(tfhd, 0), 0x0002_0000, "default-base-is-moof only");
            let tfdt = find(traf, &["tfdt"]).unwrap();
            assert_eq!(tfdt[0], 1, "tfdt v1");
            let trun = find(traf, &["trun"]).unwrap();
            let flags = be32(trun, 0) & 0xff_ffff;
            let cto = flags & 0x800 != 0;
            assert_eq!(trun[0], u8::from(cto), "trun v1 iff composition offsets");
            let count = be32(trun, 4) as usize;
            let entry = if cto { 16 } else { 12 };
            assert_eq!(trun.len(), 12 + count * entry);
            let samples = (0..count)
                .map(|i| {
                    let e = 12 + i * entry;
                    let c = if cto { be32(trun, e + 12) as i32 } else { 0 };
                    (be32(trun, e), be32(trun, e + 4), be32(trun, e + 8), c)
                })
                .collect();
            Traf {
                track_id: be32(tfhd, 4),
                tfdt: be64(tfdt, 4),
                data_offset: be32(trun, 8) as usize,
                samples,
            }
        })
        .collect();
    (seq, trafs)
}

/// Sample payloads of a traf, located through data offset and sizes.
fn payloads<'a>(fragment: &'a [u8], traf: &Traf) -> Vec<&'a [u8]> {
    let mut pos = traf.data_offset;
    traf.samples
        .iter()
        .map(|&(_, size, _, _)| {
            let p = &fragment[pos..pos + size as usize];
            pos += size as usize;
            p
        })
        .collect()
}

#[test]
fn init_segment_layout() {
    let init = init_segment(&configs());
    let top = boxes(&init);
    assert_eq!(top.len(), 2);
    assert_eq!(top[0].body, b"iso6\0\0\0\0iso6iso5cmfcmp41");
    let moov = top[1].body;
    let names: Vec<[u8; 4]> = boxes(moov).iter().map(|b| b.fourcc).collect();
    assert_eq!(names, [*b"mvhd", *b"trak", *b"trak", *b"mvex"]);
    assert_eq!(be32(find(moov, &["mvhd"]).unwrap(), 96), 3, "next_track_ID");

    let traks = all(moov, "trak");
    let tkhd = find(traks[0], &["tkhd"]).unwrap();
    assert_eq!(
        (be32(tkhd, 12), be32(tkhd, 76), be32(tkhd, 80)),
        (1, 320 << 16, 240 << 16)
    );
    assert_eq!(be32(find(traks[1], &["tkhd"]).unwrap(), 12), 2);
    for (trak, timescale, handler) in [(traks[0], 90_000, b"vide"), (traks[1], 48_000, b"soun")] {
        assert_eq!(be32(find(trak, &["mdia", "mdhd"]).unwrap(), 12), timescale);
        assert_eq!(&find(trak, &["mdia", "hdlr"]).unwrap()[8..12], handler);
        let stbl = find(trak, &["mdia", "minf", "stbl"]).unwrap();
        let names: Vec<[u8; 4]> = boxes(stbl).iter().map(|b| b.fourcc).collect();
        assert_eq!(names, [*b"stsd", *b"stts", *b"stsc", *b"stco", *b"stsz"]);
    }

    let avcc = find(traks[0], &["mdia", "minf", "stbl", "stsd", "avc1", "avcC"]).unwrap();
    let mut want = vec![1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, SPS.len() as u8];
    want.extend_from_slice(SPS);
    want.extend_from_slice(&[1, 0, PPS.len() as u8]);
    want.extend_from_slice(PPS);
    assert_eq!(avcc, &want[..]);

    let mp4a = find(traks[1], &["mdia", "minf", "stbl", "stsd", "mp4a"]).unwrap();
    assert_eq!((be32(mp4a, 16) >> 16, be32(mp4a, 24) >> 16), (1, 48_000));
    let esds = find(traks[1], &["mdia", "minf", "stbl", "stsd", "mp4a", "esds"]).unwrap();
    assert!(
        esds.windows(4).any(|w| w == [0x05, 2, 0x11, 0x88]),
        "ASC LC/48k/mono"
    );

    let trex = all(find(moov, &["mvex"]).unwrap(), "trex");
    assert_eq!((be32(trex[0], 4), be32(trex[1], 4)), (1, 2));
}

#[test]
fn fragment_layout_and_payloads() {
    let mut m = Fragmenter::new(configs());
    let frames = [
        h264(T0 + 7200, T0, true),
        aac(T0 + 100, 3),
        h264(T0 + 18000, T0 + 3600, false),
        aac(T0 + 100 + 1920, 3),
        h264(T0 + 10800, T0 + 7200, false),
    ];
    let samples: Vec<(u8, &Frame)> = frames.iter().map(|f| (f.track, f)).collect();
    let frag = m.fragment(&samples, &[Some(T0 + 10800), None]).unwrap();
    let (seq, trafs) = parse(&frag);
    assert_eq!(seq, 1);
    assert_eq!(trafs.len(), 2);

    let v = &trafs[0];
    assert_eq!((v.track_id, v.tfdt), (1, 0));
    assert_eq!(
        v.samples,
        vec![
            (3600, 8, 0x0200_0000, 7200),
            (3600, 7, 0x0101_0000, 14400),
            (3600, 7, 0x0101_0000, 3600),
        ]
    );
    let p = payloads(&frag, v);
    assert_eq!(
        p[0],
        &[0, 0, 0, 4, 0x65, 0x88, 0x84, 0x21],
        "AUD, SPS, PPS dropped"
    );
    assert_eq!(p[1], &[0, 0, 0, 3, 0x41, 0x9a, 0x02]);

    let a = &trafs[1];
    assert_eq!((a.track_id, a.tfdt), (2, 53)); // round(100 * 48000 / 90000)
    assert_eq!(a.samples, vec![(1024, 20, 0x0200_0000, 0); 2]);
    let want: Vec<u8> = (0..20).collect();
    assert_eq!(
        payloads(&frag, a),
        vec![&want[..]; 2],
        "ADTS header stripped"
    );
    // The audio run directly follows the video run inside mdat.
    assert_eq!(a.data_offset, v.data_offset + 22);
    assert_eq!(&frag[v.data_offset - 4..v.data_offset], b"mdat");
}

#[test]
fn tfdt_and_sequence_continue_across_fragments() {
    let mut m = Fragmenter::new(configs());
    let mut expected_tfdt = [0u64; 2];
    for k in 0..10i64 {
        let base = T0 + k * 5 * 3600;
        let v: Vec<Frame> = (0..5)
            .map(|i| {
                h264(
                    base + i * 3600 + 7200,
                    base + i * 3600,
                    k % 5 == 0 && i == 0,
                )
            })
            .collect();
        let a: Vec<Frame> = (0..9).map(|i| aac(T0 + (k * 9 + i) * 1920, 3)).collect();
        let samples: Vec<(u8, &Frame)> = v.iter().chain(&a).map(|f| (f.track, f)).collect();
        let next = [Some(base + 5 * 3600), Some(T0 + (k + 1) * 9 * 1920)];
        let (seq, trafs) = parse(&m.fragment(&samples, &next).unwrap());
        assert_eq!(seq, k as u32 + 1);
        for (t, traf) in trafs.iter().enumerate() {
            assert_eq!(traf.tfdt, expected_tfdt[t], "fragment {k} track {t}");
            expected_tfdt[t] += traf.samples.iter().map(|s| u64::from(s.0)).sum::<u64>();
        }
    }
    assert_eq!(expected_tfdt, [50 * 3600, 90 * 1024]);
}

#[test]
fn last_sample_duration_fallbacks() {
    let mut m = Fragmenter::new(configs());
    // Nothing known yet: video 3000 ticks, AAC 1024 samples.
    let (v, a) = (h264(T0, T0, true), aac(T0, 3));
    let (_, t) = parse(&m.fragment(&[(0, &v), (1, &a)], &[]).unwrap());
    assert_eq!((t[0].samples[0].0, t[1].samples[0].0), (3000, 1024));
    // The previous duration within the fragment...
    let f: Vec<Frame> = (1..4)
        .map(|i| h264(T0 + i * 3750, T0 + i * 3750, false))
        .collect();
    let s: Vec<(u8, &Frame)> = f.iter().map(|f| (0, f)).collect();
    let (_, t) = parse(&m.fragment(&s, &[None]).unwrap());
    assert_eq!(t[0].tfdt, 3750);
    let durations: Vec<u32> = t[0].samples.iter().map(|s| s.0).collect();
    assert_eq!(durations, [3750, 3750, 3750]);
    // ...and across fragments.
    let f = h264(T0 + 4 * 3750, T0 + 4 * 3750, false);
    let (_, t) = parse(&m.fragment(&[(0, &f)], &[None]).unwrap());
    assert_eq!((t[0].tfdt, t[0].samples[0].0), (15000, 3750));
}

#[test]
fn audio_44k1_timing_does_not_drift() {
    // 44.1 kHz: a 1024-sample frame lasts 2089.795... 90 kHz ticks, so TS timestamps are
    // rounded. Every media time must still be within half a tick of the exact value.
    let rate = 44_100i128;
    let a44 = |n: i64| {
        let ts = T0 + ((n as i128 * 1024 * 90_000 + rate / 2) / rate) as i64;
        aac(ts, 4)
    };
    let cfg = TrackConfig::from_frame(Codec::Aac, &a44(0))
        .unwrap()
        .unwrap();
    assert_eq!(cfg.timescale(), 44_100);
    for hint in [true, false] {
        let mut m = Fragmenter::new(vec![cfg.clone()]);
        for k in 0..300i64 {
            let frames: Vec<Frame> = (0..7).map(|i| a44(k * 7 + i)).collect();
            let samples: Vec<(u8, &Frame)> = frames.iter().map(|f| (0, f)).collect();
            let next = [Some(a44(k * 7 + 7).dts).filter(|_| hint)];
            let (_, t) = parse(&m.fragment(&samples, &next).unwrap());
            let mut time = t[0].tfdt;
            for (i, f) in frames.iter().enumerate() {
                let exact = (f.dts - T0) as f64 * 44_100.0 / 90_000.0;
                assert!((time as f64 - exact).abs() <= 0.5, "k {k} i {i}");
                assert_eq!(time, (k as u64 * 7 + i as u64) * 1024);
                time += u64::from(t[0].samples[i].0);
            }
        }
    }
}

#[test]
fn parameter_sets_in_band_only_when_changed() {
    let mut m = Fragmenter::new(configs());
    let mut changed = SPS.to_vec();
    changed[3] = 0x1e; // level 3.0
    let f = Frame {
        data: annexb(&[&changed, PPS, &[0x65, 1]]),
        ..h264(T0, T0, true)
    };
    let frag = m.fragment(&[(0, &f)], &[]).unwrap();
    let (_, t) = parse(&frag);
    let p = payloads(&frag, &t[0])[0];
    let mut want = vec![0, 0, 0, changed.len() as u8];
    want.extend_from_slice(&changed);
    want.extend_from_slice(&[0, 0, 0, 2, 0x65, 1]);
    assert_eq!(p, &want[..]);
}

#[test]
fn absolute_origin() {
    let mut m = Fragmenter::new(configs()).with_origin(0);
    let v = h264(T0, T0, true);
    let (_, t) = parse(&m.fragment(&[(0, &v)], &[]).unwrap());
    assert_eq!(t[0].tfdt, T0 as u64);
    assert_eq!(m.origin(), Some(0));
}

#[test]
fn errors_leave_state_untouched() {
    let mut m = Fragmenter::new(configs());
    let v0 = h264(T0, T0, true);
    let a0 = aac(T0, 3);
    m.fragment(&[(0, &v0)], &[]).unwrap();

    let err = |m: &mut Fragmenter, s: &[(u8, &Frame)]| m.fragment(s, &[]).unwrap_err();
    assert_eq!(err(&mut m, &[]), Fmp4Error::NoSamples);
    assert_eq!(err(&mut m, &[(2, &v0)]), Fmp4Error::UnknownTrack(2));
    assert!(matches!(
        err(&mut m, &[(0, &a0)]),
        Fmp4Error::CodecMismatch { .. }
    ));
    let old = h264(T0 - 1, T0 - 1, false);
    assert!(matches!(
        err(&mut m, &[(0, &old)]),
        Fmp4Error::NonMonotonicDts { .. }
    ));
    let early = aac(T0 - 10, 3);
    assert!(matches!(
        err(&mut m, &[(1, &early)]),
        Fmp4Error::TimestampBeforeOrigin { .. }
    ));
    let stereo_44k = Frame {
        data: Bytes::from(crate::common::adts(4, 2, 10)),
        ..aac(T0, 3)
    };
    assert!(matches!(
        err(&mut m, &[(1, &stereo_44k)]),
        Fmp4Error::MalformedAdts(_)
    ));
    let aud_only = Frame {
        data: annexb(&[]),
        ..h264(T0 + 3600, T0 + 3600, false)
    };
    assert!(matches!(
        err(&mut m, &[(0, &aud_only)]),
        Fmp4Error::InvalidAnnexB(_)
    ));
    let v1 = h264(T0 + 3600, T0 + 3600, false);
    let hint = m.fragment(&[(0, &v1)], &[Some(T0)]).unwrap_err();
    assert!(matches!(hint, Fmp4Error::NonMonotonicDts { .. }));

    // None of the failures advanced the sequence number or the dts state.
    let (seq, t) = parse(&m.fragment(&[(0, &v1)], &[]).unwrap());
    assert_eq!((seq, t[0].tfdt), (2, 3600));
}

#[test]
fn config_errors() {
    let opus = Frame {
        codec: Codec::Opus,
        ..aac(0, 3)
    };
    assert!(matches!(
        TrackConfig::from_frame(Codec::Opus, &opus),
        Err(Fmp4Error::MalformedOpus(_))
    ));
    assert!(matches!(
        TrackConfig::from_frame(Codec::H264, &opus),
        Err(Fmp4Error::CodecMismatch { .. })
    ));
    let key_without_sps = Frame {
        data: annexb(&[PPS, &[0x65, 1]]),
        ..h264(0, 0, true)
    };
    let err = TrackConfig::from_frame(Codec::H264, &key_without_sps).unwrap_err();
    assert_eq!(err.to_string(), "H264 key frame carries no SPS");
    assert_eq!(
        TrackConfig::from_frame(Codec::H264, &h264(0, 0, false)),
        Ok(None)
    );
    let v = configs().remove(0);
    assert_eq!(v.codec_string(), "avc1.42c00d");
    assert_eq!(v.dimensions(), Some((320, 240)));
}
