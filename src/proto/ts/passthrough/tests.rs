use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::media::frame::Frame;
use crate::proto::ts::mux::{ES_PID_BASE, PMT_PID};
use crate::proto::ts::tests::{av_frames, av_tracks, mux_all};

const PAYLOAD: usize = PACKETS_PER_PAYLOAD * TS_PACKET_SIZE;

fn splitter(mark: bool) -> Splitter {
    let mut s = Splitter::new(mark);
    s.set_program(Some(PMT_PID), Some((ES_PID_BASE, Codec::H264)));
    s
}

fn split(s: &mut Splitter, ts: &[u8], piece: usize) -> Vec<TsChunk> {
    let ts = Bytes::copy_from_slice(ts);
    let mut out = Vec::new();
    let mut at = 0;
    while at < ts.len() {
        let end = (at + piece).min(ts.len());
        s.push(ts.slice(at..end), &mut out);
        at = end;
    }
    s.flush(&mut out);
    out
}

fn pid(pkt: &[u8]) -> u16 {
    u16::from_be_bytes([pkt[1] & 0x1F, pkt[2]])
}

fn pusi(pkt: &[u8]) -> bool {
    pkt[1] & 0x40 != 0
}

fn concat(chunks: &[TsChunk]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.data.iter().copied()).collect()
}

#[test]
fn chunks_are_the_publishers_bytes_and_keys_start_at_keyframe_pes() {
    let mut rng = StdRng::seed_from_u64(7);
    let frames = av_frames(&mut rng, 0, 60);
    let ts = mux_all(&av_tracks(), &frames);
    let mut s = splitter(false);
    let chunks = split(&mut s, &ts, PAYLOAD);
    // Nothing added, nothing lost, order kept.
    assert_eq!(concat(&chunks), ts);
    assert!(chunks
        .iter()
        .all(|c| c.data.len() <= PAYLOAD && c.data.len() % 188 == 0));
    let keyframes = frames.iter().filter(|f| f.track == 0 && f.key).count();
    let keys: Vec<_> = chunks.iter().filter(|c| c.key).collect();
    assert_eq!(keys.len(), keyframes);
    for k in &keys {
        // The muxer writes PAT + PMT before a keyframe; the chunk starts after them.
        assert_eq!(pid(&k.data), ES_PID_BASE);
        assert!(pusi(&k.data));
        let start = k.start.as_ref().expect("a keyframe chunk has a prelude");
        assert_eq!(start.len(), 2 * 188);
        assert_eq!((pid(&start[..188]), pid(&start[188..])), (0, PMT_PID));
        assert!(!k.discontinuity);
    }
    // Non-key chunks start where the previous one ended: no prelude.
    assert!(chunks.iter().filter(|c| !c.key).all(|c| c.start.is_none()));
    assert_eq!(s.stats().keys, keyframes as u64);
}

#[test]
fn any_payload_split_gives_the_same_keys() {
    let mut rng = StdRng::seed_from_u64(8);
    let frames = av_frames(&mut rng, 1000, 40);
    let ts = mux_all(&av_tracks(), &frames);
    let reference: Vec<Vec<u8>> = split(&mut splitter(false), &ts, PAYLOAD)
        .iter()
        .filter(|c| c.key)
        .map(|c| c.data[..188].to_vec())
        .collect();
    for piece in [188, 376, 1000, 1456, 5 * 188] {
        let mut s = splitter(false);
        let chunks = split(&mut s, &ts, piece);
        assert_eq!(concat(&chunks), ts, "piece {piece}");
        let keys: Vec<Vec<u8>> = chunks
            .iter()
            .filter(|c| c.key)
            .map(|c| c.data[..188].to_vec())
            .collect();
        assert_eq!(keys, reference, "piece {piece}");
    }
}

#[test]
fn keyframe_after_a_long_sei_is_found_across_packets() {
    // SEI of 2000 bytes, then SPS, PPS and IDR: the slice is 11 packets in.
    let mut au = vec![0, 0, 0, 1, 0x06];
    au.extend(std::iter::repeat_n(0x55, 2000));
    au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce]);
    au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    au.extend(std::iter::repeat_n(0x77, 3000));
    let frames = [
        Frame {
            track: 0,
            codec: Codec::H264,
            pts: 0,
            dts: 0,
            key: true,
            data: Bytes::from(au),
        },
        Frame {
            track: 0,
            codec: Codec::H264,
            pts: 3600,
            dts: 3600,
            key: false,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x41, 1, 2, 3]),
        },
    ];
    let ts = mux_all(&av_tracks(), &frames);
    let chunks = split(&mut splitter(false), &ts, PAYLOAD);
    assert_eq!(concat(&chunks), ts);
    let keys: Vec<_> = chunks.iter().filter(|c| c.key).collect();
    assert_eq!(keys.len(), 1);
    assert!(pusi(&keys[0].data) && pid(&keys[0].data) == ES_PID_BASE);
}

#[test]
fn following_publisher_marks_every_pid_once() {
    let mut rng = StdRng::seed_from_u64(9);
    let frames = av_frames(&mut rng, 0, 30);
    let ts = mux_all(&av_tracks(), &frames);
    let mut s = splitter(true);
    let chunks = split(&mut s, &ts, PAYLOAD);
    let out = concat(&chunks);
    let markers: Vec<&[u8]> = out
        .chunks(188)
        .filter(|p| p[3] & 0x30 == 0x20 && p[4] > 0 && p[5] & 0x80 != 0)
        .collect();
    let mut pids: Vec<u16> = markers.iter().map(|p| pid(p)).collect();
    pids.sort_unstable();
    assert_eq!(pids, vec![0, ES_PID_BASE, ES_PID_BASE + 1, PMT_PID]);
    // Without the markers the stream is the publisher's.
    let rest: Vec<u8> = out
        .chunks(188)
        .filter(|p| !markers.iter().any(|m| m.as_ptr() == p.as_ptr()))
        .flatten()
        .copied()
        .collect();
    assert_eq!(rest, ts);
    // Each marker's counter is the one before its PID's next packet.
    for (i, p) in out.chunks(188).enumerate() {
        if markers.iter().any(|m| m.as_ptr() == p.as_ptr()) {
            let next = out
                .chunks(188)
                .skip(i + 1)
                .find(|q| pid(q) == pid(p))
                .unwrap();
            assert_eq!((p[3] + 1) & 0x0F, next[3] & 0x0F);
        }
    }
    let first_key = chunks.iter().find(|c| c.key).unwrap();
    assert!(first_key.discontinuity);
    assert_eq!(first_key.start.as_ref().unwrap().len(), 4 * 188);
    assert!(chunks
        .iter()
        .filter(|c| c.key)
        .skip(1)
        .all(|c| !c.discontinuity));
}

#[test]
fn garbage_between_packets_is_dropped_and_counted() {
    let mut rng = StdRng::seed_from_u64(10);
    let frames = av_frames(&mut rng, 0, 20);
    let ts = mux_all(&av_tracks(), &frames);
    let mut dirty = Vec::new();
    for (i, p) in ts.chunks(188 * 7).enumerate() {
        dirty.extend_from_slice(p);
        if i % 5 == 2 {
            dirty.extend_from_slice(&[0x12; 33]);
        }
    }
    let mut s = splitter(false);
    let chunks = split(&mut s, &dirty, PAYLOAD);
    assert!(s.stats().dropped_bytes >= 33);
    assert!(chunks
        .iter()
        .all(|c| c.data.len() % 188 == 0 && c.data[0] == 0x47));
    assert!(chunks.iter().any(|c| c.key));
}

#[test]
fn random_bytes_never_panic_and_stay_bounded() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut s = splitter(true);
    let mut out = Vec::new();
    for _ in 0..2000 {
        let n = rng.gen_range(0..1600);
        let mut v: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) {
            for p in v.chunks_mut(188).filter(|p| p.len() > 2) {
                p[0] = 0x47;
                if rng.gen_bool(0.3) {
                    p[1] = (p[1] & 0xE0) | 0x01; // the video PID
                    p[2] = 0x00;
                }
            }
        }
        s.push(Bytes::from(v), &mut out);
        assert!(s.held_packets <= MAX_HELD && s.scan.len() <= MAX_SCAN + 188);
        out.clear();
    }
}
