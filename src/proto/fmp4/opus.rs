//! Opus for fMP4: unpacking the MPEG-TS framing of Opus (each access unit
//! behind an `opus_control_header`), packet durations from the TOC byte
//! (RFC 6716 §3.1) and the `dOps` box of the `Opus` sample entry (Encapsulation
//! of Opus in ISO Base Media File Format, §4.3.2).
//!
//! A frame's payload is one PES payload, which may hold several access units,
//! each introduced by its own control header:
//!
//! ```text
//! 11 bits 0x3FF | start_trim_flag | end_trim_flag | control_extension_flag | 2 reserved
//! au_size: 0xFF bytes (255 each) then one byte < 0xFF, summed
//! [start_trim: 16 bits] [end_trim: 16 bits] [ext_length: 8 bits, ext_length bytes]
//! au_size bytes: one Opus packet (TOC byte first)
//! ```
//!
//! Every access unit becomes one MP4 sample: the raw Opus packet, control header
//! stripped. Trims are not carried over: they only mark the priming and padding
//! at the very start and end of an encoding, which a live fMP4 joined mid-stream
//! never contains (see [`dops`] about `PreSkip`).

use std::ops::Range;

use super::error::Fmp4Error;

/// Media timescale of an Opus track: Opus always decodes at 48 kHz.
pub(crate) const TIMESCALE: u32 = 48_000;
/// Longest packet RFC 6716 allows: 120 ms at 48 kHz.
const MAX_PACKET_SAMPLES: u32 = 5_760;
/// Size of the `dOps` payload for channel mapping family 0.
pub(crate) const DOPS_LEN: usize = 11;

/// One Opus packet of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    /// Where the packet (without control header) lies in the frame payload.
    pub range: Range<usize>,
    /// Its duration in 48 kHz samples, from the TOC.
    pub samples: u32,
    /// The TOC's stereo flag.
    pub stereo: bool,
}

fn malformed(reason: &'static str) -> Fmp4Error {
    Fmp4Error::MalformedOpus(reason)
}

/// Splits a PES payload of Opus access units into packets. Fails on anything
/// that is not a whole number of well-formed access units.
pub(crate) fn packets(data: &[u8]) -> Result<Vec<Packet>, Fmp4Error> {
    let mut out = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < data.len() {
        let range = access_unit(data, pos)?;
        let packet = &data[range.clone()];
        pos = range.end;
        out.push(Packet {
            samples: packet_samples(packet)?,
            stereo: packet[0] & 0x04 != 0,
            range,
        });
    }
    if out.is_empty() {
        return Err(malformed("no access unit"));
    }
    Ok(out)
}

/// Parses the control header at `pos`; returns the range of its Opus packet.
fn access_unit(data: &[u8], pos: usize) -> Result<Range<usize>, Fmp4Error> {
    let truncated = || malformed("access unit truncated");
    let header = data.get(pos..pos + 2).ok_or_else(truncated)?;
    if header[0] != 0x7F || header[1] & 0xE0 != 0xE0 {
        return Err(malformed("missing control header prefix 0x7FE"));
    }
    let flags = header[1];
    let mut i = pos + 2;
    let mut size = 0usize;
    loop {
        let b = *data.get(i).ok_or_else(truncated)?;
        i += 1;
        size += usize::from(b);
        if b != 0xFF {
            break;
        }
    }
    if flags & 0x10 != 0 {
        i += 2; // start_trim
    }
    if flags & 0x08 != 0 {
        i += 2; // end_trim
    }
    if flags & 0x04 != 0 {
        let len = *data.get(i).ok_or_else(truncated)?;
        i += 1 + usize::from(len);
    }
    if size == 0 {
        return Err(malformed("empty access unit"));
    }
    let end = i.checked_add(size).ok_or_else(truncated)?;
    if end > data.len() {
        return Err(truncated());
    }
    Ok(i..end)
}

/// Duration of one Opus packet in 48 kHz samples (RFC 6716 §3.1): the TOC's
/// configuration gives the frame size, its code the number of frames.
pub(crate) fn packet_samples(packet: &[u8]) -> Result<u32, Fmp4Error> {
    let toc = *packet.first().ok_or_else(|| malformed("empty packet"))?;
    let config = toc >> 3;
    let frame = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = packet
                .get(1)
                .ok_or_else(|| malformed("code 3 packet without frame count"))?
                & 0x3F;
            if count == 0 {
                return Err(malformed("code 3 packet with zero frames"));
            }
            u32::from(count)
        }
    };
    let samples = frame * frames;
    if samples > MAX_PACKET_SAMPLES {
        return Err(malformed("packet longer than 120 ms"));
    }
    Ok(samples)
}

/// The `dOps` payload (OpusSpecificBox, all fields big-endian) for 1 or 2
/// channels: version 0, the channel count, `PreSkip` 0, input rate 48000,
/// gain 0, channel mapping family 0 (mono / stereo, no mapping table).
///
/// `PreSkip` is 0 on purpose: it tells a decoder to discard that many samples
/// when it starts at the beginning of the track, to hide the encoder's
/// priming. This track starts wherever the gateway joined the publisher's
/// stream (and every HLS segment is a start point), so there is no priming to
/// hide; the usual 312 would make players drop 6.5 ms of real audio and shift
/// the audio timeline by it.
pub(crate) fn dops(channels: u8) -> [u8; DOPS_LEN] {
    let [r0, r1, r2, r3] = TIMESCALE.to_be_bytes();
    // Version, OutputChannelCount, PreSkip (2), InputSampleRate (4),
    // OutputGain (2), ChannelMappingFamily.
    [0, channels, 0, 0, r0, r1, r2, r3, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control header for `packet`, with optional trims and extension.
    fn au(packet: &[u8], start_trim: bool, end_trim: bool, ext: Option<&[u8]>) -> Vec<u8> {
        let mut flags = 0xE0;
        if start_trim {
            flags |= 0x10;
        }
        if end_trim {
            flags |= 0x08;
        }
        if ext.is_some() {
            flags |= 0x04;
        }
        let mut v = vec![0x7F, flags];
        let mut n = packet.len();
        while n >= 255 {
            v.push(0xFF);
            n -= 255;
        }
        v.push(n as u8);
        if start_trim {
            v.extend_from_slice(&[0x01, 0x38]);
        }
        if end_trim {
            v.extend_from_slice(&[0x00, 0x10]);
        }
        if let Some(e) = ext {
            v.push(e.len() as u8);
            v.extend_from_slice(e);
        }
        v.extend_from_slice(packet);
        v
    }

    #[test]
    fn toc_durations() {
        // config << 3 | stereo << 2 | code
        let cases: &[(&[u8], u32)] = &[
            (&[0 << 3], 480),                // SILK NB 10 ms
            (&[3 << 3], 2880),               // SILK NB 60 ms
            (&[9 << 3 | 1], 1920),           // SILK WB 20 ms, two frames
            (&[13 << 3 | 2, 0], 1920),       // Hybrid FB 20 ms, two frames
            (&[16 << 3], 120),               // CELT NB 2.5 ms
            (&[31 << 3 | 0x04], 960),        // CELT FB 20 ms stereo
            (&[31 << 3 | 3, 6], 5760),       // six 20 ms frames
            (&[28 << 3 | 3, 0x80 | 3], 360), // three 2.5 ms frames, VBR flag set
        ];
        for (packet, want) in cases {
            assert_eq!(packet_samples(packet), Ok(*want), "{packet:?}");
        }
        assert!(packet_samples(&[]).is_err());
        assert!(packet_samples(&[31 << 3 | 3]).is_err(), "no count byte");
        assert!(packet_samples(&[31 << 3 | 3, 0]).is_err(), "zero frames");
        assert!(packet_samples(&[31 << 3 | 3, 7]).is_err(), "140 ms");
    }

    #[test]
    fn splits_access_units() {
        let long: Vec<u8> = std::iter::once(0xFC)
            .chain((0..600).map(|i| i as u8))
            .collect();
        let mut pes = au(&[0xFC, 1, 2], true, false, None);
        let first = pes.len() - 3..pes.len();
        pes.extend(au(&long, false, true, Some(&[9, 9])));
        let second = pes.len() - long.len()..pes.len();
        pes.extend(au(&[0x78], false, false, None));
        let got = packets(&pes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].range.clone(), got[0].samples), (first, 960));
        assert!(got[0].stereo);
        assert_eq!(got[1].range, second, "size 600 = 0xFF 0xFF 0x5A");
        assert_eq!((got[2].samples, got[2].stereo), (960, false));
    }

    #[test]
    fn rejects_broken_framing() {
        let good = au(&[0xFC, 1], false, false, None);
        assert!(packets(&good).is_ok());
        assert!(packets(&[]).is_err());
        assert!(packets(&good[..good.len() - 1]).is_err(), "truncated");
        let mut bad = good.clone();
        bad[0] = 0x7E;
        assert!(packets(&bad).is_err(), "prefix");
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(packets(&trailing).is_err(), "garbage after the last unit");
        assert!(packets(&[0x7F, 0xE0, 0x00]).is_err(), "empty unit");
        assert!(packets(&[0x7F, 0xE0, 0xFF]).is_err(), "size cut short");
        assert!(
            packets(&[0x7F, 0xF0, 0x01, 0x00]).is_err(),
            "trim cut short"
        );
        assert!(
            packets(&[0x7F, 0xE4, 0x01, 0x05, 0]).is_err(),
            "extension cut short"
        );
    }

    #[test]
    fn dops_layout() {
        assert_eq!(dops(2), [0, 2, 0, 0, 0, 0, 0xBB, 0x80, 0, 0, 0]);
    }
}
