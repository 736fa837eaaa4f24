//! Fuzz-ish robustness: random and mutated payloads / timestamps must yield `Ok` or
//! `Err`, never a panic.

use crate::common::{aac, h264, PPS, SPS};
use crate::fmp4::{Codec, Fragmenter, Frame, TrackConfig};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CODECS: [Codec; 4] = [Codec::H264, Codec::H265, Codec::Aac, Codec::Opus];

/// Random bytes, sometimes salted with start codes and codec-typical headers.
fn payload(rng: &mut StdRng, codec: Codec) -> Vec<u8> {
    let len = rng.gen_range(0..200);
    let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
    let salt: &[&[u8]] = match codec {
        Codec::H264 => &[
            &[0, 0, 1, 0x67],
            &[0, 0, 1, 0x68],
            &[0, 0, 0, 1, 0x09],
            &[0, 0, 1, 0x65],
        ],
        Codec::H265 => &[
            &[0, 0, 1, 0x40, 1],
            &[0, 0, 1, 0x42, 1],
            &[0, 0, 1, 0x44, 1],
        ],
        _ => &[&[0xff, 0xf1], &[0, 0, 1]],
    };
    for _ in 0..rng.gen_range(0..4) {
        let s = salt[rng.gen_range(0..salt.len())];
        let at = rng.gen_range(0..=v.len());
        v.splice(at..at, s.iter().copied());
    }
    v
}

/// A valid H.264 key frame or ADTS frame with a few random byte flips / truncation.
fn mutated(rng: &mut StdRng) -> Frame {
    let mut f = if rng.gen() {
        h264(0, 0, true)
    } else {
        aac(0, rng.gen_range(0..16))
    };
    let mut v = f.data.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        let i = rng.gen_range(0..v.len());
        v[i] = rng.gen();
    }
    if rng.gen_bool(0.3) {
        v.truncate(rng.gen_range(0..v.len()));
    }
    f.data = Bytes::from(v);
    f
}

fn random_frame(rng: &mut StdRng) -> Frame {
    let codec = CODECS[rng.gen_range(0..CODECS.len())];
    let dts = rng.gen_range(-1_000_000i64..1_000_000) * rng.gen_range(1..10_000);
    Frame {
        track: rng.gen_range(0..3),
        codec,
        pts: dts + rng.gen_range(-10_000..10_000),
        dts,
        key: rng.gen(),
        data: Bytes::from(payload(rng, codec)),
    }
}

#[test]
fn track_config_never_panics() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut built = 0;
    for _ in 0..50_000 {
        let f = random_frame(&mut rng);
        if let Ok(Some(cfg)) = TrackConfig::from_frame(f.codec, &f) {
            built += 1;
            let _ = crate::fmp4::init_segment(&[cfg]);
        }
        let m = mutated(&mut rng);
        if let Ok(Some(cfg)) = TrackConfig::from_frame(m.codec, &m) {
            let _ = crate::fmp4::init_segment(&[cfg]);
        }
    }
    eprintln!("random frames that produced a config: {built}");
}

#[test]
fn fragment_never_panics() {
    let mut rng = StdRng::seed_from_u64(2);
    let v = TrackConfig::from_frame(Codec::H264, &h264(0, 0, true))
        .unwrap()
        .unwrap();
    let a = TrackConfig::from_frame(Codec::Aac, &aac(0, 3))
        .unwrap()
        .unwrap();
    let mut ok = 0;
    for _ in 0..2_000 {
        let mut m = Fragmenter::new(vec![v.clone(), a.clone()]);
        if rng.gen() {
            m = m.with_origin(rng.gen_range(-1_000_000..1_000_000));
        }
        let mut dts = rng.gen_range(-1_000_000i64..10_000_000_000);
        for _ in 0..5 {
            let frames: Vec<Frame> = (0..rng.gen_range(0..8))
                .map(|_| {
                    if rng.gen_bool(0.3) {
                        let mut f = random_frame(&mut rng);
                        if rng.gen_bool(0.5) {
                            f.data = mutated(&mut rng).data;
                        }
                        return f;
                    }
                    // Plausible frame: right track/codec, increasing dts, odd payload.
                    dts += rng.gen_range(0..4000);
                    let mut f = if rng.gen() {
                        h264(dts + rng.gen_range(-100..10_000), dts, rng.gen())
                    } else {
                        aac(dts, 3)
                    };
                    if rng.gen_bool(0.5) {
                        f.data = Bytes::from(payload(&mut rng, f.codec));
                    }
                    f
                })
                .collect();
            let samples: Vec<(u8, &Frame)> = frames.iter().map(|f| (f.track, f)).collect();
            let next: Vec<Option<i64>> = (0..rng.gen_range(0..4))
                .map(|_| rng.gen::<bool>().then(|| rng.gen()))
                .collect();
            if m.fragment(&samples, &next).is_ok() {
                ok += 1;
            }
        }
    }
    eprintln!("random fragments accepted: {ok}");
}

#[test]
fn extreme_timestamps_are_errors_not_panics() {
    let v = TrackConfig::from_frame(Codec::H264, &h264(0, 0, true))
        .unwrap()
        .unwrap();
    let extremes = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    for &origin in &extremes {
        for &dts in &extremes {
            for &pts in &extremes {
                let mut m = Fragmenter::new(vec![v.clone()]).with_origin(origin);
                let f = h264(pts, dts, true);
                for &next in &extremes {
                    let _ = m.fragment(&[(0, &f)], &[Some(next)]);
                }
            }
        }
    }
}

#[test]
fn sps_pps_survive_garbage_around_them() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..1_000 {
        let mut v: Vec<u8> = (0..rng.gen_range(0..50)).map(|_| rng.gen()).collect();
        for unit in [SPS, PPS] {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(unit);
        }
        v.extend_from_slice(&[0, 0, 1, 0x65, 0x11]);
        let f = Frame {
            data: Bytes::from(v),
            ..h264(0, 0, true)
        };
        let cfg = TrackConfig::from_frame(Codec::H264, &f);
        assert!(matches!(cfg, Ok(Some(_))), "{cfg:?}");
    }
}
