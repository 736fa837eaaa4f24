//! HLS for the tests: a strict m3u8 parser, a live-player-like follower and
//! a load generator made of many followers.
//!
//! The parser ([`parse`], [`parse_media`], [`parse_master`]) reads what the
//! tests need of RFC 8216 and its low-latency additions, and fails (naming
//! the line) where a real player would refuse the playlist: a first line
//! other than `#EXTM3U`, a tag missing the value it needs or carrying one it
//! must not, a malformed attribute list or a missing required attribute,
//! `#EXTINF` not followed by a URI, a URI without `#EXTINF`, an
//! `#EXT-X-TARGETDURATION` below a segment's rounded duration, a part longer
//! than `PART-TARGET`, parts without `#EXT-X-PART-INF`, `#EXT-X-PART-INF`
//! without `PART-HOLD-BACK`, header tags after the first segment or twice,
//! master and media tags mixed.
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
    /// `EXT-X-PROGRAM-DATE-TIME`, as written.
    pub program_date_time: Option<String>,
    /// Index into [`MediaPlaylist::maps`] of the `EXT-X-MAP` in force.
    pub map: Option<usize>,
    /// Parts listed for this segment (only near the live edge).
    pub parts: Vec<Part>,
    /// `EXT-X-GAP`.
    pub gap: bool,
    /// `EXT-X-BYTERANGE`, as written.
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
    Parser::default().run(text)
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

#[derive(Default)]
struct Parser {
    media: MediaPlaylist,
    master: MasterPlaylist,
    /// Line and name of the first tag that decided the kind.
    kind: Option<(bool, usize, String)>,
    seen: BTreeSet<String>,
    target_line: usize,
    // Segment being described.
    extinf: Option<(usize, f64, String)>,
    discontinuity: bool,
    pdt: Option<String>,
    gap: bool,
    byterange: Option<String>,
    parts: Vec<(usize, Part)>,
    part_lines: Vec<(usize, f64)>,
    current_map: Option<usize>,
    part_inf_line: usize,
    hint_lines: Vec<usize>,
    // Master.
    stream_inf: Option<(usize, Variant)>,
}

fn at(n: usize, line: &str, msg: impl AsRef<str>) -> String {
    format!("line {n}: {}: {line:?}", msg.as_ref())
}

impl Parser {
    fn run(mut self, text: &str) -> Result<Playlist, String> {
        let mut lines = text.split('\n').enumerate().peekable();
        match lines.next() {
            Some((_, l)) if l.strip_suffix('\r').unwrap_or(l) == "#EXTM3U" => {}
            Some((_, l)) => return Err(at(1, l, "the first line must be #EXTM3U")),
            None => return Err("empty playlist".to_string()),
        }
        for (i, raw) in lines {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with("#EXT") {
                self.tag(n, line)?;
            } else if line.starts_with('#') {
                continue;
            } else {
                self.uri(n, line)?;
            }
        }
        self.finish()
    }

    fn set_kind(&mut self, master: bool, n: usize, line: &str, name: &str) -> Result<(), String> {
        match &self.kind {
            None => {
                self.kind = Some((master, n, name.to_string()));
                Ok(())
            }
            Some((m, first, first_name)) if *m != master => Err(at(
                n,
                line,
                format!(
                    "{} tag {name} in a playlist that line {first} made a {} playlist ({first_name})",
                    if master { "master" } else { "media" },
                    if *m { "master" } else { "media" },
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    fn once(&mut self, n: usize, line: &str, name: &str) -> Result<(), String> {
        if !self.seen.insert(name.to_string()) {
            return Err(at(n, line, format!("{name} appears twice")));
        }
        Ok(())
    }

    fn before_segments(&self, n: usize, line: &str, name: &str) -> Result<(), String> {
        if !self.media.segments.is_empty() || self.extinf.is_some() || !self.parts.is_empty() {
            return Err(at(n, line, format!("{name} after the first segment")));
        }
        Ok(())
    }

    fn tag(&mut self, n: usize, line: &str) -> Result<(), String> {
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
        let value = value.unwrap_or("");
        if MEDIA_TAGS.contains(&name) {
            self.set_kind(false, n, line, name)?;
        } else if MASTER_TAGS.contains(&name) {
            self.set_kind(true, n, line, name)?;
        }
        match name {
            "EXTM3U" => return Err(at(n, line, "#EXTM3U again")),
            "EXT-X-VERSION" => {
                self.once(n, line, name)?;
                let v = integer(value).map_err(|e| at(n, line, e))?;
                if v == 0 || v > u64::from(u32::MAX) {
                    return Err(at(n, line, "bad version"));
                }
                self.media.version = Some(v as u32);
                self.master.version = Some(v as u32);
            }
            "EXT-X-INDEPENDENT-SEGMENTS" => {
                self.media.independent_segments = true;
                self.master.independent_segments = true;
            }
            "EXT-X-TARGETDURATION" => {
                self.before_segments(n, line, name)?;
                self.once(n, line, name)?;
                self.media.target_duration = integer(value).map_err(|e| at(n, line, e))?;
                self.target_line = n;
            }
            "EXT-X-MEDIA-SEQUENCE" => {
                self.before_segments(n, line, name)?;
                self.once(n, line, name)?;
                self.media.media_sequence = integer(value).map_err(|e| at(n, line, e))?;
            }
            "EXT-X-DISCONTINUITY-SEQUENCE" => {
                self.before_segments(n, line, name)?;
                self.once(n, line, name)?;
                if self.discontinuity {
                    return Err(at(n, line, "after an EXT-X-DISCONTINUITY"));
                }
                self.media.discontinuity_sequence = integer(value).map_err(|e| at(n, line, e))?;
            }
            "EXT-X-PLAYLIST-TYPE" => {
                self.once(n, line, name)?;
                if value != "EVENT" && value != "VOD" {
                    return Err(at(n, line, "playlist type must be EVENT or VOD"));
                }
                self.media.playlist_type = Some(value.to_string());
            }
            "EXT-X-ENDLIST" => self.media.endlist = true,
            "EXT-X-SERVER-CONTROL" => {
                self.once(n, line, name)?;
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let sc = (|| -> Result<ServerControl, String> {
                    Ok(ServerControl {
                        can_block_reload: a.yes("CAN-BLOCK-RELOAD")?,
                        can_skip_until: a.decimal("CAN-SKIP-UNTIL")?,
                        can_skip_dateranges: a.yes("CAN-SKIP-DATERANGES")?,
                        hold_back: a.decimal("HOLD-BACK")?,
                        part_hold_back: a.decimal("PART-HOLD-BACK")?,
                    })
                })()
                .map_err(|e| at(n, line, e))?;
                self.media.server_control = Some(sc);
            }
            "EXT-X-PART-INF" => {
                self.once(n, line, name)?;
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let t = a
                    .decimal("PART-TARGET")
                    .and_then(|t| t.ok_or_else(|| "PART-TARGET missing".to_string()))
                    .map_err(|e| at(n, line, e))?;
                if t <= 0.0 {
                    return Err(at(n, line, "PART-TARGET must be positive"));
                }
                self.media.part_target = Some(t);
                self.part_inf_line = n;
            }
            "EXT-X-MAP" => {
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let uri = a.required_quoted("URI").map_err(|e| at(n, line, e))?;
                a.quoted("BYTERANGE").map_err(|e| at(n, line, e))?;
                self.media.maps.push(uri.to_string());
                self.current_map = Some(self.media.maps.len() - 1);
            }
            "EXTINF" => {
                if let Some((first, ..)) = &self.extinf {
                    return Err(at(
                        n,
                        line,
                        format!("EXTINF of line {first} was not followed by a URI"),
                    ));
                }
                let (d, title) = value
                    .split_once(',')
                    .ok_or_else(|| at(n, line, "EXTINF needs a comma after the duration"))?;
                let d = decimal(d).map_err(|e| at(n, line, e))?;
                self.extinf = Some((n, d, title.to_string()));
            }
            "EXT-X-DISCONTINUITY" => self.discontinuity = true,
            "EXT-X-GAP" => self.gap = true,
            "EXT-X-BYTERANGE" => {
                byterange(value).map_err(|e| at(n, line, e))?;
                self.byterange = Some(value.to_string());
            }
            "EXT-X-PROGRAM-DATE-TIME" => {
                date_time_millis(value).map_err(|e| at(n, line, e))?;
                self.pdt = Some(value.to_string());
            }
            "EXT-X-PART" => {
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let part = (|| -> Result<Part, String> {
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
                })()
                .map_err(|e| at(n, line, e))?;
                if let Some((first, ..)) = &self.extinf {
                    // Parts come before the EXTINF of their segment.
                    return Err(at(
                        n,
                        line,
                        format!("EXT-X-PART between the EXTINF of line {first} and its URI"),
                    ));
                }
                self.part_lines.push((n, part.duration));
                self.parts.push((n, part));
            }
            "EXT-X-PRELOAD-HINT" => {
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let hint = (|| -> Result<PreloadHint, String> {
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
                })()
                .map_err(|e| at(n, line, e))?;
                if self.media.preload_hints.iter().any(|h| h.kind == hint.kind) {
                    return Err(at(
                        n,
                        line,
                        format!("a second preload hint of TYPE={}", hint.kind),
                    ));
                }
                self.media.preload_hints.push(hint);
                self.hint_lines.push(n);
            }
            "EXT-X-KEY"
            | "EXT-X-DATERANGE"
            | "EXT-X-SKIP"
            | "EXT-X-RENDITION-REPORT"
            | "EXT-X-START"
            | "EXT-X-SESSION-DATA"
            | "EXT-X-SESSION-KEY"
            | "EXT-X-CONTENT-STEERING"
            | "EXT-X-I-FRAME-STREAM-INF" => {
                Attrs::parse(value).map_err(|e| at(n, line, e))?;
            }
            "EXT-X-STREAM-INF" => {
                if let Some((first, _)) = &self.stream_inf {
                    return Err(at(
                        n,
                        line,
                        format!("EXT-X-STREAM-INF of line {first} was not followed by a URI"),
                    ));
                }
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let v = (|| -> Result<Variant, String> {
                    let resolution = match a.enumerated("RESOLUTION")? {
                        None => None,
                        Some(r) => {
                            let (w, h) = r
                                .split_once('x')
                                .ok_or_else(|| format!("bad RESOLUTION {r}"))?;
                            Some((
                                integer(w)? as u32,
                                integer(h).map_err(|_| format!("bad RESOLUTION {r}"))? as u32,
                            ))
                        }
                    };
                    Ok(Variant {
                        uri: String::new(),
                        bandwidth: a
                            .integer("BANDWIDTH")?
                            .ok_or_else(|| "BANDWIDTH missing".to_string())?,
                        average_bandwidth: a.integer("AVERAGE-BANDWIDTH")?,
                        codecs: a.quoted("CODECS")?.map(str::to_string),
                        resolution,
                        frame_rate: a.decimal("FRAME-RATE")?,
                        audio: a.quoted("AUDIO")?.map(str::to_string),
                    })
                })()
                .map_err(|e| at(n, line, e))?;
                self.stream_inf = Some((n, v));
            }
            "EXT-X-MEDIA" => {
                let a = Attrs::parse(value).map_err(|e| at(n, line, e))?;
                let r = (|| -> Result<Rendition, String> {
                    let kind = a
                        .enumerated("TYPE")?
                        .ok_or_else(|| "TYPE missing".to_string())?;
                    if !["AUDIO", "VIDEO", "SUBTITLES", "CLOSED-CAPTIONS"].contains(&kind) {
                        return Err(format!("bad TYPE {kind}"));
                    }
                    Ok(Rendition {
                        kind: kind.to_string(),
                        group_id: a.required_quoted("GROUP-ID")?.to_string(),
                        name: a.required_quoted("NAME")?.to_string(),
                        uri: a.quoted("URI")?.map(str::to_string),
                        language: a.quoted("LANGUAGE")?.map(str::to_string),
                        default: a.yes("DEFAULT")?,
                        autoselect: a.yes("AUTOSELECT")?,
                    })
                })()
                .map_err(|e| at(n, line, e))?;
                self.master.renditions.push(r);
            }
            _ => {}
        }
        Ok(())
    }

    fn uri(&mut self, n: usize, line: &str) -> Result<(), String> {
        if line != line.trim() {
            return Err(at(n, line, "URI with surrounding white space"));
        }
        if let Some((_, mut v)) = self.stream_inf.take() {
            v.uri = line.to_string();
            self.master.variants.push(v);
            return Ok(());
        }
        if matches!(self.kind, Some((true, ..))) {
            return Err(at(n, line, "URI without EXT-X-STREAM-INF"));
        }
        let Some((inf_line, duration, title)) = self.extinf.take() else {
            return Err(at(n, line, "URI without EXTINF"));
        };
        let msn = self.media.media_sequence + self.media.segments.len() as u64;
        self.media.segments.push(Segment {
            msn,
            duration,
            title,
            uri: line.to_string(),
            discontinuity: std::mem::take(&mut self.discontinuity),
            program_date_time: self.pdt.take(),
            map: self.current_map,
            parts: self.parts.drain(..).map(|(_, p)| p).collect(),
            gap: std::mem::take(&mut self.gap),
            byterange: self.byterange.take(),
            line: inf_line,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<Playlist, String> {
        if let Some((true, ..)) = self.kind {
            if let Some((n, _)) = &self.stream_inf {
                return Err(format!(
                    "line {n}: EXT-X-STREAM-INF not followed by a URI (end of playlist)"
                ));
            }
            if self.master.variants.is_empty() {
                return Err("master playlist without EXT-X-STREAM-INF".to_string());
            }
            return Ok(Playlist::Master(self.master));
        }
        if let Some((n, ..)) = &self.extinf {
            return Err(format!(
                "line {n}: EXTINF not followed by a URI (end of playlist)"
            ));
        }
        if !self.seen.contains("EXT-X-TARGETDURATION") {
            return Err("media playlist without EXT-X-TARGETDURATION".to_string());
        }
        let target = self.media.target_duration;
        for s in &self.media.segments {
            let rounded = s.duration.round();
            if rounded > target as f64 {
                return Err(format!(
                    "line {}: EXTINF {} rounds to {rounded}, more than EXT-X-TARGETDURATION {target} (line {})",
                    s.line, s.duration, self.target_line
                ));
            }
        }
        if let Some(&(first, _)) = self.part_lines.first() {
            let Some(pt) = self.media.part_target else {
                return Err(format!(
                    "line {first}: EXT-X-PART in a playlist without EXT-X-PART-INF"
                ));
            };
            for &(n, d) in &self.part_lines {
                if d > pt + 1e-9 {
                    return Err(format!(
                        "line {n}: part DURATION {d} longer than PART-TARGET {pt} (line {})",
                        self.part_inf_line
                    ));
                }
            }
        }
        if let Some(pt) = self.media.part_target {
            let phb = self
                .media
                .server_control
                .as_ref()
                .and_then(|s| s.part_hold_back);
            match phb {
                None => {
                    return Err(format!(
                        "line {}: EXT-X-PART-INF without EXT-X-SERVER-CONTROL:PART-HOLD-BACK",
                        self.part_inf_line
                    ))
                }
                Some(h) if h + 1e-9 < 2.0 * pt => {
                    return Err(format!(
                        "PART-HOLD-BACK {h} is less than twice PART-TARGET {pt}"
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(hb) = self.media.server_control.as_ref().and_then(|s| s.hold_back) {
            if hb + 1e-9 < 3.0 * target as f64 {
                return Err(format!(
                    "HOLD-BACK {hb} is less than three target durations ({target})"
                ));
            }
        }
        for (i, h) in self.media.preload_hints.iter().enumerate() {
            if h.kind == "PART" && self.media.part_target.is_none() {
                return Err(format!(
                    "line {}: preload hint of TYPE=PART without EXT-X-PART-INF",
                    self.hint_lines[i]
                ));
            }
        }
        self.media.pending_parts = self.parts.drain(..).map(|(_, p)| p).collect();
        Ok(Playlist::Media(self.media))
    }
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

/// An attribute list: `NAME=VALUE,...`, values quoted or not.
struct Attrs {
    list: Vec<(String, String, bool)>,
}

impl Attrs {
    fn parse(s: &str) -> Result<Attrs, String> {
        let mut list: Vec<(String, String, bool)> = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let eq = s[i..]
                .find('=')
                .map(|j| i + j)
                .ok_or_else(|| format!("attribute without '=' in {:?}", &s[i..]))?;
            let name = &s[i..eq];
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
            i = eq + 1;
            let comma = if b.get(i) == Some(&b'"') {
                let close = s[i + 1..]
                    .find('"')
                    .map(|j| i + 1 + j)
                    .ok_or_else(|| format!("unterminated quoted value of {name}"))?;
                list.push((name.to_string(), s[i + 1..close].to_string(), true));
                i = close + 1;
                match b.get(i) {
                    None => false,
                    Some(b',') => true,
                    Some(_) => return Err(format!("junk after the quoted value of {name}")),
                }
            } else {
                let end = s[i..].find(',').map_or(b.len(), |j| i + j);
                let v = &s[i..end];
                if v.is_empty() {
                    return Err(format!("empty value of {name}"));
                }
                if v.bytes().any(|c| c == b'"' || c == b' ' || c == b'\t') {
                    return Err(format!("bad unquoted value of {name}: {v:?}"));
                }
                list.push((name.to_string(), v.to_string(), false));
                i = end;
                end < b.len()
            };
            if comma {
                i += 1;
                if i == b.len() {
                    return Err("trailing comma in attribute list".to_string());
                }
            }
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

/// Milliseconds since 1970 of an `EXT-X-PROGRAM-DATE-TIME` value:
/// `YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm|±hhmm)`.
pub fn date_time_millis(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an ISO 8601 date and time with a zone");
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Result<i64, String> {
        let part = b.get(from..from + len).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let (h, m) = match b.len() - i - 1 {
                5 if b[i + 3] == b':' => (digits(i + 1, 2)?, digits(i + 4, 2)?),
                4 => (digits(i + 1, 2)?, digits(i + 3, 2)?),
                _ => return Err(bad()),
            };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            if sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return Err(bad()),
    };
    // Days since 1970-01-01: whole years, their leap days, then months.
    let leaps_before =
        |y: i64| (y - 1).div_euclid(4) - (y - 1).div_euclid(100) + (y - 1).div_euclid(400);
    let mut days = 365 * (year - 1970) + leaps_before(year) - leaps_before(1970);
    days += month_days[..(month - 1) as usize].iter().sum::<i64>();
    days += day - 1;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(secs * 1000 + millis)
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
