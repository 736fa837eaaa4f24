//! Test-only helpers: a minimal MPEG-TS demuxer (PAT/PMT, PES reassembly, PTS/DTS,
//! ADTS splitting), srtgate's own demuxer for streams it does not know (Opus), and a
//! tiny ISO BMFF box walker.
#![allow(dead_code)]

use std::collections::HashMap;

use crate::fmp4::{Codec, Frame};
use bytes::Bytes;

const STREAM_TYPE_AAC: u8 = 0x0f;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_H265: u8 = 0x24;

/// One reassembled PES packet.
struct Pes {
    pts: i64,
    dts: i64,
    data: Vec<u8>,
}

/// Demuxes a TS file into frames: video on track 0, AAC on track 1. `shift` is added to
/// every timestamp (to exercise large, arbitrary starting points).
pub fn demux_ts(ts: &[u8], shift: i64) -> Vec<Frame> {
    let mut pmt_pid = None;
    let mut streams: HashMap<u16, u8> = HashMap::new();
    let mut buffers: HashMap<u16, Vec<u8>> = HashMap::new();
    let mut frames = Vec::new();
    for pkt in ts.chunks_exact(188) {
        assert_eq!(pkt[0], 0x47, "lost TS sync");
        let pid = (u16::from(pkt[1] & 0x1f) << 8) | u16::from(pkt[2]);
        let pusi = pkt[1] & 0x40 != 0;
        let afc = (pkt[3] >> 4) & 3;
        let mut off = 4;
        if afc & 2 != 0 {
            off += 1 + usize::from(pkt[4]);
        }
        if afc & 1 == 0 || off >= 188 {
            continue;
        }
        let payload = &pkt[off..];
        if pid == 0 && pusi {
            pmt_pid = Some(parse_pat(payload));
        } else if Some(pid) == pmt_pid && pusi {
            streams = parse_pmt(payload);
        } else if let Some(&stream_type) = streams.get(&pid) {
            let buf = buffers.entry(pid).or_default();
            if pusi && !buf.is_empty() {
                emit(stream_type, &std::mem::take(buf), shift, &mut frames);
            }
            buf.extend_from_slice(payload);
        }
    }
    for (pid, buf) in buffers {
        if !buf.is_empty() {
            emit(streams[&pid], &buf, shift, &mut frames);
        }
    }
    frames
}

fn section(payload: &[u8]) -> &[u8] {
    let pointer = usize::from(payload[0]);
    let s = &payload[1 + pointer..];
    let len = (usize::from(s[1] & 0x0f) << 8) | usize::from(s[2]);
    &s[..3 + len - 4] // without CRC
}

fn parse_pat(payload: &[u8]) -> u16 {
    let s = section(payload);
    s[8..]
        .chunks_exact(4)
        .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| (u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]))
        .expect("PAT without program")
}

fn parse_pmt(payload: &[u8]) -> HashMap<u16, u8> {
    let s = section(payload);
    let info_len = (usize::from(s[10] & 0x0f) << 8) | usize::from(s[11]);
    let mut i = 12 + info_len;
    let mut out = HashMap::new();
    while i + 5 <= s.len() {
        let stream_type = s[i];
        let pid = (u16::from(s[i + 1] & 0x1f) << 8) | u16::from(s[i + 2]);
        let es_len = (usize::from(s[i + 3] & 0x0f) << 8) | usize::from(s[i + 4]);
        if matches!(
            stream_type,
            STREAM_TYPE_AAC | STREAM_TYPE_H264 | STREAM_TYPE_H265
        ) {
            out.insert(pid, stream_type);
        }
        i += 5 + es_len;
    }
    out
}

fn parse_ts33(b: &[u8]) -> i64 {
    (i64::from((b[0] >> 1) & 7) << 30)
        | (i64::from(b[1]) << 22)
        | (i64::from(b[2] >> 1) << 15)
        | (i64::from(b[3]) << 7)
        | i64::from(b[4] >> 1)
}

fn parse_pes(buf: &[u8]) -> Pes {
    assert_eq!(&buf[..3], &[0, 0, 1], "PES start code");
    let flags = buf[7];
    let header_len = usize::from(buf[8]);
    let pts = parse_ts33(&buf[9..14]);
    let dts = if flags & 0x40 != 0 {
        parse_ts33(&buf[14..19])
    } else {
        pts
    };
    Pes {
        pts,
        dts,
        data: buf[9 + header_len..].to_vec(),
    }
}

fn emit(stream_type: u8, buf: &[u8], shift: i64, frames: &mut Vec<Frame>) {
    let pes = parse_pes(buf);
    let (pts, dts) = (pes.pts + shift, pes.dts + shift);
    match stream_type {
        STREAM_TYPE_AAC => split_adts(&pes.data, pts, frames),
        STREAM_TYPE_H264 | STREAM_TYPE_H265 => {
            let hevc = stream_type == STREAM_TYPE_H265;
            frames.push(Frame {
                track: 0,
                codec: if hevc { Codec::H265 } else { Codec::H264 },
                pts,
                dts,
                key: is_key(&pes.data, hevc),
                data: Bytes::from(pes.data),
            });
        }
        _ => {}
    }
}

/// IDR (H.264 type 5) / IRAP (H.265 types 16..=23) present after some start code.
fn is_key(data: &[u8], hevc: bool) -> bool {
    data.windows(4).any(|w| {
        w[..3] == [0, 0, 1] && {
            if hevc {
                (16..=23).contains(&((w[3] >> 1) & 0x3f))
            } else {
                w[3] & 0x1f == 5
            }
        }
    })
}

/// Splits a PES payload into ADTS frames, 1024 samples apart.
fn split_adts(data: &[u8], pts: i64, frames: &mut Vec<Frame>) {
    const RATES: [i64; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut i = 0;
    let mut n = 0i64;
    while i + 7 <= data.len() {
        let h = &data[i..];
        assert!(h[0] == 0xff && h[1] & 0xf0 == 0xf0, "ADTS sync");
        let rate = RATES[usize::from((h[2] >> 2) & 0x0f)];
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let ts = pts + (n * 1024 * 90000 + rate / 2) / rate;
        frames.push(Frame {
            track: 1,
            codec: Codec::Aac,
            pts: ts,
            dts: ts,
            key: true,
            data: Bytes::copy_from_slice(&data[i..i + len]),
        });
        i += len;
        n += 1;
    }
}

/// A parsed box: fourcc, payload range within the walked buffer.
#[derive(Debug, Clone, Copy)]
pub struct BoxRef<'a> {
    pub fourcc: [u8; 4],
    pub start: usize,
    pub body: &'a [u8],
}

/// Top-level boxes of `data` (32-bit sizes only); panics on malformed sizes.
pub fn boxes(data: &[u8]) -> Vec<BoxRef<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && i + size <= data.len(),
            "bad box size {size} at {i}"
        );
        out.push(BoxRef {
            fourcc: data[i + 4..i + 8].try_into().unwrap(),
            start: i,
            body: &data[i + 8..i + size],
        });
        i += size;
    }
    out
}

/// Body of the first box along `path` (e.g. `["moof", "traf", "tfdt"]`); the fixed
/// fields of `stsd` and of sample entries are skipped to reach their child boxes.
pub fn find<'a>(data: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let b = boxes(data)
        .into_iter()
        .find(|b| b.fourcc == first.as_bytes()[..4])?;
    if rest.is_empty() {
        Some(b.body)
    } else {
        let skip = match *first {
            "stsd" => 8,
            "avc1" | "hvc1" => 78,
            "mp4a" | "Opus" => 28,
            _ => 0,
        };
        find(&b.body[skip..], rest)
    }
}

/// All boxes named `name` directly under `data`.
pub fn all<'a>(data: &'a [u8], name: &str) -> Vec<&'a [u8]> {
    boxes(data)
        .into_iter()
        .filter(|b| b.fourcc == name.as_bytes()[..4])
        .map(|b| b.body)
        .collect()
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Real x264 baseline 320x240 SPS and its PPS.
pub const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
pub const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

/// Annex-B access unit from NAL units (4-byte start codes, AUD first).
pub fn annexb(units: &[&[u8]]) -> Bytes {
    let mut v = vec![0, 0, 0, 1, 0x09, 0xf0];
    for u in units {
        v.extend_from_slice(&[0, 0, 1]);
        v.extend_from_slice(u);
    }
    Bytes::from(v)
}

pub fn h264(pts: i64, dts: i64, key: bool) -> Frame {
    let slice: &[u8] = if key {
        &[0x65, 0x88, 0x84, 0x21]
    } else {
        &[0x41, 0x9a, 0x02]
    };
    let data = if key {
        annexb(&[SPS, PPS, slice])
    } else {
        annexb(&[slice])
    };
    Frame {
        track: 0,
        codec: Codec::H264,
        pts,
        dts,
        key,
        data,
    }
}

/// ADTS AAC-LC frame with `payload` bytes of raw data (no CRC).
pub fn adts(rate_index: u8, channels: u8, payload: usize) -> Vec<u8> {
    let len = payload + 7;
    let mut v = vec![
        0xff,
        0xf1,
        (1 << 6) | (rate_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | ((len >> 11) as u8 & 3),
        (len >> 3) as u8,
        ((len as u8 & 7) << 5) | 0x1f,
        0xfc,
    ];
    v.extend((0..payload).map(|i| i as u8));
    v
}

pub fn aac(ts: i64, rate_index: u8) -> Frame {
    Frame {
        track: 1,
        codec: Codec::Aac,
        pts: ts,
        dts: ts,
        key: true,
        data: Bytes::from(adts(rate_index, 1, 20)),
    }
}

/// Demuxes a whole TS file with srtgate's demuxer: its tracks and frames in arrival order.
pub fn demux_srtgate(ts: &[u8]) -> (Vec<srtgate::media::TrackInfo>, Vec<Frame>) {
    use srtgate::proto::ts::{DemuxEvent, TsDemuxer};
    let mut demuxer = TsDemuxer::new();
    let mut events = Vec::new();
    demuxer.push(ts, &mut events);
    demuxer.flush(&mut events);
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for e in events {
        match e {
            DemuxEvent::Tracks(t) => tracks = t,
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    (tracks, frames)
}
