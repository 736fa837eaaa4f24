//! Fragmented MP4 / CMAF writer: track configuration, init segment and `moof`+`mdat`
//! fragments (LL-HLS parts and segments).
//!
//! # Box layout
//!
//! Init segment (`ftyp` + `moov`):
//!
//! ```text
//! ftyp  major "iso6", minor 0, compatible "iso6" "iso5" "cmfc" "mp41"
//! moov
//!   mvhd  v0, timescale 1000, duration 0 (live), next_track_ID = n + 1
//!   trak  (one per track, track_ID = index + 1)
//!     tkhd  v0, flags enabled|in_movie, width/height (16.16) for video, volume for audio
//!     mdia
//!       mdhd  v0, timescale 90000 (video) or the sample rate (audio), language "und"
//!       hdlr  "vide" / "soun"
//!       minf
//!         vmhd / smhd
//!         dinf > dref > "url " (self-contained)
//!         stbl  stsd (avc1+avcC | hvc1+hvcC | mp4a+esds | Opus+dOps), empty stts stsc stsz stco
//!   mvex > trex (one per track; all defaults zero, every sample is described in trun)
//! ```
//!
//! Fragment (one CMAF chunk: `moof` + `mdat`):
//!
//! ```text
//! moof
//!   mfhd  sequence_number (1, 2, 3, ... per Fragmenter)
//!   traf  (one per track that has samples, in track order)
//!     tfhd  flags 0x020000 default-base-is-moof, no defaults
//!     tfdt  v1, 64-bit baseMediaDecodeTime in the track timescale
//!     trun  video: v1 flags 0x000F01 (data offset, duration, size, flags, signed CTO)
//!           audio: v0 flags 0x000701 (data offset, duration, size, flags)
//! mdat  samples of track 0, then track 1, ... (each traf's run is contiguous)
//! ```
//!
//! Brands: `iso6` (a superset of the iso4/iso5 features used here: signed composition
//! offsets in `trun` v1, default-base-is-moof, `tfdt`), `cmfc` for the CMAF structure,
//! `iso5`/`mp41` for older demuxers. This is the usual CMAF/LL-HLS set accepted by
//! Chromium MSE, hls.js and Safari; FFmpeg and GStreamer are checked in the tests. Strictly, a CMAF track file holds one track; the fragmenter
//! multiplexes whatever tracks it is given (HLS allows muxed fMP4), so use one
//! [`Fragmenter`] per track for strict CMAF.
//!
//! Sample flags: sync samples `0x02000000` (sample_depends_on = 2), other video samples
//! `0x01010000` (sample_depends_on = 1, sample_is_non_sync_sample = 1).
//!
//! Payloads: Annex-B access units become 4-byte length-prefixed NAL units; AUDs are
//! dropped, and so are parameter sets byte-identical to the ones in the sample entry (a
//! parameter set that differs is kept in-band so a decoder can follow a change; the
//! gateway should then rebuild the config and send a new init segment). AAC samples are
//! the raw data block, i.e. the ADTS frame minus its 7- or 9-byte header. An Opus frame
//! (one PES payload of MPEG-TS Opus access units) becomes one sample per access unit: the
//! raw Opus packet without its control header (see `opus.rs`).
//!
//! # Timing
//!
//! Every timestamp is first taken relative to the fragmenter's *origin* (by default the
//! smallest dts of the first fragment; see [`Fragmenter::with_origin`]) and then rescaled
//! independently from 90 kHz to the track timescale with round-half-up:
//! `t = round((ts - origin) * timescale / 90000)`. Because each sample's time is derived
//! from its own absolute timestamp (never by adding up rounded durations), the rounding
//! error is at most half a tick and never accumulates: sample durations are the
//! differences of consecutive rescaled dts, `tfdt` is the rescaled dts of the first
//! sample, so `tfdt + sum(durations)` of one fragment equals the next fragment's `tfdt`
//! whenever the next dts was known. The last sample of a track in a fragment takes its
//! duration from `next_dts` if given, else the previous sample's duration (also
//! remembered across fragments), else 1024 samples for AAC and 3000 ticks for video; a
//! wrong guess only affects that one sample, the next fragment's `tfdt` is exact again.
//!
//! Opus (timescale 48000) takes each packet's duration from its TOC byte. A frame's first
//! packet starts at the frame's own dts like any sample, the others follow at their TOC
//! durations; the frame's last packet ends at the next frame's dts when that is known (so
//! the rule above holds), else it keeps its TOC duration. Should the packets of a frame
//! run past the next frame's dts (timestamps that contradict the TOC), the last one keeps
//! its TOC duration too, and the next fragment's `tfdt` puts the timeline right.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::aac::{Adts, SAMPLES_PER_FRAME};
use super::boxes::{begin, begin_full, end, matrix, patch_u32, zeros};
use super::error::Fmp4Error;
use super::{avc, hevc, opus};
use crate::media::frame::{Codec, Frame};
use crate::proto::codec::h264::nal_units;

/// Video media timescale (the input's 90 kHz clock, so video timing is exact).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Movie header timescale (only used for the zero movie duration).
const MOVIE_TIMESCALE: u32 = 1000;
/// Duration of a video sample when nothing better is known (1/30 s).
const DEFAULT_VIDEO_DURATION: u32 = 3000;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_DURATION: u32 = 0x000100;
const TRUN_SIZE: u32 = 0x000200;
const TRUN_FLAGS: u32 = 0x000400;
const TRUN_CTO: u32 = 0x000800;
/// sample_depends_on = 2 (independent).
const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1, sample_is_non_sync_sample = 1.
const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// Codec configuration of one track, derived from its first suitable frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    codec: Codec,
    timescale: u32,
    media: Media,
    codec_string: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Media {
    Video {
        width: u16,
        height: u16,
        /// `avcC` / `hvcC` payload.
        record: Bytes,
        /// Parameter sets stored in `record`; identical in-band copies are dropped.
        param_sets: Vec<Bytes>,
    },
    Aac {
        channels: u16,
        asc: [u8; 2],
    },
    Opus {
        channels: u16,
        /// `dOps` payload.
        dops: [u8; opus::DOPS_LEN],
    },
}

impl TrackConfig {
    /// Builds the configuration of a `codec` track from one of its frames.
    ///
    /// * H.264: needs SPS and PPS in the access unit (all distinct ids are kept; the SPS
    ///   referenced by the first PPS gives size and profile).
    /// * H.265: needs VPS, SPS and PPS.
    /// * AAC: any ADTS frame.
    /// * Opus: any frame; the channel count (1 or 2) is the first packet's TOC stereo
    ///   flag, as MPEG-TS carries no better hint the gateway keeps (a stereo decoder
    ///   also plays mono packets, and the reverse downmixes, so a stream that switches
    ///   still decodes).
    ///
    /// Returns `Ok(None)` for a non-key video frame without parameter sets, and
    /// [`Fmp4Error::MissingParameterSet`] for a key frame without them.
    ///
    /// Equal configs produce identical init segments: comparing the config of each new
    /// key frame with the current one detects a stream change (new init segment needed).
    pub fn from_frame(codec: Codec, frame: &Frame) -> Result<Option<Self>, Fmp4Error> {
        if frame.codec != codec {
            return Err(Fmp4Error::CodecMismatch {
                expected: codec,
                found: frame.codec,
            });
        }
        match codec {
            Codec::H264 => avc::collect(frame)?.map(|p| Self::from_avc(&p)).transpose(),
            Codec::H265 => hevc::collect(frame)?
                .map(|p| Self::from_hevc(&p))
                .transpose(),
            Codec::Aac => Adts::parse(&frame.data).map(|a| Some(Self::from_adts(&a))),
            Codec::Opus => {
                let packets = opus::packets(&frame.data)?;
                let stereo = packets.first().is_some_and(|p| p.stereo);
                Ok(Some(Self::opus(if stereo { 2 } else { 1 })))
            }
        }
    }

    fn from_avc(p: &avc::AvcParams) -> Result<Self, Fmp4Error> {
        let s = &p.active;
        Ok(Self {
            codec: Codec::H264,
            timescale: VIDEO_TIMESCALE,
            codec_string: format!(
                "avc1.{:02x}{:02x}{:02x}",
                s.profile_idc, s.constraint_flags, s.level_idc
            ),
            media: Media::Video {
                width: s.width as u16,
                height: s.height as u16,
                record: avc::avcc_record(p)?,
                param_sets: p.sps.iter().chain(&p.pps).cloned().collect(),
            },
        })
    }

    fn from_hevc(p: &hevc::HevcParams) -> Result<Self, Fmp4Error> {
        let s = &p.active;
        Ok(Self {
            codec: Codec::H265,
            timescale: VIDEO_TIMESCALE,
            codec_string: hevc::codec_string(&s.general_ptl),
            media: Media::Video {
                width: s.width as u16,
                height: s.height as u16,
                record: hevc::hvcc_record(p)?,
                param_sets: p.vps.iter().chain(&p.sps).chain(&p.pps).cloned().collect(),
            },
        })
    }

    fn from_adts(a: &Adts) -> Self {
        Self {
            codec: Codec::Aac,
            timescale: a.sample_rate,
            codec_string: format!("mp4a.40.{}", a.object_type),
            media: Media::Aac {
                channels: a.channels(),
                asc: a.audio_specific_config(),
            },
        }
    }

    fn opus(channels: u8) -> Self {
        Self {
            codec: Codec::Opus,
            timescale: opus::TIMESCALE,
            codec_string: "opus".to_owned(),
            media: Media::Opus {
                channels: u16::from(channels),
                dops: opus::dops(channels),
            },
        }
    }

    /// The track's codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Media timescale: 90000 for video, the sample rate for audio.
    pub fn timescale(&self) -> u32 {
        self.timescale
    }

    /// Display size (after cropping) of a video track.
    pub fn dimensions(&self) -> Option<(u16, u16)> {
        match self.media {
            Media::Video { width, height, .. } => Some((width, height)),
            Media::Aac { .. } | Media::Opus { .. } => None,
        }
    }

    /// Channel count of an audio track.
    pub fn channels(&self) -> Option<u16> {
        match self.media {
            Media::Aac { channels, .. } | Media::Opus { channels, .. } => Some(channels),
            Media::Video { .. } => None,
        }
    }

    /// RFC 6381 codec string for the HLS `CODECS` attribute, e.g. `avc1.64001f`,
    /// `hvc1.1.6.L93.B0`, `mp4a.40.2`, `opus`.
    pub fn codec_string(&self) -> &str {
        &self.codec_string
    }

    /// Decoder configuration: the `avcC`/`hvcC` record, the AudioSpecificConfig or the
    /// `dOps` payload.
    pub fn decoder_config(&self) -> &[u8] {
        match &self.media {
            Media::Video { record, .. } => record,
            Media::Aac { asc, .. } => asc,
            Media::Opus { dops, .. } => dops,
        }
    }

    /// The parameter sets of a video track (H.264 SPS then PPS; H.265 VPS, SPS
    /// then PPS), each a NAL unit without start code; empty for audio.
    pub fn parameter_sets(&self) -> &[Bytes] {
        match &self.media {
            Media::Video { param_sets, .. } => param_sets,
            Media::Aac { .. } | Media::Opus { .. } => &[],
        }
    }

    /// Whether [`Fragmenter::fragment`] can write `frame` as a sample of this track: right
    /// codec, a payload it can convert, and (AAC) the same configuration. A caller that
    /// checks frames one by one as they come can drop the bad ones instead of losing the
    /// whole fragment they would end up in.
    pub fn check_sample(&self, frame: &Frame) -> Result<(), Fmp4Error> {
        if frame.codec != self.codec {
            return Err(Fmp4Error::CodecMismatch {
                expected: self.codec,
                found: frame.codec,
            });
        }
        match &self.media {
            Media::Video { param_sets, .. } => {
                video_nals(self.codec, param_sets, &frame.data, |_, _| {})
            }
            Media::Aac { .. } => aac_payload(self, &frame.data).map(|_| ()),
            Media::Opus { .. } => opus::packets(&frame.data).map(|_| ()),
        }
    }

    fn is_video(&self) -> bool {
        matches!(self.media, Media::Video { .. })
    }
}

// ---------------------------------------------------------------------------------------
// Init segment
// ---------------------------------------------------------------------------------------

/// Writes the init segment (`ftyp` + `moov`) for `tracks`; track i gets track_ID i + 1.
pub fn init_segment(tracks: &[TrackConfig]) -> Bytes {
    let records: usize = tracks.iter().map(|t| t.decoder_config().len()).sum();
    let mut buf = BytesMut::with_capacity(256 + tracks.len() * 600 + records);
    write_ftyp(&mut buf);
    let moov = begin(&mut buf, b"moov");
    write_mvhd(&mut buf, tracks.len() as u32 + 1);
    for (i, track) in tracks.iter().enumerate() {
        write_trak(&mut buf, i as u32 + 1, track);
    }
    let mvex = begin(&mut buf, b"mvex");
    for i in 0..tracks.len() {
        write_trex(&mut buf, i as u32 + 1);
    }
    end(&mut buf, mvex);
    end(&mut buf, moov);
    buf.freeze()
}

fn write_ftyp(buf: &mut BytesMut) {
    let ftyp = begin(buf, b"ftyp");
    buf.put_slice(b"iso6");
    buf.put_u32(0); // minor_version
    for brand in [b"iso6", b"iso5", b"cmfc", b"mp41"] {
        buf.put_slice(brand);
    }
    end(buf, ftyp);
}

fn write_mvhd(buf: &mut BytesMut, next_track_id: u32) {
    let mvhd = begin_full(buf, b"mvhd", 0, 0);
    buf.put_u32(0); // creation_time
    buf.put_u32(0); // modification_time
    buf.put_u32(MOVIE_TIMESCALE);
    buf.put_u32(0); // duration: unknown (fragmented)
    buf.put_u32(0x0001_0000); // rate 1.0
    buf.put_u16(0x0100); // volume 1.0
    zeros(buf, 2 + 8); // reserved
    matrix(buf);
    zeros(buf, 24); // pre_defined
    buf.put_u32(next_track_id);
    end(buf, mvhd);
}

fn write_trak(buf: &mut BytesMut, track_id: u32, track: &TrackConfig) {
    let trak = begin(buf, b"trak");
    write_tkhd(buf, track_id, track);
    let mdia = begin(buf, b"mdia");
    write_mdhd(buf, track.timescale);
    write_hdlr(buf, track.is_video());
    let minf = begin(buf, b"minf");
    if track.is_video() {
        let vmhd = begin_full(buf, b"vmhd", 0, 1);
        zeros(buf, 8); // graphicsmode + opcolor
        end(buf, vmhd);
    } else {
        let smhd = begin_full(buf, b"smhd", 0, 0);
        zeros(buf, 4); // balance + reserved
        end(buf, smhd);
    }
    write_dinf(buf);
    write_stbl(buf, track_id, track);
    end(buf, minf);
    end(buf, mdia);
    end(buf, trak);
}

fn write_tkhd(buf: &mut BytesMut, track_id: u32, track: &TrackConfig) {
    let tkhd = begin_full(buf, b"tkhd", 0, 0x3); // track_enabled | track_in_movie
    buf.put_u32(0); // creation_time
    buf.put_u32(0); // modification_time
    buf.put_u32(track_id);
    buf.put_u32(0); // reserved
    buf.put_u32(0); // duration
    zeros(buf, 8); // reserved
    buf.put_u16(0); // layer
    buf.put_u16(0); // alternate_group
    buf.put_u16(if track.is_video() { 0 } else { 0x0100 }); // volume
    buf.put_u16(0); // reserved
    matrix(buf);
    let (w, h) = track.dimensions().unwrap_or((0, 0));
    buf.put_u32(u32::from(w) << 16);
    buf.put_u32(u32::from(h) << 16);
    end(buf, tkhd);
}

fn write_mdhd(buf: &mut BytesMut, timescale: u32) {
    let mdhd = begin_full(buf, b"mdhd", 0, 0);
    buf.put_u32(0); // creation_time
    buf.put_u32(0); // modification_time
    buf.put_u32(timescale);
    buf.put_u32(0); // duration
    buf.put_u16(0x55c4); // language "und" (packed ISO-639-2/T)
    buf.put_u16(0); // pre_defined
    end(buf, mdhd);
}

fn write_hdlr(buf: &mut BytesMut, video: bool) {
    let hdlr = begin_full(buf, b"hdlr", 0, 0);
    buf.put_u32(0); // pre_defined
    buf.put_slice(if video { b"vide" } else { b"soun" });
    zeros(buf, 12); // reserved
    buf.put_slice(if video {
        b"VideoHandler\0"
    } else {
        b"SoundHandler\0"
    });
    end(buf, hdlr);
}

fn write_dinf(buf: &mut BytesMut) {
    let dinf = begin(buf, b"dinf");
    let dref = begin_full(buf, b"dref", 0, 0);
    buf.put_u32(1); // entry_count
    let url = begin_full(buf, b"url ", 0, 1); // media data is in this file
    end(buf, url);
    end(buf, dref);
    end(buf, dinf);
}

fn write_stbl(buf: &mut BytesMut, track_id: u32, track: &TrackConfig) {
    let stbl = begin(buf, b"stbl");
    let stsd = begin_full(buf, b"stsd", 0, 0);
    buf.put_u32(1); // entry_count
    match &track.media {
        Media::Video {
            width,
            height,
            record,
            ..
        } => write_visual_entry(buf, track.codec, *width, *height, record),
        Media::Aac { channels, asc } => {
            write_mp4a(buf, track_id, track.timescale, *channels, asc);
        }
        Media::Opus { channels, dops } => write_opus_entry(buf, *channels, dops),
    }
    end(buf, stsd);
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = begin_full(buf, fourcc, 0, 0);
        buf.put_u32(0); // entry_count
        end(buf, b);
    }
    let stsz = begin_full(buf, b"stsz", 0, 0);
    buf.put_u32(0); // sample_size
    buf.put_u32(0); // sample_count
    end(buf, stsz);
    end(buf, stbl);
}

/// `avc1`/`hvc1` VisualSampleEntry followed by its `avcC`/`hvcC` box.
fn write_visual_entry(buf: &mut BytesMut, codec: Codec, width: u16, height: u16, record: &[u8]) {
    let (entry_type, config_type) = if codec == Codec::H265 {
        (b"hvc1", b"hvcC")
    } else {
        (b"avc1", b"avcC")
    };
    let entry = begin(buf, entry_type);
    zeros(buf, 6); // reserved
    buf.put_u16(1); // data_reference_index
    zeros(buf, 16); // pre_defined, reserved, pre_defined[3]
    buf.put_u16(width);
    buf.put_u16(height);
    buf.put_u32(0x0048_0000); // horizresolution 72 dpi
    buf.put_u32(0x0048_0000); // vertresolution 72 dpi
    buf.put_u32(0); // reserved
    buf.put_u16(1); // frame_count
    zeros(buf, 32); // compressorname (empty Pascal string)
    buf.put_u16(0x0018); // depth
    buf.put_i16(-1); // pre_defined
    let config = begin(buf, config_type);
    buf.put_slice(record);
    end(buf, config);
    end(buf, entry);
}

/// Starts an AudioSampleEntry (ISO/IEC 14496-12 §12.2.3) of type `fourcc`; the caller
/// adds its configuration box and ends it.
fn begin_audio_entry(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    sample_rate: u32,
    channels: u16,
) -> usize {
    let entry = begin(buf, fourcc);
    zeros(buf, 6); // reserved
    buf.put_u16(1); // data_reference_index
    zeros(buf, 8); // reserved
    buf.put_u16(channels);
    buf.put_u16(16); // samplesize
    zeros(buf, 4); // pre_defined + reserved
                   // 16.16 fixed point; 88.2/96 kHz do not fit, write 0 and let the ASC (and mdhd) tell.
    buf.put_u32(if sample_rate <= 0xffff {
        sample_rate << 16
    } else {
        0
    });
    entry
}

/// `Opus` AudioSampleEntry with its `dOps` (Opus in ISOBMFF §4.3): 48 kHz, 16 bits.
fn write_opus_entry(buf: &mut BytesMut, channels: u16, dops: &[u8]) {
    let entry = begin_audio_entry(buf, b"Opus", opus::TIMESCALE, channels);
    let config = begin(buf, b"dOps");
    buf.put_slice(dops);
    end(buf, config);
    end(buf, entry);
}

/// `mp4a` AudioSampleEntry with its `esds` (ISO/IEC 14496-1 descriptors).
fn write_mp4a(buf: &mut BytesMut, track_id: u32, sample_rate: u32, channels: u16, asc: &[u8; 2]) {
    let entry = begin_audio_entry(buf, b"mp4a", sample_rate, channels);
    let esds = begin_full(buf, b"esds", 0, 0);
    // ES_Descriptor: ES_ID, flags, DecoderConfigDescriptor, SLConfigDescriptor.
    let dsi_len = asc.len() as u8;
    let dcd_len = 13 + 2 + dsi_len;
    buf.put_slice(&[0x03, 3 + 2 + dcd_len + 3]);
    buf.put_u16(track_id as u16);
    buf.put_u8(0); // no stream dependence, URL or OCR stream
    buf.put_slice(&[0x04, dcd_len]);
    buf.put_u8(0x40); // objectTypeIndication: MPEG-4 Audio
    buf.put_u8(0x15); // streamType audio (5) << 2 | reserved 1
    zeros(buf, 3 + 4 + 4); // bufferSizeDB, maxBitrate, avgBitrate: unknown
    buf.put_slice(&[0x05, dsi_len]);
    buf.put_slice(asc);
    buf.put_slice(&[0x06, 1, 0x02]); // SLConfigDescriptor: predefined = MP4
    end(buf, esds);
    end(buf, entry);
}

fn write_trex(buf: &mut BytesMut, track_id: u32) {
    let trex = begin_full(buf, b"trex", 0, 0);
    buf.put_u32(track_id);
    buf.put_u32(1); // default_sample_description_index
    buf.put_u32(0); // default_sample_duration
    buf.put_u32(0); // default_sample_size
    buf.put_u32(0); // default_sample_flags
    end(buf, trex);
}

// ---------------------------------------------------------------------------------------
// Fragments
// ---------------------------------------------------------------------------------------

/// Stateful fragment writer for one stream (one init segment, many fragments).
///
/// It keeps the time origin, the `mfhd` sequence number and, per track, the last dts and
/// sample duration, so `tfdt` continues monotonically across parts and segments. The
/// state only advances when [`fragment`](Self::fragment) succeeds.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    tracks: Vec<TrackConfig>,
    state: Vec<TrackState>,
    sequence: u32,
    origin: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct TrackState {
    last_dts: Option<i64>,
    last_duration: Option<u32>,
}

/// One `trun` entry: a whole frame, or one Opus packet of a frame.
struct Sample<'a> {
    frame: &'a Frame,
    /// The packet's bytes within the payload (Opus); `None`: the whole payload.
    packet: Option<Range<usize>>,
    /// Time from the frame's dts to this entry, in the track timescale.
    offset: u32,
    /// The duration the payload itself tells (Opus TOC), in the track timescale.
    own_duration: Option<u32>,
    /// The last entry made from its frame.
    last_of_frame: bool,
}

impl<'a> Sample<'a> {
    fn whole(frame: &'a Frame) -> Self {
        Self {
            frame,
            packet: None,
            offset: 0,
            own_duration: None,
            last_of_frame: true,
        }
    }
}

/// Where the per-track `trun` of the fragment being written lives.
struct TrafPlan {
    track: usize,
    data_offset_pos: usize,
    entries_pos: usize,
    entry_size: usize,
}

impl Fragmenter {
    /// A fragmenter for `tracks` (sample track index = position in this list).
    /// The time origin is the smallest dts of the first fragment.
    pub fn new(tracks: Vec<TrackConfig>) -> Self {
        let state = vec![TrackState::default(); tracks.len()];
        Self {
            tracks,
            state,
            sequence: 1,
            origin: None,
        }
    }

    /// Fixes the time origin (90 kHz): media time 0 corresponds to this timestamp.
    /// `with_origin(0)` writes absolute timestamps, which keeps `tfdt` continuous even
    /// across fragmenter restarts (input timestamps must then be non-negative).
    pub fn with_origin(mut self, origin: i64) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Sets the `mfhd` sequence number of the next fragment (it then increments by one).
    pub fn set_sequence_number(&mut self, sequence: u32) {
        self.sequence = sequence;
    }

    /// The track configurations.
    pub fn tracks(&self) -> &[TrackConfig] {
        &self.tracks
    }

    /// The time origin (90 kHz), once known.
    pub fn origin(&self) -> Option<i64> {
        self.origin
    }

    /// The init segment for this fragmenter's tracks.
    pub fn init_segment(&self) -> Bytes {
        init_segment(&self.tracks)
    }

    /// Writes one `moof`+`mdat` holding `samples` (track index, frame) in decode order per
    /// track. `next_dts[track]` is the dts of that track's sample following this fragment,
    /// if already known (it gives the last sample its exact duration; see module docs).
    /// The tuple's index selects the track; `Frame::track` is not consulted.
    pub fn fragment(
        &mut self,
        samples: &[(u8, &Frame)],
        next_dts: &[Option<i64>],
    ) -> Result<Bytes, Fmp4Error> {
        let origin = self.validate(samples)?;
        let runs = self.runs(samples)?;
        let payload: usize = samples.iter().map(|(_, f)| f.data.len()).sum();
        let entries: usize = runs.iter().map(|(_, r)| r.len()).sum();
        let mut buf =
            BytesMut::with_capacity(64 + runs.len() * 80 + entries * 24 + payload + payload / 64);
        let moof = begin(&mut buf, b"moof");
        let mfhd = begin_full(&mut buf, b"mfhd", 0, 0);
        buf.put_u32(self.sequence);
        end(&mut buf, mfhd);
        let mut plans = Vec::with_capacity(runs.len());
        let mut new_state = self.state.clone();
        for (t, run) in &runs {
            let hint = next_dts.get(*t).copied().flatten();
            plans.push(self.write_traf(&mut buf, *t, run, hint, origin, &mut new_state[*t])?);
        }
        end(&mut buf, moof);
        self.write_mdat(&mut buf, moof, &plans, &runs)?;
        self.state = new_state;
        self.origin = Some(origin);
        self.sequence = self.sequence.wrapping_add(1);
        Ok(buf.freeze())
    }

    /// The `trun` entries of each track that has samples, in track order: one per frame,
    /// or one per packet of an Opus frame.
    fn runs<'a>(
        &self,
        samples: &[(u8, &'a Frame)],
    ) -> Result<Vec<(usize, Vec<Sample<'a>>)>, Fmp4Error> {
        let mut runs = Vec::with_capacity(self.tracks.len());
        for (t, track) in self.tracks.iter().enumerate() {
            let mut run = Vec::new();
            for &(_, frame) in samples.iter().filter(|(i, _)| usize::from(*i) == t) {
                if track.codec != Codec::Opus {
                    run.push(Sample::whole(frame));
                    continue;
                }
                let packets = opus::packets(&frame.data)?;
                let count = packets.len();
                let mut offset = 0u32;
                for (k, p) in packets.into_iter().enumerate() {
                    run.push(Sample {
                        frame,
                        packet: Some(p.range),
                        offset,
                        own_duration: Some(p.samples),
                        last_of_frame: k + 1 == count,
                    });
                    offset = offset
                        .checked_add(p.samples)
                        .ok_or(Fmp4Error::TimestampOverflow { track: t as u8 })?;
                }
            }
            if !run.is_empty() {
                runs.push((t, run));
            }
        }
        Ok(runs)
    }

    /// Checks track indices, codecs and dts order; returns the origin to use.
    fn validate(&self, samples: &[(u8, &Frame)]) -> Result<i64, Fmp4Error> {
        let mut last: Vec<Option<i64>> = self.state.iter().map(|s| s.last_dts).collect();
        let mut min_dts = i64::MAX;
        for &(t, frame) in samples {
            let track = self
                .tracks
                .get(usize::from(t))
                .ok_or(Fmp4Error::UnknownTrack(t))?;
            if frame.codec != track.codec {
                return Err(Fmp4Error::CodecMismatch {
                    expected: track.codec,
                    found: frame.codec,
                });
            }
            let prev = &mut last[usize::from(t)];
            if let Some(p) = *prev {
                if frame.dts < p {
                    return Err(Fmp4Error::NonMonotonicDts {
                        track: t,
                        prev: p,
                        dts: frame.dts,
                    });
                }
            }
            *prev = Some(frame.dts);
            min_dts = min_dts.min(frame.dts);
        }
        if samples.is_empty() {
            return Err(Fmp4Error::NoSamples);
        }
        Ok(self.origin.unwrap_or(min_dts))
    }

    /// Writes `traf` for track `t` with placeholder sizes and data offset.
    fn write_traf(
        &self,
        buf: &mut BytesMut,
        t: usize,
        run: &[Sample<'_>],
        next_dts: Option<i64>,
        origin: i64,
        state: &mut TrackState,
    ) -> Result<TrafPlan, Fmp4Error> {
        let track = &self.tracks[t];
        let clock = Clock {
            track: t as u8,
            origin,
            timescale: track.timescale,
        };
        let first = run.first().map_or(origin, |s| s.frame.dts);
        let count = u32::try_from(run.len()).map_err(|_| Fmp4Error::FragmentTooLarge)?;

        let traf = begin(buf, b"traf");
        let tfhd = begin_full(buf, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        buf.put_u32(t as u32 + 1);
        end(buf, tfhd);
        let tfdt = begin_full(buf, b"tfdt", 1, 0);
        buf.put_u64(clock.media_time(first)?);
        end(buf, tfdt);

        let video = track.is_video();
        let (version, flags, entry_size) = if video {
            (
                1,
                TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_CTO,
                16,
            )
        } else {
            (
                0,
                TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS,
                12,
            )
        };
        let trun = begin_full(buf, b"trun", version, flags);
        buf.put_u32(count);
        let data_offset_pos = buf.len();
        buf.put_i32(0); // patched in write_mdat
        let entries_pos = buf.len();
        let mut prev_duration = state.last_duration;
        for (i, sample) in run.iter().enumerate() {
            let frame = sample.frame;
            let fallback = sample.own_duration.or(prev_duration).unwrap_or(if video {
                DEFAULT_VIDEO_DURATION
            } else {
                SAMPLES_PER_FRAME
            });
            // Only a frame's last entry reaches to the next frame.
            let next = sample
                .last_of_frame
                .then(|| run.get(i + 1).map(|s| s.frame.dts).or(next_dts))
                .flatten();
            let duration = match next {
                Some(n) => match clock.duration(frame.dts, n)?.checked_sub(sample.offset) {
                    Some(d) if d > 0 || sample.own_duration.is_none() => d,
                    _ => fallback,
                },
                None => fallback,
            };
            prev_duration = Some(duration);
            buf.put_u32(duration);
            buf.put_u32(0); // sample_size, patched in write_mdat
            if video {
                buf.put_u32(if frame.key {
                    SAMPLE_FLAGS_SYNC
                } else {
                    SAMPLE_FLAGS_NON_SYNC
                });
                buf.put_i32(clock.composition_offset(frame)?);
            } else {
                buf.put_u32(SAMPLE_FLAGS_SYNC);
            }
            state.last_dts = Some(frame.dts);
        }
        state.last_duration = prev_duration;
        end(buf, trun);
        end(buf, traf);
        Ok(TrafPlan {
            track: t,
            data_offset_pos,
            entries_pos,
            entry_size,
        })
    }

    /// Writes the `mdat` and patches data offsets and sample sizes into the `trun`s.
    fn write_mdat(
        &self,
        buf: &mut BytesMut,
        moof: usize,
        plans: &[TrafPlan],
        runs: &[(usize, Vec<Sample<'_>>)],
    ) -> Result<(), Fmp4Error> {
        let mdat = begin(buf, b"mdat");
        for (plan, (_, run)) in plans.iter().zip(runs) {
            let offset =
                i32::try_from(buf.len() - moof).map_err(|_| Fmp4Error::FragmentTooLarge)?;
            patch_u32(buf, plan.data_offset_pos, offset as u32);
            let track = &self.tracks[plan.track];
            for (n, sample) in run.iter().enumerate() {
                let start = buf.len();
                write_sample(buf, track, sample)?;
                let size =
                    u32::try_from(buf.len() - start).map_err(|_| Fmp4Error::FragmentTooLarge)?;
                patch_u32(buf, plan.entries_pos + n * plan.entry_size + 4, size);
            }
        }
        if u32::try_from(buf.len() - mdat).is_err() {
            return Err(Fmp4Error::FragmentTooLarge);
        }
        end(buf, mdat);
        Ok(())
    }
}

/// 90 kHz → track timescale conversion relative to the origin (see module docs).
struct Clock {
    track: u8,
    origin: i64,
    timescale: u32,
}

impl Clock {
    /// Rescaled `ts - origin`, rounded half up (may be negative).
    fn rescale(&self, ts: i64) -> i128 {
        let rel = i128::from(ts) - i128::from(self.origin);
        (rel * i128::from(self.timescale) + 45_000).div_euclid(90_000)
    }

    /// Media time of a dts; errors if it precedes the origin.
    fn media_time(&self, dts: i64) -> Result<u64, Fmp4Error> {
        u64::try_from(self.rescale(dts)).map_err(|_| Fmp4Error::TimestampBeforeOrigin {
            track: self.track,
            ts: dts,
            origin: self.origin,
        })
    }

    fn duration(&self, dts: i64, next: i64) -> Result<u32, Fmp4Error> {
        if next < dts {
            return Err(Fmp4Error::NonMonotonicDts {
                track: self.track,
                prev: dts,
                dts: next,
            });
        }
        u32::try_from(self.rescale(next) - self.rescale(dts))
            .map_err(|_| Fmp4Error::TimestampOverflow { track: self.track })
    }

    fn composition_offset(&self, frame: &Frame) -> Result<i32, Fmp4Error> {
        i32::try_from(self.rescale(frame.pts) - self.rescale(frame.dts))
            .map_err(|_| Fmp4Error::TimestampOverflow { track: self.track })
    }
}

/// Appends one sample's `mdat` payload.
fn write_sample(
    buf: &mut BytesMut,
    track: &TrackConfig,
    sample: &Sample<'_>,
) -> Result<(), Fmp4Error> {
    let data = &sample.frame.data;
    if let Some(range) = &sample.packet {
        let packet = data
            .get(range.clone())
            .ok_or(Fmp4Error::MalformedOpus("packet outside its frame"))?;
        buf.put_slice(packet);
        return Ok(());
    }
    match &track.media {
        Media::Video { param_sets, .. } => video_nals(track.codec, param_sets, data, |nal, len| {
            buf.put_u32(len);
            buf.put_slice(nal);
        }),
        Media::Aac { .. } => {
            buf.put_slice(aac_payload(track, data)?);
            Ok(())
        }
        // Opus samples always name their packet (see `Fragmenter::runs`).
        Media::Opus { .. } => Err(Fmp4Error::MalformedOpus("sample without a packet")),
    }
}

/// The raw data block of an ADTS frame of `track` (which must be an AAC track).
fn aac_payload<'a>(track: &TrackConfig, data: &'a [u8]) -> Result<&'a [u8], Fmp4Error> {
    let adts = Adts::parse(data)?;
    let same = matches!(track.media, Media::Aac { asc, .. } if asc == adts.audio_specific_config());
    if adts.sample_rate != track.timescale || !same {
        return Err(Fmp4Error::MalformedAdts(
            "ADTS configuration differs from the track's (new init segment needed)",
        ));
    }
    data.get(adts.header_len..adts.frame_len)
        .ok_or(Fmp4Error::MalformedAdts("frame_length beyond the payload"))
}

/// Walks the NAL units of an Annex-B access unit that its sample keeps (all but AUDs
/// and parameter sets identical to the sample entry's), handing each to `each` with its
/// length for the 4-byte prefix.
fn video_nals(
    codec: Codec,
    param_sets: &[Bytes],
    data: &[u8],
    mut each: impl FnMut(&[u8], u32),
) -> Result<(), Fmp4Error> {
    let mut seen = false;
    let mut kept = false;
    for nal in nal_units(data) {
        seen = true;
        if is_droppable(codec, nal, param_sets) {
            continue;
        }
        let len = u32::try_from(nal.len()).map_err(|_| Fmp4Error::FragmentTooLarge)?;
        each(nal, len);
        kept = true;
    }
    match (seen, kept) {
        (_, true) => Ok(()),
        (false, _) => Err(Fmp4Error::InvalidAnnexB("no start code found")),
        (true, false) => Err(Fmp4Error::InvalidAnnexB(
            "only access unit delimiters / parameter sets",
        )),
    }
}

fn is_droppable(codec: Codec, nal: &[u8], param_sets: &[Bytes]) -> bool {
    let (aud, param_set) = if codec == Codec::H265 {
        let t = hevc::nal_type(nal);
        (
            t == hevc::NAL_AUD,
            matches!(t, hevc::NAL_VPS | hevc::NAL_SPS | hevc::NAL_PPS),
        )
    } else {
        let t = avc::nal_type(nal);
        (t == avc::NAL_AUD, matches!(t, avc::NAL_SPS | avc::NAL_PPS))
    };
    aud || (param_set && param_sets.iter().any(|p| p[..] == *nal))
}
