#!/usr/bin/env python3
"""srtgate benchmark: srtgate against libsrt's srt-live-transmit, same run, same machine.

Run after `cargo build --release` (this is what `make bench` does):

    python3 tests/bench/bench.py [--quick] [--skip-srtgate] [--out research/bench.md]

Scenarios, each with fresh processes on 127.0.0.1 only:

  1. relay CPU, 1 publisher -> 1 reader, 4 Mbit/s, SRT latency 120 ms:
     (a) srtgate, (b) srt-live-transmit as the relay (listener -> listener).
     CPU = utime+stime of the relay process (/proc/PID/stat) between two
     samples bracketing the steady window (after a warm-up); delivered Mbit =
     bytes the reader received inside the same window.
  2. fan-out, 1 publisher -> N readers (default 50) through srtgate.
  3. added delay, SRT latency 20 ms on every hop: probe delay for
     (a) direct (publisher -> reader, no relay), (b) via srtgate,
     (c) via the srt-live-transmit relay.
  4. SRTLA, 1 publisher -> 1 reader, 4 Mbit/s: the publisher sends through
     `srtgate bond` over 3 bonded links (127.0.0.1, .2, .3) to srtgate's SRTLA
     port; srtgate's CPU per delivered Mbit against scenario 1a (the same
     stream over plain SRT, same run), and the ratio.

The stream comes from `srtgate-probe gen` (H.264 720p30 + AAC clip encoded
once by ffmpeg and cached in target/bench/, looped, probe SEI with a
CLOCK_MONOTONIC send time in every access unit, null-padded to a constant
4 Mbit/s); readers pipe into `srtgate-probe recv`, which measures bytes and
probe delay within the window. Results go to stdout, to research/bench.md
(between the bench:results markers; a summary row is appended to the history
table) and as JSON to target/bench/last.json.

Every wait is bounded, every started process is stopped by its pid (SIGTERM,
then SIGKILL), and the whole run has a hard time limit. Python stdlib only.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "target" / "bench"
SLT = "srt-live-transmit"

# Reference numbers (issue): SRS 7, built -O2, on this kind of machine.
REF_SRS_CPU_MS_PER_MBIT = 0.71  # 50 SRT readers
REF_SRS_ADDED_MS_P50 = 13.0     # added delay at the median, not buffering

MARK_BEGIN = "<!-- bench:results:begin -->"
MARK_END = "<!-- bench:results:end -->"
HIST_MARK = "<!-- bench:history:append-below -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STDBUF_IN = ["stdbuf", "-i0"] if shutil.which("stdbuf") else []
STDBUF_OUT = ["stdbuf", "-o0"] if shutil.which("stdbuf") else []


class BenchError(Exception):
    pass


class HardTimeout(BaseException):
    pass


def mono_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------- processes

_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the driver dies without cleaning up."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

class Procs:
    """Every process this run starts; stopped by pid, never by name."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.items: list[tuple[str, subprocess.Popen]] = []
        self.counter = 0

    def start(self, name: str, argv: list[str], stdin=None, stdout=None) -> subprocess.Popen:
        self.counter += 1
        errlog = open(self.logdir / f"{self.counter:03d}-{name}.stderr", "wb")
        p = subprocess.Popen(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=errlog,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only this script
            preexec_fn=_die_with_parent,
        )
        errlog.close()
        p.bench_name = name  # type: ignore[attr-defined]
        p.bench_log = errlog.name  # type: ignore[attr-defined]
        self.items.append((name, p))
        return p

    def pipeline(self, name: str, first: list[str], second: list[str], capture: bool = False):
        """`first | second`; returns both processes (second's stdout piped if capture)."""
        a = self.start(name + "-src", first, stdout=subprocess.PIPE)
        b = self.start(name + "-dst", second, stdin=a.stdout, stdout=subprocess.PIPE if capture else None)
        a.stdout.close()  # the pipe now belongs to `b` only: EOF/EPIPE propagate
        return a, b

    def stop_all(self, grace: float = 2.0) -> None:
        live = [p for _, p in self.items if p.poll() is None]
        for p in live:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for p in live:
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in live:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        for _, p in self.items:
            for f in (p.stdout,):
                if f:
                    try:
                        f.close()
                    except OSError:
                        pass
        self.items.clear()


def error_summary(path: str) -> str:
    """The panic or error lines of a log if there are any, else its tail."""
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    hits = [l.strip() for l in lines if re.search(r"panicked|error", l, re.I)]
    return " | ".join(hits[:3]) if hits else " | ".join(lines[-4:])


def tail(path: str, n: int = 6) -> str:
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


# ----------------------------------------------------------------- /proc

def proc_cpu_s(pid: int) -> float | None:
    """utime+stime (all threads, live and exited) in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_run_ns(pid: int) -> int | None:
    """Sum of on-CPU time of the live threads (schedstat, ns): a finer cross-check."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    return total


def system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(parts[:8])  # guest time is already inside user/nice
    idle = parts[3] + parts[4]
    return total - idle, total


def udp_port_bound(port: int) -> bool:
    hexport = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            for line in Path(table).read_text().splitlines()[1:]:
                if line.split()[1].endswith(hexport):
                    return True
        except OSError:
            pass
    return False


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sleep_until_ns(t_ns: int) -> None:
    while True:
        left = t_ns - mono_ns()
        if left <= 0:
            return
        time.sleep(min(left / 1e9, 0.5))


# ----------------------------------------------------------------- machine

def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem_gib = round(int(m.group(1)) / 1024 / 1024, 1) if m else None
    except OSError:
        pass
    distro = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    except OSError:
        pass

    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (out.stdout + out.stderr).strip().splitlines()
            return text[0] if text else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""

    slt_ver = ""
    try:
        out = subprocess.run([SLT, "-version"], capture_output=True, text=True, timeout=10)
        m = re.search(r"SRT Library version: ([\w.]+)", out.stdout + out.stderr)
        slt_ver = m.group(1) if m else ""
    except (OSError, subprocess.TimeoutExpired):
        pass
    commit = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{4,40}", commit):
        commit = "(no git commit yet)"
    dirty = first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "distro": distro,
        "mem_gib": mem_gib,
        "srt_live_transmit": f"libsrt {slt_ver}" if slt_ver else "?",
        "ffmpeg": first_line(["ffmpeg", "-version"]).split(" Copyright")[0],
        "rustc": first_line(["rustc", "--version"]),
        "commit": commit + (" + local changes" if dirty and not commit.startswith("(") else ""),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


# ----------------------------------------------------------------- media

def ensure_clip(mbps: float) -> tuple[Path, Path, int]:
    """H.264 (no B-frames, AUD, SPS/PPS at each IDR, GOP 2 s) + ADTS AAC, cached."""
    audio_kbps = 128
    # TS/PES overhead is ~3-4 % here; leave a little room for the null padding.
    video_kbps = int(mbps * 1000 * 0.93) - audio_kbps
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    h264 = BENCH_DIR / f"clip-720p30-{video_kbps}k.h264"
    aac = BENCH_DIR / f"clip-48k-{audio_kbps}k.aac"
    if not h264.exists():
        log(f"encoding {h264.name} with ffmpeg (once; cached)")
        tmp = h264.with_suffix(".tmp")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
             "-t", "10", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
             "-b:v", f"{video_kbps}k", "-maxrate", f"{int(mbps * 1000)}k", "-bufsize", "1M",
             "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-bf", "0",
             "-x264-params", "aud=1", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(tmp)],
            check=True, timeout=120)
        tmp.rename(h264)
    if not aac.exists():
        tmp = aac.with_suffix(".tmp")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "10", "-c:a", "aac", "-b:a", f"{audio_kbps}k", "-f", "adts", str(tmp)],
            check=True, timeout=60)
        tmp.rename(aac)
    return h264, aac, video_kbps


# ----------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args, tmp: Path):
        self.args = args
        self.tmp = tmp
        self.procs = Procs(tmp)
        self.probe = str(args.probe)
        self.srtgate = str(args.srtgate)
        self.clip, self.aac, self.video_kbps = ensure_clip(args.mbps)
        self.gen_stats: list[dict] = []

    def check_stream(self) -> str:
        """2 s of `gen` through ffmpeg's decoder: the stream must decode without errors."""
        gen = subprocess.Popen(self.gen_argv(2.0), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               preexec_fn=_die_with_parent)
        try:
            dec = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "-", "-f", "null", "-"],
                                 stdin=gen.stdout, capture_output=True, text=True, timeout=20)
        finally:
            gen.stdout.close()
            try:
                gen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                gen.kill()
        errors = dec.stderr.strip()
        if dec.returncode != 0 or errors:
            raise BenchError(f"gen output does not decode cleanly: {errors.splitlines()[:3]}")
        return "decodes without errors (ffmpeg -v error)"

    # -- building blocks

    def gen_argv(self, seconds: float) -> list[str]:
        return [self.probe, "gen", "--clip", str(self.clip), "--aac", str(self.aac),
                "--mbps", str(self.args.mbps), "--seconds", f"{seconds:.1f}"] + \
            (["--video-pes-length"] if self.args.video_pes_length else [])

    def publisher(self, url: str, seconds: float):
        # -chunk:1316: one SRT packet per 7-packet TS block (the default reads 1456 bytes).
        # stdbuf -i0: srt-live-transmit polls stdin (fd 0) and then reads it through
        # stdio; a stdio buffer holding data that poll cannot see delays it by up to a
        # frame interval.
        return self.procs.pipeline("pub", self.gen_argv(seconds),
                                   STDBUF_IN + [SLT, "-q", "-chunk:1316", "file://con", url])

    def reader(self, url: str, window: tuple[int, int], name: str = "reader", unbuffered: bool = False):
        recv = [self.probe, "recv", "--window", f"{window[0]}:{window[1]}",
                "--seconds", str(int((window[1] - mono_ns()) / 1e9) + 10)]
        # srt-live-transmit writes file://con through a stdio buffer it never flushes:
        # for delay measurements make it unbuffered, or up to 4 KiB wait for more data.
        slt = (STDBUF_OUT if unbuffered else []) + [SLT, "-q", url, "file://con"]
        return self.procs.pipeline(name, slt, recv, capture=True)

    def start_srtgate(self, latency_ms: int, srtla_port: int | None = None) -> tuple[subprocess.Popen, int]:
        if not os.access(self.srtgate, os.X_OK):
            raise BenchError(f"{self.srtgate} not built")
        port = free_udp_port()
        cfg = self.tmp / f"srtgate-{port}.yaml"
        path_latency = f"\n    latency: {latency_ms}ms" if latency_ms != 120 else ""
        srtla = (f'srtla:\n  listen: ["127.0.0.1:{srtla_port}"]\n' if srtla_port
                 else "srtla:\n  enabled: false\n")
        text = (f'workers: 2\nlog: {{ level: "warn" }}\nsrt:\n  listen: ["127.0.0.1:{port}"]\n'
                f'  latency: {latency_ms}ms\n{srtla}paths:\n  - name: "bench/*"{path_latency}\n')
        cfg.write_text(text)
        if path_latency and not self._config_ok(cfg):
            # Older schema without per-path latency: the listener default still applies.
            cfg.write_text(text.replace(path_latency, ""))
        p = self.procs.start("srtgate", [self.srtgate, "-c", str(cfg)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise BenchError(f"srtgate exited with {p.returncode}: {error_summary(p.bench_log)}")
            if "srtgate ready" in Path(p.bench_log).read_text(errors="replace") or udp_port_bound(port):
                return p, port
            time.sleep(0.05)
        raise BenchError(f"srtgate not ready after 10 s: {error_summary(p.bench_log)}")

    def _config_ok(self, cfg: Path) -> bool:
        try:
            r = subprocess.run([self.srtgate, "--check-config", str(cfg)], capture_output=True, timeout=10)
            return r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def start_bond(self, srtla_port: int) -> tuple[subprocess.Popen, int]:
        """`srtgate bond` over 3 links to srtgate's SRTLA port; returns it and its SRT port."""
        port = free_udp_port()
        argv = [self.srtgate, "bond", "--srt", f"127.0.0.1:{port}", "--to", f"127.0.0.1:{srtla_port}"]
        for via in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            argv += ["--via", via]
        p = self.procs.start("bond", argv)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise BenchError(f"srtgate bond exited with {p.returncode}: {tail(p.bench_log)}")
            log_text = Path(p.bench_log).read_text(errors="replace")
            if udp_port_bound(port) and log_text.count("link up") >= 3:
                return p, port
            time.sleep(0.05)
        raise BenchError(f"srtgate bond did not bring 3 links up: {tail(p.bench_log)}")

    def start_slt_relay(self, latency_ms: int) -> tuple[subprocess.Popen, int, int]:
        p_in, p_out = free_udp_port(), free_udp_port()
        while p_out == p_in:
            p_out = free_udp_port()
        p = self.procs.start("slt-relay", [
            SLT, "-q",
            f"srt://127.0.0.1:{p_in}?mode=listener&latency={latency_ms}",
            f"srt://127.0.0.1:{p_out}?mode=listener&latency={latency_ms}"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise BenchError(f"srt-live-transmit relay exited with {p.returncode}: {tail(p.bench_log)}")
            if udp_port_bound(p_in):
                return p, p_in, p_out
            time.sleep(0.05)
        raise BenchError("srt-live-transmit relay did not bind")

    def collect(self, readers, window_end_ns: int) -> list[dict]:
        results = []
        for _, recv in readers:
            left = max(1.0, (window_end_ns - mono_ns()) / 1e9 + 5)
            try:
                out, _ = recv.communicate(timeout=left)
            except subprocess.TimeoutExpired:
                recv.kill()
                out, _ = recv.communicate(timeout=2)
            try:
                results.append(json.loads(out.decode().strip().splitlines()[-1]))
            except (ValueError, IndexError):
                results.append({"bytes": 0, "probes": 0, "error": "no output from recv: " + tail(recv.bench_log)})
        return results

    def finish_scenario(self, pub) -> None:
        gen = pub[0]
        try:
            gen.wait(timeout=3)  # it stops by itself just after the window and prints its stats
        except subprocess.TimeoutExpired:
            pass
        self.procs.stop_all()
        line = tail(gen.bench_log, 1)
        try:
            self.gen_stats.append(json.loads(line))
        except ValueError:
            pass

    # -- one relay scenario

    def run(self, kind: str, readers: int, latency_ms: int, warmup: float, window: float,
            setup: float, unbuffered: bool = False) -> dict:
        """kind: srtgate | srtla | slt | direct. Returns measurements for the window."""
        lat = f"latency={latency_ms}"
        relay = None
        bond = None
        if kind == "srtla":
            srtla_port = free_udp_port()
            relay, port = self.start_srtgate(latency_ms, srtla_port)
            bond, bond_port = self.start_bond(srtla_port)
            pub_url = f"srt://127.0.0.1:{bond_port}?streamid=publish:bench/a&{lat}"
            read_url = f"srt://127.0.0.1:{port}?streamid=read:bench/a&{lat}"
        elif kind == "srtgate":
            relay, port = self.start_srtgate(latency_ms)
            pub_url = f"srt://127.0.0.1:{port}?streamid=publish:bench/a&{lat}"
            read_url = f"srt://127.0.0.1:{port}?streamid=read:bench/a&{lat}"
        elif kind == "slt":
            relay, p_in, p_out = self.start_slt_relay(latency_ms)
            pub_url = f"srt://127.0.0.1:{p_in}?{lat}"
            read_url = f"srt://127.0.0.1:{p_out}?{lat}"
        elif kind == "direct":
            port = free_udp_port()
            pub_url = f"srt://127.0.0.1:{port}?{lat}"
            read_url = f"srt://127.0.0.1:{port}?mode=listener&{lat}"
        else:
            raise ValueError(kind)

        w0 = mono_ns() + int((setup + warmup) * 1e9)
        w1 = w0 + int(window * 1e9)
        gen_seconds = (w1 - mono_ns()) / 1e9 + 0.5
        readers_p = []
        pub = None
        if kind in ("srtgate", "srtla"):
            # Publisher first: readers then start at a keyframe of a live stream.
            pub = self.publisher(pub_url, gen_seconds)
            time.sleep(1.0)
            for i in range(readers):
                readers_p.append(self.reader(read_url, (w0, w1), f"reader{i}", unbuffered))
        else:
            readers_p.append(self.reader(read_url, (w0, w1), unbuffered=unbuffered))
            if kind == "direct":
                deadline = time.monotonic() + 5
                while not udp_port_bound(port) and time.monotonic() < deadline:
                    time.sleep(0.05)
            pub = self.publisher(pub_url, gen_seconds)
        if mono_ns() > w0:
            log(f"warning: setup took longer than planned; window starts late")

        all_pids = lambda: [p.pid for _, p in self.procs.items if p.poll() is None]  # noqa: E731
        sleep_until_ns(w0)
        pids0 = all_pids()
        own0 = {pid: proc_cpu_s(pid) for pid in pids0}
        sys0 = system_cpu()
        rel0 = (proc_cpu_s(relay.pid), proc_run_ns(relay.pid)) if relay else None
        bond0 = proc_cpu_s(bond.pid) if bond else None
        load0 = Path("/proc/loadavg").read_text().split()[:3]
        sleep_until_ns(w1)
        rel1 = (proc_cpu_s(relay.pid), proc_run_ns(relay.pid)) if relay else None
        bond1 = proc_cpu_s(bond.pid) if bond else None
        sys1 = system_cpu()
        own1 = {pid: proc_cpu_s(pid) for pid in pids0}
        load1 = Path("/proc/loadavg").read_text().split()[:3]
        span = (mono_ns() - w0) / 1e9

        alive = relay.poll() is None if relay else True
        results = self.collect(readers_p, w1)
        relay_log = error_summary(relay.bench_log) if relay else ""
        self.finish_scenario(pub)

        own_cpu = sum(own1[p] - own0[p] for p in pids0 if own0[p] is not None and own1[p] is not None)
        busy = sys1[0] - sys0[0]
        total = max(1, sys1[1] - sys0[1])
        ncpu = os.cpu_count() or 1
        out = {
            "kind": kind, "readers": readers, "latency_ms": latency_ms, "window_s": round(span, 3),
            "reader_results": results,
            "delivered_mbit": sum(r.get("bytes", 0) for r in results) * 8 / 1e6,
            "machine_busy_pct": 100.0 * busy / total,          # of all cores
            "bench_procs_cpu_pct": 100.0 * own_cpu / span / ncpu,  # relay + gen + publisher + readers
            "other_cpu_pct": max(0.0, 100.0 * busy / total - 100.0 * own_cpu / span / ncpu),
            "loadavg": [load0, load1],
            "relay_alive": alive,
        }
        if relay:
            if rel0[0] is None or rel1[0] is None:
                raise BenchError(f"{kind} relay exited during the window: {relay_log}")
            out["relay_cpu_ms"] = (rel1[0] - rel0[0]) * 1000
            out["relay_run_ms"] = (rel1[1] - rel0[1]) / 1e6 if rel0[1] is not None and rel1[1] is not None else None
            dm = out["delivered_mbit"]
            out["cpu_ms_per_mbit"] = out["relay_cpu_ms"] / dm if dm > 0 else None
            out["relay_cpu_pct_of_core"] = out["relay_cpu_ms"] / 10 / span
        if bond0 is not None and bond1 is not None:
            out["bond_cpu_ms"] = (bond1 - bond0) * 1000
        if not alive:
            raise BenchError(f"{kind} relay died: {relay_log}")
        return out


# ----------------------------------------------------------------- report

def fmt(v, digits=2, unit="") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def reader_summary(res: list[dict], window_s: float) -> dict:
    mbps = [r.get("bytes", 0) * 8 / 1e6 / window_s for r in res]
    med = statistics.median(mbps) if mbps else 0.0
    low = [i for i, v in enumerate(mbps) if v < 0.9 * med or v == 0]
    return {"min": min(mbps, default=0.0), "median": med, "max": max(mbps, default=0.0), "low": low,
            "mbps": mbps,
            "lost_probes": sum(r.get("lost_probes", 0) for r in res),
            "cc_errors": sum(r.get("cc_errors", 0) for r in res)}


def render(R: dict) -> str:
    m = R["machine"]
    L = []
    L.append(f"## Latest run: {R['date']}\n")
    L.append(f"- Machine: {m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, {m['distro']}, "
             f"{m['mem_gib']} GiB RAM; load average before the run {' '.join(m['loadavg_before'])}")
    L.append(f"- Software: srtgate {m['commit']}, {m['rustc']}; peer: srt-live-transmit "
             f"({m['srt_live_transmit']}); {m['ffmpeg']}")
    g = R.get("gen") or {}
    L.append(f"- Stream: H.264 1280x720 30 fps (x264 {R['video_kbps']} kbit/s, GOP 2 s, no B-frames) + AAC 128 kbit/s, "
             f"TS padded to {R['mbps']} Mbit/s; generator achieved {fmt(g.get('mbps'), 3)} Mbit/s, "
             f"{fmt(g.get('null_share_pct'), 1)} % null packets, {g.get('late_frames', '?')} late frames; "
             f"{R.get('stream_check', 'not checked')}")
    L.append(f"- Windows: {R['window_s']} s steady state after {R['warmup_s']} s warm-up (CPU), "
             f"{R['delay_window_s']} s (delay). Wall time of the whole run: {R['wall_s']:.0f} s")
    L.append("")

    # 1. relay CPU
    L.append("### 1. Relay CPU, 1 publisher → 1 reader, SRT latency 120 ms\n")
    L.append("| relay | relay CPU ms | CPU % of a core | delivered Mbit | **CPU-ms / delivered Mbit** | "
             "reader Mbit/s | probe p50 / p99 ms | machine busy % (others %) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    s1 = R["s1"]
    for key, label in (("srtgate", "srtgate"), ("slt", "srt-live-transmit")):
        r = s1.get(key)
        if not r or "error" in r:
            L.append(f"| {label} | failed: {(r or {}).get('error', 'not run')} | | | | | | |")
            continue
        rr = r["reader_results"][0]
        L.append(f"| {label} | {fmt(r['relay_cpu_ms'], 0)} (sched {fmt(r['relay_run_ms'], 0)}) | "
                 f"{fmt(r['relay_cpu_pct_of_core'], 1)} | {fmt(r['delivered_mbit'], 1)} | "
                 f"**{fmt(r['cpu_ms_per_mbit'], 3)}** | {fmt(rr.get('bytes', 0) * 8 / 1e6 / r['window_s'], 2)} | "
                 f"{fmt(rr.get('p50_ms'), 1)} / {fmt(rr.get('p99_ms'), 1)} | "
                 f"{fmt(r['machine_busy_pct'], 0)} ({fmt(r['other_cpu_pct'], 0)}) |")
    ratio = s1.get("ratio")
    L.append(f"\nRatio srtgate / srt-live-transmit (CPU-ms per delivered Mbit): **{fmt(ratio, 2)}**\n")

    # 2. fan-out
    L.append(f"### 2. Fan-out through srtgate, 1 publisher → {R['readers']} readers, SRT latency 120 ms\n")
    f = R.get("s2")
    if not f or "error" in f:
        L.append(f"failed: {(f or {}).get('error', 'not run')}\n")
    else:
        rs = f["summary"]
        L.append("| | value |")
        L.append("|---|---:|")
        L.append(f"| srtgate CPU ms in window (sched) | {fmt(f['relay_cpu_ms'], 0)} ({fmt(f['relay_run_ms'], 0)}) |")
        L.append(f"| srtgate CPU % of one core | {fmt(f['relay_cpu_pct_of_core'], 1)} |")
        L.append(f"| delivered Mbit, all readers | {fmt(f['delivered_mbit'], 1)} |")
        L.append(f"| **srtgate CPU-ms / delivered Mbit** | **{fmt(f['cpu_ms_per_mbit'], 3)}** |")
        one = R["s1"].get("srtgate") or {}
        if one.get("relay_cpu_ms") is not None and f["delivered_mbit"] > one.get("delivered_mbit", 0):
            marginal = (f["relay_cpu_ms"] - one["relay_cpu_ms"]) / (f["delivered_mbit"] - one["delivered_mbit"])
            L.append(f"| marginal cost of the other {R['readers'] - 1} readers (vs 1 → 1), CPU-ms / Mbit | "
                     f"{fmt(marginal, 3)} |")
        L.append(f"| reference: SRS 7 (-O2), 50 SRT readers | {REF_SRS_CPU_MS_PER_MBIT} |")
        L.append(f"| goal: half of SRS | ≤ {REF_SRS_CPU_MS_PER_MBIT / 2:.3f} |")
        mb = sorted(r.get("bytes", 0) / 1e6 for r in f["reader_results"])
        L.append(f"| per-reader MB received in the window, min / median / max | {fmt(mb[0], 2)} / "
                 f"{fmt(statistics.median(mb), 2)} / {fmt(mb[-1], 2)} |")
        L.append(f"| per-reader Mbit/s min / median / max | {fmt(rs['min'], 2)} / {fmt(rs['median'], 2)} / {fmt(rs['max'], 2)} |")
        low = ", ".join(f"#{i} ({rs['mbps'][i]:.2f})" for i in rs["low"]) or "none"
        L.append(f"| readers below 90 % of the median | {low} |")
        p50s = [r["p50_ms"] for r in f["reader_results"] if r.get("p50_ms") is not None]
        p99s = [r["p99_ms"] for r in f["reader_results"] if r.get("p99_ms") is not None]
        if p50s:
            L.append(f"| probe delay: median of the readers' p50 / worst reader's p99, ms | "
                     f"{fmt(statistics.median(p50s), 1)} / {fmt(max(p99s), 1)} |")
        L.append(f"| lost probes / TS continuity errors, all readers | {rs['lost_probes']} / {rs['cc_errors']} |")
        L.append(f"| machine busy % of 2 cores (bench processes %, others %) | {fmt(f['machine_busy_pct'], 0)} "
                 f"({fmt(f['bench_procs_cpu_pct'], 0)}, {fmt(f['other_cpu_pct'], 0)}) |")
        L.append(f"| load average at window start → end | {' '.join(f['loadavg'][0])} → {' '.join(f['loadavg'][1])} |")
        L.append("")

    # 3. delay
    L.append("### 3. Added delay, SRT latency 20 ms on every hop\n")
    L.append("| path | probes | p50 ms | p90 ms | p99 ms | max ms | lost probes |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    d = R["s3"]
    labels = (("direct", "(a) direct: publisher → reader"), ("srtgate", "(b) via srtgate"),
              ("slt", "(c) via srt-live-transmit relay"))
    for key, label in labels:
        r = d.get(key)
        if not r or "error" in r:
            L.append(f"| {label} | failed: {(r or {}).get('error', 'not run')} | | | | | |")
            continue
        rr = r["reader_results"][0]
        L.append(f"| {label} | {rr.get('probes', 0)} | {fmt(rr.get('p50_ms'), 1)} | {fmt(rr.get('p90_ms'), 1)} | "
                 f"{fmt(rr.get('p99_ms'), 1)} | {fmt(rr.get('max_ms'), 1)} | {rr.get('lost_probes', '—')} |")
    L.append("")
    L.append("| added delay | p50 ms | p90 ms | p99 ms |")
    L.append("|---|---:|---:|---:|")
    for key, label in (("srtgate", "(b − a) srtgate"), ("slt", "(c − a) srt-live-transmit")):
        diff = d.get("diff_" + key)
        if diff:
            L.append(f"| {label} | {fmt(diff['p50_ms'], 1)} | {fmt(diff['p90_ms'], 1)} | {fmt(diff['p99_ms'], 1)} |")
        else:
            L.append(f"| {label} | — | — | — |")
    if d.get("diff_srtgate"):
        L.append(f"| (b − a) − 20 ms (srtgate minus its own TSBPD hop, estimate) | "
                 f"{fmt(d['diff_srtgate']['p50_ms'] - 20, 1)} | | |")
    L.append(f"| reference: SRS 7, added at the median when not buffering | {REF_SRS_ADDED_MS_P50} | | |")
    L.append("")
    # 4. SRTLA
    L.append("### 4. SRTLA: 1 publisher → 1 reader over 3 bonded links vs plain SRT, SRT latency 120 ms\n")
    b = R.get("s4")
    plain = R["s1"].get("srtgate") or {}
    if not b or "error" in b:
        L.append(f"failed: {(b or {}).get('error', 'not run')}\n")
    else:
        rr = b["reader_results"][0]
        L.append("| ingest | srtgate CPU ms | delivered Mbit | **srtgate CPU-ms / delivered Mbit** | reader Mbit/s |")
        L.append("|---|---:|---:|---:|---:|")
        if plain.get("cpu_ms_per_mbit"):
            pr = plain["reader_results"][0]
            L.append(f"| plain SRT (scenario 1a) | {fmt(plain['relay_cpu_ms'], 0)} | {fmt(plain['delivered_mbit'], 1)} | "
                     f"**{fmt(plain['cpu_ms_per_mbit'], 3)}** | {fmt(pr.get('bytes', 0) * 8 / 1e6 / plain['window_s'], 2)} |")
        L.append(f"| SRTLA, 3 links | {fmt(b['relay_cpu_ms'], 0)} | {fmt(b['delivered_mbit'], 1)} | "
                 f"**{fmt(b['cpu_ms_per_mbit'], 3)}** | {fmt(rr.get('bytes', 0) * 8 / 1e6 / b['window_s'], 2)} |")
        L.append(f"\nRatio SRTLA / plain SRT (srtgate CPU-ms per delivered Mbit): **{fmt(R.get('s4_ratio'), 2)}**. "
                 f"The sender (`srtgate bond`) used {fmt(b.get('bond_cpu_ms'), 0)} CPU-ms in the window; "
                 f"lost probes {rr.get('lost_probes', '—')}.\n")

    for key, title in (("problems", "Problems in this run"), ("notes", "Notes")):
        if R.get(key):
            L.append(f"### {title}\n")
            for p in R[key]:
                L.append(f"- {p}")
            L.append("")
    return "\n".join(L)


def history_row(R: dict) -> str:
    s1, f, d = R["s1"], R.get("s2") or {}, R["s3"]

    def g(x, k, digits):
        return fmt(x.get(k) if x else None, digits)
    return (f"| {R['date']} | {R['machine']['commit']} | {g(s1.get('srtgate'), 'cpu_ms_per_mbit', 3)} | "
            f"{g(s1.get('slt'), 'cpu_ms_per_mbit', 3)} | {fmt(s1.get('ratio'), 2)} | "
            f"{g(f, 'cpu_ms_per_mbit', 3)} | {g(d.get('diff_srtgate'), 'p50_ms', 1)} | "
            f"{g(d.get('diff_slt'), 'p50_ms', 1)} | {R['wall_s']:.0f} s |")


HISTORY_HEADER = """## History

| date | commit | 1→1 srtgate CPU-ms/Mbit | 1→1 slt CPU-ms/Mbit | ratio | 1→50 srtgate CPU-ms/Mbit | srtgate added p50 ms | slt added p50 ms | wall |
|---|---|---:|---:|---:|---:|---:|---:|---:|
"""


def write_markdown(path: Path, R: dict, history: bool = True) -> None:
    text = path.read_text() if path.exists() else "# Benchmark: srtgate vs srt-live-transmit\n\n"
    block = f"{MARK_BEGIN}\n{render(R)}\n{MARK_END}"
    if MARK_BEGIN in text and MARK_END in text:
        a = text.index(MARK_BEGIN)
        b = text.index(MARK_END) + len(MARK_END)
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    if HIST_MARK not in text:
        text = text.rstrip() + "\n\n" + HISTORY_HEADER + HIST_MARK + "\n"
    if history:
        text = text.replace(HIST_MARK, history_row(R) + "\n" + HIST_MARK, 1)
    # Rows go above the marker, so the marker stays last; keep the table contiguous.
    path.write_text(text)


# ----------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--srtgate", type=Path, default=ROOT / "target/release/srtgate")
    ap.add_argument("--probe", type=Path, default=ROOT / "target/release/srtgate-probe")
    ap.add_argument("--out", type=Path, default=ROOT / "research/bench.md")
    ap.add_argument("--json", type=Path, default=BENCH_DIR / "last.json")
    ap.add_argument("--mbps", type=float, default=4.0)
    ap.add_argument("--readers", type=int, default=50)
    ap.add_argument("--window", type=float, default=20.0, help="CPU steady window, s")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--delay-window", type=float, default=12.0)
    ap.add_argument("--video-pes-length", action="store_true",
                    help="gen writes video PES lengths (default 0 = unbounded, like ffmpeg)")
    ap.add_argument("--skip-srtgate", action="store_true", help="only the srt-live-transmit parts")
    ap.add_argument("--quick", action="store_true", help="short windows, 10 readers; no file written")
    ap.add_argument("--no-write", action="store_true", help="do not touch research/bench.md")
    ap.add_argument("--time-limit", type=float, default=420.0, help="hard limit for the whole run, s")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only re-render the results section from a saved run (no history row)")
    args = ap.parse_args()
    if args.render:
        R = json.loads(args.render.read_text())
        print(render(R))
        if not args.no_write:
            write_markdown(args.out, R, history=False)
        return 0
    if args.quick:
        args.window, args.warmup, args.delay_window, args.readers = 5.0, 2.0, 5.0, 10
        args.no_write = True
        if args.json == BENCH_DIR / "last.json":
            args.json = BENCH_DIR / "quick.json"

    for tool in (SLT, "ffmpeg"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (Debian: apt-get install srt-tools ffmpeg)", file=sys.stderr)
            return 2
    if not os.access(args.probe, os.X_OK):
        print(f"bench: {args.probe} missing; run cargo build --release first", file=sys.stderr)
        return 2

    def on_alarm(signum, frame):
        raise HardTimeout(f"time limit of {args.time_limit:.0f} s reached")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (`cmd &` in a script)
    signal.alarm(int(args.time_limit))

    t_start = time.monotonic()
    R: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(), "mbps": args.mbps, "readers": args.readers,
        "window_s": args.window, "warmup_s": args.warmup, "delay_window_s": args.delay_window,
        "s1": {}, "s3": {}, "problems": [], "notes": [],
    }
    run_srtgate = not args.skip_srtgate
    with tempfile.TemporaryDirectory(prefix="srtgate-bench-") as tmpdir:
        bench = None
        try:
            bench = Bench(args, Path(tmpdir))
            R["video_kbps"] = bench.video_kbps
            try:
                R["stream_check"] = bench.check_stream()
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                R["stream_check"] = f"FAILED: {e}"
                R["problems"].append(str(e))

            def attempt(store: dict, key: str, label: str, fn):
                log(label)
                try:
                    store[key] = fn()
                except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
                    store[key] = {"error": str(e)}
                    R["problems"].append(f"{label}: {e}")
                    log(f"  FAILED: {e}")
                finally:
                    bench.procs.stop_all()

            # 1. relay CPU, 1 -> 1
            one = dict(readers=1, latency_ms=120, warmup=args.warmup, window=args.window, setup=1.5)
            if run_srtgate:
                attempt(R["s1"], "srtgate", "1a. srtgate relay, 1 -> 1", lambda: bench.run("srtgate", **one))
            attempt(R["s1"], "slt", "1b. srt-live-transmit relay, 1 -> 1", lambda: bench.run("slt", **one))
            a, b = R["s1"].get("srtgate", {}), R["s1"].get("slt", {})
            if a.get("cpu_ms_per_mbit") and b.get("cpu_ms_per_mbit"):
                R["s1"]["ratio"] = a["cpu_ms_per_mbit"] / b["cpu_ms_per_mbit"]
            for k in ("srtgate", "slt"):
                r = R["s1"].get(k)
                if r and "error" not in r:
                    log(f"  {k}: {r['relay_cpu_ms']:.0f} CPU-ms, {r['delivered_mbit']:.1f} Mbit delivered, "
                        f"{fmt(r['cpu_ms_per_mbit'], 3)} CPU-ms/Mbit")

            # 2. fan-out
            if run_srtgate:
                def fanout():
                    r = bench.run("srtgate", readers=args.readers, latency_ms=120, warmup=args.warmup,
                                  window=args.window, setup=1.5 + 0.06 * args.readers)
                    r["summary"] = reader_summary(r["reader_results"], r["window_s"])
                    return r
                holder: dict = {}
                attempt(holder, "s2", f"2. srtgate fan-out, 1 -> {args.readers}", fanout)
                R["s2"] = holder["s2"]
                f = R["s2"]
                if "error" not in f:
                    log(f"  srtgate: {f['relay_cpu_ms']:.0f} CPU-ms, {f['delivered_mbit']:.1f} Mbit delivered, "
                        f"{fmt(f['cpu_ms_per_mbit'], 3)} CPU-ms/Mbit; machine busy {f['machine_busy_pct']:.0f} %")

            # 3. delay
            low = dict(readers=1, latency_ms=20, warmup=3.0, window=args.delay_window, setup=1.5, unbuffered=True)
            attempt(R["s3"], "direct", "3a. delay, direct", lambda: bench.run("direct", **low))
            if run_srtgate:
                attempt(R["s3"], "srtgate", "3b. delay, via srtgate", lambda: bench.run("srtgate", **low))
            attempt(R["s3"], "slt", "3c. delay, via srt-live-transmit", lambda: bench.run("slt", **low))
            base = R["s3"].get("direct", {})
            for k in ("srtgate", "slt"):
                r = R["s3"].get(k, {})
                if "reader_results" in r and "reader_results" in base:
                    x, y = r["reader_results"][0], base["reader_results"][0]
                    if x.get("probes") and y.get("probes"):
                        R["s3"]["diff_" + k] = {q: x[q] - y[q] for q in ("p50_ms", "p90_ms", "p99_ms")}
            for k in ("direct", "srtgate", "slt"):
                r = R["s3"].get(k)
                if r and "reader_results" in r:
                    rr = r["reader_results"][0]
                    log(f"  {k}: p50 {fmt(rr.get('p50_ms'), 1)} p90 {fmt(rr.get('p90_ms'), 1)} "
                        f"p99 {fmt(rr.get('p99_ms'), 1)} ms ({rr.get('probes', 0)} probes)")

            # 4. SRTLA vs plain SRT
            if run_srtgate:
                holder4: dict = {}
                attempt(holder4, "s4", "4. srtgate SRTLA ingest over 3 links, 1 -> 1",
                        lambda: bench.run("srtla", **one))
                R["s4"] = holder4["s4"]
                a4, p4 = R["s4"], R["s1"].get("srtgate", {})
                if a4.get("cpu_ms_per_mbit") and p4.get("cpu_ms_per_mbit"):
                    R["s4_ratio"] = a4["cpu_ms_per_mbit"] / p4["cpu_ms_per_mbit"]
                    log(f"  srtla: {a4['relay_cpu_ms']:.0f} CPU-ms, {a4['delivered_mbit']:.1f} Mbit delivered, "
                        f"{fmt(a4['cpu_ms_per_mbit'], 3)} CPU-ms/Mbit; ratio to plain SRT {R['s4_ratio']:.2f}")

            # sanity: every reader got data and no probe went missing
            for sect, key in (("s1", "srtgate"), ("s1", "slt"), ("s3", "direct"), ("s3", "srtgate"), ("s3", "slt"),
                              ("s4", None)):
                r = (R.get(sect) if key is None else R[sect].get(key)) or {}
                for rr in r.get("reader_results", []):
                    if not rr.get("bytes"):
                        R["problems"].append(f"{sect}/{key}: reader received nothing in the window")
                    elif rr.get("lost_probes"):
                        R["problems"].append(f"{sect}/{key}: {rr['lost_probes']} probes lost")
            f = R.get("s2") or {}
            if f.get("summary", {}).get("low"):
                R["problems"].append(f"fan-out: {len(f['summary']['low'])} readers got < 90 % of the median")
            if f.get("machine_busy_pct", 0) > 90:
                R["notes"].append(f"fan-out: the machine was {f['machine_busy_pct']:.0f} % busy; CPU numbers "
                                  "were taken under contention")
            for name, r in (("1a", R["s1"].get("srtgate")), ("1b", R["s1"].get("slt")), ("2", R.get("s2")),
                            ("3a", R["s3"].get("direct")), ("3b", R["s3"].get("srtgate")),
                            ("3c", R["s3"].get("slt"))):
                if r and r.get("other_cpu_pct", 0) > 10:
                    R["notes"].append(f"{name}: other work used {r['other_cpu_pct']:.0f} % of the machine "
                                      "during the window; numbers are less reliable")
        except (KeyboardInterrupt, HardTimeout) as e:
            R["problems"].append(f"run aborted: {e or 'interrupted'}")
            log(f"aborted: {e or 'interrupted'}; stopping every started process")
        finally:
            signal.alarm(0)
            if bench:
                bench.procs.stop_all()

        gens = bench.gen_stats if bench else []
        if gens:
            R["gen"] = {
                "mbps": statistics.median(g["gen_mbps"] for g in gens),
                "null_share_pct": 100 * statistics.median(g["null_share"] for g in gens),
                "late_frames": sum(g["late_frames"] for g in gens),
            }
    R.setdefault("video_kbps", "?")
    R["wall_s"] = time.monotonic() - t_start

    report = render(R)
    print()
    print(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(R, indent=1, default=str))
    if not args.no_write:
        write_markdown(args.out, R)
        log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
            f"and {args.json}")
    log(f"wall time {R['wall_s']:.0f} s")
    return 1 if R["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
