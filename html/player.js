// srtgate player page logic. Served at /static/player.js, used by player.html,
// which srtgate serves at /<path>/ for every live path.
//
// Query parameters:
//   variant=ll|ts      playlist: (none) index.m3u8, ll -> ll.m3u8, ts -> ts.m3u8
//   engine=native|hlsjs  default: native when the browser says it can play HLS
//   clock=1            decode the glass-to-glass clock (tests/bench/clock_source.py)
//   sync=<seconds>     hls.js only: fixed target latency instead of the playlist's hold-back
//
// Test hook: window.srtgate (plain data, safe to serialize), see `S` below.
'use strict';
(function () {
  const params = new URLSearchParams(location.search);
  const video = document.getElementById('video');
  const $ = (id) => document.getElementById(id);

  // --- what to play ------------------------------------------------------
  let base = location.pathname.replace(/\/index\.html$/, '');
  if (!base.endsWith('/')) base += '/';
  let streamPath = base.replace(/^\/+|\/+$/g, '');
  try { streamPath = decodeURIComponent(streamPath); } catch (e) { /* keep raw */ }

  const variantParam = params.get('variant');
  const variant = variantParam === 'ts' ? 'ts' : 'll';
  const playlist = variantParam === 'ts' ? 'ts.m3u8' : variantParam === 'll' ? 'll.m3u8' : 'index.m3u8';
  const url = new URL(base + playlist, location.href).href;

  // Engine when ?engine= is not given. true: native whenever canPlayType()
  // says it can, else hls.js. Note that Chromium 156 (Debian 12) says "maybe"
  // and does play HLS natively, but its player ignores LL-HLS (no parts,
  // preload hints or blocking reload; it starts 3 segments behind the edge).
  // false: hls.js wherever MediaSource exists, native only without it.
  const PREFER_NATIVE = false;
  const nativeCan = !!video.canPlayType('application/vnd.apple.mpegurl');
  const mseCan = !!(window.MediaSource || window.ManagedMediaSource);
  const engineParam = params.get('engine');
  const engine = engineParam === 'native' || engineParam === 'hlsjs' ? engineParam
    : PREFER_NATIVE ? (nativeCan ? 'native' : 'hlsjs')
    : (mseCan || !nativeCan ? 'hlsjs' : 'native');
  const clockOn = params.get('clock') === '1';
  const syncParam = parseFloat(params.get('sync') || '');

  // --- state exposed to tests ------------------------------------------
  const S = window.srtgate = {
    path: streamPath,
    url,
    engine,                 // 'native' | 'hlsjs'
    variant,                // 'll' | 'ts'
    nativeHls: nativeCan,   // what canPlayType said
    ready: false,           // playback started and currentTime advanced
    startupMs: null,        // ms from navigation start to the first ready
    stalls: 0,              // 'waiting' while playing (after ready)
    stallMs: 0,             // total time in those stalls, incl. an ongoing one
    latency: null,          // s behind live: hls.js hls.latency, native: PDT estimate
    latencySource: null,    // 'hls.js' | 'pdt' | 'pdt-edge'
    latencyPdt: null,       // s: Date.now() - program-date-time of the playing position
    bufferAhead: null,      // s buffered past currentTime
    codecs: null,           // e.g. 'avc1.64001f, mp4a.40.2' or server track names
    width: 0,
    height: 0,
    playbackRate: 1,
    errors: [],             // strings, newest last (capped): fatal engine errors,
                            //   native media errors, watchdog restarts
    warnings: [],           // non-fatal hls.js errors it recovered from itself
    clock: clockOn,
    clockLatencies: [],     // ms, one per decoded clock frame (?clock=1)
  };
  window.srtgateHls = null; // the hls.js instance, for poking from a console

  // --- UI helpers ----------------------------------------------------------
  const MAX_ERRORS = 100;
  // recovered=true: a warning the engine handled itself (S.warnings);
  // otherwise an error (S.errors). Both are listed in the panel.
  function addError(msg, recovered) {
    const text = new Date().toISOString().slice(11, 23) + ' ' + msg;
    const list = recovered ? S.warnings : S.errors;
    list.push(text);
    if (list.length > MAX_ERRORS) list.shift();
    const li = document.createElement('li');
    li.textContent = text;
    if (recovered) li.className = 'recovered';
    const ol = $('errors');
    ol.appendChild(li);
    while (ol.children.length > 30) ol.removeChild(ol.firstChild);
    ol.scrollTop = ol.scrollHeight;
  }
  let overlayTimer = 0;
  function overlay(text, ms) {
    const el = $('overlay');
    clearTimeout(overlayTimer);
    if (!text) { el.hidden = true; return; }
    el.textContent = text;
    el.hidden = false;
    if (ms) overlayTimer = setTimeout(() => { el.hidden = true; }, ms);
  }
  function setText(id, text, cls) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
    el.className = cls || '';
  }

  function buildHeader() {
    $('title').textContent = streamPath || '(no path)';
    document.title = (streamPath || 'srtgate') + ' · srtgate';
    const nav = $('switch');
    const link = (label, key, value, on) => {
      const q = new URLSearchParams(location.search);
      if (value === null) q.delete(key); else q.set(key, value);
      const a = document.createElement('a');
      const qs = q.toString();
      a.href = location.pathname + (qs ? '?' + qs : '');
      a.textContent = label;
      if (on) a.className = 'on';
      nav.appendChild(a);
    };
    link('LL-HLS', 'variant', null, variant === 'll');
    link('TS', 'variant', 'ts', variant === 'ts');
    link('native', 'engine', 'native', engine === 'native');
    link('hls.js', 'engine', 'hlsjs', engine === 'hlsjs');
    if (clockOn) document.querySelectorAll('.clock-only').forEach((el) => { el.hidden = false; });
  }

  // --- stalls ------------------------------------------------------------
  let stallStart = null;
  let stallAccum = 0;
  let firstPlayingTime = null;
  const t0 = 0; // performance.now() counts from navigation start

  function endStall() {
    if (stallStart !== null) {
      stallAccum += performance.now() - stallStart;
      stallStart = null;
      S.stallMs = Math.round(stallAccum);
    }
  }
  video.addEventListener('waiting', () => {
    if (S.ready && !video.paused && !video.seeking && stallStart === null) {
      stallStart = performance.now();
      S.stalls++;
      overlay('buffering…');
    }
  });
  video.addEventListener('playing', () => {
    endStall();
    overlay(null);
    if (firstPlayingTime === null) firstPlayingTime = video.currentTime;
  });
  video.addEventListener('pause', endStall);
  video.addEventListener('timeupdate', () => {
    if (!S.ready && firstPlayingTime !== null && !video.paused &&
        video.currentTime > firstPlayingTime + 0.1) {
      S.ready = true;
      if (S.startupMs === null) S.startupMs = Math.round(performance.now() - t0);
      retryDelay = 1000;
    }
  });

  // --- periodic status -----------------------------------------------------
  function bufferAhead() {
    const b = video.buffered, t = video.currentTime;
    for (let i = 0; i < b.length; i++) {
      if (t >= b.start(i) - 0.1 && t <= b.end(i)) return Math.max(0, b.end(i) - t);
    }
    return 0;
  }
  const fmtS = (v) => (v === null || !isFinite(v) ? '–' : v.toFixed(2) + ' s');

  // Watchdog: if the picture has not moved for STUCK_MS while we want to be
  // playing (stream restarted with new sequence numbers, server came back,
  // an error the engine did not report), start the engine over.
  const STUCK_MS = 10000;
  let lastCt = -1;
  let lastMove = performance.now();
  let restartEngine = null; // set by startHlsJs / startNative
  S.restarts = 0;
  function watchdog() {
    const now = performance.now();
    if (video.paused) { lastMove = now; return; }
    if (video.currentTime !== lastCt) { lastCt = video.currentTime; lastMove = now; return; }
    if (now - lastMove > STUCK_MS && restartEngine && !retryTimer) {
      addError('no progress for ' + STUCK_MS / 1000 + ' s, restarting the player');
      lastMove = now;
      S.restarts++;
      restartEngine();
    }
  }

  function tick() {
    watchdog();
    S.width = video.videoWidth;
    S.height = video.videoHeight;
    S.bufferAhead = video.readyState ? +bufferAhead().toFixed(3) : null;
    S.playbackRate = video.playbackRate;
    S.stallMs = Math.round(stallAccum + (stallStart !== null ? performance.now() - stallStart : 0));
    if (engine === 'hlsjs') hlsLatency(); else nativeLatency();

    setText('s-engine', engine === 'hlsjs' ? 'hls.js' + (window.Hls ? ' ' + window.Hls.version : '') : 'native');
    setText('s-variant', (variant === 'll' ? 'LL-HLS' : 'MPEG-TS') + ' · ' + playlist);
    setText('s-codecs', S.codecs || '–');
    setText('s-res', S.width ? S.width + '×' + S.height : '–');
    let lat = fmtS(S.latency);
    if (S.latencyPdt !== null && S.latencySource === 'hls.js') lat += ' · PDT ' + fmtS(S.latencyPdt);
    if (S.latencySource && S.latencySource !== 'hls.js') lat += ' (' + S.latencySource + ')';
    setText('s-latency', lat, S.latency === null ? '' : S.latency < 3 ? 'good' : S.latency < 8 ? 'warn' : 'bad');
    setText('s-buffer', fmtS(S.bufferAhead), S.bufferAhead !== null && S.bufferAhead < 0.3 ? 'warn' : '');
    setText('s-stalls', S.stalls + (S.stalls ? ' · ' + (S.stallMs / 1000).toFixed(1) + ' s' : ''),
      S.stalls ? 'warn' : '');
    setText('s-rate', S.playbackRate.toFixed(2) + '×');
    if (clockOn) {
      const a = S.clockLatencies;
      if (a.length) {
        const last = a.slice(-50).sort((x, y) => x - y);
        setText('s-clock', a[a.length - 1] + ' ms · med ' + last[last.length >> 1] + ' ms');
      } else {
        setText('s-clock', 'no clock frames');
      }
    }
  }

  // --- retry helper ------------------------------------------------------
  let retryDelay = 1000;
  let retryTimer = 0;
  function scheduleRetry(why, fn) {
    clearTimeout(retryTimer);
    const d = retryDelay;
    retryDelay = Math.min(retryDelay * 2, 8000);
    overlay(why + ' – retrying in ' + (d / 1000) + ' s');
    retryTimer = setTimeout(() => { retryTimer = 0; fn(); }, d);
  }

  function tryPlay() {
    const p = video.play();
    if (p && p.catch) {
      p.catch((e) => {
        if (e && e.name === 'NotAllowedError') overlay('press play to start');
      });
    }
  }

  // --- hls.js ------------------------------------------------------------
  let hls = null;
  let mediaErrorAt = 0;

  function hlsLatency() {
    if (!hls) return;
    const lat = hls.latency;
    S.latency = lat ? +lat.toFixed(3) : null;
    S.latencySource = 'hls.js';
    const d = hls.playingDate;
    S.latencyPdt = d ? +((Date.now() - d.getTime()) / 1000).toFixed(3) : null;
  }

  function hlsConfig() {
    const cfg = {
      lowLatencyMode: variant === 'll',
      // Catch up by playing slightly faster instead of seeking.
      maxLiveSyncPlaybackRate: 1.1,
      backBufferLength: 30,
      maxBufferLength: 10,
      enableWorker: true,
    };
    if (syncParam > 0) {
      cfg.liveSyncDuration = syncParam;
      cfg.liveMaxLatencyDuration = Math.max(syncParam + 6, syncParam * 3);
    } else if (variant === 'ts') {
      // Plain HLS: 2 segments behind the edge (the spec's 3 segments of
      // hold-back cost a whole second more with 1 s segments, which srtgate
      // completes at each keyframe without jitter); jump forward when more
      // than 10 behind.
      cfg.liveSyncDurationCount = 2;
      cfg.liveMaxLatencyDurationCount = 10;
    }
    // For LL-HLS nothing is set so that hls.js follows the playlist's
    // PART-HOLD-BACK (EXT-X-SERVER-CONTROL), which the server chooses.
    return cfg;
  }

  function startHlsJs() {
    const Hls = window.Hls;
    if (!Hls) { addError('hls.js failed to load from /vendor/hls.min.js'); return; }
    if (!Hls.isSupported()) {
      addError('this browser has no MediaSource support; hls.js cannot play');
      overlay('playback not supported in this browser');
      return;
    }
    if (hls) { hls.destroy(); hls = null; }
    clearTimeout(retryTimer);
    retryTimer = 0;
    S.ready = false;
    firstPlayingTime = null;
    restartEngine = startHlsJs;
    hls = window.srtgateHls = new Hls(hlsConfig());
    const E = Hls.Events;
    hls.on(E.MANIFEST_PARSED, (_, data) => {
      const lv = data.levels && data.levels[0];
      if (lv && !S.codecs) {
        const c = [lv.videoCodec, lv.audioCodec].filter(Boolean).join(', ') || lv.codecs;
        if (c) S.codecs = c;
      }
      tryPlay();
    });
    hls.on(E.BUFFER_CODECS, (_, data) => {
      const c = ['video', 'audio', 'audiovideo']
        .map((k) => data[k] && (data[k].codec || data[k].levelCodec))
        .filter(Boolean);
      if (c.length) S.codecs = c.join(',').split(',').map((x) => x.trim()).filter(Boolean).join(', ');
    });
    hls.on(E.FRAG_LOADED, () => { retryDelay = 1000; });
    hls.on(E.ERROR, (_, data) => {
      const what = data.type + '/' + data.details +
        (data.response && data.response.code ? ' HTTP ' + data.response.code : '') +
        (data.reason ? ' (' + data.reason + ')' : '') +
        (data.error && data.error.message && !data.reason ? ' (' + data.error.message + ')' : '');
      if (!data.fatal) {
        // hls.js retries these itself: log them as recovered
        if (data.details !== 'bufferStalledError') addError('hls.js: ' + what, true);
        return;
      }
      addError('hls.js fatal: ' + what);
      const T = Hls.ErrorTypes, D = Hls.ErrorDetails;
      if (data.type === T.MEDIA_ERROR) {
        const now = performance.now();
        if (now - mediaErrorAt < 3000) {
          // second media error in a row: try the other AAC flavour, then recover
          hls.swapAudioCodec();
        }
        mediaErrorAt = now;
        hls.recoverMediaError();
        return;
      }
      if (data.type === T.NETWORK_ERROR) {
        const manifest = data.details === D.MANIFEST_LOAD_ERROR ||
          data.details === D.MANIFEST_LOAD_TIMEOUT || data.details === D.MANIFEST_PARSING_ERROR;
        if (manifest) {
          // stream not published yet, or the server restarted: start over
          scheduleRetry('no stream', () => startHlsJs());
        } else {
          scheduleRetry('network error', () => { if (hls) hls.startLoad(); });
        }
        return;
      }
      scheduleRetry('player error', () => startHlsJs());
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  function loadHlsJs() {
    if (window.Hls) { startHlsJs(); return; }
    const s = document.createElement('script');
    s.src = '/vendor/hls.min.js';
    s.onload = startHlsJs;
    s.onerror = () => {
      addError('could not load /vendor/hls.min.js');
      overlay('hls.js missing on the server');
    };
    document.head.appendChild(s);
  }

  // --- native HLS ----------------------------------------------------------
  // Latency for native playback: the browser exposes no program date time
  // (getStartDate() is Safari-only), so the page fetches the playlist itself,
  // maps every segment/part URL to its PROGRAM-DATE-TIME and finds which of
  // them the video element fetched last (Resource Timing). The end of that
  // segment is (about) the end of the buffered range, which pins media time
  // to wall-clock time.
  const pdt = {
    map: new Map(),       // absolute URL -> {start, dur} in ms since epoch
    edge: null,           // ms: end of the newest segment/part in the playlist
    mediaUrl: url,        // media playlist (after following a master playlist)
    lastUrl: null,        // newest media URL the video element fetched
    offsets: [],          // recent estimates of (wall ms) - (media time ms)
    timer: 0,
  };

  function parseAttrs(s) {
    const out = {};
    const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;
    let m;
    while ((m = re.exec(s))) out[m[1]] = m[2].replace(/^"|"$/g, '');
    return out;
  }

  // Returns {master:bool, codecs, variants:[url], segments:[{url,start,dur}]}
  function parsePlaylist(text, baseUrl) {
    const lines = text.split(/\r?\n/);
    const res = { master: false, codecs: null, variants: [], segments: [] };
    let nextPdt = null, dur = 0, partsStart = null, expectVariant = false;
    const abs = (u) => new URL(u, baseUrl).href;
    for (const raw of lines) {
      const line = raw.trim();
      if (!line) continue;
      if (line.startsWith('#EXT-X-STREAM-INF:')) {
        res.master = true;
        const a = parseAttrs(line.slice(18));
        if (a.CODECS && !res.codecs) res.codecs = a.CODECS.split(',').map((c) => c.trim()).join(', ');
        expectVariant = true;
      } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
        const t = Date.parse(line.slice(25));
        if (!isNaN(t)) nextPdt = t;
      } else if (line.startsWith('#EXTINF:')) {
        dur = parseFloat(line.slice(8)) * 1000 || 0;
      } else if (line.startsWith('#EXT-X-PART:')) {
        const a = parseAttrs(line.slice(12));
        const pd = parseFloat(a.DURATION) * 1000 || 0;
        if (partsStart === null) partsStart = nextPdt;
        if (partsStart !== null && a.URI && !a.BYTERANGE) {
          res.segments.push({ url: abs(a.URI), start: partsStart, dur: pd, part: true });
        }
        if (partsStart !== null) partsStart += pd;
      } else if (line.startsWith('#EXT-X-DISCONTINUITY') && !line.startsWith('#EXT-X-DISCONTINUITY-')) {
        nextPdt = null; // a new PDT must follow
      } else if (line[0] !== '#') {
        if (expectVariant) { res.variants.push(abs(line)); expectVariant = false; continue; }
        const seg = { url: abs(line), start: nextPdt, dur };
        if (seg.start !== null) res.segments.push(seg);
        nextPdt = nextPdt !== null ? nextPdt + dur : null;
        partsStart = null; // parts listed after this segment belong to the next one
      }
    }
    return res;
  }

  async function pollPlaylist() {
    try {
      const r = await fetch(pdt.mediaUrl, { cache: 'no-store' });
      if (r.ok) {
        const pl = parsePlaylist(await r.text(), r.url || pdt.mediaUrl);
        if (pl.master) {
          if (pl.codecs) S.codecs = pl.codecs;
          if (pl.variants.length) pdt.mediaUrl = pl.variants[0];
        } else {
          for (const s of pl.segments) pdt.map.set(s.url, s);
          const last = pl.segments[pl.segments.length - 1];
          if (last) pdt.edge = last.start + last.dur;
          if (pdt.map.size > 600) {
            // forget the oldest entries
            const keys = Array.from(pdt.map.keys());
            for (let i = 0; i < keys.length - 300; i++) pdt.map.delete(keys[i]);
          }
        }
      }
    } catch (e) { /* the video element reports real network trouble */ }
    pdt.timer = setTimeout(pollPlaylist, 1000);
  }

  function nativeLatency() {
    // newest media fetch by the video element that we can place in time
    try {
      const entries = performance.getEntriesByType('resource');
      for (const e of entries) {
        if (pdt.map.has(e.name)) pdt.lastUrl = e.name;
      }
      if (entries.length > 200) performance.clearResourceTimings();
    } catch (e) { /* no resource timing */ }

    const b = video.buffered;
    if (!b.length || !S.ready) { S.latency = S.latencyPdt = null; return; }
    const bEnd = b.end(b.length - 1);
    const seg = pdt.lastUrl && pdt.map.get(pdt.lastUrl);
    if (seg) {
      // if the newest fetch is not appended yet this overestimates the
      // offset by one segment, so keep the smallest recent estimate
      pdt.offsets.push(seg.start + seg.dur - bEnd * 1000);
      if (pdt.offsets.length > 12) pdt.offsets.shift();
      const off = Math.min.apply(null, pdt.offsets);
      S.latencyPdt = S.latency = +((Date.now() - (off + video.currentTime * 1000)) / 1000).toFixed(3);
      S.latencySource = 'pdt';
    } else if (pdt.edge !== null) {
      // assume everything in the playlist is buffered
      S.latencyPdt = S.latency = +((Date.now() - pdt.edge) / 1000 + (bEnd - video.currentTime)).toFixed(3);
      S.latencySource = 'pdt-edge';
    }
  }

  function startNative() {
    const reload = () => {
      clearTimeout(retryTimer);
      retryTimer = 0;
      S.ready = false;
      firstPlayingTime = null;
      pdt.offsets = [];
      pdt.lastUrl = null;
      video.removeAttribute('src');
      video.load();
      video.src = url;
      tryPlay();
    };
    video.addEventListener('error', () => {
      const err = video.error;
      if (!err) return;
      addError('native: ' + (['', 'aborted', 'network', 'decode', 'src not supported'][err.code] || 'error ' + err.code) +
        (err.message ? ' (' + err.message + ')' : ''));
      scheduleRetry('playback error', reload);
    });
    restartEngine = reload;
    try { performance.setResourceTimingBufferSize(500); } catch (e) { /* ignore */ }
    video.src = url;
    tryPlay();
    pollPlaylist();
  }

  // --- glass-to-glass clock decoder (?clock=1) ----------------------------
  // Frame layout: see tests/bench/clock_source.py. A 16x9 grid of cells;
  // rows 1..4: col 0 white, col 15 black, cols 1..14 data bits;
  // bits 0..43 = ms timestamp (MSB first), 44..55 = CRC-12 (0x80F).
  function crc12(bits, n) {
    let crc = 0;
    for (let i = 0; i < n; i++) {
      const top = ((crc >> 11) & 1) ^ bits[i];
      crc = (crc << 1) & 0xfff;
      if (top) crc ^= 0x80f;
    }
    return crc;
  }

  function startClock() {
    const CELL = 8;                        // sampling-canvas pixels per cell
    const cv = document.createElement('canvas');
    cv.width = 16 * CELL;
    cv.height = 4 * CELL;
    const ctx = cv.getContext('2d', { willReadFrequently: true });
    let lastStamp = -1;
    S.clockRejected = 0;

    function decode() {
      const w = video.videoWidth, h = video.videoHeight;
      if (!w || !h) return null;
      ctx.drawImage(video, 0, h / 9, w, (4 * h) / 9, 0, 0, cv.width, cv.height);
      const d = ctx.getImageData(0, 0, cv.width, cv.height).data;
      const lum = (col, row) => {
        // mean of the central 4x4 pixels of a cell
        let sum = 0;
        for (let y = row * CELL + 2; y < row * CELL + 6; y++) {
          for (let x = col * CELL + 2; x < col * CELL + 6; x++) {
            const o = (y * cv.width + x) * 4;
            sum += d[o] * 0.299 + d[o + 1] * 0.587 + d[o + 2] * 0.114;
          }
        }
        return sum / 16;
      };
      const bits = [];
      for (let r = 0; r < 4; r++) {
        const white = lum(0, r), black = lum(15, r);
        if (white - black < 80) return null;     // not a clock frame
        const thr = (white + black) / 2;
        for (let c = 1; c <= 14; c++) bits.push(lum(c, r) > thr ? 1 : 0);
      }
      let ms = 0;
      for (let i = 0; i < 44; i++) ms = ms * 2 + bits[i];
      let crc = 0;
      for (let i = 44; i < 56; i++) crc = crc * 2 + bits[i];
      if (crc12(bits, 44) !== crc) { S.clockRejected++; return null; }
      return ms;
    }

    function record(now, stamp) {
      if (stamp === null || stamp === lastStamp) return;
      lastStamp = stamp;
      const lat = Math.round(now - stamp);
      if (lat < -5000 || lat > 600000) { S.clockRejected++; return; } // clocks disagree wildly
      S.clockLatencies.push(lat);
      if (S.clockLatencies.length > 20000) S.clockLatencies.splice(0, 10000);
    }

    if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
      S.clockMethod = 'requestVideoFrameCallback';
      const onFrame = (_now, meta) => {
        // the callback runs just before the frame is composited; add the
        // time until its expected display (normally < one refresh)
        let ahead = meta && meta.expectedDisplayTime ? meta.expectedDisplayTime - performance.now() : 0;
        ahead = Math.min(Math.max(ahead, 0), 100);
        try { record(Date.now() + ahead, decode()); } catch (e) { /* tainted or not ready */ }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      S.clockMethod = 'requestAnimationFrame';
      const onRaf = () => {
        if (!video.paused && video.readyState >= 2) {
          try { record(Date.now(), decode()); } catch (e) { /* ignore */ }
        }
        requestAnimationFrame(onRaf);
      };
      requestAnimationFrame(onRaf);
    }
  }

  // --- codecs from the server, as a fallback ------------------------------
  function serverTracks() {
    if (typeof srtgateParsePaths !== 'function') return;
    fetch('/v1/paths', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((j) => {
        if (!j || S.codecs) return;
        const me = srtgateParsePaths(j).find((p) => p.path === streamPath);
        if (me && me.tracks.length && !S.codecs) S.codecs = me.tracks.join(', ');
      })
      .catch(() => { /* optional */ });
  }

  // --- go ------------------------------------------------------------------
  buildHeader();
  overlay('loading ' + playlist + '…');
  if (clockOn) startClock();
  if (engine === 'native') startNative(); else loadHlsJs();
  setTimeout(serverTracks, 1500);
  setInterval(tick, 250);
})();
