//! PSI: PAT and PMT sections, their reassembly from TS payloads, and CRC32/MPEG-2.
//!
//! Owns section parsing (with CRC check) and building for the two tables srtgate
//! needs, the mapping between PMT stream types / descriptors and [`Codec`], and a
//! per-PID section assembler (pointer_field, sections spanning packets). It must
//! not touch TS packet headers or continuity counters (the demuxer does), must not
//! grow past one maximal section per PID, and must not panic on arbitrary bytes.

use crate::media::frame::Codec;

/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
pub const TABLE_ID_PAT: u8 = 0x00;
pub const TABLE_ID_PMT: u8 = 0x02;

pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
pub const STREAM_TYPE_H264: u8 = 0x1B;
pub const STREAM_TYPE_H265: u8 = 0x24;
/// PES packets containing private data (Opus, with a registration descriptor).
pub const STREAM_TYPE_PRIVATE_PES: u8 = 0x06;

/// Registration descriptor tag and the Opus `format_identifier` ("Opus").
pub const DESCRIPTOR_REGISTRATION: u8 = 0x05;
pub const OPUS_FORMAT_ID: u32 = 0x4F70_7573;

/// Largest `section_length` allowed for PAT/PMT.
const MAX_SECTION_LENGTH: usize = 1021;
/// Largest whole section (3 header bytes + `section_length`).
pub const MAX_SECTION_SIZE: usize = 3 + MAX_SECTION_LENGTH;

/// Why a section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsiError {
    #[error("section truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unexpected table_id {0:#04x}")]
    WrongTable(u8),
    #[error("section without section_syntax_indicator")]
    NoSyntax,
    #[error("invalid section_length {0}")]
    BadLength(usize),
    #[error("CRC32 mismatch: section says {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("section is not yet applicable (current_next_indicator 0)")]
    NotCurrent,
    #[error("malformed table body")]
    BadBody,
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC32/MPEG-2: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no
/// final xor. A section including its CRC checks to 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

/// The long-form section header fields, and the table body between them and the CRC.
struct Section<'a> {
    table_id_extension: u16,
    version: u8,
    body: &'a [u8],
}

fn parse_section(data: &[u8], table_id: u8) -> Result<Section<'_>, PsiError> {
    if data.len() < 3 {
        return Err(PsiError::Truncated {
            needed: 3,
            available: data.len(),
        });
    }
    if data[0] != table_id {
        return Err(PsiError::WrongTable(data[0]));
    }
    if data[1] & 0x80 == 0 {
        return Err(PsiError::NoSyntax);
    }
    let length = usize::from(u16::from_be_bytes([data[1], data[2]]) & 0x0FFF);
    if !(9..=MAX_SECTION_LENGTH).contains(&length) {
        return Err(PsiError::BadLength(length));
    }
    let total = 3 + length;
    let section = data.get(..total).ok_or(PsiError::Truncated {
        needed: total,
        available: data.len(),
    })?;
    let (content, crc) = section.split_at(total - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32_mpeg2(content);
    if stored != computed {
        return Err(PsiError::BadCrc { stored, computed });
    }
    if content[5] & 1 == 0 {
        return Err(PsiError::NotCurrent);
    }
    Ok(Section {
        table_id_extension: u16::from_be_bytes([content[3], content[4]]),
        version: (content[5] >> 1) & 0x1F,
        body: &content[8..],
    })
}

/// Writes a long-form section around `body` (section 0 of 0, current) with its CRC.
fn build_section(table_id: u8, table_id_extension: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let length = (5 + body.len() + 4).min(MAX_SECTION_LENGTH) as u16;
    let mut s = Vec::with_capacity(3 + usize::from(length));
    s.push(table_id);
    s.extend_from_slice(&(0xB000 | length).to_be_bytes());
    s.extend_from_slice(&table_id_extension.to_be_bytes());
    s.push(0xC1 | ((version & 0x1F) << 1));
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(body);
    s.truncate(3 + usize::from(length) - 4);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// One program of a PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatProgram {
    /// 0 means the entry points at the network information table.
    pub number: u16,
    pub pmt_pid: u16,
}

/// Program association table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    pub version: u8,
    pub programs: Vec<PatProgram>,
}

impl Pat {
    pub fn parse(section: &[u8]) -> Result<Self, PsiError> {
        let s = parse_section(section, TABLE_ID_PAT)?;
        let programs = s
            .body
            .chunks_exact(4)
            .map(|c| PatProgram {
                number: u16::from_be_bytes([c[0], c[1]]),
                pmt_pid: u16::from_be_bytes([c[2], c[3]]) & 0x1FFF,
            })
            .collect();
        Ok(Pat {
            transport_stream_id: s.table_id_extension,
            version: s.version,
            programs,
        })
    }

    /// The PMT PID of the first real program (srtgate handles single-program streams).
    pub fn first_pmt_pid(&self) -> Option<u16> {
        self.programs
            .iter()
            .find(|p| p.number != 0)
            .map(|p| p.pmt_pid)
    }

    pub fn to_section(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 * self.programs.len());
        for p in &self.programs {
            body.extend_from_slice(&p.number.to_be_bytes());
            body.extend_from_slice(&(0xE000 | (p.pmt_pid & 0x1FFF)).to_be_bytes());
        }
        build_section(TABLE_ID_PAT, self.transport_stream_id, self.version, &body)
    }
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
    /// The raw ES_info descriptor loop.
    pub descriptors: Vec<u8>,
}

impl PmtStream {
    /// The `format_identifier` of its registration descriptor, if any.
    pub fn registration(&self) -> Option<u32> {
        descriptors(&self.descriptors)
            .find(|(tag, data)| *tag == DESCRIPTOR_REGISTRATION && data.len() >= 4)
            .map(|(_, d)| u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
    }

    /// The codec srtgate understands this stream as, if any.
    pub fn codec(&self) -> Option<Codec> {
        match self.stream_type {
            STREAM_TYPE_H264 => Some(Codec::H264),
            STREAM_TYPE_H265 => Some(Codec::H265),
            STREAM_TYPE_AAC_ADTS => Some(Codec::Aac),
            STREAM_TYPE_PRIVATE_PES if self.registration() == Some(OPUS_FORMAT_ID) => {
                Some(Codec::Opus)
            }
            _ => None,
        }
    }

    /// The PMT entry the muxer writes for `codec` on `pid`.
    pub fn for_codec(codec: Codec, pid: u16) -> Self {
        let (stream_type, descriptors) = match codec {
            Codec::H264 => (STREAM_TYPE_H264, Vec::new()),
            Codec::H265 => (STREAM_TYPE_H265, Vec::new()),
            Codec::Aac => (STREAM_TYPE_AAC_ADTS, Vec::new()),
            // Registration "Opus", then the DVB extension descriptor (tag 0x7F,
            // extension 0x80) with channel_config_code 2: stereo, which also
            // decodes mono streams (TrackInfo does not carry a channel count).
            Codec::Opus => (
                STREAM_TYPE_PRIVATE_PES,
                vec![0x05, 4, b'O', b'p', b'u', b's', 0x7F, 2, 0x80, 0x02],
            ),
        };
        PmtStream {
            stream_type,
            pid,
            descriptors,
        }
    }
}

/// Iterates `(tag, data)` over a descriptor loop, stopping at a truncated one.
pub fn descriptors(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let body = rest.get(..usize::from(len))?;
        data = &rest[usize::from(len)..];
        Some((tag, body))
    })
}

/// Program map table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version: u8,
    /// 0x1FFF: no PCR.
    pub pcr_pid: u16,
    /// The raw program_info descriptor loop.
    pub program_info: Vec<u8>,
    pub streams: Vec<PmtStream>,
}

impl Pmt {
    pub fn parse(section: &[u8]) -> Result<Self, PsiError> {
        let s = parse_section(section, TABLE_ID_PMT)?;
        let body = s.body;
        if body.len() < 4 {
            return Err(PsiError::BadBody);
        }
        let pcr_pid = u16::from_be_bytes([body[0], body[1]]) & 0x1FFF;
        let info_len = usize::from(u16::from_be_bytes([body[2], body[3]]) & 0x03FF);
        let program_info = body.get(4..4 + info_len).ok_or(PsiError::BadBody)?;
        let mut rest = &body[4 + info_len..];
        let mut streams = Vec::new();
        while !rest.is_empty() {
            let head = rest.get(..5).ok_or(PsiError::BadBody)?;
            let es_len = usize::from(u16::from_be_bytes([head[3], head[4]]) & 0x03FF);
            let descriptors = rest.get(5..5 + es_len).ok_or(PsiError::BadBody)?;
            streams.push(PmtStream {
                stream_type: head[0],
                pid: u16::from_be_bytes([head[1], head[2]]) & 0x1FFF,
                descriptors: descriptors.to_vec(),
            });
            rest = &rest[5 + es_len..];
        }
        Ok(Pmt {
            program_number: s.table_id_extension,
            version: s.version,
            pcr_pid,
            program_info: program_info.to_vec(),
            streams,
        })
    }

    /// The section bytes; loops that would exceed a section are cut.
    pub fn to_section(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&(0xE000 | (self.pcr_pid & 0x1FFF)).to_be_bytes());
        let info = &self.program_info[..self.program_info.len().min(0x3FF)];
        body.extend_from_slice(&(0xF000 | info.len() as u16).to_be_bytes());
        body.extend_from_slice(info);
        for s in &self.streams {
            let d = &s.descriptors[..s.descriptors.len().min(0x3FF)];
            if body.len() + 5 + d.len() > MAX_SECTION_LENGTH - 9 {
                tracing::debug!(pid = s.pid, "PMT full, stream left out");
                break;
            }
            body.push(s.stream_type);
            body.extend_from_slice(&(0xE000 | (s.pid & 0x1FFF)).to_be_bytes());
            body.extend_from_slice(&(0xF000 | d.len() as u16).to_be_bytes());
            body.extend_from_slice(d);
        }
        build_section(TABLE_ID_PMT, self.program_number, self.version, &body)
    }
}

/// Reassembles the PSI sections of one PID from TS packet payloads.
#[derive(Debug, Default)]
pub struct SectionAssembler {
    buf: Vec<u8>,
    active: bool,
}

impl SectionAssembler {
    /// Drops a partly received section (after a discontinuity).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds one packet's payload; complete sections are appended to `out`.
    pub fn push(&mut self, pusi: bool, payload: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut rest = payload;
        if pusi {
            let Some((&pointer, after)) = rest.split_first() else {
                self.reset();
                return;
            };
            let Some((tail, new)) = split_checked(after, usize::from(pointer)) else {
                self.reset();
                return;
            };
            if self.active {
                self.extend(tail, out);
            }
            self.reset();
            rest = new;
            // Sections back to back, until stuffing (0xFF) or the packet ends.
            while rest.first().is_some_and(|&b| b != 0xFF) {
                self.active = true;
                rest = self.extend(rest, out);
                if self.active {
                    break;
                }
            }
        } else if self.active {
            self.extend(rest, out);
        }
    }

    /// Adds bytes to the section in progress; on completion emits it, goes
    /// inactive and returns the bytes after it.
    fn extend<'a>(&mut self, data: &'a [u8], out: &mut Vec<Vec<u8>>) -> &'a [u8] {
        let want = match self.total_len(data) {
            Some(Ok(total)) => total - self.buf.len(),
            Some(Err(())) => {
                self.reset();
                return &[];
            }
            None => {
                self.buf.extend_from_slice(data);
                return &[];
            }
        };
        let (take, rest) = split_checked(data, want).unwrap_or((data, &[]));
        self.buf.extend_from_slice(take);
        if take.len() == want {
            out.push(std::mem::take(&mut self.buf));
            self.active = false;
            rest
        } else {
            &[]
        }
    }

    /// Total length of the section being assembled once 3 bytes are known.
    fn total_len(&self, more: &[u8]) -> Option<Result<usize, ()>> {
        let mut head = [0u8; 3];
        let have = self.buf.len().min(3);
        head[..have].copy_from_slice(&self.buf[..have]);
        let need = 3 - have;
        let extra = more.get(..need)?;
        head[have..].copy_from_slice(extra);
        let length = usize::from(u16::from_be_bytes([head[1], head[2]]) & 0x0FFF);
        if length > MAX_SECTION_LENGTH {
            return Some(Err(()));
        }
        Some(Ok(3 + length))
    }
}

fn split_checked(data: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (at <= data.len()).then(|| data.split_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pmt() -> Pmt {
        Pmt {
            program_number: 1,
            version: 3,
            pcr_pid: 0x100,
            program_info: vec![],
            streams: vec![
                PmtStream::for_codec(Codec::H264, 0x100),
                PmtStream::for_codec(Codec::Aac, 0x101),
                PmtStream::for_codec(Codec::Opus, 0x102),
                PmtStream {
                    stream_type: 0x86,
                    pid: 0x103,
                    descriptors: vec![],
                },
            ],
        }
    }

    #[test]
    fn crc_known_value() {
        // CRC-32/MPEG-2 check value.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        let s = pmt().to_section();
        assert_eq!(crc32_mpeg2(&s), 0);
    }

    #[test]
    fn pat_pmt_round_trip() {
        let pat = Pat {
            transport_stream_id: 1,
            version: 0,
            programs: vec![
                PatProgram {
                    number: 0,
                    pmt_pid: 0x10,
                },
                PatProgram {
                    number: 1,
                    pmt_pid: 0x1000,
                },
            ],
        };
        let parsed = Pat::parse(&pat.to_section()).unwrap();
        assert_eq!(parsed, pat);
        assert_eq!(parsed.first_pmt_pid(), Some(0x1000));
        let p = pmt();
        let parsed = Pmt::parse(&p.to_section()).unwrap();
        assert_eq!(parsed, p);
        let codecs: Vec<_> = parsed.streams.iter().map(PmtStream::codec).collect();
        assert_eq!(
            codecs,
            vec![Some(Codec::H264), Some(Codec::Aac), Some(Codec::Opus), None]
        );
    }

    #[test]
    fn rejects_corruption() {
        let s = pmt().to_section();
        for i in 0..s.len() {
            let mut c = s.clone();
            c[i] ^= 0x10;
            assert!(Pmt::parse(&c).is_err(), "flip at {i}");
        }
        assert!(matches!(
            Pat::parse(&s),
            Err(PsiError::WrongTable(TABLE_ID_PMT))
        ));
        assert!(Pmt::parse(&s[..s.len() - 1]).is_err());
    }

    #[test]
    fn assembles_across_packets_with_pointer() {
        let a = pmt().to_section();
        let b = Pat {
            transport_stream_id: 7,
            version: 1,
            programs: vec![],
        }
        .to_section();
        let mut asm = SectionAssembler::default();
        let mut out = Vec::new();
        // Packet 1: pointer 0, first 10 bytes of a.
        let mut p1 = vec![0];
        p1.extend_from_slice(&a[..10]);
        asm.push(true, &p1, &mut out);
        assert!(out.is_empty());
        // Packet 2: continuation with the rest of a, then stuffing.
        let mut p2 = a[10..].to_vec();
        p2.extend_from_slice(&[0xFF; 20]);
        asm.push(false, &p2, &mut out);
        assert_eq!(out, vec![a.clone()]);
        out.clear();
        // Packet 3: pointer skips a tail that belongs to nothing, two sections.
        let mut p3 = vec![3, 9, 9, 9];
        p3.extend_from_slice(&b);
        p3.extend_from_slice(&a);
        p3.extend_from_slice(&[0xFF; 4]);
        asm.push(true, &p3, &mut out);
        assert_eq!(out, vec![b.clone(), a.clone()]);
        // Bad pointer.
        out.clear();
        asm.push(true, &[200, 1, 2], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let mut seed = 7u64;
        let mut asm = SectionAssembler::default();
        let mut out = Vec::new();
        for round in 0..3000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 200) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                v.push((seed >> 56) as u8);
            }
            let _ = Pat::parse(&v);
            let _ = Pmt::parse(&v);
            if v.len() >= 12 {
                // Give the body parser a valid frame: table id, length, CRC.
                v[0] = TABLE_ID_PMT;
                let len = v.len() - 3;
                v[1] = 0xB0 | ((len >> 8) as u8 & 0x0F);
                v[2] = len as u8;
                v[5] |= 1;
                let n = v.len();
                let crc = crc32_mpeg2(&v[..n - 4]);
                v[n - 4..].copy_from_slice(&crc.to_be_bytes());
                let _ = Pmt::parse(&v);
            }
            asm.push(round % 3 == 0, &v, &mut out);
            assert!(asm.buf.len() <= MAX_SECTION_SIZE);
            out.clear();
        }
    }
}
