//! HLS media playlists (RFC 8216 and its low-latency extensions), sans-IO:
//! the segment and part list of one stream's variant, rendered as text, and
//! the rule that decides when a blocking playlist reload can be answered.
//!
//! Two variants share this code: MPEG-TS segments (`EXT-X-VERSION:3`, no
//! parts) and LL-HLS with fMP4 segments and partial segments (`EXT-X-MAP`,
//! `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-SERVER-CONTROL`). Segments and
//! parts are named by their media sequence number (`seg{msn}.ts`,
//! `seg{msn}.m4s`, `seg{msn}.{part}.m4s`), so a URI never changes meaning
//! while the stream lives; a publisher that comes back continues the
//! numbering after an `EXT-X-DISCONTINUITY`.
//!
//! Each fMP4 segment remembers the URI of its init segment ([`Playlist::set_map`]
//! applies to the segments started after it): `EXT-X-MAP` is written before the
//! first segment listed and again wherever the URI changes (after a
//! discontinuity whose publisher has other tracks or codecs).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which kind of segments a playlist lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// MPEG-TS segments, for players without LL-HLS.
    Ts,
    /// fMP4 (CMAF) segments with partial segments, for LL-HLS.
    Fmp4,
}

impl Variant {
    fn extension(self) -> &'static str {
        match self {
            Variant::Ts => "ts",
            Variant::Fmp4 => "m4s",
        }
    }
}

/// A partial segment of an LL-HLS segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub duration: Duration,
    /// Starts with a keyframe.
    pub independent: bool,
}

/// One segment, complete or in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub msn: u64,
    /// Set once the segment is complete.
    pub duration: Option<Duration>,
    pub parts: Vec<Part>,
    /// Wall-clock time of the segment's first frame.
    pub started: SystemTime,
    /// First segment after a publisher came back.
    pub discontinuity: bool,
    /// URI of its init segment (`EXT-X-MAP`), fMP4 only.
    pub map: Option<String>,
}

/// The media playlist of one stream and variant.
#[derive(Debug, Clone)]
pub struct Playlist {
    variant: Variant,
    /// Complete segments kept in the playlist.
    window: usize,
    part_target: Duration,
    /// Complete segments (oldest first), then at most one in progress.
    segments: VecDeque<Segment>,
    next_msn: u64,
    /// Discontinuities that left the window (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_sequence: u64,
    pending_discontinuity: bool,
    /// Largest segment duration seen, for EXT-X-TARGETDURATION (which must
    /// never shrink while the playlist lives).
    longest: Duration,
    ended: bool,
    /// Init segment URI of the segments to come (fMP4 only).
    map: Option<String>,
}

/// Segments (counting the one in progress) whose parts are listed.
const PARTS_LISTED: usize = 3;

/// Why a blocking reload cannot be answered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// Wait: the requested segment or part is not there yet.
    Wait,
    /// More than two segments ahead of the live edge (answer 400).
    TooFarAhead,
}

impl Playlist {
    /// `window`: complete segments listed (at least 1); `part_target`: the
    /// partial segment target duration (LL-HLS only).
    pub fn new(variant: Variant, window: usize, target: Duration, part_target: Duration) -> Self {
        Self {
            variant,
            window: window.max(1),
            part_target,
            segments: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            pending_discontinuity: false,
            longest: target,
            ended: false,
            map: (variant == Variant::Fmp4).then(|| "init.mp4".to_owned()),
        }
    }

    /// Number the first segment `msn` (for names never reused by a later stream).
    pub fn starting_at(mut self, msn: u64) -> Self {
        if self.segments.is_empty() {
            self.next_msn = msn;
        }
        self
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The init segment URI of the segments started from now on (fMP4 only;
    /// `init.mp4` until set).
    pub fn set_map(&mut self, uri: &str) {
        if self.variant == Variant::Fmp4 && self.map.as_deref() != Some(uri) {
            self.map = Some(uri.to_owned());
        }
    }

    /// The next segment follows a discontinuity (a new publisher).
    pub fn discontinuity(&mut self) {
        self.pending_discontinuity = true;
        self.ended = false;
    }

    /// Start a segment (at a keyframe); completes the one in progress with
    /// `previous_duration`. Returns the new segment's sequence number and the
    /// sequence numbers of segments that left the window.
    pub fn start_segment(
        &mut self,
        started: SystemTime,
        previous_duration: Option<Duration>,
        evicted: &mut Vec<u64>,
    ) -> u64 {
        if let Some(d) = previous_duration {
            self.complete(d);
        } else if self.in_progress().is_some() {
            // A segment without a length cannot stay: drop it.
            if let Some(s) = self.segments.pop_back() {
                evicted.push(s.msn);
            }
        }
        let msn = self.next_msn;
        self.next_msn += 1;
        self.segments.push_back(Segment {
            msn,
            duration: None,
            parts: Vec::new(),
            started,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            map: self.map.clone(),
        });
        while self.complete_count() > self.window {
            if let Some(old) = self.segments.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                evicted.push(old.msn);
            }
        }
        msn
    }

    /// Add a finished part to the segment in progress; returns its index.
    pub fn add_part(&mut self, part: Part) -> Option<usize> {
        let seg = self.segments.back_mut().filter(|s| s.duration.is_none())?;
        seg.parts.push(part);
        Some(seg.parts.len() - 1)
    }

    /// Complete the segment in progress (the stream ended, or before a new one).
    pub fn complete(&mut self, duration: Duration) {
        if let Some(seg) = self.segments.back_mut().filter(|s| s.duration.is_none()) {
            seg.duration = Some(duration);
            self.longest = self.longest.max(duration);
        }
    }

    /// The publisher went: the last segment is complete, no more are coming
    /// until [`Playlist::discontinuity`].
    pub fn end(&mut self, last_duration: Duration) {
        self.complete(last_duration);
        self.ended = true;
    }

    fn in_progress(&self) -> Option<&Segment> {
        self.segments.back().filter(|s| s.duration.is_none())
    }

    fn complete_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.duration.is_some())
            .count()
    }

    /// Segments listed, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// Whether the playlist has a complete segment to offer.
    pub fn is_playable(&self) -> bool {
        self.complete_count() > 0
    }

    /// Whether the publisher ended (and no new one started yet).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether segment `msn` is listed with its parts: the last three segments
    /// (counting the one in progress) are, as the low-latency rules ask.
    pub fn lists_parts(&self, msn: u64) -> bool {
        self.variant == Variant::Fmp4
            && self
                .segments
                .iter()
                .rev()
                .take(PARTS_LISTED)
                .any(|s| s.msn == msn)
    }

    /// The live edge: the last segment's sequence number and the number of
    /// parts it has (complete segments count all their parts).
    fn edge(&self) -> Option<(u64, usize)> {
        self.segments.back().map(|s| (s.msn, s.parts.len()))
    }

    /// Whether a request with `_HLS_msn=msn` (and `_HLS_part=part`) can be
    /// answered now (RFC 8216bis 6.2.5.2).
    pub fn check_blocking(&self, msn: u64, part: Option<usize>) -> Result<(), Blocking> {
        let Some((last, parts)) = self.edge() else {
            return Err(Blocking::Wait);
        };
        if msn > last + 2 {
            return Err(Blocking::TooFarAhead);
        }
        let last_complete = self.segments.back().is_some_and(|s| s.duration.is_some());
        let ready = match part {
            None => msn < last || (msn == last && last_complete),
            Some(p) => msn < last || (msn == last && (p < parts || last_complete)),
        };
        if ready || self.ended {
            Ok(())
        } else {
            Err(Blocking::Wait)
        }
    }

    /// The playlist text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        let ll = self.variant == Variant::Fmp4;
        let target = self.longest.as_secs_f64().ceil().max(1.0) as u64;
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if ll { 9 } else { 3 });
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
        if ll {
            let part = self.part_target.as_secs_f64();
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
                part * 3.0
            );
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part:.3}");
            let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
        }
        let first = self.segments.front().map_or(self.next_msn, |s| s.msn);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        // Parts are listed for the last segments only (within three target
        // durations of the live edge), as the low-latency rules ask.
        let with_parts = self.segments.len().saturating_sub(PARTS_LISTED);
        let ext = self.variant.extension();
        let mut map = None;
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.discontinuity {
                let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
            }
            if let Some(uri) = seg.map.as_deref().filter(|u| map != Some(*u)) {
                map = Some(uri);
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{uri}\"");
            }
            if i == 0 || seg.discontinuity {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(seg.started));
            }
            if ll && i >= with_parts {
                for (p, part) in seg.parts.iter().enumerate() {
                    let _ = write!(
                        out,
                        "#EXT-X-PART:DURATION={:.3},URI=\"seg{}.{p}.m4s\"",
                        part.duration.as_secs_f64(),
                        seg.msn
                    );
                    let _ = writeln!(
                        out,
                        "{}",
                        if part.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    );
                }
            }
            if let Some(d) = seg.duration {
                let _ = writeln!(out, "#EXTINF:{:.3},", d.as_secs_f64());
                let _ = writeln!(out, "seg{}.{ext}", seg.msn);
            }
        }
        if ll {
            if let Some((msn, parts)) = self.preload_hint() {
                let _ = writeln!(
                    out,
                    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg{msn}.{parts}.m4s\""
                );
            }
        }
        out
    }

    /// The part a player should ask for next (`EXT-X-PRELOAD-HINT`): none
    /// before the first segment or once the publisher ended.
    pub fn preload_hint(&self) -> Option<(u64, usize)> {
        if self.ended {
            return None;
        }
        match self.segments.back() {
            Some(s) if s.duration.is_none() => Some((s.msn, s.parts.len())),
            Some(s) => Some((s.msn + 1, 0)),
            None => None,
        }
    }
}

/// `2026-11-23T14:25:07.250Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_250)),
            "2000-02-29T00:00:00.250Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_443_907)),
            "2026-11-23T14:25:07.000Z"
        );
    }

    #[test]
    fn ts_playlist_slides_its_window() {
        let mut p = Playlist::new(Variant::Ts, 3, Duration::from_secs(1), 200 * MS);
        let mut gone = Vec::new();
        assert!(!p.is_playable());
        p.start_segment(t(0), None, &mut gone);
        for i in 1..=5 {
            p.start_segment(t(i), Some(1000 * MS), &mut gone);
        }
        assert_eq!(gone, vec![0, 1]);
        let text = p.render();
        assert!(
            text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{text}");
        assert!(text.contains("#EXTINF:1.000,\nseg2.ts\n"), "{text}");
        assert!(
            text.contains("seg4.ts\n") && !text.contains("seg5.ts"),
            "{text}"
        );
        assert!(
            !text.contains("EXT-X-PART") && !text.contains("EXT-X-MAP"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    }

    #[test]
    fn target_duration_never_shrinks() {
        let mut p = Playlist::new(Variant::Ts, 2, Duration::from_secs(1), 200 * MS);
        let mut gone = Vec::new();
        p.start_segment(t(0), None, &mut gone);
        p.start_segment(t(3), Some(2400 * MS), &mut gone);
        for i in 0..4 {
            p.start_segment(t(4 + i), Some(1000 * MS), &mut gone);
        }
        assert!(p.render().contains("#EXT-X-TARGETDURATION:3\n"));
    }

    #[test]
    fn ll_hls_lists_parts_hints_and_server_control() {
        let mut p = Playlist::new(Variant::Fmp4, 4, Duration::from_secs(1), 200 * MS);
        let mut gone = Vec::new();
        p.start_segment(t(0), None, &mut gone);
        for i in 0..5 {
            p.add_part(Part {
                duration: 200 * MS,
                independent: i == 0,
            });
        }
        p.start_segment(t(1), Some(1000 * MS), &mut gone);
        p.add_part(Part {
            duration: 200 * MS,
            independent: true,
        });
        let text = p.render();
        assert!(text.contains("#EXT-X-VERSION:9\n"), "{text}");
        assert!(
            text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"), "{text}");
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.200,URI=\"seg0.0.m4s\",INDEPENDENT=YES\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.200,URI=\"seg0.4.m4s\"\n"),
            "{text}"
        );
        assert!(text.contains("#EXTINF:1.000,\nseg0.m4s\n"), "{text}");
        assert!(
            text.contains("URI=\"seg1.0.m4s\",INDEPENDENT=YES\n"),
            "{text}"
        );
        assert!(
            text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.1.m4s\"\n"),
            "{text}"
        );
    }

    #[test]
    fn blocking_reload_waits_for_the_requested_part() {
        let mut p = Playlist::new(Variant::Fmp4, 4, Duration::from_secs(1), 200 * MS);
        let mut gone = Vec::new();
        assert_eq!(p.check_blocking(0, None), Err(Blocking::Wait));
        p.start_segment(t(0), None, &mut gone);
        assert_eq!(p.check_blocking(0, Some(0)), Err(Blocking::Wait));
        p.add_part(Part {
            duration: 200 * MS,
            independent: true,
        });
        assert_eq!(p.check_blocking(0, Some(0)), Ok(()));
        assert_eq!(p.check_blocking(0, Some(1)), Err(Blocking::Wait));
        assert_eq!(p.check_blocking(0, None), Err(Blocking::Wait));
        assert_eq!(p.check_blocking(1, Some(0)), Err(Blocking::Wait));
        assert_eq!(p.check_blocking(3, None), Err(Blocking::TooFarAhead));
        p.start_segment(t(1), Some(1000 * MS), &mut gone);
        assert_eq!(p.check_blocking(0, None), Ok(()));
        assert_eq!(p.check_blocking(0, Some(7)), Ok(()));
        // An ended stream answers at once: nothing more is coming.
        p.end(300 * MS);
        assert_eq!(p.check_blocking(2, Some(0)), Ok(()));
        assert!(!p.render().contains("PRELOAD-HINT"));
    }

    #[test]
    fn ext_x_map_follows_the_init_segment_of_each_segment() {
        let mut p = Playlist::new(Variant::Fmp4, 3, Duration::from_secs(1), 200 * MS);
        let mut gone = Vec::new();
        p.start_segment(t(0), None, &mut gone);
        p.end(1000 * MS);
        p.discontinuity();
        p.set_map("init1.mp4");
        p.start_segment(t(5), None, &mut gone);
        p.start_segment(t(6), Some(1000 * MS), &mut gone);
        let text = p.render();
        assert!(
            text.contains("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n"),
            "{text}"
        );
        assert!(
            text.contains("seg0.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n"),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2, "{text}");
        p.start_segment(t(7), Some(1000 * MS), &mut gone);
        // Parts are listed for the last three segments only.
        assert!(!p.lists_parts(0) && p.lists_parts(1) && p.lists_parts(3));
        assert!(!p.lists_parts(4));
        p.start_segment(t(8), Some(1000 * MS), &mut gone);
        // The first publisher's segment left: its map with it.
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
        assert!(text.contains("#EXT-X-MAP:URI=\"init1.mp4\"\n"), "{text}");
        // Same map again: no new tag.
        p.discontinuity();
        p.set_map("init1.mp4");
        p.start_segment(t(9), None, &mut gone);
        assert_eq!(p.render().matches("#EXT-X-MAP").count(), 1);
    }

    #[test]
    fn a_returning_publisher_continues_after_a_discontinuity() {
        let mut p = Playlist::new(Variant::Ts, 2, Duration::from_secs(1), 200 * MS);
        let mut gone = Vec::new();
        p.start_segment(t(0), None, &mut gone);
        p.end(1000 * MS);
        p.discontinuity();
        let msn = p.start_segment(t(5), None, &mut gone);
        assert_eq!(msn, 1, "numbering continues");
        p.start_segment(t(6), Some(1000 * MS), &mut gone);
        let text = p.render();
        assert!(
            text.contains("seg0.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:"),
            "{text}"
        );
        p.start_segment(t(7), Some(1000 * MS), &mut gone);
        p.start_segment(t(8), Some(1000 * MS), &mut gone);
        // The discontinuity left the window: the sequence counts it.
        let text = p.render();
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }
}
