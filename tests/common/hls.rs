//! HLS for the tests: m3u8 parsing, a live-player-like follower and a load
//! generator made of many followers.
//!
//! Playlists are read by the `m3u8-rs` crate. It hands the LL-HLS tags
//! (`EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-SERVER-CONTROL`,
//! `EXT-X-PART-INF`, `EXT-X-GAP`, ...) back as unknown tags, whose attribute
//! lists are read here, and it takes any line it cannot read as a comment or
//! a URI, so [`parse`] adds what a real player would refuse a playlist for:
//! a first line other than `#EXTM3U`, a tag missing the value it needs or
//! carrying one it must not, a tag the crate could not read, a malformed
//! attribute list or a missing required attribute, `#EXTINF` not followed by
//! a URI, a URI without `#EXTINF`, an `#EXT-X-TARGETDURATION` below a
//! segment's rounded duration, a part longer than `PART-TARGET`, parts
//! without `#EXT-X-PART-INF`, `#EXT-X-PART-INF` without `PART-HOLD-BACK`,
//! header tags after the first segment or twice, master and media tags
//! mixed.
//!
//! [`follow`] behaves like a simple live player: it reloads the media
//! playlist every half target duration, or, when the server offers blocking
//! reloads, asks for the next part (`_HLS_msn` / `_HLS_part`) at once;
//! downloads every new segment (and, if asked, every part) once, in order;
//! and reports what it got and what it missed. Bodies are not kept: only
//! their length and FNV-1a hash, so that hundreds of followers ([`load`])
//! stay small and [`check_identical`] can tell whether they all received
//! the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::http::{resolve, with_query, Client};

// ------------------------------------------------------------------ playlists

/// A parsed playlist.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    Media(MediaPlaylist),
    Master(MasterPlaylist),
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `EXT-X-VERSION`.
    pub version: Option<u32>,
    /// `EXT-X-TARGETDURATION` (seconds).
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE`: the first listed segment's sequence number.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// `EXT-X-PLAYLIST-TYPE` (`EVENT` or `VOD`).
    pub playlist_type: Option<String>,
    pub independent_segments: bool,
    pub server_control: Option<ServerControl>,
    /// `EXT-X-PART-INF:PART-TARGET` (seconds).
    pub part_target: Option<f64>,
    /// `EXT-X-MAP` URIs, in order of appearance.
    pub maps: Vec<String>,
    /// Complete segments, oldest first.
    pub segments: Vec<Segment>,
    /// Parts listed after the last segment: the segment in progress, whose
    /// sequence number is [`MediaPlaylist::next_msn`].
    pub pending_parts: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT`s.
    pub preload_hints: Vec<PreloadHint>,
    /// `EXT-X-ENDLIST`.
    pub endlist: bool,
}

/// `EXT-X-SERVER-CONTROL`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerControl {
    pub can_block_reload: bool,
    pub can_skip_until: Option<f64>,
    pub can_skip_dateranges: bool,
    pub hold_back: Option<f64>,
    pub part_hold_back: Option<f64>,
}

/// One complete segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// `EXTINF` duration (seconds).
    pub duration: f64,
    /// `EXTINF` title (usually empty).
    pub title: String,
    pub uri: String,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME`, in RFC 3339 as m3u8-rs read it.
    pub program_date_time: Option<String>,
    /// Index into [`MediaPlaylist::maps`] of the `EXT-X-MAP` in force.
    pub map: Option<usize>,
    /// Parts listed for this segment (only near the live edge).
    pub parts: Vec<Part>,
    /// `EXT-X-GAP`.
    pub gap: bool,
    /// `EXT-X-BYTERANGE` as `<n>[@<o>]`.
    pub byterange: Option<String>,
    /// Line of the `EXTINF` (1-based), for messages.
    pub line: usize,
}

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Part {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
    pub gap: bool,
    pub byterange: Option<String>,
}

/// One `EXT-X-PRELOAD-HINT`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreloadHint {
    /// `PART` or `MAP`.
    pub kind: String,
    pub uri: String,
    pub byterange_start: Option<u64>,
    pub byterange_length: Option<u64>,
}

/// A master (multivariant) playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MasterPlaylist {
    pub version: Option<u32>,
    pub independent_segments: bool,
    pub variants: Vec<Variant>,
    /// `EXT-X-MEDIA` renditions.
    pub renditions: Vec<Rendition>,
}

/// One `EXT-X-STREAM-INF` and its URI.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variant {
    pub uri: String,
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub codecs: Option<String>,
    /// Width, height.
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    pub audio: Option<String>,
}

/// One `EXT-X-MEDIA`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendition {
    /// `AUDIO`, `VIDEO`, `SUBTITLES` or `CLOSED-CAPTIONS`.
    pub kind: String,
    pub group_id: String,
    pub name: String,
    pub uri: Option<String>,
    pub language: Option<String>,
    pub default: bool,
    pub autoselect: bool,
}

impl MediaPlaylist {
    /// Sequence number of the last complete segment.
    pub fn last_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn)
    }

    /// Sequence number of the segment after the last complete one (the one
    /// in progress, whose parts are [`MediaPlaylist::pending_parts`]).
    pub fn next_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let i = msn.checked_sub(self.media_sequence)?;
        self.segments.get(usize::try_from(i).ok()?)
    }

    /// Every listed part with its position (segment msn, index in segment),
    /// in order.
    pub fn parts(&self) -> Vec<(u64, usize, &Part)> {
        let mut out = Vec::new();
        for s in &self.segments {
            for (i, p) in s.parts.iter().enumerate() {
                out.push((s.msn, i, p));
            }
        }
        let next = self.next_msn();
        for (i, p) in self.pending_parts.iter().enumerate() {
            out.push((next, i, p));
        }
        out
    }

    /// Whether part `index` of segment `msn` is listed.
    pub fn has_part(&self, msn: u64, index: usize) -> bool {
        if msn == self.next_msn() {
            return index < self.pending_parts.len();
        }
        self.segment(msn).is_some_and(|s| index < s.parts.len())
    }

    /// The position right after the last listed part: what a blocking
    /// reload asks for next.
    pub fn next_part_position(&self) -> (u64, usize) {
        (self.next_msn(), self.pending_parts.len())
    }

    /// The `TYPE=PART` preload hint.
    pub fn part_hint(&self) -> Option<&PreloadHint> {
        self.preload_hints.iter().find(|h| h.kind == "PART")
    }

    pub fn can_block_reload(&self) -> bool {
        self.server_control
            .as_ref()
            .is_some_and(|s| s.can_block_reload)
    }

    /// Sum of the listed segments' durations.
    pub fn total_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// Parses a master or media playlist.
pub fn parse(text: &str) -> Result<Playlist, String> {
    let master = m3u8_rs::is_master_playlist(text.as_bytes());
    let lines = check_lines(text, master)?;
    if master {
        parse_master_crate(text).map(Playlist::Master)
    } else {
        parse_media_crate(text, &lines).map(Playlist::Media)
    }
}

/// Parses a media playlist (a master playlist is an error).
pub fn parse_media(text: &str) -> Result<MediaPlaylist, String> {
    match parse(text)? {
        Playlist::Media(m) => Ok(m),
        Playlist::Master(_) => Err("expected a media playlist, got a master playlist".to_string()),
    }
}

/// Parses a master playlist (a media playlist is an error).
pub fn parse_master(text: &str) -> Result<MasterPlaylist, String> {
    match parse(text)? {
        Playlist::Master(m) => Ok(m),
        Playlist::Media(_) => Err("expected a master playlist, got a media playlist".to_string()),
    }
}

/// Tags that take no value.
const BARE_TAGS: &[&str] = &[
    "EXTM3U",
    "EXT-X-ENDLIST",
    "EXT-X-DISCONTINUITY",
    "EXT-X-INDEPENDENT-SEGMENTS",
    "EXT-X-I-FRAMES-ONLY",
    "EXT-X-GAP",
];

/// Tags only a media playlist may hold.
const MEDIA_TAGS: &[&str] = &[
    "EXTINF",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-ENDLIST",
    "EXT-X-PLAYLIST-TYPE",
    "EXT-X-I-FRAMES-ONLY",
    "EXT-X-PART-INF",
    "EXT-X-SERVER-CONTROL",
    "EXT-X-DISCONTINUITY",
    "EXT-X-PROGRAM-DATE-TIME",
    "EXT-X-MAP",
    "EXT-X-BYTERANGE",
    "EXT-X-GAP",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-SKIP",
    "EXT-X-RENDITION-REPORT",
    "EXT-X-KEY",
    "EXT-X-DATERANGE",
    "EXT-X-BITRATE",
];

/// Tags only a master playlist may hold.
const MASTER_TAGS: &[&str] = &[
    "EXT-X-STREAM-INF",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-MEDIA",
    "EXT-X-SESSION-DATA",
    "EXT-X-SESSION-KEY",
    "EXT-X-CONTENT-STEERING",
];

/// Tags a playlist may hold once.
const ONCE_TAGS: &[&str] = &[
    "EXT-X-VERSION",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-PLAYLIST-TYPE",
    "EXT-X-SERVER-CONTROL",
    "EXT-X-PART-INF",
];

/// Tags m3u8-rs reads itself (names as in its `ExtTag`, without `#EXT-`):
/// one it hands back as unknown did not parse.
const CRATE_TAGS: &[&str] = &[
    "X-VERSION",
    "X-TARGETDURATION",
    "X-MEDIA-SEQUENCE",
    "X-DISCONTINUITY-SEQUENCE",
    "X-PLAYLIST-TYPE",
    "X-I-FRAMES-ONLY",
    "X-START",
    "X-INDEPENDENT-SEGMENTS",
    "X-ENDLIST",
    "X-BYTERANGE",
    "X-DISCONTINUITY",
    "X-KEY",
    "X-MAP",
    "X-PROGRAM-DATE-TIME",
    "X-DATERANGE",
    "X-STREAM-INF",
    "X-I-FRAME-STREAM-INF",
    "X-MEDIA",
    "X-SESSION-DATA",
    "X-SESSION-KEY",
];

fn at(n: usize, line: &str, msg: impl AsRef<str>) -> String {
    format!("line {n}: {}: {line:?}", msg.as_ref())
}

/// A URI line and the line of the `EXTINF` (or `EXT-X-STREAM-INF`) that
/// describes it.
struct UriLine<'a> {
    uri: &'a str,
    inf_line: usize,
}

/// What m3u8-rs does not check (it takes any line it cannot read as a
/// comment or a URI): the first line, values of tags that take none or
/// need one, master and media tags mixed, tags that may appear once, header
/// tags after the first segment, `EXTINF` syntax, and every `EXTINF` (or
/// `EXT-X-STREAM-INF`) followed by exactly one URI. Returns the URI lines.
fn check_lines(text: &str, master: bool) -> Result<Vec<UriLine<'_>>, String> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    match lines.next() {
        Some("#EXTM3U") => {}
        Some(l) => return Err(at(1, l, "the first line must be #EXTM3U")),
        None => return Err("empty playlist".to_string()),
    }
    let mut seen = BTreeSet::new();
    let mut uris = Vec::new();
    // Line of an EXTINF / EXT-X-STREAM-INF waiting for its URI.
    let mut pending: Option<usize> = None;
    let mut in_segments = false;
    let mut discontinuity = false;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if line.trim().is_empty() || (line.starts_with('#') && !line.starts_with("#EXT")) {
            continue;
        }
        if !line.starts_with('#') {
            if line != line.trim() {
                return Err(at(n, line, "URI with surrounding white space"));
            }
            let inf_line = pending.take().ok_or_else(|| {
                let inf = if master { "EXT-X-STREAM-INF" } else { "EXTINF" };
                at(n, line, format!("URI without {inf}"))
            })?;
            uris.push(UriLine {
                uri: line,
                inf_line,
            });
            in_segments = true;
            continue;
        }
        let (name, value) = match line[1..].split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (&line[1..], None),
        };
        if BARE_TAGS.contains(&name) {
            if value.is_some() {
                return Err(at(n, line, format!("{name} takes no value")));
            }
        } else if !matches!(value, Some(v) if !v.is_empty()) {
            return Err(at(n, line, format!("{name} needs a value after a colon")));
        }
        let (wrong, kind) = if master {
            (MEDIA_TAGS, "master")
        } else {
            (MASTER_TAGS, "media")
        };
        if wrong.contains(&name) {
            return Err(at(n, line, format!("{name} in a {kind} playlist")));
        }
        if ONCE_TAGS.contains(&name) && !seen.insert(name) {
            return Err(at(n, line, format!("{name} appears twice")));
        }
        match name {
            "EXTM3U" => return Err(at(n, line, "#EXTM3U again")),
            "EXT-X-TARGETDURATION" | "EXT-X-MEDIA-SEQUENCE" | "EXT-X-DISCONTINUITY-SEQUENCE"
                if in_segments || pending.is_some() =>
            {
                return Err(at(n, line, format!("{name} after the first segment")));
            }
            "EXT-X-DISCONTINUITY-SEQUENCE" if discontinuity => {
                return Err(at(n, line, "after an EXT-X-DISCONTINUITY"));
            }
            "EXT-X-DISCONTINUITY" => discontinuity = true,
            "EXTINF" | "EXT-X-STREAM-INF" => {
                if let Some(first) = pending {
                    return Err(at(
                        n,
                        line,
                        format!("{name} of line {first} was not followed by a URI"),
                    ));
                }
                if name == "EXTINF" {
                    let d = value.unwrap_or("").split_once(',').map(|(d, _)| d);
                    let d =
                        d.ok_or_else(|| at(n, line, "EXTINF needs a comma after the duration"))?;
                    decimal(d).map_err(|e| at(n, line, e))?;
                }
                pending = Some(n);
            }
            "EXT-X-PART" => {
                if let Some(first) = pending {
                    return Err(at(
                        n,
                        line,
                        format!("EXT-X-PART between the EXTINF of line {first} and its URI"),
                    ));
                }
                in_segments = true;
            }
            _ => {}
        }
    }
    if let Some(n) = pending {
        let inf = if master { "EXT-X-STREAM-INF" } else { "EXTINF" };
        return Err(format!(
            "line {n}: {inf} not followed by a URI (end of playlist)"
        ));
    }
    if !master && !seen.contains("EXT-X-TARGETDURATION") {
        return Err("media playlist without EXT-X-TARGETDURATION".to_string());
    }
    Ok(uris)
}

/// `#EXT-NAME:value` of a tag m3u8-rs handed back unread.
fn show_tag(t: &m3u8_rs::ExtTag) -> String {
    match &t.rest {
        Some(r) => format!("#EXT-{}:{r}", t.tag),
        None => format!("#EXT-{}", t.tag),
    }
}

/// An unread tag that m3u8-rs should have read: it is malformed.
fn refused(tags: &[m3u8_rs::ExtTag]) -> Result<(), String> {
    match tags.iter().find(|t| CRATE_TAGS.contains(&t.tag.as_str())) {
        Some(t) => Err(format!("malformed #EXT-{}: {:?}", t.tag, show_tag(t))),
        None => Ok(()),
    }
}

/// An `f32` that m3u8-rs read from a decimal, as the `f64` written.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn show_byterange(b: &m3u8_rs::ByteRange) -> String {
    match b.offset {
        Some(o) => format!("{}@{o}", b.length),
        None => b.length.to_string(),
    }
}

/// Stands for the segment after the last one, so that m3u8-rs hands over
/// the tags that follow the last URI (parts of the segment in progress,
/// preload hints) as that segment's.
const PENDING: &str = "srtgate-tests-pending-tags";

fn parse_media_crate(text: &str, lines: &[UriLine<'_>]) -> Result<MediaPlaylist, String> {
    let padded = format!("{}\n{PENDING}\n", text.trim_end());
    let (rest, pl) =
        m3u8_rs::parse_media_playlist(padded.as_bytes()).map_err(|e| format!("m3u8-rs: {e:?}"))?;
    if !rest.trim_ascii().is_empty() {
        return Err(format!(
            "m3u8-rs stopped reading at {:?}",
            String::from_utf8_lossy(&rest[..rest.len().min(200)])
        ));
    }
    let read: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    let written: Vec<&str> = lines.iter().map(|l| l.uri).chain([PENDING]).collect();
    if read != written {
        return Err(format!(
            "m3u8-rs read the URIs {read:?}, the playlist has {written:?} (a tag it misread?)"
        ));
    }
    refused(&pl.unknown_tags)?;
    if pl.version == Some(0) {
        return Err("bad EXT-X-VERSION 0".to_string());
    }
    if let Some(m3u8_rs::MediaPlaylistType::Other(t)) = &pl.playlist_type {
        return Err(format!("EXT-X-PLAYLIST-TYPE must be EVENT or VOD, not {t}"));
    }
    let mut media = MediaPlaylist {
        version: pl.version.map(|v| v as u32),
        target_duration: pl.target_duration,
        media_sequence: pl.media_sequence,
        discontinuity_sequence: pl.discontinuity_sequence,
        playlist_type: pl.playlist_type.as_ref().map(ToString::to_string),
        independent_segments: pl.independent_segments,
        endlist: pl.end_list,
        ..MediaPlaylist::default()
    };
    let mut current_map = None;
    let mut parts_seen = false;
    let count = pl.segments.len();
    for (i, s) in pl.segments.into_iter().enumerate() {
        refused(&s.unknown_tags)?;
        if let Some(m) = &s.map {
            media.maps.push(m.uri.clone());
            current_map = Some(media.maps.len() - 1);
        }
        let mut parts = Vec::new();
        let mut gap = false;
        for t in &s.unknown_tags {
            let shown = show_tag(t);
            let attrs = || {
                Attrs::parse(t.rest.as_deref().unwrap_or("")).map_err(|e| format!("{e}: {shown:?}"))
            };
            match t.tag.as_str() {
                "X-GAP" => gap = true,
                "X-PART" => {
                    parts.push(part(&attrs()?).map_err(|e| format!("{e}: {shown:?}"))?);
                    parts_seen = true;
                }
                "X-SERVER-CONTROL" => {
                    media.server_control =
                        Some(server_control(&attrs()?).map_err(|e| format!("{e}: {shown:?}"))?);
                }
                "X-PART-INF" => {
                    let t = attrs()?
                        .decimal("PART-TARGET")
                        .and_then(|t| t.ok_or_else(|| "PART-TARGET missing".to_string()))
                        .map_err(|e| format!("{e}: {shown:?}"))?;
                    if t <= 0.0 {
                        return Err(format!("PART-TARGET must be positive: {shown:?}"));
                    }
                    media.part_target = Some(t);
                }
                "X-PRELOAD-HINT" => {
                    let hint = preload_hint(&attrs()?).map_err(|e| format!("{e}: {shown:?}"))?;
                    if media.preload_hints.iter().any(|h| h.kind == hint.kind) {
                        return Err(format!(
                            "a second preload hint of TYPE={}: {shown:?}",
                            hint.kind
                        ));
                    }
                    media.preload_hints.push(hint);
                }
                "X-SKIP" | "X-RENDITION-REPORT" | "X-CONTENT-STEERING" => {
                    attrs()?;
                }
                _ => {}
            }
        }
        if i + 1 == count {
            media.pending_parts = parts;
            break;
        }
        let msn = media.media_sequence + media.segments.len() as u64;
        media.segments.push(Segment {
            msn,
            duration: widen(s.duration),
            title: s.title.unwrap_or_default(),
            uri: s.uri,
            discontinuity: s.discontinuity,
            program_date_time: s.program_date_time.map(|d| d.to_rfc3339()),
            map: current_map,
            parts,
            gap,
            byterange: s.byte_range.as_ref().map(show_byterange),
            line: lines[i].inf_line,
        });
    }
    check_media(&media, parts_seen)?;
    Ok(media)
}

/// The rules between tags: durations against the targets, hold-backs,
/// LL-HLS tags that need `EXT-X-PART-INF`.
fn check_media(media: &MediaPlaylist, parts_seen: bool) -> Result<(), String> {
    let target = media.target_duration;
    for s in &media.segments {
        let rounded = s.duration.round();
        if rounded > target as f64 {
            return Err(format!(
                "line {}: EXTINF {} rounds to {rounded}, more than EXT-X-TARGETDURATION {target}",
                s.line, s.duration
            ));
        }
    }
    match media.part_target {
        None if parts_seen => {
            return Err("EXT-X-PART in a playlist without EXT-X-PART-INF".to_string());
        }
        None => {}
        Some(pt) => {
            if let Some((msn, i, p)) = media
                .parts()
                .into_iter()
                .find(|(_, _, p)| p.duration > pt + 1e-9)
            {
                return Err(format!(
                    "part {msn}.{i}: DURATION {} longer than PART-TARGET {pt}",
                    p.duration
                ));
            }
            let phb = media.server_control.as_ref().and_then(|s| s.part_hold_back);
            match phb {
                None => {
                    return Err(
                        "EXT-X-PART-INF without EXT-X-SERVER-CONTROL:PART-HOLD-BACK".to_string()
                    )
                }
                Some(h) if h + 1e-9 < 2.0 * pt => {
                    return Err(format!(
                        "PART-HOLD-BACK {h} is less than twice PART-TARGET {pt}"
                    ))
                }
                Some(_) => {}
            }
        }
    }
    if let Some(hb) = media.server_control.as_ref().and_then(|s| s.hold_back) {
        if hb + 1e-9 < 3.0 * target as f64 {
            return Err(format!(
                "HOLD-BACK {hb} is less than three target durations ({target})"
            ));
        }
    }
    if media.part_hint().is_some() && media.part_target.is_none() {
        return Err("preload hint of TYPE=PART without EXT-X-PART-INF".to_string());
    }
    Ok(())
}

fn part(a: &Attrs) -> Result<Part, String> {
    let duration = a
        .decimal("DURATION")?
        .ok_or_else(|| "DURATION missing".to_string())?;
    let uri = a.required_quoted("URI")?.to_string();
    let byterange = a.quoted("BYTERANGE")?.map(str::to_string);
    if let Some(b) = &byterange {
        self::byterange(b)?;
    }
    Ok(Part {
        uri,
        duration,
        independent: a.yes("INDEPENDENT")?,
        gap: a.yes("GAP")?,
        byterange,
    })
}

fn server_control(a: &Attrs) -> Result<ServerControl, String> {
    Ok(ServerControl {
        can_block_reload: a.yes("CAN-BLOCK-RELOAD")?,
        can_skip_until: a.decimal("CAN-SKIP-UNTIL")?,
        can_skip_dateranges: a.yes("CAN-SKIP-DATERANGES")?,
        hold_back: a.decimal("HOLD-BACK")?,
        part_hold_back: a.decimal("PART-HOLD-BACK")?,
    })
}

fn preload_hint(a: &Attrs) -> Result<PreloadHint, String> {
    let kind = a
        .enumerated("TYPE")?
        .ok_or_else(|| "TYPE missing".to_string())?;
    if kind != "PART" && kind != "MAP" {
        return Err(format!("TYPE must be PART or MAP, not {kind}"));
    }
    Ok(PreloadHint {
        kind: kind.to_string(),
        uri: a.required_quoted("URI")?.to_string(),
        byterange_start: a.integer("BYTERANGE-START")?,
        byterange_length: a.integer("BYTERANGE-LENGTH")?,
    })
}

fn parse_master_crate(text: &str) -> Result<MasterPlaylist, String> {
    let (rest, pl) =
        m3u8_rs::parse_master_playlist(text.as_bytes()).map_err(|e| format!("m3u8-rs: {e:?}"))?;
    if !rest.trim_ascii().is_empty() {
        return Err(format!(
            "m3u8-rs stopped reading at {:?}",
            String::from_utf8_lossy(&rest[..rest.len().min(200)])
        ));
    }
    refused(&pl.unknown_tags)?;
    let variants: Vec<Variant> = pl
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| Variant {
            uri: v.uri.clone(),
            bandwidth: v.bandwidth,
            average_bandwidth: v.average_bandwidth,
            codecs: v.codecs.clone(),
            resolution: v.resolution.map(|r| (r.width as u32, r.height as u32)),
            frame_rate: v.frame_rate,
            audio: v.audio.clone(),
        })
        .collect();
    if variants.is_empty() {
        return Err("master playlist without EXT-X-STREAM-INF".to_string());
    }
    let mut renditions = Vec::new();
    for r in &pl.alternatives {
        if let m3u8_rs::AlternativeMediaType::Other(t) = &r.media_type {
            return Err(format!("EXT-X-MEDIA: bad TYPE {t}"));
        }
        renditions.push(Rendition {
            kind: r.media_type.to_string(),
            group_id: r.group_id.clone(),
            name: r.name.clone(),
            uri: r.uri.clone(),
            language: r.language.clone(),
            default: r.default,
            autoselect: r.autoselect,
        });
    }
    Ok(MasterPlaylist {
        version: pl.version.map(|v| v as u32),
        independent_segments: pl.independent_segments,
        variants,
        renditions,
    })
}

/// `decimal-integer`: digits only.
fn integer(s: &str) -> Result<u64, String> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a decimal integer"));
    }
    s.parse().map_err(|_| format!("{s:?} is out of range"))
}

/// `decimal-floating-point`: digits with at most one dot, no sign or
/// exponent.
fn decimal(s: &str) -> Result<f64, String> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && s.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return Err(format!("{s:?} is not a decimal number"));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not a decimal number"))
}

/// `<n>[@<o>]`.
fn byterange(s: &str) -> Result<(), String> {
    let (n, o) = match s.split_once('@') {
        Some((n, o)) => (n, Some(o)),
        None => (s, None),
    };
    integer(n).map_err(|_| format!("bad byte range {s:?}"))?;
    if let Some(o) = o {
        integer(o).map_err(|_| format!("bad byte range {s:?}"))?;
    }
    Ok(())
}

/// An attribute list (`NAME=VALUE,...`, values quoted or not) of an LL-HLS
/// tag, which m3u8-rs hands over unread.
struct Attrs {
    list: Vec<(String, String, bool)>,
}

impl Attrs {
    fn parse(s: &str) -> Result<Attrs, String> {
        let mut list: Vec<(String, String, bool)> = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once('=')
                .ok_or_else(|| format!("attribute without '=' in {rest:?}"))?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-')
            {
                return Err(format!("bad attribute name {name:?}"));
            }
            if list.iter().any(|(n, ..)| n == name) {
                return Err(format!("attribute {name} appears twice"));
            }
            let (value, quoted, tail) = if let Some(q) = after.strip_prefix('"') {
                let (v, tail) = q
                    .split_once('"')
                    .ok_or_else(|| format!("unterminated quoted value of {name}"))?;
                if !(tail.is_empty() || tail.starts_with(',')) {
                    return Err(format!("junk after the quoted value of {name}"));
                }
                (v, true, tail)
            } else {
                let end = after.find(',').unwrap_or(after.len());
                let v = &after[..end];
                if v.is_empty() || v.bytes().any(|c| c == b'"' || c == b' ' || c == b'\t') {
                    return Err(format!("bad unquoted value of {name}: {v:?}"));
                }
                (v, false, &after[end..])
            };
            list.push((name.to_string(), value.to_string(), quoted));
            rest = match tail.strip_prefix(',') {
                Some("") => return Err("trailing comma in attribute list".to_string()),
                Some(t) => t,
                None => tail,
            };
        }
        Ok(Attrs { list })
    }

    fn get(&self, name: &str) -> Option<(&str, bool)> {
        self.list
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, v, q)| (v.as_str(), *q))
    }

    fn quoted(&self, name: &str) -> Result<Option<&str>, String> {
        match self.get(name) {
            None => Ok(None),
            Some((v, true)) => Ok(Some(v)),
            Some((v, false)) => Err(format!("{name} must be a quoted string, not {v}")),
        }
    }

    fn required_quoted(&self, name: &str) -> Result<&str, String> {
        self.quoted(name)?.ok_or_else(|| format!("{name} missing"))
    }

    fn enumerated(&self, name: &str) -> Result<Option<&str>, String> {
        match self.get(name) {
            None => Ok(None),
            Some((v, false)) => Ok(Some(v)),
            Some((v, true)) => Err(format!("{name} must not be quoted (\"{v}\")")),
        }
    }

    fn decimal(&self, name: &str) -> Result<Option<f64>, String> {
        self.enumerated(name)?
            .map(|v| decimal(v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    }

    fn integer(&self, name: &str) -> Result<Option<u64>, String> {
        self.enumerated(name)?
            .map(|v| integer(v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    }

    fn yes(&self, name: &str) -> Result<bool, String> {
        match self.enumerated(name)? {
            None | Some("NO") => Ok(false),
            Some("YES") => Ok(true),
            Some(v) => Err(format!("{name} must be YES or NO, not {v}")),
        }
    }
}

// ------------------------------------------------------------------ hashing

/// 64-bit FNV-1a, fed piece by piece.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn new() -> Fnv1a {
        Fnv1a::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.update(bytes);
    h.finish()
}

// ------------------------------------------------------------------ follower

/// How a follower behaves.
#[derive(Debug, Clone)]
pub struct FollowOpts {
    /// Download complete segments.
    pub segments: bool,
    /// Download parts too (LL-HLS).
    pub parts: bool,
    /// Use blocking playlist reloads when the server offers them
    /// (`CAN-BLOCK-RELOAD=YES`): for the next part when following parts and
    /// the playlist has `EXT-X-PART-INF`, for the next segment otherwise.
    pub blocking: bool,
    /// Also request the `TYPE=PART` preload hint as soon as it is listed
    /// (the server is expected to hold the answer until the part exists).
    pub preload: bool,
    /// Download each `EXT-X-MAP` once.
    pub maps: bool,
    /// Keep an FNV-1a hash of every body.
    pub hash: bool,
    /// Start with only the last `n` complete segments of the first playlist
    /// (like a player joining live); `None`: every listed segment.
    pub start_back: Option<usize>,
    /// Stop once the playlist has `EXT-X-ENDLIST` and every segment is in.
    pub stop_at_endlist: bool,
    /// Deadline of one request.
    pub timeout: Duration,
}

impl Default for FollowOpts {
    fn default() -> FollowOpts {
        FollowOpts {
            segments: true,
            parts: false,
            blocking: true,
            preload: false,
            maps: true,
            hash: true,
            start_back: None,
            stop_at_endlist: true,
            timeout: Duration::from_secs(10),
        }
    }
}

impl FollowOpts {
    /// Segments and parts, blocking reloads: an LL-HLS player.
    pub fn low_latency() -> FollowOpts {
        FollowOpts {
            parts: true,
            ..FollowOpts::default()
        }
    }
}

/// One downloaded segment (or map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub msn: u64,
    pub uri: String,
    /// HTTP status (0: the request failed).
    pub status: u16,
    pub bytes: u64,
    /// FNV-1a of the body.
    pub hash: Option<u64>,
    /// Declared duration in milliseconds (EXTINF; 0 for maps).
    pub declared_ms: u64,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// When the download ended, since the follower started.
    pub at: Duration,
    /// How long the download took.
    pub took: Duration,
}

/// One downloaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPart {
    pub msn: u64,
    pub index: usize,
    pub uri: String,
    pub status: u16,
    pub bytes: u64,
    pub hash: Option<u64>,
    /// DURATION in milliseconds (0 when fetched from a preload hint).
    pub declared_ms: u64,
    pub independent: bool,
    /// Requested from a preload hint before it was listed.
    pub from_hint: bool,
    pub at: Duration,
    pub took: Duration,
}

/// What a follower saw.
#[derive(Debug, Clone, Default)]
pub struct FollowReport {
    pub url: String,
    /// Segments in download order.
    pub segments: Vec<Fetched>,
    pub parts: Vec<FetchedPart>,
    /// `EXT-X-MAP`s downloaded (msn: the first segment using it).
    pub maps: Vec<Fetched>,
    /// Playlist responses (200) received.
    pub playlists_fetched: u64,
    /// Of which answered blocking reloads.
    pub blocking_reloads: u64,
    pub playlist_bytes: u64,
    /// Segments needed but not obtained: evicted from the playlist before
    /// they were downloaded, never listed although later ones were, or
    /// answered with an error status (404…).
    pub gaps: Vec<u64>,
    /// Parts listed but not obtained (error status or request failure).
    pub part_gaps: Vec<(u64, usize)>,
    /// Sequence numbers of segments listed after `EXT-X-DISCONTINUITY`.
    pub discontinuities: Vec<u64>,
    /// (before, after) whenever `EXT-X-MEDIA-SEQUENCE` went backwards.
    pub sequence_regressions: Vec<(u64, u64)>,
    /// Everything that went wrong, in order (at most [`MAX_ERRORS`];
    /// `more_errors` counts the rest).
    pub errors: Vec<String>,
    pub more_errors: u64,
    /// Media bytes: segments, parts and maps.
    pub bytes: u64,
    /// Last target duration seen.
    pub target_duration: u64,
    /// The playlist ended (`EXT-X-ENDLIST`) and every segment was fetched.
    pub ended: bool,
    pub elapsed: Duration,
}

/// Errors kept per follower.
pub const MAX_ERRORS: usize = 64;

impl FollowReport {
    fn error(&mut self, e: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        } else {
            self.more_errors += 1;
        }
    }

    /// Sequence numbers of the segments obtained (2xx), in order.
    pub fn msns(&self) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|f| (200..300).contains(&f.status))
            .map(|f| f.msn)
            .collect()
    }

    /// No gaps, errors or regressions.
    pub fn is_clean(&self) -> bool {
        self.gaps.is_empty()
            && self.part_gaps.is_empty()
            && self.errors.is_empty()
            && self.sequence_regressions.is_empty()
    }

    /// Segments obtained are consecutive (no msn skipped between the first
    /// and the last).
    pub fn is_contiguous(&self) -> bool {
        self.msns().windows(2).all(|w| w[1] == w[0] + 1)
    }

    /// A paragraph for failure messages.
    pub fn summary(&self) -> String {
        let msns = self.msns();
        let range = match (msns.first(), msns.last()) {
            (Some(a), Some(b)) => format!("msn {a}..={b}"),
            _ => "none".to_string(),
        };
        let mut s = format!(
            "{}: {:.1}s, {} segments ({range}), {} parts, {} maps, {} bytes; {} playlists ({} blocking); \
             gaps {:?}, part gaps {:?}, discontinuities {:?}, regressions {:?}{}",
            self.url,
            self.elapsed.as_secs_f64(),
            self.segments.len(),
            self.parts.len(),
            self.maps.len(),
            self.bytes,
            self.playlists_fetched,
            self.blocking_reloads,
            self.gaps,
            self.part_gaps,
            self.discontinuities,
            self.sequence_regressions,
            if self.ended { ", ended" } else { "" },
        );
        if !self.errors.is_empty() {
            s.push_str(&format!(
                "\n  {} error(s):",
                self.errors.len() as u64 + self.more_errors
            ));
            for e in self.errors.iter().take(10) {
                s.push_str(&format!("\n    {e}"));
            }
        }
        s
    }
}

/// A follower's state between playlist loads.
struct Follower<'a> {
    url: &'a str,
    opts: &'a FollowOpts,
    client: Client,
    started: Instant,
    deadline: Instant,
    report: FollowReport,
    /// Next segment to download.
    next_seg: Option<u64>,
    /// Next part position to download.
    next_part: Option<(u64, usize)>,
    /// Highest msn ever listed.
    max_listed: Option<u64>,
    last_media_sequence: Option<u64>,
    last_discontinuity_sequence: Option<u64>,
    maps_done: BTreeSet<String>,
    /// Parts fetched from a preload hint, by URI.
    hinted: BTreeSet<String>,
    discontinuities: BTreeSet<u64>,
}

/// Follows the live media playlist at `playlist_url` for `duration` (or
/// until it ends, see [`FollowOpts::stop_at_endlist`]). Returns by
/// `duration` plus at most a few milliseconds: requests are cut at the
/// deadline.
pub fn follow(playlist_url: &str, duration: Duration, opts: &FollowOpts) -> FollowReport {
    let started = Instant::now();
    let mut f = Follower {
        url: playlist_url,
        opts,
        client: Client::with_timeout(opts.timeout),
        started,
        deadline: started + duration,
        report: FollowReport {
            url: playlist_url.to_string(),
            ..FollowReport::default()
        },
        next_seg: None,
        next_part: None,
        max_listed: None,
        last_media_sequence: None,
        last_discontinuity_sequence: None,
        maps_done: BTreeSet::new(),
        hinted: BTreeSet::new(),
        discontinuities: BTreeSet::new(),
    };
    f.run();
    if f.report.playlists_fetched == 0 && f.report.errors.is_empty() {
        f.report.error(format!(
            "no playlist from {playlist_url} within {:.1}s",
            duration.as_secs_f64()
        ));
    }
    f.report.discontinuities = f.discontinuities.into_iter().collect();
    f.report.elapsed = started.elapsed();
    f.report
}

/// What the next playlist request is.
enum Reload {
    /// A plain reload at this time.
    At(Instant),
    /// A blocking reload for this segment (and part).
    Blocking(u64, Option<usize>),
}

impl Follower<'_> {
    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn over(&self) -> bool {
        self.left() < Duration::from_millis(2)
    }

    /// Request timeout: the option, cut at the deadline.
    fn arm(&mut self) {
        let t = self.opts.timeout.min(self.left());
        self.client.set_timeout(t);
    }

    fn run(&mut self) {
        let mut reload = Reload::At(Instant::now());
        // A blocking reload that came back without anything new, to avoid
        // spinning on a server that answers at once.
        let mut idle_rounds = 0u32;
        while !self.over() {
            let (url, blocking) = match reload {
                Reload::At(when) => {
                    let now = Instant::now();
                    if when > now {
                        std::thread::sleep((when - now).min(self.left()));
                        if self.over() {
                            break;
                        }
                    }
                    (self.url.to_string(), None)
                }
                Reload::Blocking(msn, part) => {
                    let q = match part {
                        Some(p) => format!("_HLS_msn={msn}&_HLS_part={p}"),
                        None => format!("_HLS_msn={msn}"),
                    };
                    (with_query(self.url, &q), Some((msn, part)))
                }
            };
            let requested = Instant::now();
            let Some(pl) = self.load_playlist(&url, blocking.is_some()) else {
                reload = Reload::At(requested + Duration::from_millis(500));
                continue;
            };
            if let Some((msn, part)) = blocking {
                let has = match part {
                    Some(p) => pl.has_part(msn, p) || pl.last_msn().is_some_and(|l| l >= msn),
                    None => pl.last_msn().is_some_and(|l| l >= msn),
                };
                if !has && !pl.endlist {
                    let what = match part {
                        Some(p) => format!("msn {msn} part {p}"),
                        None => format!("msn {msn}"),
                    };
                    self.error(format!(
                        "blocking reload {url} was answered with a playlist without {what} \
                         (media sequence {}, next msn {}, {} pending parts)",
                        pl.media_sequence,
                        pl.next_msn(),
                        pl.pending_parts.len()
                    ));
                }
            }
            let before = (self.next_seg, self.next_part);
            self.take(&pl);
            if self.over() {
                break;
            }
            if pl.endlist && self.opts.stop_at_endlist && self.next_seg > pl.last_msn() {
                self.report.ended = true;
                break;
            }
            let half_target = Duration::from_millis(pl.target_duration.max(1) * 500);
            reload = if self.opts.blocking && pl.can_block_reload() && !pl.endlist {
                let progressed = (self.next_seg, self.next_part) != before;
                idle_rounds = if progressed { 0 } else { idle_rounds + 1 };
                if idle_rounds >= 2 {
                    // Answered without anything new, twice: back off a little.
                    let pause = pl
                        .part_target
                        .map_or(half_target / 4, |t| Duration::from_secs_f64(t / 2.0));
                    std::thread::sleep(pause.min(self.left()));
                }
                let (msn, part) = pl.next_part_position();
                if self.opts.parts && pl.part_target.is_some() {
                    Reload::Blocking(msn, Some(part))
                } else {
                    Reload::Blocking(msn, None)
                }
            } else {
                Reload::At(requested + half_target)
            };
        }
    }

    fn error(&mut self, e: String) {
        if !self.over() {
            self.report.error(e);
        }
    }

    fn load_playlist(&mut self, url: &str, blocking: bool) -> Option<MediaPlaylist> {
        self.arm();
        let resp = match self.client.get(url) {
            Ok(r) => r,
            Err(e) => {
                self.error(format!("playlist: {e}"));
                return None;
            }
        };
        if resp.status != 200 {
            let body = resp.text();
            self.error(format!(
                "playlist {url}: status {} ({})",
                resp.status,
                body.chars().take(200).collect::<String>()
            ));
            return None;
        }
        self.report.playlists_fetched += 1;
        if blocking {
            self.report.blocking_reloads += 1;
        }
        self.report.playlist_bytes += resp.body.len() as u64;
        let text = match String::from_utf8(resp.body) {
            Ok(t) => t,
            Err(_) => {
                self.error(format!("playlist {url}: not UTF-8"));
                return None;
            }
        };
        match parse_media(&text) {
            Ok(pl) => Some(pl),
            Err(e) => {
                self.error(format!(
                    "playlist {url}: {e}\n--- playlist ---\n{}\n---",
                    text.chars().take(2000).collect::<String>()
                ));
                None
            }
        }
    }

    /// Takes in one playlist: checks it against the previous ones and
    /// downloads whatever is new.
    fn take(&mut self, pl: &MediaPlaylist) {
        self.report.target_duration = pl.target_duration;
        if let Some(prev) = self.last_media_sequence {
            if pl.media_sequence < prev {
                self.report
                    .sequence_regressions
                    .push((prev, pl.media_sequence));
                self.error(format!(
                    "EXT-X-MEDIA-SEQUENCE went back from {prev} to {}",
                    pl.media_sequence
                ));
            }
        }
        if let Some(prev) = self.last_discontinuity_sequence {
            if pl.discontinuity_sequence < prev {
                self.error(format!(
                    "EXT-X-DISCONTINUITY-SEQUENCE went back from {prev} to {}",
                    pl.discontinuity_sequence
                ));
            }
        }
        self.last_media_sequence = Some(pl.media_sequence);
        self.last_discontinuity_sequence = Some(pl.discontinuity_sequence);

        let first = pl.media_sequence;
        let next = *self
            .next_seg
            .get_or_insert_with(|| match self.opts.start_back {
                Some(n) => pl.next_msn().saturating_sub(n as u64).max(first),
                None => first,
            });
        if self.next_part.is_none() {
            self.next_part = Some((next, 0));
        }
        for s in &pl.segments {
            if s.discontinuity && s.msn >= next {
                self.discontinuities.insert(s.msn);
            }
        }
        if next < first {
            let listed = self.max_listed;
            for msn in next..first {
                self.report.gaps.push(msn);
                if listed.is_some_and(|l| msn <= l) {
                    self.error(format!(
                        "segment {msn} left the playlist before it was downloaded"
                    ));
                } else {
                    self.error(format!(
                        "segment {msn} was never listed (playlist jumped to {first})"
                    ));
                }
            }
            self.next_seg = Some(first);
        }
        if let Some(last) = pl.last_msn() {
            self.max_listed = Some(self.max_listed.map_or(last, |m| m.max(last)));
        }

        if self.opts.parts {
            self.take_parts(pl);
        }
        if self.opts.segments {
            self.take_segments(pl);
        } else {
            self.next_seg = Some(pl.next_msn().max(self.next_seg.unwrap_or(0)));
        }
        if self.opts.parts && self.opts.preload {
            self.take_hint(pl);
        }
    }

    fn take_segments(&mut self, pl: &MediaPlaylist) {
        for s in &pl.segments {
            if self.over() {
                return;
            }
            if Some(s.msn) < self.next_seg {
                continue;
            }
            if let (true, Some(m)) = (self.opts.maps, s.map) {
                self.fetch_map(&pl.maps[m], s.msn);
            }
            let uri = match resolve(self.url, &s.uri) {
                Ok(u) => u,
                Err(e) => {
                    self.error(format!("segment {}: {e}", s.msn));
                    continue;
                }
            };
            let (status, bytes, hash, took) = self.download(&uri);
            if self.over() && status == 0 {
                return;
            }
            self.next_seg = Some(s.msn + 1);
            self.report.segments.push(Fetched {
                msn: s.msn,
                uri: uri.clone(),
                status,
                bytes,
                hash,
                declared_ms: (s.duration * 1000.0).round() as u64,
                discontinuity: s.discontinuity,
                at: self.started.elapsed(),
                took,
            });
            if !(200..300).contains(&status) {
                self.report.gaps.push(s.msn);
                self.error(format!("segment {} {uri}: status {status}", s.msn));
            }
        }
    }

    fn take_parts(&mut self, pl: &MediaPlaylist) {
        for (msn, index, p) in pl.parts() {
            if self.over() {
                return;
            }
            if Some((msn, index)) < self.next_part {
                continue;
            }
            if let Some(m) = pl
                .segment(msn)
                .and_then(|s| s.map)
                .or(pl.maps.len().checked_sub(1))
            {
                if self.opts.maps {
                    self.fetch_map(&pl.maps[m], msn);
                }
            }
            let uri = match resolve(self.url, &p.uri) {
                Ok(u) => u,
                Err(e) => {
                    self.error(format!("part {msn}.{index}: {e}"));
                    continue;
                }
            };
            self.next_part = Some((msn, index + 1));
            if self.hinted.remove(&uri) {
                continue;
            }
            let (status, bytes, hash, took) = self.download(&uri);
            if self.over() && status == 0 {
                return;
            }
            self.report.parts.push(FetchedPart {
                msn,
                index,
                uri: uri.clone(),
                status,
                bytes,
                hash,
                declared_ms: (p.duration * 1000.0).round() as u64,
                independent: p.independent,
                from_hint: false,
                at: self.started.elapsed(),
                took,
            });
            if !(200..300).contains(&status) {
                self.report.part_gaps.push((msn, index));
                self.error(format!("part {msn}.{index} {uri}: status {status}"));
            }
        }
    }

    fn take_hint(&mut self, pl: &MediaPlaylist) {
        let Some(hint) = pl.part_hint() else { return };
        let Ok(uri) = resolve(self.url, &hint.uri) else {
            return;
        };
        if self.hinted.contains(&uri) || self.over() {
            return;
        }
        let (msn, index) = pl.next_part_position();
        let (status, bytes, hash, took) = self.download(&uri);
        if self.over() && status == 0 {
            return;
        }
        self.report.parts.push(FetchedPart {
            msn,
            index,
            uri: uri.clone(),
            status,
            bytes,
            hash,
            declared_ms: 0,
            independent: false,
            from_hint: true,
            at: self.started.elapsed(),
            took,
        });
        if (200..300).contains(&status) {
            self.hinted.insert(uri);
        } else {
            self.error(format!("preload hint {uri}: status {status}"));
        }
    }

    fn fetch_map(&mut self, map: &str, msn: u64) {
        let uri = match resolve(self.url, map) {
            Ok(u) => u,
            Err(e) => {
                self.error(format!("map: {e}"));
                return;
            }
        };
        if !self.maps_done.insert(uri.clone()) {
            return;
        }
        let (status, bytes, hash, took) = self.download(&uri);
        self.report.maps.push(Fetched {
            msn,
            uri: uri.clone(),
            status,
            bytes,
            hash,
            declared_ms: 0,
            discontinuity: false,
            at: self.started.elapsed(),
            took,
        });
        if !(200..300).contains(&status) {
            self.error(format!("map {uri}: status {status}"));
        }
    }

    /// GETs `uri`, hashing the body as it comes. Status 0: the request
    /// failed (recorded as an error unless the deadline cut it).
    fn download(&mut self, uri: &str) -> (u16, u64, Option<u64>, Duration) {
        self.arm();
        let t0 = Instant::now();
        let mut h = Fnv1a::new();
        let hash = self.opts.hash;
        let res = self.client.stream("GET", uri, &[], &mut |b| {
            if hash {
                h.update(b);
            }
        });
        let took = t0.elapsed();
        match res {
            Ok(r) => {
                if r.is_success() {
                    self.report.bytes += r.body_len;
                }
                (r.status, r.body_len, hash.then(|| h.finish()), took)
            }
            Err(e) => {
                self.error(e);
                (0, 0, None, took)
            }
        }
    }
}

/// Runs `n` followers of `playlist_url` at once, each on its own thread,
/// for `duration`; returns their reports in order.
pub fn load(n: usize, playlist_url: &str, duration: Duration) -> Vec<FollowReport> {
    load_with(
        n,
        playlist_url,
        duration,
        &FollowOpts::default(),
        Duration::ZERO,
    )
}

/// [`load`] with options; follower `i` starts `i * ramp / n` after the
/// first (its follow time shortened so that all stop together). A ramp
/// keeps a burst of connects from overflowing the server's listen backlog
/// (128 for a std listener), whose dropped SYNs the kernel only retries
/// after a second.
pub fn load_with(
    n: usize,
    playlist_url: &str,
    duration: Duration,
    opts: &FollowOpts,
    ramp: Duration,
) -> Vec<FollowReport> {
    let start = Instant::now();
    let end = start + ramp + duration;
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let url = playlist_url.to_string();
        let opts = opts.clone();
        let delay = if n > 0 {
            ramp.mul_f64(i as f64 / n as f64)
        } else {
            Duration::ZERO
        };
        let spawned = std::thread::Builder::new()
            .name(format!("hls-follower-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let begin = start + delay;
                let now = Instant::now();
                if begin > now {
                    std::thread::sleep(begin - now);
                }
                let left = end.saturating_duration_since(Instant::now());
                follow(&url, left, &opts)
            });
        handles.push(spawned.map_err(|e| e.to_string()));
    }
    handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let failed = |e: String| FollowReport {
                url: playlist_url.to_string(),
                errors: vec![format!("follower {i}: {e}")],
                ..FollowReport::default()
            };
            match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| failed("the follower thread panicked".to_string())),
                Err(e) => failed(format!("cannot start a thread: {e}")),
            }
        })
        .collect()
}

/// Checks that every report that obtained a segment (or part, or map) got
/// the same length and hash for it as every other report. Returns the
/// number of distinct segments compared.
pub fn check_identical(reports: &[FollowReport]) -> Result<usize, String> {
    let mut segs: BTreeMap<u64, (u64, Option<u64>, usize)> = BTreeMap::new();
    let mut parts: BTreeMap<(u64, usize), (u64, Option<u64>, usize)> = BTreeMap::new();
    let mut maps: BTreeMap<String, (u64, Option<u64>, usize)> = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        for f in r.segments.iter().filter(|f| (200..300).contains(&f.status)) {
            let e = segs.entry(f.msn).or_insert((f.bytes, f.hash, i));
            if (e.0, e.1) != (f.bytes, f.hash) {
                bad.push(format!(
                    "segment {}: follower {} got {} bytes (hash {:?}), follower {i} got {} bytes (hash {:?})",
                    f.msn, e.2, e.0, e.1, f.bytes, f.hash
                ));
            }
        }
        for p in r.parts.iter().filter(|p| (200..300).contains(&p.status)) {
            let e = parts
                .entry((p.msn, p.index))
                .or_insert((p.bytes, p.hash, i));
            if (e.0, e.1) != (p.bytes, p.hash) {
                bad.push(format!(
                    "part {}.{}: follower {} got {} bytes (hash {:?}), follower {i} got {} bytes (hash {:?})",
                    p.msn, p.index, e.2, e.0, e.1, p.bytes, p.hash
                ));
            }
        }
        for m in r.maps.iter().filter(|m| (200..300).contains(&m.status)) {
            let e = maps.entry(m.uri.clone()).or_insert((m.bytes, m.hash, i));
            if (e.0, e.1) != (m.bytes, m.hash) {
                bad.push(format!(
                    "map {}: follower {} got {} bytes, follower {i} got {} bytes",
                    m.uri, e.2, e.0, m.bytes
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(segs.len())
    } else {
        let n = bad.len();
        bad.truncate(20);
        Err(format!("{n} mismatch(es):\n  {}", bad.join("\n  ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6\n\
#EXT-X-PART-INF:PART-TARGET=0.2\n#EXT-X-MEDIA-SEQUENCE:7\n\
#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:00.000Z\n\
#EXT-X-PART:DURATION=0.2,URI=\"p7.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.2,URI=\"p7.1.m4s\"\n#EXTINF:1.001,\ns7.m4s\n\
#EXT-X-DISCONTINUITY\n#EXTINF:0.96,\ns8.m4s\n\
#EXT-X-PART:DURATION=0.2,URI=\"p9.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p9.1.m4s\"\n";

    #[test]
    fn low_latency_playlist() {
        let pl = parse_media(LL).unwrap();
        assert_eq!(pl.version, Some(9));
        assert_eq!((pl.target_duration, pl.media_sequence), (1, 7));
        assert_eq!(pl.part_target, Some(0.2));
        assert!(pl.can_block_reload());
        assert_eq!(pl.maps, ["init.mp4"]);
        let uris: Vec<_> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["s7.m4s", "s8.m4s"]);
        assert_eq!(pl.segments[0].duration, 1.001);
        assert_eq!(pl.segments[0].line, 11);
        assert_eq!(pl.segments[1].map, Some(0));
        assert!(pl.segments[1].discontinuity && !pl.segments[0].discontinuity);
        assert!(pl.segments[0].program_date_time.is_some());
        assert_eq!(pl.segments[0].parts.len(), 2);
        assert!(pl.segments[0].parts[0].independent);
        assert_eq!(pl.pending_parts.len(), 1);
        assert_eq!(pl.next_part_position(), (9, 1));
        assert!(pl.has_part(9, 0) && !pl.has_part(9, 1));
        assert_eq!(pl.part_hint().map(|h| h.uri.as_str()), Some("p9.1.m4s"));
    }

    #[track_caller]
    fn refused(text: &str, why: &str) {
        match parse_media(text) {
            Ok(p) => panic!("accepted {text:?}: {p:?}"),
            Err(e) => assert!(e.contains(why), "{e}"),
        }
    }

    #[test]
    fn what_a_player_refuses() {
        refused("#EXTM3X\n", "first line");
        refused(&LL.replace("#EXTINF:0.96,\n", ""), "URI without EXTINF");
        refused(&LL.replace("s7.m4s\n", ""), "not followed by a URI");
        refused(&LL.replace("1.001", "1.6"), "rounds to 2");
        refused(
            &LL.replace("PART-HOLD-BACK=0.6", "PART-HOLD-BACK=0.3"),
            "twice PART-TARGET",
        );
        refused(
            &LL.replace("#EXT-X-PART-INF:PART-TARGET=0.2\n", ""),
            "without EXT-X-PART-INF",
        );
        refused(
            &LL.replace("p7.1.m4s\"", "p7.1.m4s\",DURATION=0.1"),
            "appears twice",
        );
        refused(
            &LL.replace("DURATION=0.2,URI=\"p7.1", "DURATION=0.3,URI=\"p7.1"),
            "longer than PART-TARGET",
        );
        refused(&LL.replace("URI=\"p9.1.m4s\"", "URI=p9.1.m4s"), "quoted");
        refused(
            &LL.replace("10:00:00.000Z", "10:00"),
            "malformed #EXT-X-PROGRAM-DATE-TIME",
        );
        refused(
            &LL.replace("#EXT-X-MEDIA-SEQUENCE:7", "#EXT-X-MEDIA-SEQUENCE:x"),
            "malformed",
        );
        refused(
            &LL.replace("#EXT-X-DISCONTINUITY\n", "#EXT-X-DISCONTINUITY:1\n"),
            "takes no value",
        );
        refused(&format!("{LL}#EXT-X-TARGETDURATION:2\n"), "appears twice");
        refused(
            &format!("{LL}#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"),
            "in a media playlist",
        );
        refused(
            &LL.replace("#EXT-X-TARGETDURATION:1\n", ""),
            "without EXT-X-TARGETDURATION",
        );
    }

    #[test]
    fn master_playlist() {
        let m = parse_master(
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",DEFAULT=YES\n\
             #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001f\",AUDIO=\"a\"\n\
             low.m3u8\n",
        )
        .unwrap();
        assert_eq!(m.variants.len(), 1);
        assert_eq!(m.variants[0].uri, "low.m3u8");
        assert_eq!(m.variants[0].bandwidth, 800000);
        assert_eq!(m.variants[0].resolution, Some((640, 360)));
        assert_eq!(m.renditions[0].kind, "AUDIO");
        assert!(m.renditions[0].default);
        assert!(parse_master("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n").is_err());
    }
}
