//! H.265 / HEVC: SPS parsing (ITU-T H.265 §7.3.2.2) up to the picture size and the
//! `HEVCDecoderConfigurationRecord` (`hvcC`, ISO/IEC 14496-15 §8.3.3.1).
//!
//! The 12-byte general `profile_tier_level` part is copied raw from the SPS RBSP into
//! `hvcC`; sub-layer profile/level info is only skipped over.

use bytes::{BufMut, Bytes, BytesMut};

use super::avc::{active_sps, missing, put_units, upsert, without_ids};
use super::bits::{to_rbsp, BitError, BitReader, BitResult};
use super::error::Fmp4Error;
use crate::media::frame::{Codec, Frame};
use crate::proto::codec::h264::nal_units;

pub(crate) const NAL_VPS: u8 = 32;
pub(crate) const NAL_SPS: u8 = 33;
pub(crate) const NAL_PPS: u8 = 34;
pub(crate) const NAL_AUD: u8 = 35;

/// NAL unit type (bits 1..7 of the two-byte header).
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

/// The SPS fields the muxer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sps {
    pub id: u32,
    /// general_profile_space .. general_level_idc, 12 bytes as in the bitstream.
    pub general_ptl: [u8; 12],
    pub max_sub_layers: u8,
    pub temporal_id_nested: bool,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    /// Luma width after the conformance window.
    pub width: u32,
    /// Luma height after the conformance window.
    pub height: u32,
}

fn malformed(what: &'static str) -> impl Fn(BitError) -> Fmp4Error {
    move |e| Fmp4Error::MalformedParameterSet {
        codec: Codec::H265,
        what,
        reason: e.0,
    }
}

/// RBSP of a NAL unit without its two-byte header.
fn rbsp_body(nal: &[u8]) -> Vec<u8> {
    let mut rbsp = to_rbsp(nal);
    rbsp.drain(..rbsp.len().min(2));
    rbsp
}

/// Parses an SPS NAL unit (header included, emulation prevention still present).
pub(crate) fn parse_sps(nal: &[u8]) -> Result<Sps, Fmp4Error> {
    parse_sps_rbsp(&rbsp_body(nal)).map_err(malformed("SPS"))
}

fn parse_sps_rbsp(rbsp: &[u8]) -> BitResult<Sps> {
    let mut r = BitReader::new(rbsp);
    r.skip_bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.read_bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(BitError("sps_max_sub_layers_minus1 > 6"));
    }
    let temporal_id_nested = r.read_flag()?;
    let mut general_ptl = [0u8; 12];
    let ptl = rbsp.get(1..13).ok_or(BitError("truncated"))?;
    general_ptl.copy_from_slice(ptl);
    r.skip_bits(96)?;
    skip_sub_layer_ptl(&mut r, max_sub_layers_minus1)?;
    let id = r.read_ue()?;
    if id > 15 {
        return Err(BitError("sps_seq_parameter_set_id > 15"));
    }
    let chroma_format_idc = r.read_ue()?;
    if chroma_format_idc > 3 {
        return Err(BitError("chroma_format_idc > 3"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.read_flag()?;
    let mut width = u64::from(r.read_ue()?);
    let mut height = u64::from(r.read_ue()?);
    if r.read_flag()? {
        // conformance_window_flag: offsets in chroma units (Table 6-1).
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let left = u64::from(r.read_ue()?);
        let right = u64::from(r.read_ue()?);
        let top = u64::from(r.read_ue()?);
        let bottom = u64::from(r.read_ue()?);
        width = width
            .checked_sub(sub_w * (left + right))
            .ok_or(BitError("conformance window exceeds width"))?;
        height = height
            .checked_sub(sub_h * (top + bottom))
            .ok_or(BitError("conformance window exceeds height"))?;
    }
    if width == 0 || height == 0 || width > 0xffff || height > 0xffff {
        return Err(BitError("picture size out of range"));
    }
    let bit_depth_luma_minus8 = r.read_ue()?;
    let bit_depth_chroma_minus8 = r.read_ue()?;
    if bit_depth_luma_minus8 > 8 || bit_depth_chroma_minus8 > 8 {
        return Err(BitError("bit depth > 16"));
    }
    Ok(Sps {
        id,
        general_ptl,
        max_sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nested,
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        width: width as u32,
        height: height as u32,
    })
}

/// Skips the sub-layer part of `profile_tier_level(1, maxNumSubLayersMinus1)`.
fn skip_sub_layer_ptl(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> BitResult<()> {
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.read_flag()?, r.read_flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip_bits(2 * (8 - max_sub_layers_minus1 as usize))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip_bits(88)?;
        }
        if level {
            r.skip_bits(8)?;
        }
    }
    Ok(())
}

/// `(pps_pic_parameter_set_id, pps_seq_parameter_set_id)` of a PPS NAL unit.
fn parse_pps_ids(nal: &[u8]) -> Result<(u32, u32), Fmp4Error> {
    let rbsp = rbsp_body(nal);
    let mut r = BitReader::new(&rbsp);
    let ids = (|| Ok((r.read_ue()?, r.read_ue()?)))().map_err(malformed("PPS"))?;
    if ids.0 > 63 || ids.1 > 15 {
        return Err(malformed("PPS")(BitError("parameter set id out of range")));
    }
    Ok(ids)
}

/// `vps_video_parameter_set_id` of a VPS NAL unit.
fn parse_vps_id(nal: &[u8]) -> Result<u32, Fmp4Error> {
    nal.get(2)
        .map(|b| u32::from(b >> 4))
        .ok_or_else(|| malformed("VPS")(BitError("truncated")))
}

/// Parameter sets collected from one access unit, deduplicated by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HevcParams {
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    /// The SPS referenced by the first PPS (or the first SPS).
    pub active: Sps,
}

/// Collects VPS/SPS/PPS from a frame. `Ok(None)` if a non-key frame lacks them.
pub(crate) fn collect(frame: &Frame) -> Result<Option<HevcParams>, Fmp4Error> {
    let mut vps = Vec::new();
    let mut sps = Vec::new();
    let mut pps = Vec::new();
    let mut first_pps_sps_id = None;
    for nal in nal_units(&frame.data) {
        let unit = || Bytes::copy_from_slice(nal);
        match nal_type(nal) {
            NAL_VPS => upsert(&mut vps, parse_vps_id(nal)?, unit()),
            NAL_SPS => upsert(&mut sps, parse_sps(nal)?.id, unit()),
            NAL_PPS => {
                let (id, sps_id) = parse_pps_ids(nal)?;
                first_pps_sps_id.get_or_insert(sps_id);
                upsert(&mut pps, id, unit());
            }
            _ => {}
        }
    }
    let missing = |what| missing(frame, Codec::H265, what);
    if vps.is_empty() {
        return missing("VPS");
    }
    if sps.is_empty() {
        return missing("SPS");
    }
    if pps.is_empty() {
        return missing("PPS");
    }
    let Some(active_nal) = active_sps(&sps, first_pps_sps_id) else {
        return missing("SPS referenced by the PPS");
    };
    let active = parse_sps(active_nal)?;
    Ok(Some(HevcParams {
        vps: without_ids(vps),
        sps: without_ids(sps),
        pps: without_ids(pps),
        active,
    }))
}

/// Builds the `hvcC` payload (record without box header), 4-byte NAL lengths,
/// `array_completeness = 1` as required for `hvc1` sample entries.
pub(crate) fn hvcc_record(p: &HevcParams) -> Result<Bytes, Fmp4Error> {
    let s = &p.active;
    let total: usize = p
        .vps
        .iter()
        .chain(&p.sps)
        .chain(&p.pps)
        .map(Bytes::len)
        .sum();
    let mut b = BytesMut::with_capacity(40 + total);
    b.put_u8(1); // configurationVersion
    b.put_slice(&s.general_ptl); // profile space/tier/idc, compat, constraints, level
    b.put_u16(0xf000); // reserved + min_spatial_segmentation_idc = 0
    b.put_u8(0xfc); // reserved + parallelismType = 0 (unknown)
    b.put_u8(0xfc | s.chroma_format_idc as u8);
    b.put_u8(0xf8 | s.bit_depth_luma_minus8 as u8);
    b.put_u8(0xf8 | s.bit_depth_chroma_minus8 as u8);
    b.put_u16(0); // avgFrameRate: unspecified
                  // constantFrameRate = 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne = 3
    b.put_u8((s.max_sub_layers << 3) | (u8::from(s.temporal_id_nested) << 2) | 3);
    b.put_u8(3); // numOfArrays
    for (nal_type, units) in [(NAL_VPS, &p.vps), (NAL_SPS, &p.sps), (NAL_PPS, &p.pps)] {
        b.put_u8(0x80 | nal_type); // array_completeness = 1, reserved = 0
        b.put_u16(units.len() as u16); // bounded by the id ranges (<= 64)
        put_units(&mut b, units).ok_or(Fmp4Error::MalformedParameterSet {
            codec: Codec::H265,
            what: "parameter set",
            reason: "does not fit hvcC",
        })?;
    }
    Ok(b.freeze())
}

/// RFC 6381 / ISO 14496-15 Annex E codec string, e.g. `hvc1.1.6.L93.B0`.
pub(crate) fn codec_string(ptl: &[u8; 12]) -> String {
    let space = ["", "A", "B", "C"][usize::from(ptl[0] >> 6)];
    let tier = if ptl[0] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes([ptl[1], ptl[2], ptl[3], ptl[4]]).reverse_bits();
    let mut s = format!("hvc1.{space}{}.{compat:X}.{tier}{}", ptl[0] & 0x1f, ptl[11]);
    let constraints = &ptl[5..11];
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p + 1);
    for b in &constraints[..used] {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x265 Main 1280x720 SPS.
    const SPS_720P: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0,
        0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];

    #[test]
    fn parses_main_profile_sps() {
        let s = parse_sps(SPS_720P).unwrap();
        assert_eq!((s.width, s.height), (1280, 720));
        assert_eq!(s.general_ptl[0], 0x01); // Main
        assert_eq!(s.general_ptl[11], 93); // level 3.1
        assert_eq!((s.chroma_format_idc, s.max_sub_layers), (1, 1));
        assert_eq!(codec_string(&s.general_ptl), "hvc1.1.6.L93.90");
    }

    #[test]
    fn truncated_sps_is_an_error() {
        for n in 0..24 {
            assert!(parse_sps(&SPS_720P[..n]).is_err(), "len {n}");
        }
    }
}
