//! srtgate-probe: traffic generator and receiver for `make bench`.
//!
//! ```text
//! srtgate-probe gen --clip CLIP.h264 [--aac CLIP.aac] [--mbps 4] [--fps 30] [--seconds N]
//!                    [--video-pes-length]
//! srtgate-probe recv [--seconds N] [--window FROM_NS:TO_NS] [--dump FILE]
//! ```
//!
//! `gen` loops over the access units of an Annex B H.264 clip (and, if given,
//! the frames of an ADTS AAC clip), wraps them in PES and MPEG-TS (PAT/PMT,
//! video PID 0x100 carrying the PCR, audio PID 0x101, continuous PTS across
//! loops, correct continuity counters) and writes the TS to stdout paced in
//! real time at the frame rate, in 7 x 188-byte blocks, one `write` per block so
//! a pipe never splits a block. Each access unit carries a probe: an SEI
//! `user_data_unregistered` message (payload type 5) whose 16-byte UUID is
//! [`PROBE_UUID`], followed by the sequence number and the CLOCK_MONOTONIC send
//! time in nanoseconds, both as 16 hex digits (ASCII never forms an emulation
//! prevention pattern, so the payload is stored verbatim). The probe lives in
//! the video elementary stream, so it survives a relay that demuxes and
//! remuxes. With `--mbps` above the clip's own rate, null packets pad the
//! output to that constant bitrate. Video PES are unbounded (length 0, like
//! ffmpeg's muxer writes them) unless `--video-pes-length` is given.
//!
//! `recv` reads TS from stdin, scans every PID's payload bytes for the probe
//! UUID (no reliance on PES alignment), and prints one JSON line with the
//! bytes received and the probe delay (arrival time minus send time)
//! percentiles. `--window` restricts counting to arrivals inside an absolute
//! CLOCK_MONOTONIC interval, so a driver can line it up with its own samples;
//! `--dump` writes "seq delay_ms" per probe, in arrival order.
//!
//! Standard library only; all processes on one machine share CLOCK_MONOTONIC.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

const TS: usize = 188;
const BLOCK_PACKETS: usize = 7;
const BLOCK: usize = TS * BLOCK_PACKETS;
const PID_PMT: u16 = 0x1000;
const PID_VIDEO: u16 = 0x100;
const PID_AUDIO: u16 = 0x101;
const PID_NULL: u16 = 0x1FFF;
/// First PTS (90 kHz); the PCR runs `PCR_LEAD` ticks behind the video PTS.
const PTS0: u64 = 900_000;
const PCR_LEAD: u64 = 18_000;
const PROBE_UUID: &[u8; 16] = b"srtgate-probe-v1";
const PROBE_HEX: usize = 32;

const USAGE: &str = "\
usage: srtgate-probe gen --clip CLIP.h264 [--aac CLIP.aac] [--mbps MBPS] [--fps FPS] [--seconds N]
                          [--video-pes-length]
       srtgate-probe recv [--seconds N] [--window FROM_NS:TO_NS] [--dump FILE]";

// ---------------------------------------------------------------- clock

#[repr(C)]
struct Timespec {
    tv_sec: std::ffi::c_long,
    tv_nsec: std::ffi::c_long,
}

extern "C" {
    fn clock_gettime(clock: std::ffi::c_int, ts: *mut Timespec) -> std::ffi::c_int;
}

const CLOCK_MONOTONIC: std::ffi::c_int = 1;

/// CLOCK_MONOTONIC in nanoseconds (the clock every process on the host shares).
fn mono_ns() -> u64 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_until(deadline_ns: u64) {
    let now = mono_ns();
    if deadline_ns > now {
        std::thread::sleep(Duration::from_nanos(deadline_ns - now));
    }
}

// ---------------------------------------------------------------- arguments

struct Args(Vec<String>);

impl Args {
    fn take(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.0.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) if i + 1 < self.0.len() => {
                let v = self.0.remove(i + 1);
                self.0.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(format!("{name} needs a value")),
        }
    }

    fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take(name)? {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{name}: bad number {v:?}")),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some(a) => Err(format!("unknown argument {a:?}")),
        }
    }
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mode = argv.remove(0);
    let result = match mode.as_str() {
        "gen" => gen_main(Args(argv)),
        "recv" => recv_main(Args(argv)),
        "-h" | "--help" => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown mode {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srtgate-probe: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------- H.264 / AAC input

struct AccessUnit {
    data: Vec<u8>,
    /// Offset of the start code of the first VCL NAL: the probe SEI goes there.
    vcl_at: usize,
    key: bool,
}

/// Start-code positions in an Annex B stream: (start of the start code, start of the NAL).
fn nal_positions(es: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let sc = if i > 0 && es[i - 1] == 0 { i - 1 } else { i };
            out.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Splits an Annex B H.264 stream into access units (ITU-T H.264 7.4.1.2.3:
/// an AUD, SPS, PPS, SEI or a slice with first_mb_in_slice == 0 after a VCL
/// NAL starts a new access unit).
fn split_access_units(es: &[u8]) -> Result<Vec<AccessUnit>, String> {
    let nals = nal_positions(es);
    if nals.is_empty() {
        return Err("clip: no H.264 start codes".into());
    }
    let mut aus = Vec::new();
    let mut start = nals[0].0;
    let mut seen_vcl = false;
    let mut vcl_at = None;
    let mut key = false;
    for (k, &(sc, nal)) in nals.iter().enumerate() {
        let end = nals.get(k + 1).map_or(es.len(), |n| n.0);
        if nal >= end {
            continue;
        }
        let ty = es[nal] & 0x1F;
        let vcl = (1..=5).contains(&ty);
        // first_mb_in_slice is ue(v); its first bit is 1 exactly when it is 0.
        let first_slice = vcl && nal + 1 < end && es[nal + 1] & 0x80 != 0;
        let boundary = seen_vcl && (matches!(ty, 6..=9 | 14..=18) || first_slice);
        if boundary {
            aus.push(AccessUnit {
                data: es[start..sc].to_vec(),
                vcl_at: vcl_at.unwrap_or(0) - start,
                key,
            });
            start = sc;
            seen_vcl = false;
            vcl_at = None;
            key = false;
        }
        if vcl {
            seen_vcl = true;
            vcl_at.get_or_insert(sc);
            key |= ty == 5;
        }
    }
    if seen_vcl {
        aus.push(AccessUnit {
            data: es[start..].to_vec(),
            vcl_at: vcl_at.unwrap_or(0) - start,
            key,
        });
    }
    if aus.is_empty() || !aus[0].key {
        return Err("clip: must start with an IDR access unit".into());
    }
    Ok(aus)
}

/// ADTS frames and the sample rate of the first one.
fn split_adts(data: &[u8]) -> Result<(Vec<Vec<u8>>, u32), String> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut frames = Vec::new();
    let mut rate = 0;
    let mut i = 0;
    while i + 7 <= data.len() {
        if data[i] != 0xFF || data[i + 1] & 0xF0 != 0xF0 {
            return Err(format!("aac: lost ADTS sync at byte {i}"));
        }
        let idx = ((data[i + 2] >> 2) & 0x0F) as usize;
        let len = (((data[i + 3] & 0x03) as usize) << 11)
            | ((data[i + 4] as usize) << 3)
            | (data[i + 5] as usize >> 5);
        if len < 7 || i + len > data.len() || idx >= RATES.len() {
            break;
        }
        if rate == 0 {
            rate = RATES[idx];
        }
        frames.push(data[i..i + len].to_vec());
        i += len;
    }
    if frames.is_empty() {
        return Err("aac: no ADTS frames".into());
    }
    Ok((frames, rate))
}

// ---------------------------------------------------------------- TS muxing

fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn put_ts(out: &mut Vec<u8>, marker: u8, ts: u64) {
    let ts = ts & 0x1_FFFF_FFFF;
    out.push(marker << 4 | ((ts >> 29) as u8 & 0x0E) | 1);
    out.push((ts >> 22) as u8);
    out.push(((ts >> 14) as u8 & 0xFE) | 1);
    out.push((ts >> 7) as u8);
    out.push(((ts << 1) as u8 & 0xFE) | 1);
}

struct Muxer {
    cc: HashMap<u16, u8>,
    out: Vec<u8>,
    has_audio: bool,
}

impl Muxer {
    fn next_cc(&mut self, pid: u16) -> u8 {
        let cc = self.cc.entry(pid).or_insert(15);
        *cc = (*cc + 1) & 0x0F;
        *cc
    }

    /// One packet. `af` is the adaptation field content after its length byte
    /// (flags and optional fields); stuffing is added to fill the packet.
    fn packet(&mut self, pid: u16, pusi: bool, af: Option<&[u8]>, payload: &[u8]) {
        debug_assert!(payload.len() + af.map_or(0, |a| a.len() + 1) <= 184);
        let cc = self.next_cc(pid);
        let start = self.out.len();
        let has_af = af.is_some() || payload.len() < 184;
        let ctrl = if has_af { 0x30 } else { 0x10 };
        self.out.extend_from_slice(&[
            0x47,
            (pusi as u8) << 6 | (pid >> 8) as u8,
            pid as u8,
            ctrl | cc,
        ]);
        if has_af {
            let af_len = 183 - payload.len();
            self.out.push(af_len as u8);
            if af_len > 0 {
                let content = af.unwrap_or(&[0x00]);
                self.out.extend_from_slice(content);
                self.out.resize(start + 5 + af_len, 0xFF);
            }
        }
        self.out.extend_from_slice(payload);
        debug_assert_eq!(self.out.len() - start, TS);
    }

    fn pes(&mut self, pid: u16, pes: &[u8], pcr: Option<u64>, random_access: bool) {
        let mut af = Vec::with_capacity(7);
        if pcr.is_some() || random_access {
            af.push(if pcr.is_some() { 0x10 } else { 0 } | if random_access { 0x40 } else { 0 });
            if let Some(pcr) = pcr {
                let base = (pcr / 300) & 0x1_FFFF_FFFF;
                let ext = pcr % 300;
                af.extend_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    ((base & 1) as u8) << 7 | 0x7E | (ext >> 8) as u8,
                    ext as u8,
                ]);
            }
        }
        let mut rest = pes;
        let mut first = true;
        while !rest.is_empty() {
            let af_ref = if first && !af.is_empty() {
                Some(&af[..])
            } else {
                None
            };
            let room = 184 - af_ref.map_or(0, |a| a.len() + 1);
            let n = rest.len().min(room);
            self.packet(pid, first, af_ref, &rest[..n]);
            rest = &rest[n..];
            first = false;
        }
    }

    fn section(&mut self, pid: u16, section: &[u8]) {
        let mut payload = vec![0u8]; // pointer_field
        payload.extend_from_slice(section);
        let crc = crc32_mpeg(section);
        payload.extend_from_slice(&crc.to_be_bytes());
        payload.resize(184, 0xFF);
        self.packet(pid, true, None, &payload);
    }

    fn psi(&mut self) {
        let pat = [
            0x00,
            0xB0,
            13,
            0x00,
            0x01,
            0xC1,
            0x00,
            0x00,
            0x00,
            0x01,
            0xE0 | (PID_PMT >> 8) as u8,
            PID_PMT as u8,
        ];
        self.section(0, &pat);
        let mut streams = vec![
            0x1B,
            0xE0 | (PID_VIDEO >> 8) as u8,
            PID_VIDEO as u8,
            0xF0,
            0x00,
        ];
        if self.has_audio {
            streams.extend_from_slice(&[
                0x0F,
                0xE0 | (PID_AUDIO >> 8) as u8,
                PID_AUDIO as u8,
                0xF0,
                0x00,
            ]);
        }
        let section_len = 9 + streams.len() + 4;
        let mut pmt = vec![
            0x02,
            0xB0 | (section_len >> 8) as u8,
            section_len as u8,
            0x00,
            0x01,
            0xC1,
            0x00,
            0x00,
        ];
        pmt.extend_from_slice(&[0xE0 | (PID_VIDEO >> 8) as u8, PID_VIDEO as u8, 0xF0, 0x00]);
        pmt.extend_from_slice(&streams);
        self.section(PID_PMT, &pmt);
    }

    fn null(&mut self) {
        self.out.extend_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
        self.out.resize(self.out.len() + 184, 0xFF);
    }
}

fn probe_sei(seq: u64, sent_ns: u64) -> Vec<u8> {
    let mut sei = vec![0, 0, 0, 1, 0x06, 0x05, (PROBE_UUID.len() + PROBE_HEX) as u8];
    sei.extend_from_slice(PROBE_UUID);
    sei.extend_from_slice(format!("{seq:016x}{sent_ns:016x}").as_bytes());
    sei.push(0x80); // rbsp_trailing_bits
    sei
}

/// Video PES: stream_id 0xE0, data_alignment_indicator, PTS only (the clip has
/// no B-frames: DTS == PTS). PES_packet_length is 0 (unbounded, as ffmpeg and
/// most encoders write video) unless `with_length` and the PES fits in 64 KiB.
fn video_pes(au: &AccessUnit, sei: &[u8], pts: u64, with_length: bool) -> Vec<u8> {
    let mut pes = Vec::with_capacity(au.data.len() + sei.len() + 14);
    pes.extend_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x84, 0x80, 5]);
    put_ts(&mut pes, 0x2, pts);
    pes.extend_from_slice(&au.data[..au.vcl_at]);
    pes.extend_from_slice(sei);
    pes.extend_from_slice(&au.data[au.vcl_at..]);
    let len = pes.len() - 6;
    if with_length && len <= 0xFFFF {
        pes[4] = (len >> 8) as u8;
        pes[5] = len as u8;
    }
    pes
}

fn audio_pes(frame: &[u8], pts: u64) -> Vec<u8> {
    let len = frame.len() + 8;
    let mut pes = Vec::with_capacity(len + 6);
    pes.extend_from_slice(&[0, 0, 1, 0xC0, (len >> 8) as u8, len as u8, 0x84, 0x80, 5]);
    put_ts(&mut pes, 0x2, pts);
    pes.extend_from_slice(frame);
    pes
}

fn gen_main(mut args: Args) -> Result<(), String> {
    let clip = args.take("--clip")?.ok_or("gen needs --clip FILE.h264")?;
    let aac = args.take("--aac")?;
    let mbps: f64 = args.num("--mbps", 0.0)?;
    let fps: u64 = args.num("--fps", 30)?;
    let seconds: f64 = args.num("--seconds", 0.0)?;
    let with_length = match args.0.iter().position(|a| a == "--video-pes-length") {
        Some(i) => {
            args.0.remove(i);
            true
        }
        None => false,
    };
    args.finish()?;
    if fps == 0 {
        return Err("--fps must be positive".into());
    }

    let es = std::fs::read(&clip).map_err(|e| format!("{clip}: {e}"))?;
    let aus = split_access_units(&es)?;
    let audio = match &aac {
        Some(path) => Some(split_adts(
            &std::fs::read(path).map_err(|e| format!("{path}: {e}"))?,
        )?),
        None => None,
    };
    // SAFETY: fd 1 is this process's stdout; nothing else in this process writes to it.
    let mut stdout = unsafe { File::from_raw_fd(1) };
    let mut mux = Muxer {
        cc: HashMap::new(),
        out: Vec::with_capacity(1 << 20),
        has_audio: audio.is_some(),
    };

    let frame_ticks = |i: u64| i * 90_000 / fps;
    let bytes_per_sec = mbps * 1e6 / 8.0;
    let t0 = mono_ns();
    let end_ns = if seconds > 0.0 {
        t0 + (seconds * 1e9) as u64
    } else {
        u64::MAX
    };
    let (mut written, mut nulls, mut late, mut audio_idx) = (0u64, 0u64, 0u64, 0u64);
    let mut frame = 0u64;
    let mut broken_pipe = false;
    loop {
        let deadline = t0 + frame * 1_000_000_000 / fps;
        if deadline >= end_ns {
            break;
        }
        sleep_until(deadline);
        let now = mono_ns();
        if now > deadline + 1_000_000_000 / fps {
            late += 1;
        }
        let au = &aus[(frame % aus.len() as u64) as usize];
        let pts = PTS0 + frame_ticks(frame);
        if frame.is_multiple_of(3) || au.key {
            mux.psi();
        }
        let pcr = (pts - PCR_LEAD) * 300;
        let pes = video_pes(au, &probe_sei(frame, now), pts, with_length);
        mux.pes(PID_VIDEO, &pes, Some(pcr), au.key);
        if let Some((frames, rate)) = &audio {
            let next_video = PTS0 + frame_ticks(frame + 1);
            loop {
                let apts = PTS0 + audio_idx * 1024 * 90_000 / *rate as u64;
                if apts >= next_video {
                    break;
                }
                let f = &frames[(audio_idx % frames.len() as u64) as usize];
                mux.pes(PID_AUDIO, &audio_pes(f, apts), None, false);
                audio_idx += 1;
            }
        }
        if bytes_per_sec > 0.0 {
            let target = (bytes_per_sec * (frame + 1) as f64 / fps as f64) as u64;
            while written + (mux.out.len() as u64) + (TS as u64) <= target {
                mux.null();
                nulls += 1;
            }
        }
        // Whole blocks only, one write each (<= PIPE_BUF, so atomic on a pipe);
        // a partial block waits for the next frame.
        let whole = mux.out.len() / BLOCK * BLOCK;
        for block in mux.out[..whole].chunks(BLOCK) {
            if stdout.write_all(block).is_err() {
                broken_pipe = true;
                break;
            }
        }
        if broken_pipe {
            break;
        }
        written += whole as u64;
        mux.out.drain(..whole);
        frame += 1;
    }
    if !broken_pipe && !mux.out.is_empty() {
        // Complete the last block with null packets so no PES is cut short.
        while !mux.out.len().is_multiple_of(BLOCK) {
            mux.null();
            nulls += 1;
        }
        if stdout.write_all(&mux.out).is_ok() {
            written += mux.out.len() as u64;
        }
    }
    let elapsed = (mono_ns() - t0) as f64 / 1e9;
    eprintln!(
        "{{\"gen_frames\":{frame},\"gen_bytes\":{written},\"gen_seconds\":{elapsed:.3},\"gen_mbps\":{:.3},\"null_packets\":{nulls},\"null_share\":{:.4},\"late_frames\":{late},\"broken_pipe\":{broken_pipe}}}",
        written as f64 * 8.0 / elapsed.max(1e-9) / 1e6,
        if written > 0 { nulls as f64 * TS as f64 / written as f64 } else { 0.0 },
    );
    Ok(())
}

// ---------------------------------------------------------------- receiving

#[derive(Default)]
struct RecvStats {
    total_bytes: u64,
    bytes: u64,
    packets: u64,
    sync_errors: u64,
    cc_errors: u64,
    delays_ns: Vec<i64>,
    seqs: Vec<u64>,
    first_arrival: Option<u64>,
    last_arrival: Option<u64>,
}

struct Scanner {
    carry: Vec<u8>,
    tails: HashMap<u16, Vec<u8>>,
    cc: HashMap<u16, u8>,
}

impl Scanner {
    fn feed(&mut self, data: &[u8], arrival: u64, counted: bool, st: &mut RecvStats) {
        self.carry.extend_from_slice(data);
        let mut i = 0;
        let mut probes = Vec::new();
        while i + TS <= self.carry.len() {
            if self.carry[i] != 0x47 {
                st.sync_errors += 1;
                i += 1;
                while i < self.carry.len() && self.carry[i] != 0x47 {
                    i += 1;
                }
                continue;
            }
            let p = &self.carry[i..i + TS];
            i += TS;
            st.packets += 1;
            let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
            if pid == PID_NULL {
                continue;
            }
            let ctrl = (p[3] >> 4) & 0x03;
            let has_payload = ctrl & 1 != 0;
            let cc = p[3] & 0x0F;
            let discontinuity = ctrl & 2 != 0 && p[4] > 0 && p[5] & 0x80 != 0;
            if has_payload {
                if let Some(prev) = self.cc.insert(pid, cc) {
                    if cc != (prev + 1) & 0x0F && cc != prev && !discontinuity {
                        st.cc_errors += 1;
                    }
                }
            }
            let start = if ctrl & 2 != 0 { 5 + p[4] as usize } else { 4 };
            if !has_payload || start >= TS {
                continue;
            }
            let tail = self.tails.entry(pid).or_default();
            tail.extend_from_slice(&p[start..]);
            scan_probes(tail, &mut probes);
        }
        self.carry.drain(..i);
        if counted {
            st.delays_ns
                .extend(probes.iter().map(|&(_, sent)| arrival as i64 - sent as i64));
            st.seqs.extend(probes.iter().map(|&(seq, _)| seq));
        }
    }
}

/// Finds complete probes in `buf`, then trims it to what may still hold the
/// start of one.
fn scan_probes(buf: &mut Vec<u8>, found: &mut Vec<(u64, u64)>) {
    let need = PROBE_UUID.len() + PROBE_HEX;
    let mut keep_from = buf.len().saturating_sub(need - 1);
    let mut i = 0;
    while i + PROBE_UUID.len() <= buf.len() {
        match buf[i..].iter().position(|&b| b == PROBE_UUID[0]) {
            None => break,
            Some(off) => i += off,
        }
        if i + PROBE_UUID.len() > buf.len() {
            break;
        }
        if &buf[i..i + PROBE_UUID.len()] == PROBE_UUID {
            if i + need > buf.len() {
                keep_from = keep_from.min(i);
                break;
            }
            let hex = &buf[i + PROBE_UUID.len()..i + need];
            let parse = |h: &[u8]| {
                std::str::from_utf8(h)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
            };
            if let (Some(seq), Some(sent)) = (parse(&hex[..16]), parse(&hex[16..])) {
                found.push((seq, sent));
            }
            i += need;
            keep_from = keep_from.max(i);
        } else {
            i += 1;
        }
    }
    buf.drain(..keep_from.min(buf.len()));
}

fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".into()
    }
}

fn recv_main(mut args: Args) -> Result<(), String> {
    let seconds: f64 = args.num("--seconds", 0.0)?;
    let window = match args.take("--window")? {
        None => None,
        Some(w) => {
            let (a, b) = w.split_once(':').ok_or("--window FROM_NS:TO_NS")?;
            let a: u64 = a.parse().map_err(|_| "--window: bad FROM_NS")?;
            let b: u64 = b.parse().map_err(|_| "--window: bad TO_NS")?;
            Some((a, b))
        }
    };
    let dump = args.take("--dump")?;
    args.finish()?;
    let t0 = mono_ns();
    let mut end_ns = if seconds > 0.0 {
        t0 + (seconds * 1e9) as u64
    } else {
        u64::MAX
    };
    if let Some((_, to)) = window {
        // Nothing after the window counts: stop shortly after it.
        end_ns = end_ns.min(to + 200_000_000);
    }

    // A thread reads and stamps; the main thread can then stop on time even
    // when the input stalls.
    let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, u64)>(1024);
    std::thread::spawn(move || {
        // SAFETY: fd 0 is this process's stdin; only this thread reads it.
        let mut stdin = unsafe { File::from_raw_fd(0) };
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let at = mono_ns();
                    if tx.send((buf[..n].to_vec(), at)).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut st = RecvStats::default();
    let mut scanner = Scanner {
        carry: Vec::new(),
        tails: HashMap::new(),
        cc: HashMap::new(),
    };
    loop {
        let now = mono_ns();
        if now >= end_ns {
            break;
        }
        let wait = Duration::from_nanos((end_ns - now).min(3_600_000_000_000));
        let (data, at) = match rx.recv_timeout(wait) {
            Ok(x) => x,
            Err(_) => break,
        };
        let counted = window.is_none_or(|(a, b)| at >= a && at < b);
        st.total_bytes += data.len() as u64;
        if counted {
            st.bytes += data.len() as u64;
            st.first_arrival.get_or_insert(at);
            st.last_arrival = Some(at);
        }
        scanner.feed(&data, at, counted, &mut st);
    }

    if let Some(path) = dump {
        let lines: String = st
            .seqs
            .iter()
            .zip(&st.delays_ns)
            .map(|(s, d)| format!("{s} {:.3}\n", *d as f64 / 1e6))
            .collect();
        std::fs::write(&path, lines).map_err(|e| format!("{path}: {e}"))?;
    }
    st.delays_ns.sort_unstable();
    let mut seqs = st.seqs.clone();
    seqs.sort_unstable();
    seqs.dedup();
    let dup = st.seqs.len() - seqs.len();
    let lost = match (seqs.first(), seqs.last()) {
        (Some(a), Some(b)) => (b - a + 1) as usize - seqs.len(),
        _ => 0,
    };
    let n = st.delays_ns.len();
    let mean = if n > 0 {
        st.delays_ns.iter().sum::<i64>() as f64 / n as f64 / 1e6
    } else {
        f64::NAN
    };
    let span = match (st.first_arrival, st.last_arrival) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    println!(
        "{{\"bytes\":{},\"probes\":{n},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"min_ms\":{},\"mean_ms\":{},\"lost_probes\":{lost},\"dup_probes\":{dup},\"total_bytes\":{},\"span_s\":{span:.3},\"ts_packets\":{},\"sync_errors\":{},\"cc_errors\":{}}}",
        st.bytes,
        json_num(percentile(&st.delays_ns, 0.50)),
        json_num(percentile(&st.delays_ns, 0.90)),
        json_num(percentile(&st.delays_ns, 0.99)),
        json_num(st.delays_ns.last().map_or(f64::NAN, |&v| v as f64 / 1e6)),
        json_num(st.delays_ns.first().map_or(f64::NAN, |&v| v as f64 / 1e6)),
        json_num(mean),
        st.total_bytes,
        st.packets,
        st.sync_errors,
        st.cc_errors,
    );
    // The reader thread may be blocked in read(); exit without joining it.
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_found_across_chunks() {
        let sei = probe_sei(42, 123_456_789);
        let mut found = Vec::new();
        let mut buf = vec![1, 2, 3];
        for b in &sei {
            buf.push(*b);
            scan_probes(&mut buf, &mut found);
        }
        assert_eq!(found, vec![(42, 123_456_789)]);
    }

    #[test]
    fn crc_of_known_pat() {
        // PAT for program 1 on PID 0x1000, as written by common muxers.
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00,
        ];
        assert_eq!(crc32_mpeg(&pat), 0x2AB1_04B2);
    }
}
