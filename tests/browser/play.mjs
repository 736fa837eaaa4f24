#!/usr/bin/env node
// Headless Chromium playback probe for srtgate.
//
//   node play.mjs --url http://127.0.0.1:8080/live/x/?engine=hlsjs --seconds 8 [--clock]
//
// Opens the URL (normally the srtgate player page), waits until the <video>
// plays, watches it for --seconds and prints ONE JSON line on stdout:
//
//   {ok, engine, variant, startCurrentTime, endCurrentTime, advanced,
//    longestStallMs, stalls, pixel:[r,g,b,a], nonBlack, width, height,
//    errors, consoleErrors, clockLatencies, ...}
//
// Exit status: 0 = the probe ran (judge the values), 1 = the video never
// started playing (JSON has ok:false and error), 2 = harness failure (bad
// arguments, browser would not start, overall time limit hit).
//
// Options:
//   --url URL            page to open (required)
//   --seconds N          observation time after playback starts (default 8)
//   --clock              add clock=1 to the page URL and return clock latencies
//   --start-timeout N    seconds to wait for playback to start (default 20)
//   --screenshot FILE    save a PNG of the page at the end
//   --chromium PATH      browser binary (default $SRTGATE_CHROMIUM or /usr/bin/chromium)

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SAMPLE_MS = 100;          // currentTime sampling period in the page
const STALL_MIN_MS = 250;       // frozen at least this long counts as a stall

function parseArgs(argv) {
  const o = { seconds: 8, startTimeout: 20, clock: false, screenshot: null,
    chromium: process.env.SRTGATE_CHROMIUM || '/usr/bin/chromium', url: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
      return argv[++i];
    };
    if (a === '--url') o.url = val();
    else if (a === '--seconds') o.seconds = Number(val());
    else if (a === '--start-timeout') o.startTimeout = Number(val());
    else if (a === '--clock') o.clock = true;
    else if (a === '--screenshot') o.screenshot = val();
    else if (a === '--chromium') o.chromium = val();
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error('unknown argument ' + a);
  }
  if (o.help) return o;
  if (!o.url) throw new Error('--url is required');
  if (!(o.seconds > 0 && o.seconds <= 600)) throw new Error('--seconds must be in (0, 600]');
  if (!(o.startTimeout > 0 && o.startTimeout <= 300)) throw new Error('--start-timeout must be in (0, 300]');
  if (o.clock) {
    const u = new URL(o.url);
    u.searchParams.set('clock', '1');
    o.url = u.href;
  }
  return o;
}

let printed = false;
function emit(obj, code) {
  if (!printed) {
    printed = true;
    process.stdout.write(JSON.stringify(obj) + '\n');
  }
  process.exitCode = code;
}

// Longest time playback stood still while not paused, from page samples
// [t_ms, currentTime, paused, readyState]. A sample counts as progress when
// currentTime moved forward and the element had data to play (readyState >=
// HAVE_FUTURE_DATA): hls.js nudges currentTime while it is stuck, and a
// restarted engine resets it, neither of which is playback. The frozen time
// between progress at t(a) and t(b) is counted as (t(b) - t(a)) - period, so
// normal playback gives about 0; resolution is about one sampling period.
function analyseSamples(samples) {
  let longest = 0, stalls = 0, total = 0;
  if (samples.length < 2) return { longest, stalls, total };
  const gaps = [];
  for (let i = 1; i < samples.length; i++) gaps.push(samples[i][0] - samples[i - 1][0]);
  gaps.sort((x, y) => x - y);
  const period = gaps[gaps.length >> 1];
  let lastProgressT = samples[0][0];
  let lastCt = samples[0][1];
  const close = (t) => {
    const frozen = Math.max(0, t - lastProgressT - period);
    if (frozen >= STALL_MIN_MS) { stalls++; total += frozen; }
    if (frozen > longest) longest = frozen;
  };
  for (let i = 1; i < samples.length; i++) {
    const [t, ct, paused, rs] = samples[i];
    if (paused) {
      lastProgressT = t;
    } else if (ct > lastCt && rs >= 3) {
      close(t);
      lastProgressT = t;
    }
    lastCt = ct;
  }
  close(samples[samples.length - 1][0] + period); // a stall still going at the end
  return { longest: Math.round(longest), stalls, total: Math.round(total) };
}

function stats(a) {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, min: s[0], median: q(0.5), p95: q(0.95), max: s[s.length - 1],
    mean: Math.round(s.reduce((x, y) => x + y, 0) / s.length) };
}

async function main() {
  let opt;
  try {
    opt = parseArgs(process.argv.slice(2));
  } catch (e) {
    emit({ ok: false, error: 'usage: ' + e.message }, 2);
    return;
  }
  if (opt.help) {
    process.stdout.write('usage: node play.mjs --url URL [--seconds N] [--clock] [--start-timeout N] [--screenshot FILE] [--chromium PATH]\n');
    return;
  }

  const result = { ok: false, url: opt.url, engine: null, variant: null,
    startCurrentTime: null, endCurrentTime: null, advanced: null, wallSeconds: null,
    longestStallMs: null, stalls: null, stallMsTotal: null, pixel: null, pixels: [], nonBlack: false,
    width: 0, height: 0, errors: [], consoleErrors: [], clockLatencies: [] };
  const consoleErrors = result.consoleErrors;
  const userDataDir = mkdtempSync(join(tmpdir(), 'srtgate-chromium-'));
  let ctx = null;
  let finished = false;

  const cleanup = async () => {
    if (ctx) {
      const c = ctx;
      ctx = null;
      await Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    }
    try { rmSync(userDataDir, { recursive: true, force: true }); } catch { /* ignore */ }
  };

  // Overall bound: whatever happens, stop and report.
  const limitMs = (opt.startTimeout + opt.seconds + 45) * 1000;
  const guard = setTimeout(async () => {
    if (finished) return;
    finished = true;
    emit({ ...result, ok: false, error: 'harness time limit of ' + limitMs / 1000 + ' s reached' }, 2);
    await cleanup();
    process.exit(2);
  }, limitMs);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => {
      finished = true;
      emit({ ...result, ok: false, error: 'interrupted by ' + sig }, 2);
      await cleanup();
      process.exit(2);
    });
  }

  try {
    try {
      ctx = await chromium.launchPersistentContext(userDataDir, {
        executablePath: opt.chromium,
        headless: true,
        timeout: 30000,
        viewport: { width: 1280, height: 800 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync',
          '--autoplay-policy=no-user-gesture-required'],
      });
    } catch (e) {
      finished = true;
      emit({ ...result, error: 'could not start chromium at ' + opt.chromium + ': ' + String(e.message || e).split('\n')[0] }, 2);
      return;
    }
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const loc = m.location && m.location();
      if (loc && /\/favicon\.ico$/.test(loc.url || '')) return;
      if (consoleErrors.length < 50) consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => {
      if (consoleErrors.length < 50) consoleErrors.push('pageerror: ' + (e.message || e));
    });

    try {
      const cdp = await ctx.newCDPSession(page);
      const v = await cdp.send('Browser.getVersion');
      result.browser = v.product;
      await cdp.detach();
    } catch { /* informational only */ }

    const tNav = Date.now();
    try {
      const resp = await page.goto(opt.url, { waitUntil: 'domcontentloaded', timeout: opt.startTimeout * 1000 });
      if (resp && !resp.ok()) {
        finished = true;
        emit({ ...result, error: 'page returned HTTP ' + resp.status() }, 1);
        return;
      }
    } catch (e) {
      finished = true;
      emit({ ...result, error: 'could not load page: ' + String(e.message || e).split('\n')[0] }, 1);
      return;
    }

    result.capabilities = await page.evaluate(() => {
      const v = document.createElement('video');
      const mse = window.MediaSource;
      return {
        nativeHls: v.canPlayType('application/vnd.apple.mpegurl'),
        mseH264Aac: !!(mse && mse.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"')),
      };
    }).catch(() => null);

    // Wait until a <video> actually plays: not paused, has data, time advancing.
    const startDeadline = tNav + opt.startTimeout * 1000;
    let started = false;
    let firstCt = null;
    while (Date.now() < startDeadline) {
      const st = await page.evaluate(() => {
        const v = document.querySelector('video');
        return v ? { ct: v.currentTime, paused: v.paused, rs: v.readyState } : null;
      }).catch(() => null);
      if (st && !st.paused && st.rs >= 2) {
        if (firstCt === null) firstCt = st.ct;
        else if (st.ct > firstCt + 0.05) { started = true; break; }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    result.startupMs = Date.now() - tNav;
    const pageState = async () => page.evaluate(() => {
      const s = window.srtgate;
      return s ? JSON.parse(JSON.stringify(s)) : null;
    }).catch(() => null);

    if (!started) {
      const s = await pageState();
      const v = await page.evaluate(() => {
        const v = document.querySelector('video');
        return v ? { currentTime: v.currentTime, paused: v.paused, readyState: v.readyState,
          networkState: v.networkState, error: v.error && (v.error.code + ' ' + v.error.message) } : null;
      }).catch(() => null);
      finished = true;
      emit({ ...result, engine: s && s.engine, variant: s && s.variant, errors: (s && s.errors) || [],
        video: v, error: 'video did not start playing within ' + opt.startTimeout + ' s' }, 1);
      return;
    }

    // Observe.
    await page.evaluate((period) => {
      const v = document.querySelector('video');
      const samples = window.__srtgateSamples = [];
      const take = () => samples.push([performance.now(), v.currentTime, v.paused, v.readyState]);
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
      window.__srtgateFrames0 = q ? [q.totalVideoFrames, q.droppedVideoFrames] : null;
      take();
      window.__srtgateSampler = setInterval(take, period);
    }, SAMPLE_MS);
    const tObs = Date.now();
    await new Promise((r) => setTimeout(r, opt.seconds * 1000));
    const obs = await page.evaluate(() => {
      clearInterval(window.__srtgateSampler);
      const v = document.querySelector('video');
      window.__srtgateSamples.push([performance.now(), v.currentTime, v.paused, v.readyState]);
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
      const f0 = window.__srtgateFrames0;
      return { samples: window.__srtgateSamples,
        frames: q && f0 ? q.totalVideoFrames - f0[0] : null,
        dropped: q && f0 ? q.droppedVideoFrames - f0[1] : null };
    });
    result.wallSeconds = +((Date.now() - tObs) / 1000).toFixed(3);
    const samples = obs.samples;
    result.framesShown = obs.frames;
    result.framesDropped = obs.dropped;

    // Pixels: draw the current frame at its own size and sample a few points.
    const px = await page.evaluate(() => {
      const v = document.querySelector('video');
      const w = v.videoWidth, h = v.videoHeight;
      if (!w || !h) return { w, h, points: [], error: 'no video size' };
      const c = document.createElement('canvas');
      c.width = w; c.height = h;
      const g = c.getContext('2d', { willReadFrequently: true });
      g.drawImage(v, 0, 0, w, h);
      const pts = [[0.5, 0.5], [0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75], [0.5, 0.1], [0.5, 0.9]];
      try {
        return { w, h, points: pts.map(([x, y]) =>
          Array.from(g.getImageData(Math.floor(x * w), Math.floor(y * h), 1, 1).data)) };
      } catch (e) {
        return { w, h, points: [], error: 'canvas read failed: ' + e.message };
      }
    });
    if (opt.screenshot) await page.screenshot({ path: opt.screenshot }).catch(() => {});

    const s = await pageState();
    const an = analyseSamples(samples);
    Object.assign(result, {
      ok: true,
      engine: s ? s.engine : null,
      variant: s ? s.variant : null,
      startCurrentTime: +samples[0][1].toFixed(3),
      endCurrentTime: +samples[samples.length - 1][1].toFixed(3),
      longestStallMs: an.longest,
      stalls: an.stalls,
      stallMsTotal: an.total,
      pixel: px.points[0] || null,
      pixels: px.points,
      nonBlack: px.points.some((p) => p[0] + p[1] + p[2] > 30),
      width: px.w,
      height: px.h,
      errors: s ? s.errors : [],
      warnings: s && s.warnings ? s.warnings : [],
      clockLatencies: s && Array.isArray(s.clockLatencies) ? s.clockLatencies : [],
    });
    result.advanced = +(result.endCurrentTime - result.startCurrentTime).toFixed(3);
    if (px.error) result.pixelError = px.error;
    if (s) {
      result.page = { ready: s.ready, startupMs: s.startupMs, stalls: s.stalls, stallMs: s.stallMs,
        latency: s.latency, latencySource: s.latencySource, latencyPdt: s.latencyPdt,
        bufferAhead: s.bufferAhead, codecs: s.codecs, playbackRate: s.playbackRate,
        clockMethod: s.clockMethod, clockRejected: s.clockRejected };
    }
    if (opt.clock) result.clockStats = stats(result.clockLatencies);
    finished = true;
    emit(result, 0);
  } catch (e) {
    finished = true;
    emit({ ...result, ok: false, error: 'harness: ' + String((e && e.message) || e).split('\n')[0] }, 2);
  } finally {
    clearTimeout(guard);
    await cleanup();
  }
}

await main();
