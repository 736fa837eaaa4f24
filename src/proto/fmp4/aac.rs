//! AAC for fMP4: the ADTS checks an `mp4a` sample needs (on top of
//! [`crate::proto::codec::aac`]'s header parser) and the two-byte
//! `AudioSpecificConfig` (14496-3 §1.6.2.1) carried in the `esds` box.

use super::error::Fmp4Error;
use crate::proto::codec::aac::{AdtsError, AdtsHeader};

/// Samples per AAC frame (ADTS never signals the 960-sample variant).
pub(crate) use crate::proto::codec::aac::SAMPLES_PER_BLOCK as SAMPLES_PER_FRAME;

/// The fields of one ADTS header the muxer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Adts {
    /// MPEG-4 audio object type (= ADTS profile + 1), e.g. 2 for AAC-LC.
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
    /// 7 bytes, or 9 with CRC.
    pub header_len: usize,
    /// Header + raw data block.
    pub frame_len: usize,
}

impl Adts {
    /// Parses the ADTS header of `data` ([`AdtsHeader::parse`]) and checks what
    /// an `mp4a` sample needs: exactly one frame with one raw data block, and a
    /// channel configuration in the header (not in-band).
    pub(crate) fn parse(data: &[u8]) -> Result<Self, Fmp4Error> {
        let h = AdtsHeader::parse(data).map_err(|e| {
            Fmp4Error::MalformedAdts(match e {
                AdtsError::Truncated { .. } => "shorter than the 7-byte header",
                AdtsError::BadSync => "missing 0xFFF syncword (or layer is not 0)",
                AdtsError::BadSampleRate(_) => "reserved sampling_frequency_index",
                AdtsError::BadFrameLength(_) => "frame_length not beyond header",
            })
        })?;
        if h.channels == 0 {
            return Err(Fmp4Error::MalformedAdts(
                "channel_configuration 0 (in-band PCE) is not supported",
            ));
        }
        if h.raw_blocks != 1 {
            return Err(Fmp4Error::MalformedAdts(
                "more than one raw data block per frame is not supported",
            ));
        }
        if h.frame_len != data.len() {
            return Err(Fmp4Error::MalformedAdts(
                "frame_length differs from payload size (expected exactly one frame)",
            ));
        }
        Ok(Self {
            object_type: h.profile + 1,
            sample_rate_index: h.sample_rate_index,
            sample_rate: h.sample_rate,
            channel_config: h.channels,
            header_len: h.header_len,
            frame_len: h.frame_len,
        })
    }

    /// Channel count implied by `channel_config` (7 means 7.1).
    pub(crate) fn channels(&self) -> u16 {
        if self.channel_config == 7 {
            8
        } else {
            u16::from(self.channel_config)
        }
    }

    /// Two-byte AudioSpecificConfig: object type (5 bits), frequency index (4),
    /// channel configuration (4), GASpecificConfig with all three flags zero (3).
    pub(crate) fn audio_specific_config(&self) -> [u8; 2] {
        let v: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.sample_rate_index) << 7)
            | (u16::from(self.channel_config) << 3);
        v.to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adts(len: usize, crc: bool) -> Vec<u8> {
        // AAC-LC (profile 1), 48 kHz (index 3), mono.
        let mut v = vec![
            0xff,
            if crc { 0xf0 } else { 0xf1 },
            (1 << 6) | (3 << 2),
            (1 << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1f,
            0xfc,
        ];
        v.resize(len, 0x21);
        v
    }

    #[test]
    fn parses_lc_mono_48k() {
        let a = Adts::parse(&adts(100, false)).unwrap();
        assert_eq!((a.object_type, a.sample_rate, a.channels()), (2, 48000, 1));
        assert_eq!((a.header_len, a.frame_len), (7, 100));
        assert_eq!(a.audio_specific_config(), [0x11, 0x88]);
        assert_eq!(Adts::parse(&adts(100, true)).unwrap().header_len, 9);
    }

    #[test]
    fn rejects_bad_frames() {
        assert!(Adts::parse(&[0xff, 0xf1]).is_err());
        let mut a = adts(100, false);
        a.push(0);
        assert!(Adts::parse(&a).is_err());
        assert!(Adts::parse(&adts(7, false)).is_err());
        let mut a = adts(100, false);
        a[0] = 0xfe;
        assert!(Adts::parse(&a).is_err());
    }
}
