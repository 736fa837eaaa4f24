//! H.264 / AVC Annex-B helpers: NAL unit iteration and keyframe detection.
//!
//! Owns the Annex-B start-code scanner (shared with [`super::h265`]) and the H.264
//! NAL header interpretation. It must not allocate, copy NAL payloads, parse SPS /
//! slice headers, or panic on arbitrary bytes.

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR coded slice (the keyframe marker).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// An Annex-B access unit delimiter (primary_pic_type 7: any slice type), with a
/// 4-byte start code, as the TS muxer inserts it.
pub const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];

/// Iterates over the NAL units of an Annex-B byte stream.
///
/// Yields each NAL unit without its start code and without trailing zero bytes
/// (which belong to the next 4-byte start code or are `trailing_zero_8bits`).
/// Bytes before the first start code are skipped; empty NAL units are skipped.
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Offset of the next NAL unit's first byte (just after a start code).
    pos: usize,
}

/// Iterates over the NAL units of the Annex-B buffer `data`.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    let pos = match find_start_code(data, 0) {
        Some(sc) => sc + 3,
        None => data.len(),
    };
    NalUnits { data, pos }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let end = match find_start_code(self.data, start) {
                Some(sc) => {
                    self.pos = sc + 3;
                    sc
                }
                None => {
                    self.pos = self.data.len();
                    self.data.len()
                }
            };
            let nal = trim_trailing_zeros(self.data.get(start..end).unwrap_or(&[]));
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Position of the next 3-byte start code prefix `00 00 01` at or after `from`.
pub(crate) fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    // Skip ahead by three when the third byte rules out a start code at i, i+1, i+2.
    while i + 2 < data.len() {
        let b = data[i + 2];
        if b > 1 {
            i += 3;
        } else if b == 1 {
            if data[i] == 0 && data[i + 1] == 0 {
                return Some(i);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &nal[..end]
}

/// The `nal_unit_type` of an H.264 NAL unit (without start code).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1F)
}

/// Iterates over the first byte (the NAL header) of each NAL unit, without
/// scanning NAL payloads beyond the next start code. Cheaper than
/// [`nal_units`] when the caller stops early.
pub(crate) fn nal_headers(au: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let sc = find_start_code(au, pos)?;
        pos = sc + 3;
        au.get(pos).copied()
    })
}

/// True if the access unit's first picture is IDR (NAL type 5).
///
/// Scans NAL headers only up to the first coded slice: all slices of a picture
/// share IDR-ness, so slice payloads are never read.
pub fn is_keyframe(au: &[u8]) -> bool {
    for header in nal_headers(au) {
        match header & 0x1F {
            NAL_IDR => return true,
            1..=4 => return false,
            _ => {}
        }
    }
    false
}

/// True if the access unit's first NAL unit is an access unit delimiter.
pub fn starts_with_aud(au: &[u8]) -> bool {
    nal_headers(au).next().map(|h| h & 0x1F) == Some(NAL_AUD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_mixed_start_codes() {
        let data = [
            0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5, 0, 0,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(is_keyframe(&data));
        assert!(!starts_with_aud(&data));
    }

    #[test]
    fn aud_and_non_idr() {
        let mut au = AUD.to_vec();
        au.extend_from_slice(&[0, 0, 1, 0x41, 9, 9]);
        assert!(starts_with_aud(&au));
        assert!(!is_keyframe(&au));
        let types: Vec<u8> = nal_units(&au).filter_map(nal_type).collect();
        assert_eq!(types, vec![NAL_AUD, NAL_SLICE]);
    }

    #[test]
    fn no_start_code_or_empty() {
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3, 4]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1, 0, 0, 0]).count(), 0);
        assert!(!is_keyframe(&[0, 0, 1]));
    }

    #[test]
    fn start_code_scanner_matches_naive() {
        let mut seed = 0x1234_5678_u32;
        for _ in 0..2000 {
            let mut v = Vec::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                // Mostly zeros and ones so start codes are common.
                v.push(match seed % 4 {
                    0 | 1 => 0,
                    2 => 1,
                    _ => (seed >> 8) as u8,
                });
            }
            let naive = v.windows(3).position(|w| w == [0, 0, 1]);
            assert_eq!(find_start_code(&v, 0), naive, "{v:?}");
        }
    }
}
