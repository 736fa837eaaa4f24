//! H.264 / AVC: SPS parsing (ITU-T H.264 §7.3.2.1.1) and the
//! `AVCDecoderConfigurationRecord` (`avcC`, ISO/IEC 14496-15 §5.3.3.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::bits::{to_rbsp, BitError, BitReader, BitResult};
use super::error::Fmp4Error;
use crate::media::frame::{Codec, Frame};
use crate::proto::codec::h264::nal_units;

pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;
pub(crate) const NAL_AUD: u8 = 9;

/// NAL unit type (lower 5 bits of the one-byte header). `nal` is never empty.
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// The SPS fields the muxer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sps {
    pub id: u32,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    /// Cropped luma width in pixels.
    pub width: u32,
    /// Cropped luma height in pixels.
    pub height: u32,
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices.
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn malformed(what: &'static str) -> impl Fn(BitError) -> Fmp4Error {
    move |e| Fmp4Error::MalformedParameterSet {
        codec: Codec::H264,
        what,
        reason: e.0,
    }
}

/// Parses an SPS NAL unit (header byte included, emulation prevention still present).
pub(crate) fn parse_sps(nal: &[u8]) -> Result<Sps, Fmp4Error> {
    let rbsp = to_rbsp(nal);
    parse_sps_rbsp(rbsp.get(1..).unwrap_or(&[])).map_err(malformed("SPS"))
}

fn parse_sps_rbsp(rbsp: &[u8]) -> BitResult<Sps> {
    let mut r = BitReader::new(rbsp);
    let profile_idc = r.read_bits(8)? as u8;
    let constraint_flags = r.read_bits(8)? as u8;
    let level_idc = r.read_bits(8)? as u8;
    let id = r.read_ue()?;
    if id > 31 {
        return Err(BitError("seq_parameter_set_id > 31"));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma_minus8 = 0;
    let mut bit_depth_chroma_minus8 = 0;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.read_ue()?;
        if chroma_format_idc > 3 {
            return Err(BitError("chroma_format_idc > 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_flag()?;
        }
        bit_depth_luma_minus8 = r.read_ue()?;
        bit_depth_chroma_minus8 = r.read_ue()?;
        if bit_depth_luma_minus8 > 6 || bit_depth_chroma_minus8 > 6 {
            return Err(BitError("bit depth > 14"));
        }
        r.skip_bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.read_flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.read_ue()?; // log2_max_frame_num_minus4
    skip_pic_order_cnt(&mut r)?;
    r.read_ue()?; // max_num_ref_frames
    r.skip_bits(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.read_ue()?) + 1;
    let height_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_flag()?;
    if !frame_mbs_only {
        r.skip_bits(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip_bits(1)?; // direct_8x8_inference_flag
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let mut width = width_mbs * 16;
    let mut height = field_factor * height_map_units * 16;
    if r.read_flag()? {
        // frame_cropping_flag: offsets are in chroma sample units (§7.4.2.1.1).
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_x = sub_w;
        let crop_y = sub_h * field_factor;
        let left = u64::from(r.read_ue()?);
        let right = u64::from(r.read_ue()?);
        let top = u64::from(r.read_ue()?);
        let bottom = u64::from(r.read_ue()?);
        width = width
            .checked_sub(crop_x * (left + right))
            .ok_or(BitError("horizontal crop exceeds width"))?;
        height = height
            .checked_sub(crop_y * (top + bottom))
            .ok_or(BitError("vertical crop exceeds height"))?;
    }
    if width == 0 || height == 0 || width > 0xffff || height > 0xffff {
        return Err(BitError("picture size out of range"));
    }
    Ok(Sps {
        id,
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        width: width as u32,
        height: height as u32,
    })
}

/// `scaling_list()` (§7.3.2.1.1.1): only consumed, values are irrelevant here.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> BitResult<()> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn skip_pic_order_cnt(r: &mut BitReader<'_>) -> BitResult<()> {
    match r.read_ue()? {
        0 => {
            r.read_ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.skip_bits(1)?; // delta_pic_order_always_zero_flag
            r.read_se()?; // offset_for_non_ref_pic
            r.read_se()?; // offset_for_top_to_bottom_field
            let cycle = r.read_ue()?;
            if cycle > 255 {
                return Err(BitError("num_ref_frames_in_pic_order_cnt_cycle > 255"));
            }
            for _ in 0..cycle {
                r.read_se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return Err(BitError("pic_order_cnt_type > 2")),
    }
    Ok(())
}

/// Parses `(pic_parameter_set_id, seq_parameter_set_id)` from a PPS NAL unit.
pub(crate) fn parse_pps_ids(nal: &[u8]) -> Result<(u32, u32), Fmp4Error> {
    let rbsp = to_rbsp(nal);
    let mut r = BitReader::new(rbsp.get(1..).unwrap_or(&[]));
    let ids = (|| Ok((r.read_ue()?, r.read_ue()?)))().map_err(malformed("PPS"))?;
    if ids.0 > 255 || ids.1 > 31 {
        return Err(malformed("PPS")(BitError("parameter set id out of range")));
    }
    Ok(ids)
}

/// Parameter sets collected from one access unit, deduplicated by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AvcParams {
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    /// The SPS referenced by the first PPS (or the first SPS).
    pub active: Sps,
}

/// Inserts `nal` under `id`, replacing an earlier unit with the same id.
pub(crate) fn upsert(list: &mut Vec<(u32, Bytes)>, id: u32, nal: Bytes) {
    match list.iter_mut().find(|(i, _)| *i == id) {
        Some(slot) => slot.1 = nal,
        None => list.push((id, nal)),
    }
}

/// What collecting parameter sets answers when one is missing: an error on a
/// keyframe (it must carry them), "not yet" on any other frame.
pub(crate) fn missing<T>(
    frame: &Frame,
    codec: Codec,
    what: &'static str,
) -> Result<Option<T>, Fmp4Error> {
    if frame.key {
        Err(Fmp4Error::MissingParameterSet { codec, what })
    } else {
        Ok(None)
    }
}

/// The SPS the first PPS refers to, or the first SPS (of a non-empty list).
pub(crate) fn active_sps(sps: &[(u32, Bytes)], first_pps_sps_id: Option<u32>) -> Option<&Bytes> {
    let id = first_pps_sps_id.or(sps.first().map(|(id, _)| *id))?;
    sps.iter().find(|(i, _)| *i == id).map(|(_, nal)| nal)
}

/// Parameter sets in order, without their ids.
pub(crate) fn without_ids(list: Vec<(u32, Bytes)>) -> Vec<Bytes> {
    list.into_iter().map(|(_, nal)| nal).collect()
}

/// Collects SPS/PPS from a frame. `Ok(None)` if a non-key frame lacks them.
/// Parameter sets are copied (they are small) so the config does not pin the frame buffer.
pub(crate) fn collect(frame: &Frame) -> Result<Option<AvcParams>, Fmp4Error> {
    let mut sps: Vec<(u32, Bytes)> = Vec::new();
    let mut pps: Vec<(u32, Bytes)> = Vec::new();
    let mut first_pps_sps_id = None;
    for nal in nal_units(&frame.data) {
        match nal_type(nal) {
            NAL_SPS => {
                let id = parse_sps(nal)?.id;
                upsert(&mut sps, id, Bytes::copy_from_slice(nal));
            }
            NAL_PPS => {
                let (id, sps_id) = parse_pps_ids(nal)?;
                first_pps_sps_id.get_or_insert(sps_id);
                upsert(&mut pps, id, Bytes::copy_from_slice(nal));
            }
            _ => {}
        }
    }
    let missing = |what| missing(frame, Codec::H264, what);
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
    Ok(Some(AvcParams {
        sps: without_ids(sps),
        pps: without_ids(pps),
        active,
    }))
}

/// Builds the `avcC` payload (the record, without box header), 4-byte NAL lengths.
pub(crate) fn avcc_record(p: &AvcParams) -> Result<Bytes, Fmp4Error> {
    let too_big = |what| Fmp4Error::MalformedParameterSet {
        codec: Codec::H264,
        what,
        reason: "does not fit avcC",
    };
    let s = &p.active;
    let mut b =
        BytesMut::with_capacity(16 + p.sps.iter().chain(&p.pps).map(Bytes::len).sum::<usize>());
    b.put_u8(1); // configurationVersion
    b.put_u8(s.profile_idc);
    b.put_u8(s.constraint_flags);
    b.put_u8(s.level_idc);
    b.put_u8(0xfc | 3); // reserved + lengthSizeMinusOne = 3
    if p.sps.len() > 31 {
        return Err(too_big("SPS"));
    }
    b.put_u8(0xe0 | p.sps.len() as u8);
    put_units(&mut b, &p.sps).ok_or(too_big("SPS"))?;
    if p.pps.len() > 255 {
        return Err(too_big("PPS"));
    }
    b.put_u8(p.pps.len() as u8);
    put_units(&mut b, &p.pps).ok_or(too_big("PPS"))?;
    if matches!(s.profile_idc, 100 | 110 | 122 | 144) {
        b.put_u8(0xfc | s.chroma_format_idc as u8);
        b.put_u8(0xf8 | s.bit_depth_luma_minus8 as u8);
        b.put_u8(0xf8 | s.bit_depth_chroma_minus8 as u8);
        b.put_u8(0); // numOfSequenceParameterSetExt
    }
    Ok(b.freeze())
}

/// Writes `u16 length + bytes` for each unit; `None` if a unit exceeds 65535 bytes.
pub(crate) fn put_units(b: &mut BytesMut, units: &[Bytes]) -> Option<()> {
    for u in units {
        b.put_u16(u16::try_from(u.len()).ok()?);
        b.put_slice(u);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264 baseline 320x240 SPS (no cropping).
    const SPS_320X240: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
    ];
    /// x264 high profile 1920x1080 SPS (1088 coded, bottom crop 4 chroma rows).
    const SPS_1080P_HIGH: &[u8] = &[
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58,
    ];

    #[test]
    fn parses_baseline_sps() {
        let s = parse_sps(SPS_320X240).unwrap();
        assert_eq!((s.width, s.height), (320, 240));
        assert_eq!((s.profile_idc, s.level_idc, s.id), (66, 13, 0));
        assert_eq!(s.chroma_format_idc, 1);
    }

    #[test]
    fn parses_high_profile_sps_with_cropping() {
        let s = parse_sps(SPS_1080P_HIGH).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!((s.profile_idc, s.level_idc), (100, 40));
    }

    #[test]
    fn truncated_sps_is_an_error() {
        // The fields we need end in byte 7; the rest is VUI.
        for n in 0..8 {
            assert!(parse_sps(&SPS_320X240[..n]).is_err(), "len {n}");
        }
    }

    #[test]
    fn scaling_lists_are_skipped() {
        // High profile, sps id 0, chroma 1, depths 0, bypass 0, matrix present with list 0
        // present and all deltas 0 except the first (-8 -> nextScale 0 = "use default").
        let mut bits = String::new();
        bits += "1"; // sps_id ue 0
        bits += "010"; // chroma_format_idc 1
        bits += "1"; // bit_depth_luma_minus8 0
        bits += "1"; // bit_depth_chroma_minus8 0
        bits += "0"; // qpprime
        bits += "1"; // seq_scaling_matrix_present_flag
        bits += "1"; // list 0 present
        bits += "000010001"; // se(-8) = ue(16)
        bits += "0000000"; // lists 1..7 absent
        bits += "1"; // log2_max_frame_num_minus4 0
        bits += "1"; // poc type 0
        bits += "1"; // log2_max_poc_lsb_minus4 0
        bits += "1"; // max_num_ref_frames 0
        bits += "0"; // gaps
        bits += "000010100"; // width mbs - 1 = 19 (320)
        bits += "0001111"; // height map units - 1 = 14 (240)
        bits += "1"; // frame_mbs_only
        bits += "1"; // direct_8x8
        bits += "0"; // no cropping
        bits += "1"; // vui absent/stop bit
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let mut nal = vec![0x67, 100, 0, 30];
        nal.extend(
            bits.as_bytes()
                .chunks(8)
                .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()),
        );
        let s = parse_sps(&nal).unwrap();
        assert_eq!((s.width, s.height, s.profile_idc), (320, 240, 100));
    }
}
