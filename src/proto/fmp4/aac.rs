//! AAC: ADTS header parsing (ISO/IEC 13818-7 §6.2 / 14496-3 §1.A.2) and the two-byte
//! `AudioSpecificConfig` (14496-3 §1.6.2.1) carried in the `esds` box.

use super::error::Fmp4Error;

/// Sampling frequencies by `sampling_frequency_index`.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Samples per AAC frame (ADTS never signals the 960-sample variant).
pub(crate) const SAMPLES_PER_FRAME: u32 = 1024;

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
    /// Parses and validates the ADTS header of `data`, which must hold exactly one frame.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, Fmp4Error> {
        let h = data
            .get(..7)
            .ok_or(Fmp4Error::MalformedAdts("shorter than the 7-byte header"))?;
        if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
            return Err(Fmp4Error::MalformedAdts("missing 0xFFF syncword"));
        }
        if h[1] & 0x06 != 0 {
            return Err(Fmp4Error::MalformedAdts("layer is not 0"));
        }
        let header_len = if h[1] & 0x01 == 1 { 7 } else { 9 };
        let object_type = (h[2] >> 6) + 1;
        let sample_rate_index = (h[2] >> 2) & 0x0f;
        let sample_rate =
            *SAMPLE_RATES
                .get(usize::from(sample_rate_index))
                .ok_or(Fmp4Error::MalformedAdts(
                    "reserved sampling_frequency_index",
                ))?;
        let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        if channel_config == 0 {
            return Err(Fmp4Error::MalformedAdts(
                "channel_configuration 0 (in-band PCE) is not supported",
            ));
        }
        let frame_len =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        if h[6] & 0x03 != 0 {
            return Err(Fmp4Error::MalformedAdts(
                "more than one raw data block per frame is not supported",
            ));
        }
        if frame_len <= header_len {
            return Err(Fmp4Error::MalformedAdts("frame_length not beyond header"));
        }
        if frame_len != data.len() {
            return Err(Fmp4Error::MalformedAdts(
                "frame_length differs from payload size (expected exactly one frame)",
            ));
        }
        Ok(Self {
            object_type,
            sample_rate_index,
            sample_rate,
            channel_config,
            header_len,
            frame_len,
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
