//! PES (packetized elementary stream) headers, reassembly and timestamps.
//!
//! Owns: parsing and writing PES headers (PTS/DTS), reassembling one PID's PES
//! packets from TS payloads into one refcounted buffer each, and unwrapping 33-bit
//! timestamps. It must not know about TS packet headers, PSI or codecs, must not
//! allocate per TS packet (one buffer per PES), must not grow past
//! [`MAX_PES_SIZE`], and must not panic on arbitrary bytes.

use bytes::{Bytes, BytesMut};

/// Largest PES the assembler accepts; bigger ones are dropped as errors.
pub const MAX_PES_SIZE: usize = 8 << 20;

/// MPEG-TS timestamps wrap at 2^33 ticks of 90 kHz (about 26.5 hours).
pub const TS_WRAP: i64 = 1 << 33;
/// Mask of a 33-bit timestamp.
pub const TS_MASK: u64 = (1 << 33) - 1;

/// Stream ids used by the muxer.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
pub const STREAM_ID_AUDIO: u8 = 0xC0;
pub const STREAM_ID_PRIVATE_1: u8 = 0xBD;

/// Longest PES header the muxer writes (PTS and DTS).
pub const MAX_HEADER_LEN: usize = 19;

/// Why a PES could not be reassembled or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PesError {
    #[error("PES shorter than its fixed header ({0} bytes)")]
    TooShort(usize),
    #[error("PES does not start with 00 00 01")]
    BadStartCode,
    #[error("PES optional header has bad marker bits")]
    BadMarker,
    #[error("PES header of {header} bytes exceeds the {available} available")]
    HeaderTooLong { header: usize, available: usize },
    #[error("PES header flags announce timestamps its header has no room for")]
    BadTimestampFlags,
    #[error("PES larger than {MAX_PES_SIZE} bytes")]
    TooLarge,
    #[error("PES truncated: {have} of {expected} bytes")]
    Truncated { have: usize, expected: usize },
}

/// The parsed fixed and optional PES header fields srtgate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// `PES_packet_length`: bytes after this field, 0 = unbounded (video).
    pub packet_length: u16,
    /// 33-bit PTS, if present.
    pub pts: Option<u64>,
    /// 33-bit DTS, if present (only together with a PTS).
    pub dts: Option<u64>,
    /// Offset of the payload within the PES.
    pub header_len: usize,
}

impl PesHeader {
    /// Parses the header at the start of a (whole or partial) PES.
    pub fn parse(data: &[u8]) -> Result<Self, PesError> {
        if data.len() < 6 {
            return Err(PesError::TooShort(data.len()));
        }
        if data[..3] != [0, 0, 1] {
            return Err(PesError::BadStartCode);
        }
        let stream_id = data[3];
        let packet_length = u16::from_be_bytes([data[4], data[5]]);
        let mut header = PesHeader {
            stream_id,
            packet_length,
            pts: None,
            dts: None,
            header_len: 6,
        };
        if !has_optional_header(stream_id) {
            return Ok(header);
        }
        if data.len() < 9 {
            return Err(PesError::TooShort(data.len()));
        }
        if data[6] & 0xC0 != 0x80 {
            return Err(PesError::BadMarker);
        }
        let flags = data[7] >> 6;
        let data_len = usize::from(data[8]);
        header.header_len = 9 + data_len;
        let available = if packet_length == 0 {
            data.len()
        } else {
            data.len().min(6 + usize::from(packet_length))
        };
        if header.header_len > available {
            return Err(PesError::HeaderTooLong {
                header: header.header_len,
                available,
            });
        }
        let opt = &data[9..header.header_len];
        match flags {
            2 => header.pts = Some(read_timestamp(opt)?),
            3 => {
                header.pts = Some(read_timestamp(opt)?);
                header.dts = Some(read_timestamp(opt.get(5..).unwrap_or(&[]))?);
            }
            // 1 is forbidden; treat it like 0 rather than dropping the media.
            _ => {}
        }
        Ok(header)
    }
}

/// Stream ids whose PES packets have no optional header (ISO/IEC 13818-1 2.4.3.7).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// Reads a 5-byte PTS/DTS field (marker bits are not checked, as decoders don't).
fn read_timestamp(b: &[u8]) -> Result<u64, PesError> {
    let b: &[u8; 5] = b
        .get(..5)
        .and_then(|s| s.try_into().ok())
        .ok_or(PesError::BadTimestampFlags)?;
    Ok((u64::from((b[0] >> 1) & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1))
}

/// Writes a 5-byte PTS/DTS field with the 4-bit `prefix` (2: PTS only, 3: PTS
/// followed by DTS, 1: DTS). `ts` is masked to 33 bits.
pub fn write_timestamp(out: &mut [u8; 5], prefix: u8, ts: u64) {
    let ts = ts & TS_MASK;
    out[0] = (prefix << 4) | ((ts >> 29) as u8 & 0x0E) | 1;
    out[1] = (ts >> 22) as u8;
    out[2] = ((ts >> 14) as u8 & 0xFE) | 1;
    out[3] = (ts >> 7) as u8;
    out[4] = ((ts << 1) as u8 & 0xFE) | 1;
}

/// Builds a PES header into a stack buffer; returns it and its length.
///
/// `payload_len` is the number of bytes that will follow the header; with
/// `bounded` false (video) or when it does not fit 16 bits, `PES_packet_length`
/// is written as 0. A DTS is written only when it differs from the PTS.
pub fn write_header(
    stream_id: u8,
    pts: u64,
    dts: u64,
    payload_len: usize,
    bounded: bool,
) -> ([u8; MAX_HEADER_LEN], usize) {
    let mut h = [0u8; MAX_HEADER_LEN];
    let with_dts = pts & TS_MASK != dts & TS_MASK;
    let data_len: usize = if with_dts { 10 } else { 5 };
    let pes_len = 3 + data_len + payload_len;
    let pes_len = if bounded {
        u16::try_from(pes_len).unwrap_or(0)
    } else {
        0
    };
    h[..4].copy_from_slice(&[0, 0, 1, stream_id]);
    h[4..6].copy_from_slice(&pes_len.to_be_bytes());
    h[6] = 0x84; // marker '10', data_alignment_indicator
    h[7] = if with_dts { 0xC0 } else { 0x80 };
    h[8] = data_len as u8;
    let mut ts = [0u8; 5];
    write_timestamp(&mut ts, if with_dts { 3 } else { 2 }, pts);
    h[9..14].copy_from_slice(&ts);
    if with_dts {
        write_timestamp(&mut ts, 1, dts);
        h[14..19].copy_from_slice(&ts);
    }
    (h, 9 + data_len)
}

/// Unwraps 33-bit timestamps into a forward-running i64 timeline.
///
/// Each value is placed within ±2^32 of the previous one, so wraps at 2^33 are
/// followed while ordinary reordering (B-frames) and small jumps back are kept.
#[derive(Debug, Default, Clone)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    /// Unwraps `raw` against the previous value and remembers the result.
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let v = match self.last {
            None => (raw & TS_MASK) as i64,
            Some(last) => unwrap_near(last, raw),
        };
        self.last = Some(v);
        v
    }

    /// Before the first value: unwrap it near `reference` (another track's
    /// timeline) instead of taking it as is. No effect afterwards.
    pub fn seed(&mut self, reference: i64) {
        self.last.get_or_insert(reference);
    }

    /// The last unwrapped value, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

/// The value congruent to `raw` modulo 2^33 nearest to `reference`.
pub fn unwrap_near(reference: i64, raw: u64) -> i64 {
    let raw = (raw & TS_MASK) as i64;
    let base = reference.saturating_sub(reference.rem_euclid(TS_WRAP));
    let candidate = base.saturating_add(raw);
    let diff = candidate.saturating_sub(reference);
    if diff > TS_WRAP / 2 {
        candidate.saturating_sub(TS_WRAP)
    } else if diff < -TS_WRAP / 2 {
        candidate.saturating_add(TS_WRAP)
    } else {
        candidate
    }
}

/// Expected size of the PES being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// Fewer than 6 bytes seen so far.
    Unknown,
    /// `PES_packet_length` 0: ends at the next payload unit start.
    Unbounded,
    /// Total bytes, fixed header included.
    Bounded(usize),
}

/// Reassembles the PES packets of one PID, one buffer per PES.
///
/// Feed it the TS payload of each packet: [`PesAssembler::start`] for packets with
/// `payload_unit_start_indicator`, [`PesAssembler::append`] for the others. Whole
/// PES packets (header included) come back as frozen [`Bytes`].
#[derive(Debug)]
pub struct PesAssembler {
    buf: Option<BytesMut>,
    len: Length,
    /// Size of the last unbounded PES, used to size the next buffer.
    size_hint: usize,
}

impl Default for PesAssembler {
    fn default() -> Self {
        PesAssembler {
            buf: None,
            len: Length::Unknown,
            size_hint: 4096,
        }
    }
}

impl PesAssembler {
    /// True while a PES is being assembled.
    pub fn is_active(&self) -> bool {
        self.buf.is_some()
    }

    /// Bytes held by the PES being assembled (its buffer's capacity).
    /// True while a PES without a length (it ends at the next start) is in progress.
    pub fn is_unbounded(&self) -> bool {
        self.buf.is_some() && self.len == Length::Unbounded
    }

    pub fn buffered(&self) -> usize {
        self.buf.as_ref().map_or(0, BytesMut::capacity)
    }

    /// Drops the PES being assembled. Returns true if there was one.
    pub fn reset(&mut self) -> bool {
        self.len = Length::Unknown;
        self.buf.take().is_some()
    }

    /// Ends the PES in progress because its PID started a new one (or the stream
    /// ended): an unbounded PES is complete, a bounded one is truncated.
    pub fn finish(&mut self) -> Option<Result<Bytes, PesError>> {
        let buf = self.buf.take()?;
        let len = std::mem::replace(&mut self.len, Length::Unknown);
        Some(match len {
            Length::Unbounded => {
                self.size_hint = buf.len().clamp(1024, MAX_PES_SIZE);
                Ok(buf.freeze())
            }
            Length::Bounded(expected) => Err(PesError::Truncated {
                have: buf.len(),
                expected,
            }),
            Length::Unknown => Err(PesError::TooShort(buf.len())),
        })
    }

    /// Starts a PES with the payload of a packet whose `payload_unit_start_indicator`
    /// is set. Call [`PesAssembler::finish`] first to collect the previous one.
    /// Returns the PES if this payload already completes it.
    pub fn start(&mut self, payload: &[u8]) -> Result<Option<Bytes>, PesError> {
        self.reset();
        let capacity = match payload.get(4..6) {
            Some(l) if l != [0, 0] => 6 + usize::from(u16::from_be_bytes([l[0], l[1]])),
            _ => self.size_hint + self.size_hint / 4,
        };
        self.buf = Some(BytesMut::with_capacity(capacity.max(payload.len())));
        self.append(payload)
    }

    /// Appends the payload of a continuation packet. Payloads arriving while no
    /// PES is in progress (waiting for the next start) are ignored.
    pub fn append(&mut self, payload: &[u8]) -> Result<Option<Bytes>, PesError> {
        let Some(buf) = self.buf.as_mut() else {
            return Ok(None);
        };
        if buf.len() + payload.len() > MAX_PES_SIZE {
            self.reset();
            return Err(PesError::TooLarge);
        }
        buf.extend_from_slice(payload);
        if self.len == Length::Unknown && buf.len() >= 6 {
            if buf[..3] != [0, 0, 1] {
                self.reset();
                return Err(PesError::BadStartCode);
            }
            self.len = match u16::from_be_bytes([buf[4], buf[5]]) {
                0 => Length::Unbounded,
                n => Length::Bounded(6 + usize::from(n)),
            };
        }
        if let Length::Bounded(total) = self.len {
            if buf.len() >= total {
                buf.truncate(total);
                let done = self.buf.take().map(BytesMut::freeze);
                self.len = Length::Unknown;
                return Ok(done);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        for (pts, dts) in [
            (0u64, 0u64),
            (TS_MASK, TS_MASK - 3000),
            (123_456_789, 123_000_000),
        ] {
            let (h, n) = write_header(STREAM_ID_VIDEO, pts, dts, 100, false);
            let p = PesHeader::parse(&h[..n]).unwrap();
            assert_eq!(p.header_len, n);
            assert_eq!(p.pts, Some(pts));
            assert_eq!(p.dts, if pts == dts { None } else { Some(dts) });
            assert_eq!(p.packet_length, 0);
        }
        let (h, n) = write_header(STREAM_ID_AUDIO, 5, 5, 100, true);
        assert_eq!(PesHeader::parse(&h[..n]).unwrap().packet_length, 108);
    }

    #[test]
    fn header_errors() {
        assert_eq!(PesHeader::parse(&[0, 0, 1]), Err(PesError::TooShort(3)));
        assert_eq!(
            PesHeader::parse(&[0, 0, 2, 0xE0, 0, 0]),
            Err(PesError::BadStartCode)
        );
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x40, 0, 0]),
            Err(PesError::BadMarker)
        );
        assert!(matches!(
            PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 200, 0]),
            Err(PesError::HeaderTooLong { .. })
        ));
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 5, 0x31, 0, 1, 0, 1]),
            Err(PesError::BadTimestampFlags)
        );
        // Padding stream: no optional header.
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xBE, 0, 2, 0xFF, 0xFF])
                .unwrap()
                .header_len,
            6
        );
    }

    #[test]
    fn unwrap_follows_wraps_and_reordering() {
        let mut u = Unwrapper::default();
        let start = TS_WRAP - 9000;
        let mut expect = start;
        for _ in 0..20 {
            assert_eq!(u.unwrap(expect as u64 & TS_MASK), expect);
            // A B-frame-like step back stays behind, not a wrap forward.
            assert_eq!(
                unwrap_near(expect, (expect - 3000) as u64 & TS_MASK),
                expect - 3000
            );
            expect += 3000;
        }
        assert!(expect > TS_WRAP);
        // Second wrap.
        let mut u = Unwrapper::default();
        let mut v = 0i64;
        for _ in 0..10 {
            assert_eq!(u.unwrap(v as u64 & TS_MASK), v);
            v += TS_WRAP / 3;
        }
        assert_eq!(unwrap_near(5, TS_MASK), -1);
        assert!(unwrap_near(i64::MAX - 2, 7) > 0);
    }

    #[test]
    fn assembles_bounded_and_unbounded() {
        let mut a = PesAssembler::default();
        let (h, n) = write_header(STREAM_ID_AUDIO, 1, 1, 10, true);
        let mut pes = h[..n].to_vec();
        pes.extend_from_slice(&[9; 10]);
        assert_eq!(a.start(&pes[..5]).unwrap(), None);
        assert_eq!(a.append(&pes[5..20]).unwrap(), None);
        let done = a.append(&pes[20..]).unwrap().unwrap();
        assert_eq!(&done[..], &pes[..]);
        assert!(!a.is_active());
        assert_eq!(a.append(&[1, 2, 3]).unwrap(), None);

        let (h, n) = write_header(STREAM_ID_VIDEO, 1, 1, 0, false);
        assert_eq!(a.start(&h[..n]).unwrap(), None);
        a.append(&[7; 300]).unwrap();
        let done = a.finish().unwrap().unwrap();
        assert_eq!(done.len(), n + 300);
        assert!(a.finish().is_none());

        // Truncated bounded PES.
        a.start(&pes[..12]).unwrap();
        assert!(matches!(a.finish(), Some(Err(PesError::Truncated { .. }))));
        // Garbage start.
        assert_eq!(a.start(&[1, 2, 3, 4, 5, 6]), Err(PesError::BadStartCode));
        assert!(!a.is_active());
    }

    #[test]
    fn caps_size() {
        let mut a = PesAssembler::default();
        a.start(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0, 0]).unwrap();
        let chunk = [0u8; 184];
        let mut err = None;
        for _ in 0..(MAX_PES_SIZE / 184 + 2) {
            if let Err(e) = a.append(&chunk) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(PesError::TooLarge));
        assert!(!a.is_active());
    }
}
