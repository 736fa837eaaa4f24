//! MPEG-TS demuxer: arbitrary byte chunks in, [`TrackInfo`]s and [`Frame`]s out.
//!
//! Owns packet alignment (0x47 sync, confirmed over several packets, partial
//! packets kept across calls), TS header / adaptation field parsing, continuity
//! checks, PAT → PMT → track mapping, per-PID PES reassembly and timestamp
//! unwrapping, and splitting PES payloads into frames (one access unit for video
//! and Opus, one ADTS frame for AAC). It must not do I/O, read clocks, log per
//! packet above debug level, panic on any input, or hold more than a bounded
//! amount of memory (one PES of at most [`super::pes::MAX_PES_SIZE`] per track,
//! [`MAX_TRACKS`] tracks).
//!
//! TS headers are parsed here rather than with `mpeg2ts`; `research/ts.md` says why.

use bytes::Bytes;

use super::pes::{unwrap_near, PesAssembler, PesError, PesHeader, Unwrapper};
use super::psi::{Pat, Pmt, SectionAssembler, PAT_PID};
use crate::media::frame::{Codec, Frame, TrackInfo};
use crate::proto::codec::aac::AdtsSplitter;
use crate::proto::codec::{h264, h265};

/// Size of a TS packet.
pub const TS_PACKET_SIZE: usize = 188;
/// First byte of every TS packet.
pub const SYNC_BYTE: u8 = 0x47;
/// Packets whose sync bytes must line up before the stream is trusted.
const SYNC_CONFIRM: usize = 3;
/// PID of null (stuffing) packets.
const NULL_PID: u16 = 0x1FFF;
/// Supported streams beyond this many are ignored (bounds memory).
pub const MAX_TRACKS: usize = 16;

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// The supported tracks, sorted by index: on the first PMT and whenever it changes.
    Tracks(Vec<TrackInfo>),
    Frame(Frame),
}

/// Counters of what the demuxer saw and dropped.
#[derive(Default, Debug, Clone)]
pub struct DemuxStats {
    /// TS packets parsed.
    pub packets: u64,
    /// Times packet alignment was lost and searched for again.
    pub resyncs: u64,
    /// Continuity counter gaps on PSI or elementary stream PIDs.
    pub cc_errors: u64,
    /// PES packets (or parts of them) dropped as malformed, truncated or too large.
    pub pes_errors: u64,
    /// Frames emitted.
    pub frames: u64,
    /// Packets of elementary streams srtgate does not support (or scrambled ones).
    pub unsupported_packets: u64,
    /// Bytes skipped while looking for packet alignment.
    pub bytes_discarded: u64,
}

/// Result of a continuity counter check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continuity {
    Next,
    Duplicate,
    Gap,
}

/// Continuity counter state of one PID.
#[derive(Debug, Default, Clone, Copy)]
struct Cc {
    last: Option<u8>,
    /// The last packet was a duplicate (allowed once in a row).
    duplicated: bool,
}

impl Cc {
    fn check(&mut self, cc: u8, has_payload: bool, discontinuity: bool) -> Continuity {
        if !has_payload {
            return Continuity::Next; // The counter only counts packets with payload.
        }
        let verdict = match self.last {
            _ if discontinuity => Continuity::Next,
            None => Continuity::Next,
            Some(l) if l == cc && !self.duplicated => {
                self.duplicated = true;
                return Continuity::Duplicate;
            }
            Some(l) if (l + 1) & 0x0F == cc => Continuity::Next,
            Some(_) => Continuity::Gap,
        };
        self.last = Some(cc);
        self.duplicated = false;
        verdict
    }
}

/// State of one supported elementary stream.
#[derive(Debug)]
struct Stream {
    pid: u16,
    track: TrackInfo,
    cc: Cc,
    pes: PesAssembler,
    clock: Unwrapper,
    /// Where the next audio frame starts when a PES carries no PTS.
    next_ts: Option<i64>,
    adts: AdtsSplitter,
    /// Whether a packet padded with adaptation-field stuffing ends the PES (see
    /// [`stuffed`]); turned off for good if this stream's muxer pads mid-PES.
    stuffing_ends_pes: bool,
    /// The last PES was ended early by stuffing; a continuation now would prove
    /// the muxer pads mid-PES.
    ended_by_stuffing: bool,
}

impl Stream {
    fn new(pid: u16, track: TrackInfo) -> Self {
        Stream {
            pid,
            track,
            cc: Cc::default(),
            pes: PesAssembler::default(),
            clock: Unwrapper::default(),
            next_ts: None,
            adts: AdtsSplitter::default(),
            stuffing_ends_pes: true,
            ended_by_stuffing: false,
        }
    }

    /// Drops partial data after a discontinuity; true if a PES was in progress.
    fn discard(&mut self) -> bool {
        self.adts.reset();
        self.pes.reset()
    }
}

/// Sans-IO MPEG-TS demuxer for one single-program transport stream.
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// Bytes not yet parsed: a partial packet, or unconfirmed data while unsynced.
    pending: Vec<u8>,
    synced: bool,
    stats: DemuxStats,
    pat: SectionAssembler,
    pat_cc: Cc,
    pmt_pid: Option<u16>,
    pmt: SectionAssembler,
    pmt_cc: Cc,
    /// The last PMT section applied, to skip identical repetitions cheaply.
    last_pmt: Vec<u8>,
    streams: Vec<Stream>,
    unsupported: Vec<u16>,
    tracks: Vec<TrackInfo>,
    tracks_announced: bool,
    sections: Vec<Vec<u8>>,
    /// The last unwrapped DTS of any track.
    timeline: Option<i64>,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed any bytes (usually SRT payloads of 7×188, but any split, including
    /// packets cut across calls and garbage). Emits events into `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<DemuxEvent>) {
        if !self.pending.is_empty() {
            if self.synced && self.pending.len() < TS_PACKET_SIZE {
                // Complete the partial packet, then go on with `data` in place.
                let need = TS_PACKET_SIZE - self.pending.len();
                if data.len() < need {
                    self.pending.extend_from_slice(data);
                    return;
                }
                self.pending.extend_from_slice(&data[..need]);
                data = &data[need..];
                let packet = std::mem::take(&mut self.pending);
                self.scan(&packet, out);
                self.pending = packet;
                self.pending.clear();
            } else {
                // Unsynced with leftovers: search over leftovers + data.
                let mut buf = std::mem::take(&mut self.pending);
                buf.extend_from_slice(data);
                let used = self.scan(&buf, out);
                buf.drain(..used);
                if buf.capacity() > 4 * TS_PACKET_SIZE * SYNC_CONFIRM {
                    buf.shrink_to(2 * TS_PACKET_SIZE * SYNC_CONFIRM);
                }
                self.pending = buf;
                return;
            }
        }
        let used = self.scan(data, out);
        self.pending
            .extend_from_slice(data.get(used..).unwrap_or(&[]));
    }

    /// End of stream: emits the access units still waiting for a next packet
    /// start (video PES packets of unbounded length end only there).
    pub fn flush(&mut self, out: &mut Vec<DemuxEvent>) {
        for i in 0..self.streams.len() {
            if let Some(result) = self.streams[i].pes.finish() {
                self.on_pes(i, result.map(Some), out);
            }
        }
    }

    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    /// The PID the PMT travels on, once the PAT named it.
    pub fn pmt_pid(&self) -> Option<u16> {
        self.pmt_pid
    }

    /// The current supported tracks, sorted by index.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// Bytes held in buffers (for tests bounding memory).
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> usize {
        let streams: usize = self
            .streams
            .iter()
            .map(|s| s.pes.buffered() + s.adts.buffered())
            .sum();
        self.pending.capacity() + streams + self.last_pmt.capacity()
    }

    /// Parses the whole packets of `buf`; returns how many bytes were used up
    /// (parsed or discarded). The rest is a partial or unconfirmed packet.
    fn scan(&mut self, buf: &[u8], out: &mut Vec<DemuxEvent>) -> usize {
        let mut p = 0;
        loop {
            if self.synced {
                let Some(&first) = buf.get(p) else {
                    return p;
                };
                if first != SYNC_BYTE {
                    self.synced = false;
                    self.stats.resyncs += 1;
                    tracing::debug!(offset = p, "TS sync lost");
                    continue;
                }
                let Some(packet) = buf.get(p..p + TS_PACKET_SIZE) else {
                    return p;
                };
                self.on_packet(packet, out);
                p += TS_PACKET_SIZE;
            } else {
                let (found, at) = find_sync(buf, p);
                self.stats.bytes_discarded += (at - p) as u64;
                p = at;
                if !found {
                    return p;
                }
                self.synced = true;
            }
        }
    }

    fn on_packet(&mut self, pkt: &[u8], out: &mut Vec<DemuxEvent>) {
        self.stats.packets += 1;
        let pusi = pkt[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([pkt[1] & 0x1F, pkt[2]]);
        let afc = (pkt[3] >> 4) & 3;
        let cc = pkt[3] & 0x0F;
        if pid == NULL_PID || afc == 0 {
            return;
        }
        if pkt[1] & 0x80 != 0 {
            // transport_error_indicator: the next packet shows as a CC gap.
            tracing::debug!(pid, "TS packet with transport error dropped");
            return;
        }
        let mut start = 4;
        let mut discontinuity = false;
        if afc & 2 != 0 {
            let af_len = usize::from(pkt[4]);
            if af_len > TS_PACKET_SIZE - 5 {
                if let Some(s) = self.streams.iter_mut().find(|s| s.pid == pid) {
                    if s.discard() {
                        self.stats.pes_errors += 1;
                    }
                }
                tracing::debug!(pid, af_len, "bad adaptation_field_length");
                return;
            }
            discontinuity = af_len > 0 && pkt[5] & 0x80 != 0;
            start = 5 + af_len;
        }
        let has_payload = afc & 1 != 0;
        let payload = if has_payload { &pkt[start..] } else { &[][..] };
        let scrambled = pkt[3] & 0xC0 != 0;

        if pid == PAT_PID || Some(pid) == self.pmt_pid {
            let is_pat = pid == PAT_PID;
            let (last_cc, assembler) = if is_pat {
                (&mut self.pat_cc, &mut self.pat)
            } else {
                (&mut self.pmt_cc, &mut self.pmt)
            };
            match last_cc.check(cc, has_payload, discontinuity) {
                Continuity::Duplicate => return,
                Continuity::Gap => {
                    self.stats.cc_errors += 1;
                    assembler.reset();
                }
                Continuity::Next => {}
            }
            let mut sections = std::mem::take(&mut self.sections);
            assembler.push(pusi, payload, &mut sections);
            for section in sections.drain(..) {
                if is_pat {
                    self.on_pat(&section);
                } else {
                    self.on_pmt(section, out);
                }
            }
            self.sections = sections;
        } else if let Some(i) = self.streams.iter().position(|s| s.pid == pid) {
            let stream = &mut self.streams[i];
            match stream.cc.check(cc, has_payload, discontinuity) {
                Continuity::Duplicate => return,
                Continuity::Gap => {
                    self.stats.cc_errors += 1;
                    stream.discard();
                    tracing::debug!(pid, "continuity error, partial PES dropped");
                }
                Continuity::Next => {}
            }
            if scrambled {
                self.stats.unsupported_packets += 1;
                if stream.discard() {
                    self.stats.pes_errors += 1;
                }
                return;
            }
            if !has_payload {
                return;
            }
            if pusi {
                stream.ended_by_stuffing = false;
                if let Some(previous) = stream.pes.finish() {
                    self.on_pes(i, previous.map(Some), out);
                }
                let started = self.streams[i].pes.start(payload);
                self.on_pes(i, started, out);
            } else {
                if stream.ended_by_stuffing {
                    // This muxer pads inside a PES: wait for packet starts from now on.
                    stream.ended_by_stuffing = false;
                    stream.stuffing_ends_pes = false;
                    self.stats.pes_errors += 1;
                    tracing::debug!(
                        pid,
                        "stuffing inside a PES; ending PES at packet starts only"
                    );
                }
                let appended = stream.pes.append(payload);
                self.on_pes(i, appended, out);
            }
            // A video PES has no length and would otherwise end only when the
            // next one starts, a frame later. Muxers pad the last packet of a
            // PES with adaptation-field stuffing, so stuffing marks its end.
            let stream = &mut self.streams[i];
            if stream.stuffing_ends_pes && stream.pes.is_unbounded() && stuffed(pkt) {
                if let Some(done) = stream.pes.finish() {
                    stream.ended_by_stuffing = true;
                    self.on_pes(i, done.map(Some), out);
                }
            }
        } else if self.unsupported.contains(&pid) {
            self.stats.unsupported_packets += 1;
        }
    }

    fn on_pat(&mut self, section: &[u8]) {
        let parsed = Pat::parse(section);
        let Ok(pat) = parsed.inspect_err(|e| tracing::debug!(error = %e, "PAT refused")) else {
            return;
        };
        let pmt_pid = pat
            .first_pmt_pid()
            .filter(|&p| p != PAT_PID && p != NULL_PID);
        if pmt_pid.is_some() && pmt_pid != self.pmt_pid {
            tracing::debug!(pmt_pid, "PMT PID from PAT");
            self.pmt_pid = pmt_pid;
            self.pmt.reset();
            self.pmt_cc = Cc::default();
            self.last_pmt.clear();
        }
    }

    fn on_pmt(&mut self, section: Vec<u8>, out: &mut Vec<DemuxEvent>) {
        if section == self.last_pmt {
            return;
        }
        let parsed = Pmt::parse(&section);
        let Ok(pmt) = parsed.inspect_err(|e| tracing::debug!(error = %e, "PMT refused")) else {
            return;
        };
        self.last_pmt = section;

        // Supported streams in PMT order; a (PID, codec) seen before keeps its
        // state and index, new ones get the lowest free index.
        let mut old = std::mem::take(&mut self.streams);
        let mut kept: Vec<(u16, Codec, Option<Stream>)> = Vec::new();
        self.unsupported.clear();
        for s in &pmt.streams {
            let reserved = s.pid < 0x10 || s.pid == NULL_PID || Some(s.pid) == self.pmt_pid;
            if reserved || kept.iter().any(|k| k.0 == s.pid) || self.unsupported.contains(&s.pid) {
                continue;
            }
            match s.codec() {
                Some(codec) if kept.len() < MAX_TRACKS => {
                    let prev = old
                        .iter()
                        .position(|o| o.pid == s.pid && o.track.codec == codec)
                        .map(|at| old.swap_remove(at));
                    kept.push((s.pid, codec, prev));
                }
                _ => {
                    tracing::debug!(pid = s.pid, stream_type = s.stream_type, "stream ignored");
                    self.unsupported.push(s.pid);
                }
            }
        }
        let mut used: Vec<u8> = kept
            .iter()
            .filter_map(|k| k.2.as_ref().map(|s| s.track.index))
            .collect();
        for (pid, codec, prev) in kept {
            let stream = prev.unwrap_or_else(|| {
                let index = (0..=u8::MAX).find(|i| !used.contains(i)).unwrap_or(u8::MAX);
                used.push(index);
                let track = TrackInfo {
                    index,
                    codec,
                    source_pid: pid,
                };
                Stream::new(pid, track)
            });
            self.streams.push(stream);
        }
        let mut tracks: Vec<TrackInfo> = self.streams.iter().map(|s| s.track.clone()).collect();
        tracks.sort_by_key(|t| t.index);
        if !self.tracks_announced || tracks != self.tracks {
            tracing::debug!(?tracks, "tracks");
            self.tracks_announced = true;
            self.tracks = tracks.clone();
            out.push(DemuxEvent::Tracks(tracks));
        }
    }

    fn on_pes(
        &mut self,
        i: usize,
        result: Result<Option<Bytes>, PesError>,
        out: &mut Vec<DemuxEvent>,
    ) {
        let stream = &mut self.streams[i];
        let pes = match result {
            Ok(Some(pes)) => pes,
            Ok(None) => return,
            Err(e) => {
                self.stats.pes_errors += 1;
                tracing::debug!(pid = stream.pid, error = %e, "PES dropped");
                return;
            }
        };
        let header = match PesHeader::parse(&pes) {
            Ok(h) => h,
            Err(e) => {
                self.stats.pes_errors += 1;
                tracing::debug!(pid = stream.pid, error = %e, "PES header refused");
                return;
            }
        };
        let (pts, dts) = match header.pts {
            Some(raw_pts) => {
                // A new track joins the program's timeline, so a wrap between
                // two tracks' first timestamps cannot put them 2^33 apart.
                if let Some(reference) = self.timeline {
                    stream.clock.seed(reference);
                }
                let dts = stream.clock.unwrap(header.dts.unwrap_or(raw_pts));
                self.timeline = Some(dts);
                (unwrap_near(dts, raw_pts), dts)
            }
            None => match stream.next_ts.or(stream.clock.last()) {
                Some(t) => (t, t),
                None => {
                    self.stats.pes_errors += 1;
                    return;
                }
            },
        };
        let payload = pes.slice(header.header_len.min(pes.len())..);
        if payload.is_empty() {
            return;
        }
        let codec = stream.track.codec;
        let key = match codec {
            Codec::H264 => h264::is_keyframe(&payload),
            Codec::H265 => h265::is_keyframe(&payload),
            Codec::Opus => true,
            Codec::Aac => {
                let (track, before) = (stream.track.index, out.len());
                let summary = stream.adts.split(payload, pts, |data, ts| {
                    out.push(DemuxEvent::Frame(Frame {
                        track,
                        codec,
                        pts: ts,
                        dts: ts.saturating_add(dts.saturating_sub(pts)),
                        key: true,
                        data,
                    }))
                });
                stream.next_ts = Some(summary.end);
                self.stats.pes_errors += summary.errors;
                self.stats.frames += (out.len() - before) as u64;
                return;
            }
        };
        self.stats.frames += 1;
        out.push(DemuxEvent::Frame(Frame {
            track: stream.track.index,
            codec,
            pts,
            dts,
            key,
            data: payload,
        }));
    }
}

/// Whether a TS packet's adaptation field carries stuffing bytes (more bytes
/// than its flags need), which muxers use to pad the last packet of a PES.
fn stuffed(pkt: &[u8]) -> bool {
    if pkt[3] & 0x20 == 0 {
        return false;
    }
    let af_len = usize::from(pkt[4]);
    if af_len == 0 {
        return true; // a zero-length field is one byte of padding
    }
    let flags = pkt[5];
    let mut need = 1;
    if flags & 0x10 != 0 {
        need += 6; // PCR
    }
    if flags & 0x08 != 0 {
        need += 6; // OPCR
    }
    if flags & 0x04 != 0 {
        need += 1; // splice countdown
    }
    if flags & 0x02 != 0 {
        // transport private data: length byte + data
        need += 1 + usize::from(*pkt.get(4 + 1 + need).unwrap_or(&0));
    }
    if flags & 0x01 != 0 {
        need += 1 + usize::from(*pkt.get(4 + 1 + need).unwrap_or(&0));
    }
    af_len > need
}

/// Finds packet alignment at or after `from`: a sync byte followed by
/// [`SYNC_CONFIRM`]` - 1` more at 188-byte spacing. Returns (true, offset) when
/// confirmed, or (false, offset) of the first position worth keeping until more
/// data arrives (the end of `buf` if none).
fn find_sync(buf: &[u8], from: usize) -> (bool, usize) {
    let mut q = from;
    while q < buf.len() {
        match buf[q..].iter().position(|&b| b == SYNC_BYTE) {
            None => return (false, buf.len()),
            Some(off) => q += off,
        }
        let mut confirmed = true;
        for k in 1..SYNC_CONFIRM {
            match buf.get(q + k * TS_PACKET_SIZE) {
                Some(&SYNC_BYTE) => {}
                Some(_) => {
                    confirmed = false;
                    break;
                }
                None => return (false, q),
            }
        }
        if confirmed {
            return (true, q);
        }
        q += 1;
    }
    (false, buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ts::tests::{
        av_frames, av_tracks, by_track, demux_split, expected, is_subsequence, mux_all, pid_of,
    };
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn lost_and_duplicate_packets() {
        let mut rng = StdRng::seed_from_u64(6);
        let tracks = av_tracks();
        let frames = av_frames(&mut rng, 90_000, 60);
        let ts = mux_all(&tracks, &frames);
        let want: Vec<Frame> = frames.iter().map(expected).collect();
        let packets: Vec<&[u8]> = ts.chunks(TS_PACKET_SIZE).collect();
        // A video packet in the middle of a PES (neither first nor last of it).
        let i = (packets.len() / 3..packets.len())
            .find(|&i| {
                pid_of(packets[i]) == 0x100
                    && packets[i][1] & 0x40 == 0
                    && pid_of(packets[i + 1]) == 0x100
                    && packets[i + 1][1] & 0x40 == 0
            })
            .unwrap();
        let mut dropped = packets.clone();
        dropped.remove(i);
        let (demux, _, got) = demux_split(&dropped.concat(), &mut rng, 1316);
        assert_eq!(demux.stats().cc_errors, 1);
        let (got_v, want_v) = (by_track(&got, 0), by_track(&want, 0));
        assert_eq!(got_v.len(), want_v.len() - 1);
        assert!(is_subsequence(&got_v, &want_v));
        assert_eq!(by_track(&got, 1), by_track(&want, 1));

        let mut duplicated = packets.clone();
        duplicated.insert(i, packets[i]);
        let (demux, _, got) = demux_split(&duplicated.concat(), &mut rng, 1316);
        assert_eq!(demux.stats().cc_errors, 0);
        assert_eq!(by_track(&got, 0), by_track(&want, 0));
    }

    #[test]
    fn tracks_share_one_timeline_across_a_wrap() {
        let tracks = av_tracks();
        let (v, a) = ((1i64 << 33) + 600, (1i64 << 33) - 3000);
        let mut rng = StdRng::seed_from_u64(10);
        let mut frames = av_frames(&mut rng, 0, 1);
        frames.truncate(1);
        frames[0].pts = v;
        frames[0].dts = v;
        let mut audio = av_frames(&mut rng, a, 2)
            .into_iter()
            .filter(|f| f.track == 1);
        frames.extend(audio.next());
        let (_, _, got) = demux_split(&mux_all(&tracks, &frames), &mut rng, 1316);
        assert_eq!(got.len(), 2);
        let (gv, ga) = (&by_track(&got, 0)[0], &by_track(&got, 1)[0]);
        assert_eq!(ga.dts - gv.dts, a - v);
    }
}
