//! Pass-through of a publisher's transport stream: its packets go to SRT
//! readers as they came, every PID included (SCTE-35, KLV, subtitles, second
//! audio tracks, private data), cut into [`TsChunk`]s so that a reader can
//! start at a keyframe.
//!
//! Owns keyframe detection on raw packets, the PAT/PMT a joining reader gets
//! first, and the discontinuity marking of a publisher that follows another on
//! a path. The [`Splitter`] sees each SRT payload once per stream (never per
//! reader) and hands on refcounted slices of it: a chunk is the payload itself,
//! or, where a keyframe's PES begins inside a payload, the two parts before and
//! from that packet. Copies are made only of the small things it adds (a PAT/PMT
//! prelude per keyframe, discontinuity markers once per publisher) and of
//! payloads that are not whole 188-byte packets (realigned, garbage dropped).
//!
//! Keyframes are found in the first bytes of the video PES: the NAL headers up
//! to the first coded slice (IDR for H.264, IRAP for H.265). While a PES start
//! is undecided (its first packets hold only SEI, say), its packets are held
//! back, never longer than it takes the next packets of that PID to arrive,
//! which is usually within the same payload.
//!
//! Sans-IO, no clock, no panics on any input, bounded memory ([`MAX_SCAN`],
//! [`MAX_HELD`]).

use bytes::{Bytes, BytesMut};

use super::demux::{SYNC_BYTE, TS_PACKET_SIZE};
use super::pes::PesHeader;
use super::psi::PAT_PID;
use crate::media::frame::Codec;
use crate::media::TsChunk;
use crate::proto::codec::{h264, h265};

/// Packets in one SRT payload of TS, as encoders send them.
pub const PACKETS_PER_PAYLOAD: usize = 7;
/// Bytes of a video PES scanned for its first slice before giving up (not a key).
pub const MAX_SCAN: usize = 16 << 10;
/// Packets held back while a PES start is undecided, at most.
pub const MAX_HELD: usize = 128;
/// PIDs tracked for discontinuity marking.
const MAX_MARKED_PIDS: usize = 64;
const NULL_PID: u16 = 0x1FFF;

/// Counters of what the splitter saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    /// Chunks handed on.
    pub chunks: u64,
    /// Of which begin a keyframe.
    pub keys: u64,
    /// Bytes dropped while realigning payloads that were not whole packets.
    pub dropped_bytes: u64,
    /// Payloads that needed realigning.
    pub realigned: u64,
}

/// A run of packets being gathered into one chunk.
struct Run {
    payload: Bytes,
    /// Packet indexes `[start, end)` within `payload`.
    start: usize,
    end: usize,
    key: bool,
    /// A discontinuity marker to send before the run's packets.
    marker: Option<[u8; TS_PACKET_SIZE]>,
}

/// Cuts a publisher's payloads into chunks readers can start at (see the module doc).
pub struct Splitter {
    video: Option<(u16, Codec)>,
    pmt_pid: Option<u16>,
    pat: Option<Bytes>,
    pmt: Option<Bytes>,
    run: Option<Run>,
    /// Undecided video PES start: its chunks so far (the first begins the PES).
    held: Vec<(Bytes, bool)>,
    held_packets: usize,
    pending: bool,
    scan: Vec<u8>,
    /// Payload bytes not yet forming whole packets.
    carry: BytesMut,
    /// Mark the first packet of every PID (a publisher following another).
    mark: bool,
    marked: Vec<u16>,
    /// The first keyframe chunk has been handed on.
    first_key_done: bool,
    stats: PassStats,
}

impl Splitter {
    /// `mark_discontinuity`: this publisher follows another on the path, whose
    /// readers carry on: mark the first packet of each PID (and the first
    /// keyframe's prelude) with discontinuity indicators.
    pub fn new(mark_discontinuity: bool) -> Self {
        Self {
            video: None,
            pmt_pid: None,
            pat: None,
            pmt: None,
            run: None,
            held: Vec::new(),
            held_packets: 0,
            pending: false,
            scan: Vec::new(),
            carry: BytesMut::new(),
            mark: mark_discontinuity,
            marked: Vec::new(),
            first_key_done: false,
            stats: PassStats::default(),
        }
    }

    /// The program as the demuxer understood it: the PMT's PID and the video
    /// track (PID and codec) whose keyframes readers start at.
    pub fn set_program(&mut self, pmt_pid: Option<u16>, video: Option<(u16, Codec)>) {
        if self.pmt_pid != pmt_pid {
            self.pmt = None;
        }
        self.pmt_pid = pmt_pid;
        self.video = video;
    }

    pub fn stats(&self) -> PassStats {
        self.stats
    }

    /// One payload from the publisher; chunks ready to hand on go to `out`.
    pub fn push(&mut self, payload: Bytes, out: &mut Vec<TsChunk>) {
        if self.carry.is_empty() && is_aligned(&payload) {
            self.packets(payload, out);
            return;
        }
        // Not whole packets: realign (a copy), dropping bytes that are no packet.
        self.stats.realigned += 1;
        self.carry.extend_from_slice(&payload);
        loop {
            match self.carry.iter().position(|&b| b == SYNC_BYTE) {
                Some(0) => {}
                Some(at) => {
                    let _ = self.carry.split_to(at);
                    self.stats.dropped_bytes += at as u64;
                }
                None => {
                    self.stats.dropped_bytes += self.carry.len() as u64;
                    self.carry.clear();
                    return;
                }
            }
            // Whole packets from here, as far as their sync bytes line up.
            let mut n = 0;
            while (n + 1) * TS_PACKET_SIZE <= self.carry.len()
                && self.carry[n * TS_PACKET_SIZE] == SYNC_BYTE
            {
                n += 1;
            }
            if n == 0 {
                if self.carry.len() >= TS_PACKET_SIZE {
                    // A sync byte that is not a packet start: skip it.
                    let _ = self.carry.split_to(1);
                    self.stats.dropped_bytes += 1;
                    continue;
                }
                return; // a partial packet: wait for the rest
            }
            let whole = self.carry.split_to(n * TS_PACKET_SIZE).freeze();
            for part in whole.chunks(PACKETS_PER_PAYLOAD * TS_PACKET_SIZE) {
                self.packets(whole.slice_ref(part), out);
            }
            if self.carry.len() < TS_PACKET_SIZE {
                return;
            }
        }
    }

    /// Hand on whatever is held (the publisher ended).
    pub fn flush(&mut self, out: &mut Vec<TsChunk>) {
        self.close_run(out);
        if self.pending {
            self.resolve(false, out);
        }
    }

    /// Whole, aligned packets.
    fn packets(&mut self, payload: Bytes, out: &mut Vec<TsChunk>) {
        let n = payload.len() / TS_PACKET_SIZE;
        for i in 0..n {
            let pkt = &payload[i * TS_PACKET_SIZE..(i + 1) * TS_PACKET_SIZE];
            let pid = u16::from_be_bytes([pkt[1] & 0x1F, pkt[2]]);
            let pusi = pkt[1] & 0x40 != 0;
            let marker = self.marker_for(pid, pkt);
            let es = es_payload(pkt);
            let mut key_here = false;
            let mut resolved = None;
            if self.video.is_some_and(|(v, _)| v == pid) {
                if pusi {
                    if self.pending {
                        self.close_run(out);
                        self.resolve(false, out);
                    }
                    self.scan.clear();
                    if let Some(es) = es {
                        let body = PesHeader::parse(es)
                            .map_or(es, |h| es.get(h.header_len..).unwrap_or(&[]));
                        self.scan.extend_from_slice(body);
                    }
                    match self.classify() {
                        Some(true) => key_here = true,
                        Some(false) => {}
                        None => {
                            self.close_run(out);
                            self.pending = true;
                        }
                    }
                } else if self.pending {
                    if let Some(es) = es {
                        self.scan.extend_from_slice(es);
                    }
                    resolved = self.classify();
                    if resolved.is_none()
                        && (self.scan.len() > MAX_SCAN || self.held_packets >= MAX_HELD)
                    {
                        resolved = Some(false);
                    }
                }
            }
            if pid == PAT_PID && pusi {
                self.pat = Some(payload.slice(i * TS_PACKET_SIZE..(i + 1) * TS_PACKET_SIZE));
            } else if pusi && Some(pid) == self.pmt_pid {
                self.pmt = Some(payload.slice(i * TS_PACKET_SIZE..(i + 1) * TS_PACKET_SIZE));
            }
            // Start a new run where a chunk must begin; extend the open one otherwise.
            let full = self.run.as_ref().is_some_and(|r| {
                r.end - r.start + usize::from(r.marker.is_some()) >= PACKETS_PER_PAYLOAD
            });
            if key_here || marker.is_some() || full || self.run.is_none() {
                self.close_run(out);
                self.run = Some(Run {
                    payload: payload.clone(),
                    start: i,
                    end: i + 1,
                    key: key_here,
                    marker,
                });
            } else if let Some(r) = self.run.as_mut() {
                r.end = i + 1;
            }
            if let Some(key) = resolved {
                self.close_run(out);
                self.resolve(key, out);
            }
        }
        self.close_run(out);
    }

    /// Is the PES start being scanned a keyframe? `None`: not known yet.
    fn classify(&self) -> Option<bool> {
        let (_, codec) = self.video?;
        for header in h264::nal_headers(&self.scan) {
            match codec {
                Codec::H265 => {
                    let t = (header >> 1) & 0x3F;
                    if t < 32 {
                        return Some(h265::is_irap(t));
                    }
                }
                _ => match header & 0x1F {
                    h264::NAL_IDR => return Some(true),
                    1..=4 => return Some(false),
                    _ => {}
                },
            }
        }
        None
    }

    /// A discontinuity marker to send before `pkt`, if it is the first of its PID.
    fn marker_for(&mut self, pid: u16, pkt: &[u8]) -> Option<[u8; TS_PACKET_SIZE]> {
        if !self.mark || pid == NULL_PID || self.marked.contains(&pid) {
            return None;
        }
        if self.marked.len() >= MAX_MARKED_PIDS {
            return None;
        }
        self.marked.push(pid);
        let has_payload = pkt[3] & 0x10 != 0;
        let cc = pkt[3] & 0x0F;
        // A packet without payload does not advance the counter: the marker
        // carries the one before this packet's, so the count goes on from it.
        Some(discontinuity_marker(
            pid,
            if has_payload {
                cc.wrapping_sub(1) & 0x0F
            } else {
                cc
            },
        ))
    }

    /// The open run becomes a chunk: held while a PES start is undecided.
    fn close_run(&mut self, out: &mut Vec<TsChunk>) {
        let Some(r) = self.run.take() else { return };
        let packets = r
            .payload
            .slice(r.start * TS_PACKET_SIZE..r.end * TS_PACKET_SIZE);
        let data = match r.marker {
            None => packets,
            Some(marker) => {
                let mut b = BytesMut::with_capacity(marker.len() + packets.len());
                b.extend_from_slice(&marker);
                b.extend_from_slice(&packets);
                b.freeze()
            }
        };
        if self.pending {
            self.held_packets += r.end - r.start;
            self.held.push((data, r.key));
        } else {
            self.emit(data, r.key, out);
        }
    }

    /// The undecided PES start is decided: hand on what was held.
    fn resolve(&mut self, key: bool, out: &mut Vec<TsChunk>) {
        self.pending = false;
        self.held_packets = 0;
        let held = std::mem::take(&mut self.held);
        for (i, (data, k)) in held.into_iter().enumerate() {
            self.emit(data, k || (i == 0 && key), out);
        }
    }

    fn emit(&mut self, data: Bytes, key: bool, out: &mut Vec<TsChunk>) {
        self.stats.chunks += 1;
        let (start, discontinuity) = if key {
            self.stats.keys += 1;
            let first = !self.first_key_done;
            self.first_key_done = true;
            let marked = self.mark && first;
            (self.prelude(marked), marked)
        } else {
            (None, false)
        };
        out.push(TsChunk {
            data,
            key,
            start,
            discontinuity,
        });
    }

    /// The PAT and PMT a reader starting at this keyframe gets first; with
    /// `marked`, each preceded by a discontinuity marker.
    fn prelude(&self, marked: bool) -> Option<Bytes> {
        let (pat, pmt) = (self.pat.as_ref()?, self.pmt.as_ref()?);
        let mut b = BytesMut::with_capacity(4 * TS_PACKET_SIZE);
        for p in [pat, pmt] {
            if marked {
                let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
                b.extend_from_slice(&discontinuity_marker(pid, p[3].wrapping_sub(1) & 0x0F));
            }
            b.extend_from_slice(p);
        }
        Some(b.freeze())
    }
}

/// A TS packet of `pid` with only an adaptation field whose
/// discontinuity_indicator is set, and continuity counter `cc` (ISO/IEC
/// 13818-1 2.4.3.5: the counter may jump at such a packet). Carries no
/// payload, so the counter of the next packet with payload is `cc + 1`.
pub fn discontinuity_marker(pid: u16, cc: u8) -> [u8; TS_PACKET_SIZE] {
    let mut p = [0xFF; TS_PACKET_SIZE];
    p[0] = SYNC_BYTE;
    p[1] = ((pid >> 8) as u8) & 0x1F;
    p[2] = pid as u8;
    p[3] = 0x20 | (cc & 0x0F); // adaptation field only
    p[4] = (TS_PACKET_SIZE - 5) as u8;
    p[5] = 0x80; // discontinuity_indicator
    p
}

/// Whole packets, each starting with a sync byte.
fn is_aligned(payload: &[u8]) -> bool {
    !payload.is_empty()
        && payload.len().is_multiple_of(TS_PACKET_SIZE)
        && payload.chunks(TS_PACKET_SIZE).all(|p| p[0] == SYNC_BYTE)
}

/// The payload bytes of a packet (after the adaptation field), if any.
fn es_payload(pkt: &[u8]) -> Option<&[u8]> {
    let afc = (pkt[3] >> 4) & 3;
    if afc & 1 == 0 {
        return None;
    }
    let start = if afc & 2 != 0 {
        5 + usize::from(pkt[4])
    } else {
        4
    };
    pkt.get(start..).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests;
