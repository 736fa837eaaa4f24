//! H.265 / HEVC Annex-B helpers: NAL header interpretation and keyframe detection.
//!
//! Owns the HEVC NAL type constants and the IRAP (random access point) test. NAL
//! iteration is shared with [`super::h264::nal_units`]. It must not allocate,
//! parse parameter sets or slice headers, or panic on arbitrary bytes.

use super::h264::nal_headers;

/// First IRAP NAL unit type (BLA_W_LP).
pub const NAL_IRAP_FIRST: u8 = 16;
/// Last IRAP NAL unit type (RSV_IRAP_VCL23 is reserved; 21 is CRA_NUT).
pub const NAL_IRAP_LAST: u8 = 21;
/// NAL unit type of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 35;

/// An Annex-B HEVC access unit delimiter (layer 0, temporal id 1, pic_type 2: any),
/// with a 4-byte start code, as the TS muxer inserts it.
pub const AUD: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// The `nal_unit_type` of an H.265 NAL unit (without start code).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3F)
}

/// True if the NAL unit type is an IRAP picture (BLA, IDR or CRA: 16..=21).
pub fn is_irap(nal_type: u8) -> bool {
    (NAL_IRAP_FIRST..=NAL_IRAP_LAST).contains(&nal_type)
}

/// True if the access unit's first picture is IRAP (NAL types 16..=21).
///
/// Scans NAL headers only up to the first VCL NAL unit (types 0..=31): all
/// slices of a picture share its type, so slice payloads are never read.
pub fn is_keyframe(au: &[u8]) -> bool {
    for header in nal_headers(au) {
        let t = (header >> 1) & 0x3F;
        if t < 32 {
            return is_irap(t);
        }
    }
    false
}

/// True if the access unit's first NAL unit is an access unit delimiter.
pub fn starts_with_aud(au: &[u8]) -> bool {
    nal_headers(au).next().map(|h| (h >> 1) & 0x3F) == Some(NAL_AUD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, t << 1, 1];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn keyframe_types() {
        for t in 0..64u8 {
            let au = nal(t, &[0xAB, 0xCD]);
            assert_eq!(is_keyframe(&au), (16..=21).contains(&t), "type {t}");
        }
        let mut au = nal(NAL_VPS, &[1]);
        au.extend(nal(NAL_SPS, &[2]));
        au.extend(nal(NAL_PPS, &[3]));
        au.extend(nal(19, &[4])); // IDR_W_RADL
        assert!(is_keyframe(&au));
        assert!(!starts_with_aud(&au));
    }

    #[test]
    fn aud_detected() {
        let mut au = AUD.to_vec();
        au.extend(nal(1, &[9]));
        assert!(starts_with_aud(&au));
        assert_eq!(nal_type(&AUD[4..]), Some(NAL_AUD));
        assert!(!is_keyframe(&au));
        assert!(!is_keyframe(&[]));
    }
}
