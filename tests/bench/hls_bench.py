#!/usr/bin/env python3
"""srtgate HLS benchmark, in one run on one machine (loopback only):

  5. Segment serving: requests/s for one HLS segment from srtgate's memory
     against nginx serving the same bytes from disk (sendfile), both with 2
     workers, measured by wrk with the same connections and duration, one
     after the other. Reports the ratio srtgate / nginx.
  6. Glass-to-glass latency: a publisher paints the wall-clock time into
     every frame (tests/bench/clock_source.py, as black/white blocks) and
     sends it over SRT; headless Chromium plays the stream from srtgate's
     player page (hls.js) and decodes the painted time from a canvas on each
     frame it shows: latency = display time - painted time. For LL-HLS and
     for TS HLS with 1 s segments. Method and error bounds:
     research/hls.md.

    python3 tests/bench/hls_bench.py [--quick] [--out research/bench.md]

Every process is stopped by pid; every wait is bounded. Python stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "target" / "bench"
MARK_BEGIN = "<!-- hls-bench:results:begin -->"
MARK_END = "<!-- hls-bench:results:end -->"


def log(msg: str) -> None:
    print(f"[hls-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        err = open(self.logdir / f"{name}.stderr", "wb")
        kw.setdefault("stdout", subprocess.DEVNULL)
        p = subprocess.Popen(argv, stderr=err, stdin=kw.pop("stdin", subprocess.DEVNULL),
                             start_new_session=True, cwd=ROOT, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, grace: float = 3.0) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_srtgate(procs: Procs, tmp: Path, extra_hls: str = "") -> tuple[subprocess.Popen, int, int]:
    srt_port, http_port = free_port(), free_port()
    cfg = tmp / "srtgate.yaml"
    cfg.write_text(
        f"workers: 2\nlog: {{ level: info }}\n"
        f"srt:\n  listen: [\"127.0.0.1:{srt_port}\"]\n"
        f"srtla:\n  enabled: false\n"
        f"http:\n  listen: [\"127.0.0.1:{http_port}\"]\n  root: {ROOT / 'html'}\n"
        f"hls:\n  keep_after_end: 10m\n{extra_hls}"
    )
    p = procs.start("srtgate", [str(ROOT / "target/release/srtgate"), "-c", str(cfg)])
    wait_for(lambda: b"srtgate ready" in (procs.logdir / "srtgate.stderr").read_bytes(), 15, "srtgate ready")
    return p, srt_port, http_port


def publish_testsrc(procs: Procs, srt_port: int, path: str, seconds: float, size="1280x720") -> subprocess.Popen:
    return procs.start("publisher", [
        "ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "4M", "-g", "30",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts",
        f"srt://127.0.0.1:{srt_port}?streamid=publish:{path}&latency=120000"])


def wrk(url: str, seconds: int, conns: int) -> dict:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "transfer": f"{tr.group(1)} {tr.group(2)}/s" if tr else "?",
        "p50": f"{p50.group(1)} {p50.group(2)}" if p50 else "?",
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def bench_serving(args, procs: Procs, tmp: Path) -> dict:
    """Scenario 5: one segment, srtgate (memory) vs nginx (disk, sendfile)."""
    gw, srt_port, http_port = start_srtgate(procs, tmp)
    pub = publish_testsrc(procs, srt_port, "live/bench", 8)
    base = f"http://127.0.0.1:{http_port}/live/bench"

    def segments():
        st, body = http_get(f"{base}/ts.m3u8")
        if st != 200:
            return None
        segs = [l for l in body.decode().splitlines() if l.endswith(".ts")]
        return segs if len(segs) >= 3 else None

    segs = wait_for(segments, 20, "three TS segments")
    procs.stop(pub)
    name = segs[1]
    st, body = http_get(f"{base}/{name}")
    assert st == 200, st
    www = tmp / "www" / "live" / "bench"
    www.mkdir(parents=True)
    (www / name).write_bytes(body)
    # nginx's workers run as another user: they must be able to read the files.
    for d in (tmp.parent, tmp, tmp / "www", www.parent, www):
        os.chmod(d, 0o755)
    os.chmod(www / name, 0o644)
    nginx_port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ video/mp2t ts; }}
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{nginx_port};
        root {tmp}/www;
        add_header Cache-Control "public, max-age=31536000, immutable";
    }}
}}
""")
    nginx = procs.start("nginx", ["nginx", "-c", str(conf), "-p", str(tmp)])
    wait_for(lambda: http_get(f"http://127.0.0.1:{nginx_port}/live/bench/{name}")[0] == 200, 10, "nginx")
    secs, conns = (3, 50) if args.quick else (8, 50)
    res = {"segment_bytes": len(body), "seconds": secs, "connections": conns}
    log(f"wrk: srtgate, {len(body)} byte segment, {conns} connections, {secs}s")
    res["srtgate"] = wrk(f"{base}/{name}", secs, conns)
    log(f"wrk: nginx, same file from disk")
    res["nginx"] = wrk(f"http://127.0.0.1:{nginx_port}/live/bench/{name}", secs, conns)
    log("wrk: srtgate, playlist")
    res["srtgate_playlist"] = wrk(f"{base}/ts.m3u8", secs, conns)
    res["ratio"] = res["srtgate"]["rps"] / res["nginx"]["rps"] if res["nginx"]["rps"] else None
    procs.stop(nginx)
    procs.stop(gw)
    return res


def play(url: str, seconds: float, clock: bool, logdir: Path, name: str) -> dict:
    argv = ["node", str(ROOT / "tests/browser/play.mjs"), "--url", url, "--seconds", str(seconds)]
    if clock:
        argv.append("--clock")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 90)
    (logdir / f"{name}.stderr").write_text(out.stderr)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    return json.loads(line)


def pct(v: list[float], q: float) -> float | None:
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def bench_latency(args, procs: Procs, tmp: Path) -> dict:
    """Scenario 6: clock painted into frames -> SRT -> srtgate -> Chromium."""
    gw, srt_port, http_port = start_srtgate(procs, tmp)
    seconds = 40 if args.quick else 75
    src = procs.start("clock", [sys.executable, str(ROOT / "tests/bench/clock_source.py"),
                                "--seconds", str(seconds)], stdout=subprocess.PIPE)
    enc = procs.start("encoder", [
        "ffmpeg", "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", "640x360",
        "-r", "25", "-i", "-", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts",
        f"srt://127.0.0.1:{srt_port}?streamid=publish:live/clock&latency=120000"], stdin=src.stdout)
    src.stdout.close()
    base = f"http://127.0.0.1:{http_port}/live/clock"
    wait_for(lambda: http_get(f"{base}/ts.m3u8")[0] == 200, 20, "the clock stream's playlist")
    time.sleep(3)
    res = {"encoder": "libx264 ultrafast zerolatency, 25 fps, GOP 1 s, SRT latency 120 ms"}
    watch = 8 if args.quick else 15
    for variant in ("ll", "ts"):
        log(f"chromium + hls.js, {variant}: watching {watch}s")
        r = play(f"{base}/?engine=hlsjs&variant={variant}", watch, True, procs.logdir, f"play-{variant}")
        lat = [float(x) for x in r.get("clockLatencies", [])]
        res[variant] = {
            "samples": len(lat),
            "p50_ms": pct(lat, 0.5),
            "p10_ms": pct(lat, 0.1),
            "p90_ms": pct(lat, 0.9),
            "stalls": r.get("stalls"),
            "errors": r.get("errors", [])[:3],
        }
        log(f"{variant}: {res[variant]}")
    procs.stop(enc)
    procs.stop(src)
    procs.stop(gw)
    return res


def render(R: dict) -> str:
    L = [MARK_BEGIN, "", f"Run {R['when']} on {R['machine']}.", ""]
    s = R.get("serving")
    if s:
        L += [
            f"**5. Segment serving** ({s['segment_bytes']} byte TS segment, wrk 2 threads, "
            f"{s['connections']} connections, {s['seconds']} s each, load generator on the same 2 cores):",
            "",
            "| server | requests/s | transfer | p50 latency | non-2xx |",
            "|---|---|---|---|---|",
        ]
        for k, label in (("srtgate", "srtgate (memory)"), ("nginx", "nginx (disk, sendfile)"),
                         ("srtgate_playlist", "srtgate, playlist")):
            w = s[k]
            L.append(f"| {label} | {w['rps']:.0f} | {w['transfer']} | {w['p50']} | {w['non2xx']} |")
        if s.get("ratio"):
            L += ["", f"Ratio srtgate / nginx, segment requests/s: **{s['ratio']:.2f}**."]
        L.append("")
    lat = R.get("latency")
    if lat:
        L += [f"**6. Glass-to-glass latency** ({lat['encoder']}; Chromium {R.get('chromium', '?')} with hls.js):", "",
              "| variant | samples | p10 ms | p50 ms | p90 ms | stalls | aim |", "|---|---|---|---|---|---|---|"]
        for v, aim in (("ll", "< 1500"), ("ts", "< 4000")):
            x = lat.get(v, {})
            f = lambda k: "—" if x.get(k) is None else f"{x[k]:.0f}"
            L.append(f"| {v} | {x.get('samples', 0)} | {f('p10_ms')} | {f('p50_ms')} | {f('p90_ms')} | "
                     f"{x.get('stalls')} | {aim} |")
        L.append("")
    L.append(MARK_END)
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "research/bench.md")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-serving", action="store_true")
    args = ap.parse_args()
    for tool in ("ffmpeg", "wrk", "nginx", "node"):
        if not shutil.which(tool):
            print(f"hls-bench: {tool} not found (make bench installs it)", file=sys.stderr)
            return 2
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    R: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    R["machine"] = f"{cpu}, {os.cpu_count()} cores"
    try:
        R["chromium"] = subprocess.run(["chromium", "--version"], capture_output=True, text=True,
                                       timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001 - only a label
        R["chromium"] = "?"
    with tempfile.TemporaryDirectory(prefix="srtgate-hls-bench-") as t:
        tmp = Path(t)
        logdir = BENCH_DIR / "hls-logs"
        logdir.mkdir(parents=True, exist_ok=True)
        procs = Procs(logdir)
        try:
            if not args.skip_serving:
                sub = tmp / "serving"
                sub.mkdir()
                R["serving"] = bench_serving(args, procs, sub)
            if not args.skip_latency:
                sub = tmp / "latency"
                sub.mkdir()
                R["latency"] = bench_latency(args, procs, sub)
        finally:
            procs.stop_all()
    text = render(R)
    print(text)
    (BENCH_DIR / "hls-last.json").write_text(json.dumps(R, indent=2))
    if not args.no_write and not args.quick:
        md = args.out.read_text() if args.out.exists() else ""
        if MARK_BEGIN in md and MARK_END in md:
            a, b = md.index(MARK_BEGIN), md.index(MARK_END) + len(MARK_END)
            md = md[:a] + text + md[b:]
        else:
            md += "\n## HLS (tests/bench/hls_bench.py)\n\n" + text + "\n"
        args.out.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
