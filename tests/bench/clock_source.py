#!/usr/bin/env python3
"""Glass-to-glass clock source for srtgate benchmarks.

Writes raw 8-bit gray video frames to stdout in real time. Every frame
carries the wall-clock time (ms since the Unix epoch, time.time()) taken
just before the frame is written, as a grid of large black/white blocks that
survive lossy encoding and scaling. The player page (html/player.js with
?clock=1) decodes the grid and records Date.now() - stamp.

Layout, for a W x H frame split into a 16 x 9 grid of cells (40 x 40 px at
640x360; the decoder works in cell units, so any size with that grid works):

  grid rows 1..4 (cells 0..15 in each):
    col 0            white reference  (255)
    col 15           black reference  (0)
    cols 1..14       14 data bits, white = 1, black = 0
  The 56 data bits, row by row, left to right:
    bits  0..43      timestamp in ms, most significant bit first
    bits 44..55      CRC-12 (poly 0x80F, init 0, MSB first) of bits 0..43
  grid rows 5..6     a white bar that moves 8 px per frame (motion cue)
  grid rows 7..8     the time of day (UTC) as seven-segment digits, for people
  everything else    gray (128)

Usage (bounded by --seconds):

  python3 tests/bench/clock_source.py --seconds 60 | ffmpeg -f rawvideo \
      -pix_fmt gray -s 640x360 -r 25 -i - ... 

Python 3 standard library only.
"""
import argparse
import sys
import time

COLS, ROWS = 16, 9
DATA_ROWS = (1, 2, 3, 4)
TS_BITS, CRC_BITS = 44, 12
WHITE, BLACK, GRAY = 255, 0, 128


def crc12(bits):
    crc = 0
    for b in bits:
        top = ((crc >> 11) & 1) ^ b
        crc = (crc << 1) & 0xFFF
        if top:
            crc ^= 0x80F
    return crc


def encode_bits(ms):
    ts = [(ms >> (TS_BITS - 1 - i)) & 1 for i in range(TS_BITS)]
    c = crc12(ts)
    return ts + [(c >> (CRC_BITS - 1 - i)) & 1 for i in range(CRC_BITS)]


# Seven-segment glyphs: segments a b c d e f g.
SEGS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg",
    "5": "acdfg", "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}


class Painter:
    def __init__(self, w, h):
        if w % COLS or h % ROWS:
            raise SystemExit("frame size must be a multiple of %dx%d" % (COLS, ROWS))
        self.w, self.h = w, h
        self.cw, self.ch = w // COLS, h // ROWS
        self.blank = bytes([GRAY]) * (w * h)

    def fill(self, buf, x, y, w, h, v):
        row = bytes([v]) * w
        for yy in range(y, y + h):
            o = yy * self.w + x
            buf[o:o + w] = row

    def digit(self, buf, x, y, ch, dw, dh, t):
        if ch == ":" or ch == ".":
            self.fill(buf, x + dw // 2 - t // 2, y + dh - t, t, t, WHITE)
            if ch == ":":
                self.fill(buf, x + dw // 2 - t // 2, y + dh // 3, t, t, WHITE)
            return
        half = dh // 2
        rects = {
            "a": (x, y, dw, t), "d": (x, y + dh - t, dw, t), "g": (x, y + half - t // 2, dw, t),
            "f": (x, y, t, half), "b": (x + dw - t, y, t, half),
            "e": (x, y + half, t, dh - half), "c": (x + dw - t, y + half, t, dh - half),
        }
        for s in SEGS[ch]:
            self.fill(buf, *rects[s], WHITE)

    def frame(self, ms, index):
        w, cw, ch = self.w, self.cw, self.ch
        buf = bytearray(self.blank)
        bits = encode_bits(ms)
        per_row = COLS - 2
        for r, gy in enumerate(DATA_ROWS):
            line = bytearray(bytes([GRAY]) * w)
            cells = [WHITE] + [WHITE if b else BLACK
                               for b in bits[r * per_row:(r + 1) * per_row]] + [BLACK]
            for c, v in enumerate(cells):
                line[c * cw:(c + 1) * cw] = bytes([v]) * cw
            line = bytes(line)
            for yy in range(gy * ch, (gy + 1) * ch):
                buf[yy * w:(yy + 1) * w] = line
        # moving bar
        bw = cw
        x = (index * 8) % (w - bw)
        self.fill(buf, x, 5 * ch + ch // 4, bw, ch + ch // 2, WHITE)
        # time of day, UTC, HH:MM:SS.mmm
        tm = time.gmtime(ms // 1000)
        text = "%02d:%02d:%02d.%03d" % (tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000)
        dh = ch + ch // 2
        dw = max(4, dh // 2)
        t = max(2, dh // 9)
        step = dw + dw // 2
        x0 = max(0, (w - step * len(text)) // 2)
        y0 = 7 * ch + (2 * ch - dh) // 2
        for i, c in enumerate(text):
            self.digit(buf, x0 + i * step, y0, c, dw, dh, t)
        return buf


def main():
    ap = argparse.ArgumentParser(description="Raw gray video with a binary wall-clock stamp.")
    ap.add_argument("--seconds", type=float, default=60.0, help="stop after this long (bounded)")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--size", default="640x360", help="WxH, multiple of 16x9")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    painter = Painter(w, h)
    out = sys.stdout.buffer
    interval = 1.0 / args.fps
    total = int(args.seconds * args.fps)
    t0 = time.monotonic()
    try:
        for i in range(total):
            delay = t0 + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ms = int(time.time() * 1000)
            out.write(painter.frame(ms, i))
            out.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        try:
            sys.stdout = None
        except Exception:
            pass
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
