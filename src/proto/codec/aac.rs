//! AAC ADTS helpers: header parsing and splitting PES payloads into ADTS frames.
//!
//! Owns the ADTS fixed/variable header layout (ISO/IEC 13818-7 / 14496-3): frame
//! length, sampling rate, channel configuration, raw data blocks; and
//! [`AdtsSplitter`], which cuts payloads into frames (refcounted slices, no copy)
//! and per-frame timestamps. It must not decode audio, know about TS or PES, copy
//! frames (except the rare one cut across two PES packets), or panic on
//! arbitrary bytes.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Sampling rates by `sampling_frequency_index` (13..=15 are invalid in ADTS).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Samples per raw data block (AAC-LC frame length).
pub const SAMPLES_PER_BLOCK: u32 = 1024;

/// Largest possible ADTS frame (13-bit `frame_length`).
pub const MAX_FRAME_LEN: usize = 8191;

/// Why bytes are not a (complete) ADTS frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdtsError {
    /// Fewer bytes than the header or the frame needs.
    #[error("ADTS frame truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// No 0xFFF syncword with layer 0 at this position.
    #[error("no ADTS syncword")]
    BadSync,
    /// `sampling_frequency_index` 13..=15.
    #[error("invalid ADTS sampling frequency index {0}")]
    BadSampleRate(u8),
    /// `frame_length` smaller than its own header.
    #[error("invalid ADTS frame length {0}")]
    BadFrameLength(usize),
}

/// The fields of one ADTS header that srtgate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// `profile` field: MPEG-4 audio object type minus one (1 = AAC-LC).
    pub profile: u8,
    pub sample_rate_index: u8,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// `channel_configuration` (0 = defined in-band by a PCE).
    pub channels: u8,
    /// Whole frame length in bytes, header included.
    pub frame_len: usize,
    /// Header length: 7, or 9 with CRC.
    pub header_len: usize,
    /// Raw data blocks in the frame (1..=4), 1024 samples each.
    pub raw_blocks: u8,
}

impl AdtsHeader {
    /// Parses the ADTS header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, AdtsError> {
        let h: &[u8; 7] = match data.get(..7).and_then(|s| s.try_into().ok()) {
            Some(h) => h,
            None => {
                return Err(AdtsError::Truncated {
                    needed: 7,
                    available: data.len(),
                })
            }
        };
        if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
            return Err(AdtsError::BadSync);
        }
        let protection_absent = h[1] & 1 == 1;
        let profile = h[2] >> 6;
        let sample_rate_index = (h[2] >> 2) & 0x0F;
        let sample_rate = *SAMPLE_RATES
            .get(usize::from(sample_rate_index))
            .ok_or(AdtsError::BadSampleRate(sample_rate_index))?;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let frame_len =
            (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len <= header_len {
            return Err(AdtsError::BadFrameLength(frame_len));
        }
        Ok(AdtsHeader {
            profile,
            sample_rate_index,
            sample_rate,
            channels,
            frame_len,
            header_len,
            raw_blocks: (h[6] & 3) + 1,
        })
    }

    /// Audio samples in this frame.
    pub fn samples(&self) -> u32 {
        SAMPLES_PER_BLOCK * u32::from(self.raw_blocks)
    }
}

/// Converts a sample count at `sample_rate` to 90 kHz ticks (rounded down).
pub fn samples_to_90k(samples: u64, sample_rate: u32) -> i64 {
    if sample_rate == 0 {
        return 0;
    }
    let ticks = u128::from(samples) * 90_000 / u128::from(sample_rate);
    i64::try_from(ticks).unwrap_or(i64::MAX)
}

/// Offset of the next plausible ADTS syncword at or after `from`.
pub fn find_sync(data: &[u8], from: usize) -> Option<usize> {
    let tail = data.get(from..)?;
    tail.windows(2)
        .position(|w| w[0] == 0xFF && w[1] & 0xF6 == 0xF0)
        .map(|p| p + from)
}

/// One complete ADTS frame found by [`AdtsFrames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsFrame {
    pub header: AdtsHeader,
    /// The frame's bytes (header included) within the scanned buffer.
    pub range: Range<usize>,
}

/// Iterates over the complete ADTS frames of a buffer, in order.
///
/// Stops at the first problem; [`AdtsFrames::error`] then tells what it was and
/// [`AdtsFrames::position`] where. [`AdtsFrames::resync`] skips to the next
/// syncword so iteration can go on past garbage.
#[derive(Debug, Clone)]
pub struct AdtsFrames<'a> {
    data: &'a [u8],
    pos: usize,
    error: Option<AdtsError>,
}

impl<'a> AdtsFrames<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        AdtsFrames {
            data,
            pos: 0,
            error: None,
        }
    }

    /// Offset of the first byte not yet returned as part of a frame.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Why iteration stopped early, if it did.
    pub fn error(&self) -> Option<&AdtsError> {
        self.error.as_ref()
    }

    /// After an error, moves to the next syncword past the current position.
    /// Returns false (and stays stopped) if there is none.
    pub fn resync(&mut self) -> bool {
        match find_sync(self.data, self.pos + 1) {
            Some(p) => {
                self.pos = p;
                self.error = None;
                true
            }
            None => false,
        }
    }
}

impl Iterator for AdtsFrames<'_> {
    type Item = AdtsFrame;

    fn next(&mut self) -> Option<AdtsFrame> {
        if self.error.is_some() {
            return None;
        }
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            return None;
        }
        match AdtsHeader::parse(rest) {
            Ok(header) if header.frame_len <= rest.len() => {
                let range = self.pos..self.pos + header.frame_len;
                self.pos = range.end;
                Some(AdtsFrame { header, range })
            }
            Ok(header) => {
                self.error = Some(AdtsError::Truncated {
                    needed: header.frame_len,
                    available: rest.len(),
                });
                None
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// Splits the payloads of consecutive AAC PES packets of one stream into ADTS
/// frames with their timestamps. A frame cut at the end of one payload is kept
/// and completed from the start of the next one.
#[derive(Debug, Default)]
pub struct AdtsSplitter {
    /// The start of a cut frame and the timestamp it was due at.
    carry: Option<(BytesMut, i64)>,
}

/// What [`AdtsSplitter::split`] did with one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSummary {
    /// Garbage skipped or a carried frame that did not fit.
    pub errors: u64,
    /// Timestamp just after the last complete frame (where the next one is due).
    pub end: i64,
}

impl AdtsSplitter {
    /// Forgets a cut frame (after a discontinuity).
    pub fn reset(&mut self) {
        self.carry = None;
    }

    /// Splits `payload`, whose first frame starting in it is due at `ts` (90 kHz),
    /// calling `emit(frame, ts)` for each complete frame, header included.
    pub fn split(
        &mut self,
        payload: Bytes,
        ts: i64,
        mut emit: impl FnMut(Bytes, i64),
    ) -> SplitSummary {
        let mut errors = 0;
        let mut skip = 0;
        if let Some((mut bytes, carry_ts)) = self.carry.take() {
            let mut head = [0u8; 7];
            let have = bytes.len().min(7);
            head[..have].copy_from_slice(&bytes[..have]);
            let fill = payload.get(..7 - have).unwrap_or(&[]);
            head[have..have + fill.len()].copy_from_slice(fill);
            let need = AdtsHeader::parse(&head)
                .ok()
                .map(|h| h.frame_len.saturating_sub(bytes.len()));
            // Complete it only if the tail fits and is followed by a frame (or nothing).
            match need {
                Some(need)
                    if need <= payload.len()
                        && (need == payload.len()
                            || AdtsHeader::parse(&payload[need..]).is_ok()) =>
                {
                    bytes.extend_from_slice(&payload[..need]);
                    emit(bytes.freeze(), carry_ts);
                    skip = need;
                }
                _ => errors += 1,
            }
        }
        let body = payload.slice(skip..);
        let mut frames = AdtsFrames::new(&body);
        let (mut samples, mut rate) = (0u64, 0u32);
        loop {
            for f in frames.by_ref() {
                emit(
                    body.slice(f.range),
                    ts.saturating_add(samples_to_90k(samples, f.header.sample_rate)),
                );
                samples += u64::from(f.header.samples());
                rate = f.header.sample_rate;
            }
            match frames.error() {
                None => break,
                Some(AdtsError::Truncated { .. }) => {
                    let tail = body.get(frames.position()..).unwrap_or(&[]);
                    let mut bytes = BytesMut::with_capacity(MAX_FRAME_LEN);
                    bytes.extend_from_slice(tail);
                    self.carry = Some((bytes, ts.saturating_add(samples_to_90k(samples, rate))));
                    break;
                }
                Some(e) => {
                    tracing::debug!(error = %e, "ADTS resync");
                    errors += 1;
                    if !frames.resync() {
                        break;
                    }
                }
            }
        }
        SplitSummary {
            errors,
            end: ts.saturating_add(samples_to_90k(samples, rate)),
        }
    }

    /// Bytes held for a cut frame.
    pub fn buffered(&self) -> usize {
        self.carry.as_ref().map_or(0, |c| c.0.capacity())
    }
}

/// Builds one ADTS frame (no CRC) around `payload`, for tests.
#[cfg(test)]
pub(crate) fn test_frame(sample_rate_index: u8, channels: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() + 7;
    assert!(len <= MAX_FRAME_LEN);
    let mut v = vec![
        0xFF,
        0xF1,
        (1 << 6) | (sample_rate_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | ((len >> 11) as u8 & 3),
        (len >> 3) as u8,
        (((len & 7) as u8) << 5) | 0x1F,
        0xFC,
    ];
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header() {
        let f = test_frame(3, 2, &[1, 2, 3, 4, 5]);
        let h = AdtsHeader::parse(&f).unwrap();
        assert_eq!(h.sample_rate, 48000);
        assert_eq!(h.channels, 2);
        assert_eq!(h.frame_len, 12);
        assert_eq!(h.header_len, 7);
        assert_eq!(h.raw_blocks, 1);
        assert_eq!(h.profile, 1);
        assert_eq!(h.samples(), 1024);
        assert_eq!(samples_to_90k(1024, 48000), 1920);
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(matches!(
            AdtsHeader::parse(&[0xFF, 0xF1]),
            Err(AdtsError::Truncated { .. })
        ));
        assert_eq!(AdtsHeader::parse(&[0; 7]), Err(AdtsError::BadSync));
        let mut f = test_frame(3, 2, &[0; 4]);
        f[2] = (f[2] & !0x3C) | (13 << 2);
        assert_eq!(AdtsHeader::parse(&f), Err(AdtsError::BadSampleRate(13)));
        let mut f = test_frame(3, 2, &[]);
        f[3] &= !3;
        f[4] = 0;
        f[5] &= 0x1F;
        assert_eq!(AdtsHeader::parse(&f), Err(AdtsError::BadFrameLength(0)));
    }

    #[test]
    fn splits_and_resyncs() {
        let mut buf = test_frame(4, 1, &[7; 10]);
        buf.extend(test_frame(4, 1, &[8; 20]));
        buf.extend([0x12, 0x34, 0x56]);
        buf.extend(test_frame(4, 1, &[9; 5]));
        buf.extend(&test_frame(4, 1, &[1; 30])[..15]);
        let mut it = AdtsFrames::new(&buf);
        let lens: Vec<usize> = it.by_ref().map(|f| f.range.len()).collect();
        assert_eq!(lens, vec![17, 27]);
        assert_eq!(it.error(), Some(&AdtsError::BadSync));
        assert!(it.resync());
        let f = it.next().unwrap();
        assert_eq!(&buf[f.range.clone()][7..], &[9; 5]);
        assert!(it.next().is_none());
        assert_eq!(
            it.error(),
            Some(&AdtsError::Truncated {
                needed: 37,
                available: 15
            })
        );
        assert_eq!(it.position(), buf.len() - 15);
    }

    fn split(s: &mut AdtsSplitter, payload: &[u8], ts: i64) -> (Vec<(Vec<u8>, i64)>, SplitSummary) {
        let mut v = Vec::new();
        let sum = s.split(Bytes::copy_from_slice(payload), ts, |b, t| {
            v.push((b.to_vec(), t))
        });
        (v, sum)
    }

    #[test]
    fn splitter_carries_cut_frames_and_skips_garbage() {
        let f: Vec<Vec<u8>> = (0..6u8).map(|i| test_frame(3, 2, &[i; 40])).collect();
        let mut s = AdtsSplitter::default();
        // PES 1: f0, f1, first half of f2.
        let pes1 = [&f[0][..], &f[1][..], &f[2][..20]].concat();
        let (got, sum) = split(&mut s, &pes1, 1000);
        assert_eq!(got, vec![(f[0].clone(), 1000), (f[1].clone(), 2920)]);
        assert_eq!(
            sum,
            SplitSummary {
                errors: 0,
                end: 4840
            }
        );
        assert!(s.buffered() > 0);
        // PES 2 (PTS of f3): rest of f2, f3, garbage, f4.
        let pes2 = [&f[2][20..], &f[3][..], &[1, 2, 3][..], &f[4][..]].concat();
        let (got, sum) = split(&mut s, &pes2, 6760);
        assert_eq!(
            got,
            vec![
                (f[2].clone(), 4840),
                (f[3].clone(), 6760),
                (f[4].clone(), 8680)
            ]
        );
        assert_eq!(sum.errors, 1);
        // A carry that does not continue in the next PES is dropped.
        split(&mut s, &f[5][..10], 0);
        let (got, sum) = split(&mut s, &f[0], 50);
        assert_eq!((got, sum.errors), (vec![(f[0].clone(), 50)], 1));
        s.reset();
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let mut seed = 99u32;
        for _ in 0..5000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 64) {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                v.push(if seed.is_multiple_of(3) {
                    0xFF
                } else {
                    (seed >> 24) as u8
                });
            }
            let mut it = AdtsFrames::new(&v);
            loop {
                for f in it.by_ref() {
                    assert!(f.range.end <= v.len());
                }
                if !it.resync() {
                    break;
                }
            }
        }
    }
}
