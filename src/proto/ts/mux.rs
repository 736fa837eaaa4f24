//! MPEG-TS muxer: one [`Frame`] in, the TS packets carrying it out.
//!
//! Owns the output transport stream's layout: PAT/PMT (program 1, PMT PID 0x1000,
//! elementary PIDs 0x100 + track index), their repetition, continuity counters,
//! PCR, PES headers, access unit delimiters for video, and adaptation-field
//! stuffing. It must not reorder or buffer frames, read clocks, allocate more
//! than one output buffer per frame, or panic on any frame.

use bytes::{BufMut, Bytes, BytesMut};

use super::demux::{SYNC_BYTE, TS_PACKET_SIZE};
use super::pes::{
    write_header, MAX_HEADER_LEN, STREAM_ID_AUDIO, STREAM_ID_PRIVATE_1, STREAM_ID_VIDEO, TS_MASK,
};
use super::psi::{Pat, PatProgram, Pmt, PmtStream, PAT_PID};
use crate::media::frame::{Codec, Frame, TrackInfo};
use crate::proto::codec::{h264, h265};

/// PID of the PMT.
pub const PMT_PID: u16 = 0x1000;
/// PID of track `i` is `ES_PID_BASE + i`.
pub const ES_PID_BASE: u16 = 0x100;
/// The one program's number.
pub const PROGRAM_NUMBER: u16 = 1;
/// PCR runs this far (700 ms) behind the DTS.
pub const PCR_DELAY: i64 = 63_000;
/// Without video, PAT/PMT are repeated this often (1 s).
pub const PSI_INTERVAL: i64 = 90_000;

const PAYLOAD_SIZE: usize = TS_PACKET_SIZE - 4;
/// Adaptation field bytes (length, flags, PCR) on a frame's first packet with PCR.
const AF_PCR_LEN: usize = 8;
/// Adaptation field bytes (length, flags) for the random access indicator alone.
const AF_FLAGS_LEN: usize = 2;

#[derive(Debug)]
struct MuxTrack {
    index: u8,
    codec: Codec,
    pid: u16,
    cc: u8,
}

/// Sans-IO MPEG-TS muxer for one program.
#[derive(Debug)]
pub struct TsMuxer {
    tracks: Vec<MuxTrack>,
    /// Position in `tracks` of the PCR track.
    pcr_track: Option<usize>,
    has_video: bool,
    /// PAT and PMT packets with continuity counter 0, patched on the way out.
    pat_packets: Vec<u8>,
    pmt_packets: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
    last_pcr: Option<i64>,
    /// DTS of the last PAT/PMT insertion (used without video).
    last_psi: Option<i64>,
}

impl TsMuxer {
    pub fn new(tracks: &[TrackInfo]) -> Self {
        let mut mux_tracks: Vec<MuxTrack> = Vec::with_capacity(tracks.len());
        for t in tracks {
            if mux_tracks.iter().any(|m| m.index == t.index) {
                tracing::debug!(index = t.index, "duplicate track index ignored");
                continue;
            }
            mux_tracks.push(MuxTrack {
                index: t.index,
                codec: t.codec,
                pid: ES_PID_BASE + u16::from(t.index),
                cc: 0,
            });
        }
        let has_video = mux_tracks.iter().any(|t| t.codec.is_video());
        let pcr_track = mux_tracks
            .iter()
            .position(|t| t.codec.is_video())
            .or(if mux_tracks.is_empty() { None } else { Some(0) });
        let pat = Pat {
            transport_stream_id: 1,
            version: 0,
            programs: vec![PatProgram {
                number: PROGRAM_NUMBER,
                pmt_pid: PMT_PID,
            }],
        };
        let pmt = Pmt {
            program_number: PROGRAM_NUMBER,
            version: 0,
            pcr_pid: pcr_track.map_or(0x1FFF, |i| mux_tracks[i].pid),
            program_info: Vec::new(),
            streams: mux_tracks
                .iter()
                .map(|t| PmtStream::for_codec(t.codec, t.pid))
                .collect(),
        };
        TsMuxer {
            pat_packets: section_packets(PAT_PID, &pat.to_section()),
            pmt_packets: section_packets(PMT_PID, &pmt.to_section()),
            tracks: mux_tracks,
            pcr_track,
            has_video,
            pat_cc: 0,
            pmt_cc: 0,
            last_pcr: None,
            last_psi: None,
        }
    }

    /// TS packets for one frame (len is a multiple of 188). A video keyframe (or,
    /// with no video track, every first frame after `new` and then about every
    /// second) is preceded by PAT + PMT. Returns one Bytes per frame.
    pub fn mux(&mut self, frame: &Frame) -> Bytes {
        let Some(ti) = self.tracks.iter().position(|t| t.index == frame.track) else {
            tracing::debug!(track = frame.track, "frame for an unknown track dropped");
            return Bytes::new();
        };
        let codec = self.tracks[ti].codec;
        let with_psi = if self.has_video {
            codec.is_video() && frame.key
        } else {
            let due = self
                .last_psi
                .is_none_or(|t| frame.dts.saturating_sub(t) >= PSI_INTERVAL || frame.dts < t);
            if due {
                self.last_psi = Some(frame.dts);
            }
            due
        };
        let pcr = (self.pcr_track == Some(ti)).then(|| {
            let pcr = frame
                .dts
                .saturating_sub(PCR_DELAY)
                .max(self.last_pcr.unwrap_or(i64::MIN));
            self.last_pcr = Some(pcr);
            pcr
        });

        // PES header and, for video without one, an access unit delimiter.
        let aud: &[u8] = match codec {
            Codec::H264 if !h264::starts_with_aud(&frame.data) => &h264::AUD,
            Codec::H265 if !h265::starts_with_aud(&frame.data) => &h265::AUD,
            _ => &[],
        };
        let stream_id = match codec {
            Codec::H264 | Codec::H265 => STREAM_ID_VIDEO,
            Codec::Aac => STREAM_ID_AUDIO,
            Codec::Opus => STREAM_ID_PRIVATE_1,
        };
        let (pes_header, header_len) = write_header(
            stream_id,
            frame.pts as u64 & TS_MASK,
            frame.dts as u64 & TS_MASK,
            aud.len() + frame.data.len(),
            !codec.is_video(),
        );
        let mut head = [0u8; MAX_HEADER_LEN + h265::AUD.len()];
        head[..header_len].copy_from_slice(&pes_header[..header_len]);
        head[header_len..header_len + aud.len()].copy_from_slice(aud);
        let mut src = TwoPart {
            first: &head[..header_len + aud.len()],
            second: &frame.data,
        };

        let first_af = match (pcr.is_some(), frame.key) {
            (true, _) => AF_PCR_LEN,
            (false, true) => AF_FLAGS_LEN,
            (false, false) => 0,
        };
        let total = src.remaining();
        let first_room = PAYLOAD_SIZE - first_af;
        let packets = 1 + total.saturating_sub(first_room).div_ceil(PAYLOAD_SIZE);
        let psi_len = if with_psi {
            self.pat_packets.len() + self.pmt_packets.len()
        } else {
            0
        };
        let mut out = BytesMut::with_capacity(psi_len + packets * TS_PACKET_SIZE);
        if with_psi {
            put_psi(&mut out, &self.pat_packets, &mut self.pat_cc);
            put_psi(&mut out, &self.pmt_packets, &mut self.pmt_cc);
        }

        let track = &mut self.tracks[ti];
        let mut first = true;
        while first || src.remaining() > 0 {
            let (rai, pcr) = if first {
                (frame.key, pcr)
            } else {
                (false, None)
            };
            let af_min = if pcr.is_some() {
                AF_PCR_LEN
            } else if rai {
                AF_FLAGS_LEN
            } else {
                0
            };
            let payload_len = src.remaining().min(PAYLOAD_SIZE - af_min);
            let af_len = PAYLOAD_SIZE - payload_len;
            let afc = if af_len > 0 { 0x30 } else { 0x10 };
            out.put_u8(SYNC_BYTE);
            out.put_u16((u16::from(first) << 14) | track.pid);
            out.put_u8(afc | track.cc);
            track.cc = (track.cc + 1) & 0x0F;
            if af_len > 0 {
                out.put_u8((af_len - 1) as u8);
            }
            if af_len > 1 {
                let flags = if rai { 0x40 } else { 0 } | if pcr.is_some() { 0x10 } else { 0 };
                out.put_u8(flags);
                let mut used = AF_FLAGS_LEN;
                if let Some(pcr) = pcr {
                    put_pcr(&mut out, pcr);
                    used = AF_PCR_LEN;
                }
                out.put_bytes(0xFF, af_len - used);
            }
            src.copy_to(&mut out, payload_len);
            first = false;
        }
        debug_assert_eq!(out.len() % TS_PACKET_SIZE, 0);
        out.freeze()
    }
}

/// Writes a PCR (33-bit base, extension 0) into an adaptation field.
fn put_pcr(out: &mut BytesMut, pcr: i64) {
    let base = pcr as u64 & TS_MASK;
    out.put_u32((base >> 1) as u32);
    out.put_u8((((base & 1) as u8) << 7) | 0x7E);
    out.put_u8(0);
}

/// Copies prepared PSI packets, stamping continuity counters.
fn put_psi(out: &mut BytesMut, packets: &[u8], cc: &mut u8) {
    for p in packets.chunks_exact(TS_PACKET_SIZE) {
        out.put_slice(&p[..3]);
        out.put_u8((p[3] & 0xF0) | *cc);
        out.put_slice(&p[4..]);
        *cc = (*cc + 1) & 0x0F;
    }
}

/// TS packets (continuity counter 0) carrying one PSI section, 0xFF filled.
pub(crate) fn section_packets(pid: u16, section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TS_PACKET_SIZE * (1 + section.len() / PAYLOAD_SIZE));
    let mut rest = section;
    let mut first = true;
    while first || !rest.is_empty() {
        let start = out.len();
        out.push(SYNC_BYTE);
        out.extend_from_slice(&((u16::from(first) << 14) | pid).to_be_bytes());
        out.push(0x10);
        if first {
            out.push(0); // pointer_field
        }
        let room = start + TS_PACKET_SIZE - out.len();
        let (now, later) = rest.split_at(rest.len().min(room));
        out.extend_from_slice(now);
        out.resize(start + TS_PACKET_SIZE, 0xFF);
        rest = later;
        first = false;
    }
    out
}

/// Two byte slices read as one.
struct TwoPart<'a> {
    first: &'a [u8],
    second: &'a [u8],
}

impl TwoPart<'_> {
    fn remaining(&self) -> usize {
        self.first.len() + self.second.len()
    }

    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        let a = n.min(self.first.len());
        out.put_slice(&self.first[..a]);
        self.first = &self.first[a..];
        n -= a;
        let b = n.min(self.second.len());
        out.put_slice(&self.second[..b]);
        self.second = &self.second[b..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::aac;
    use crate::proto::ts::tests::{av_frames, av_tracks, by_track, demux_split, expected, mux_all};
    use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;

    /// Checks structure with an independent parser (the mpeg2ts crate).
    #[test]
    fn output_parses_with_mpeg2ts() {
        let mut rng = StdRng::seed_from_u64(4);
        let tracks = av_tracks();
        let frames = av_frames(&mut rng, 0, 60);
        let mut mux = TsMuxer::new(&tracks);
        let mut ts = Vec::new();
        let mut first_packets = Vec::new(); // (offset of the frame's first ES packet, frame)
        for f in &frames {
            let b = mux.mux(f);
            let es_pid = ES_PID_BASE + u16::from(f.track);
            let first = b
                .chunks(TS_PACKET_SIZE)
                .position(|p| u16::from_be_bytes([p[1] & 0x1F, p[2]]) == es_pid)
                .unwrap();
            first_packets.push((ts.len() / TS_PACKET_SIZE + first, f.clone()));
            ts.extend_from_slice(&b);
        }
        let mut reader = TsPacketReader::new(&ts[..]);
        let mut packets = Vec::new();
        while let Some(p) = reader.read_ts_packet().unwrap() {
            packets.push(p);
        }
        assert_eq!(packets.len(), ts.len() / TS_PACKET_SIZE);
        let mut cc: HashMap<u16, u8> = HashMap::new();
        let mut pmts = 0;
        for p in &packets {
            let pid = p.header.pid.as_u16();
            let c = p.header.continuity_counter.as_u8();
            if let Some(prev) = cc.insert(pid, c) {
                assert_eq!((prev + 1) & 15, c, "pid {pid:#x}");
            }
            match &p.payload {
                Some(TsPayload::Pat(pat)) => {
                    assert_eq!(pat.table.len(), 1);
                    assert_eq!(pat.table[0].program_map_pid.as_u16(), PMT_PID);
                }
                Some(TsPayload::Pmt(pmt)) => {
                    pmts += 1;
                    assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(0x100));
                    let es: Vec<(u8, u16)> = pmt
                        .es_info
                        .iter()
                        .map(|e| (e.stream_type as u8, e.elementary_pid.as_u16()))
                        .collect();
                    assert_eq!(es, vec![(0x1B, 0x100), (0x0F, 0x101)]);
                }
                _ => {}
            }
        }
        assert_eq!(pmts, 6); // one per keyframe
        let mut last_pcr = 0;
        for (i, f) in &first_packets {
            let p = &packets[*i];
            let af = p.adaptation_field.as_ref();
            assert_eq!(af.is_some_and(|a| a.random_access_indicator), f.key);
            let Some(TsPayload::PesStart(pes)) = &p.payload else {
                panic!("no PES start");
            };
            assert_eq!(pes.header.pts.unwrap().as_u64(), f.pts as u64);
            let dts = pes.header.dts.map_or(f.pts, |d| d.as_u64() as i64);
            assert_eq!(dts, f.dts);
            if f.track == 0 {
                let pcr = af.and_then(|a| a.pcr.as_ref()).unwrap().as_u64() / 300;
                let want = (f.dts - PCR_DELAY) as u64 & TS_MASK;
                assert!(pcr == want || (pcr == last_pcr && f.dts < 63_000), "{pcr}");
                last_pcr = pcr;
            } else {
                assert!(af.is_none_or(|a| a.pcr.is_none()));
            }
        }
    }

    #[test]
    fn audio_only_repeats_psi_every_second() {
        let tracks = vec![TrackInfo {
            index: 0,
            codec: Codec::Aac,
            source_pid: 0x44,
        }];
        let mut mux = TsMuxer::new(&tracks);
        let mut with_psi = Vec::new();
        for i in 0..100i64 {
            let f = Frame {
                track: 0,
                codec: Codec::Aac,
                pts: i * 1920,
                dts: i * 1920,
                key: true,
                data: Bytes::from(aac::test_frame(3, 2, &[1; 100])),
            };
            let b = mux.mux(&f);
            // PAT first means PSI; every frame carries a PCR (audio is the PCR PID).
            let psi = u16::from_be_bytes([b[1] & 0x1F, b[2]]) == PAT_PID;
            if psi {
                with_psi.push(i);
            }
            assert_eq!(b.len(), if psi { 3 * 188 } else { 188 });
        }
        // 1920 ticks per frame: 90_000 / 1920 = 46.9, so every 47 frames.
        assert_eq!(with_psi, vec![0, 47, 94]);
        let unknown = Frame {
            track: 9,
            codec: Codec::Aac,
            pts: 0,
            dts: 0,
            key: true,
            data: Bytes::new(),
        };
        assert!(mux.mux(&unknown).is_empty());
    }

    #[test]
    fn pads_with_adaptation_field() {
        let tracks = av_tracks();
        let mut mux = TsMuxer::new(&tracks);
        for len in [
            0usize, 1, 150, 160, 165, 166, 167, 168, 184, 349, 350, 351, 1000,
        ] {
            let f = Frame {
                track: 1,
                codec: Codec::Aac,
                pts: 5,
                dts: 5,
                key: false,
                data: Bytes::from(vec![0xAB; len]),
            };
            let b = mux.mux(&f);
            let pes_len = 14 + len;
            assert_eq!(b.len(), pes_len.div_ceil(184) * 188, "len {len}");
            let last = &b[b.len() - 188..];
            let payload_in_last = pes_len - (pes_len.div_ceil(184) - 1) * 184;
            if payload_in_last < 184 {
                assert_eq!(last[3] & 0x30, 0x30);
                assert_eq!(usize::from(last[4]), 183 - payload_in_last);
            }
            if len > 0 {
                assert_eq!(last[187], 0xAB);
            }
        }
    }

    #[test]
    fn h265_and_opus_round_trip() {
        let tracks = vec![
            TrackInfo {
                index: 0,
                codec: Codec::Opus,
                source_pid: 0x100,
            },
            TrackInfo {
                index: 1,
                codec: Codec::H265,
                source_pid: 0x101,
            },
        ];
        let mut frames = Vec::new();
        for i in 0..40i64 {
            let key = i % 8 == 0;
            let mut au = vec![0, 0, 0, 1, if key { 19 << 1 } else { 1 << 1 }, 1];
            au.extend(std::iter::repeat_n(0x5A, 300 + 37 * i as usize));
            frames.push(Frame {
                track: 1,
                codec: Codec::H265,
                pts: 1000 + i * 3000,
                dts: 1000 + i * 3000,
                key,
                data: Bytes::from(au),
            });
            frames.push(Frame {
                track: 0,
                codec: Codec::Opus,
                pts: 1000 + i * 1800,
                dts: 1000 + i * 1800,
                key: true,
                data: Bytes::from(vec![0x7F, 0xE0, 0x10, i as u8, 0xFC]),
            });
        }
        let ts = mux_all(&tracks, &frames);
        let mut rng = StdRng::seed_from_u64(3);
        let (demux, got_tracks, got) = demux_split(&ts, &mut rng, 400);
        assert_eq!(got_tracks, vec![tracks]);
        assert_eq!(by_track(&got, 0), by_track(&frames, 0));
        let want: Vec<Frame> = by_track(&frames, 1).iter().map(expected).collect();
        assert_eq!(by_track(&got, 1), want);
        assert_eq!(demux.stats().pes_errors, 0);
    }
}
