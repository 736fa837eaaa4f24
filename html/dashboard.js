// srtgate operator dashboard logic. Served at /static/dashboard.js, used by
// dashboard.html, which srtgate serves at / on the API port. Talks only to
// the JSON API of research/api.md, on the page's own origin:
//
//   GET /v1/health, /v1/streams, /v1/sessions   polled every second
//   GET /v1/config                              loaded into the editor
//   PUT /v1/config[?dry_run=true]               "Validate" / "Apply"
//   DELETE /v1/sessions/{id}                    "kick" buttons
//
// Token: when any call answers 401 a token prompt (#token) appears; the token
// is kept in sessionStorage and sent as "Authorization: Bearer <token>" on
// every call. ?token=... in the page address is taken the same way and then
// removed from the address bar.
//
// Hooks for tests (tests/browser/dashboard.mjs): body[data-ready="1"] after
// the first poll in which every call succeeded; rows tr[data-path] (streams),
// tr[data-session] with button.kick (sessions; HLS viewers have no button),
// canvas[data-group] (one chart per SRTLA group); #config-text,
// #config-validate, #config-apply, #config-error, #config-result, #notice.
//
// Strings from the API only ever reach the page through textContent,
// attributes and URLs checked to be http(s); nothing is parsed as HTML.
'use strict';
(function () {
  const POLL_MS = 1000;             // period of the health/streams/sessions poll
  const CHART_SPAN_MS = 60000;      // the link charts show the last minute
  const NOTICE_MS = 10000;          // a notice disappears after this long
  const KICK_RETRY_MS = 5000;       // a kicked session's button comes back after this
  const TOKEN_KEY = 'srtgate.apiToken';
  const LINK_COLOURS = ['#5fb3ff', '#58d68d', '#f5b041', '#c39bff', '#ff6b6b', '#4dd0e1',
    '#f48fb1', '#aed581', '#ffd54f', '#90a4ae'];

  const $ = (id) => document.getElementById(id);

  // --- small helpers ----------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // Sets text only when it changed, so polling does not churn the DOM.
  function setText(e, text) {
    const t = text == null ? '' : String(text);
    if (e.textContent !== t) e.textContent = t;
  }
  function setAttr(e, name, value) {
    if (value == null) { if (e.hasAttribute(name)) e.removeAttribute(name); return; }
    const v = String(value);
    if (e.getAttribute(name) !== v) e.setAttribute(name, v);
  }
  function num(v) {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    return typeof n === 'number' && Number.isFinite(n) ? n : null;
  }
  function str(v) { return v == null ? '' : String(v); }

  // 4100000 -> "4.1 Mbit/s"
  function fmtBitrate(bps) {
    const n = num(bps);
    if (n === null) return '—';
    const units = [[1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s']];
    for (const [f, u] of units) {
      if (Math.abs(n) >= f) {
        const x = n / f;
        return (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + ' ' + u;
      }
    }
    return Math.round(n) + ' bit/s';
  }
  function fmtBytes(b) {
    const n = num(b);
    if (n === null) return '—';
    const units = [[1e12, 'TB'], [1e9, 'GB'], [1e6, 'MB'], [1e3, 'kB']];
    for (const [f, u] of units) if (n >= f) return (n / f).toFixed(n / f >= 100 ? 0 : 1) + ' ' + u;
    return Math.round(n) + ' B';
  }
  // seconds -> "42 s", "5 m 03 s", "2 h 05 m", "3 d 04 h"
  function fmtDuration(sec) {
    const n = num(sec);
    if (n === null || n < 0) return '—';
    const s = Math.floor(n);
    const two = (x) => String(x).padStart(2, '0');
    if (s < 60) return (n < 10 ? n.toFixed(1) : s) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' m ' + two(s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + two(Math.floor(s / 60) % 60) + ' m';
    return Math.floor(s / 86400) + ' d ' + two(Math.floor(s / 3600) % 24) + ' h';
  }
  function fmtCount(v) {
    const n = num(v);
    return n === null ? '—' : n.toLocaleString('en-US');
  }
  function fmtMs(v) {
    const n = num(v);
    return n === null ? '—' : (n >= 100 ? n.toFixed(0) : n.toFixed(1)) + ' ms';
  }
  // A session's short id for display: the API's "short", else the id's head.
  function shortId(s) {
    if (s && s.short) return String(s.short);
    const id = str(s && s.id);
    // HLS viewer ids: "hls-" and a tail, which differs even when they count up
    if (id.startsWith('hls-')) return id.length > 10 ? 'hls-…' + id.slice(-6) : id;
    return id.slice(0, 6);
  }

  // --- token ------------------------------------------------------------

  let memoryToken = '';   // fallback when sessionStorage is unavailable
  // Header values must be Latin-1; a token is printable ASCII without spaces.
  const tokenOk = (t) => /^[\x21-\x7e]+$/.test(t);
  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || memoryToken; } catch (e) { return memoryToken; }
  }
  function setToken(t) {
    memoryToken = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: memory only */ }
  }
  // ?token=... : keep it, then take it out of the address bar (and history).
  (function tokenFromAddress() {
    const u = new URL(location.href);
    if (!u.searchParams.has('token')) return;
    const t = (u.searchParams.get('token') || '').trim();
    if (tokenOk(t)) setToken(t);
    u.searchParams.delete('token');
    history.replaceState(history.state, '', u.pathname + u.search + u.hash);
  })();

  const tokenForm = $('token-form');
  const tokenInput = $('token');
  function askForToken() {
    const had = !!getToken();
    setText($('token-message'), had
      ? 'The API refused the token. Enter the right one (api.token in the configuration).'
      : 'The API needs a token for this (api.token in the configuration).');
    tokenForm.hidden = false;
  }
  tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = tokenInput.value.trim();
    if (!tokenOk(t)) {
      setText($('token-message'), 'A token is printable ASCII without spaces.');
      return;
    }
    setToken(t);
    tokenInput.value = '';
    tokenForm.hidden = true;
    notice('Token saved for this browser tab.', 'good');
    pollSoon(0);
    loadConfig(false);   // GET /v1/config needs the token: a wrong one shows at once
  });
  $('token-forget').addEventListener('click', () => {
    setToken('');
    tokenInput.value = '';
    tokenForm.hidden = true;
    notice('Token forgotten.', 'good');
  });

  // --- API calls --------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body, message) {
      super(message);
      this.status = status;   // 0 when the server could not be reached
      this.body = body;       // parsed JSON error body, or null
    }
  }

  // Returns {status, json}; throws ApiError for a failed request or a non-2xx
  // answer (message "HTTP 409: <the JSON error text>").
  async function api(method, path, opts) {
    const o = opts || {};
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    if (o.body !== undefined) headers['Content-Type'] = o.type || 'application/json';
    let r;
    try {
      r = await fetch(path, { method, headers, body: o.body, cache: 'no-store', credentials: 'same-origin' });
    } catch (e) {
      throw new ApiError(0, null, 'API unreachable (' + (e && e.message || e) + ')');
    }
    const text = await r.text().catch(() => '');
    let json = null;
    if (text) { try { json = JSON.parse(text); } catch (e) { /* not JSON */ } }
    if (r.status === 401) askForToken();
    if (!r.ok) {
      const what = json && json.error != null ? String(json.error)
        : text.trim().slice(0, 300) || r.statusText || 'error';
      throw new ApiError(r.status, json && typeof json === 'object' ? json : null,
        'HTTP ' + r.status + ': ' + what);
    }
    return { status: r.status, json };
  }

  // --- notices ----------------------------------------------------------

  // #notice is the live region (always in the page, so screen readers hear
  // it); #notice-box around it is shown while there is something to say.
  // Good news goes away by itself, errors stay until dismissed or replaced.
  const noticeBox = $('notice-box');
  const noticeEl = $('notice');
  let noticeTimer = 0;
  function clearNotice() {
    clearTimeout(noticeTimer);
    noticeBox.hidden = true;
    noticeEl.textContent = '';
  }
  function notice(text, kind) {
    clearTimeout(noticeTimer);
    noticeBox.className = 'notice ' + (kind || '');
    noticeEl.textContent = text;
    noticeBox.hidden = false;
    if (kind !== 'bad') noticeTimer = setTimeout(clearNotice, NOTICE_MS);
  }
  $('notice-close').addEventListener('click', clearNotice);

  // --- keyed table rows -------------------------------------------------
  // Rows are kept per key and only their text is updated, so buttons stay
  // the same elements between polls (clicks and keyboard focus survive).

  // Keeps `tbody` showing one row per item, in the items' order.
  function syncRows(tbody, rows, items, keyOf, create, update) {
    const seen = new Set();
    let i = 0;
    for (const item of items) {
      const k = keyOf(item);
      if (!k || seen.has(k)) continue;
      seen.add(k);
      let tr = rows.get(k);
      if (!tr) { tr = create(k); rows.set(k, tr); }
      update(tr, item);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
      i++;
    }
    for (const [k, tr] of rows) {
      if (!seen.has(k)) { tr.remove(); rows.delete(k); }
    }
    return seen.size;
  }
  const cellsOf = new WeakMap();   // row -> {name: td or control}
  function td(tr, label, cls) {
    const c = el('td', cls);
    c.dataset.label = label;       // shown before the value in narrow windows
    tr.appendChild(c);
    return c;
  }

  // --- health -----------------------------------------------------------

  let health = null;
  function renderHealth(h) {
    health = h && typeof h === 'object' ? h : {};
    setText($('h-version'), str(health.version) || '—');
    setText($('h-uptime'), fmtDuration(health.uptime_s));
    setText($('h-workers'), health.workers == null ? '—' : str(health.workers));
    setText($('h-generation'), health.config_generation == null ? '—' : str(health.config_generation));
    setText($('config-file'), health.config_file ? 'file ' + health.config_file : '');
  }

  // The player lives on the HTTP port: http://<this host>:<ports.http[0]><urls.player>.
  function playerHref(urls) {
    const p = urls && urls.player;
    if (typeof p !== 'string' || !p) return null;
    const ports = health && health.ports && health.ports.http;
    const port = Array.isArray(ports) ? num(ports[0]) : null;
    let u;
    try {
      if (/^[a-z][a-z0-9+.-]*:/i.test(p)) u = new URL(p);
      else if (port !== null && port > 0 && port < 65536) {
        u = new URL(p.startsWith('/') ? p : '/' + p, 'http://' + location.hostname + ':' + port);
      } else return null;
    } catch (e) { return null; }
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  }

  // --- streams ----------------------------------------------------------

  const streamRows = new Map();

  function makeStreamRow(path) {
    const tr = el('tr');
    tr.dataset.path = path;
    const c = {};
    c.path = td(tr, 'Path', 'mono');
    c.tracks = td(tr, 'Tracks');
    c.bitrate = td(tr, 'Bitrate', 'num');
    c.readers = td(tr, 'Readers');
    c.publisher = td(tr, 'Publisher', 'mono');
    const act = td(tr, 'Actions', 'actions');
    c.player = el('a', 'open-player', 'open player');
    c.player.target = '_blank';
    c.player.rel = 'noopener noreferrer';
    c.kick = el('button', 'kick-publisher', 'kick publisher');
    c.kick.type = 'button';
    c.kick.addEventListener('click', () => {
      const id = c.kick.dataset.session;
      if (id) kick(id, c.kick.dataset.short || id, c.kick);
    });
    act.append(c.player, ' ', c.kick);
    cellsOf.set(tr, c);
    return tr;
  }

  function trackNames(tracks) {
    if (!Array.isArray(tracks)) return [];
    return tracks.map((t) => (t && typeof t === 'object' ? t.codec || t.name || t.type : t))
      .filter((t) => t != null && t !== '').map(String);
  }

  // The stream description: "H264 1280x720 30fps B-frames · AAC 48kHz 2ch".
  function describeTracks(s) {
    if (!Array.isArray(s.description) || !s.description.length) return trackNames(s.tracks).join(' · ');
    return s.description.map((t) => {
      const parts = [String(t.codec)];
      if (num(t.width) && num(t.height)) parts.push(t.width + 'x' + t.height);
      if (num(t.frame_rate)) parts.push(Math.round(t.frame_rate * 100) / 100 + 'fps');
      if (t.bframes === true) parts.push('B-frames');
      if (num(t.sample_rate)) parts.push(Math.round(t.sample_rate / 100) / 10 + 'kHz');
      if (num(t.channels)) parts.push(t.channels + 'ch');
      return parts.join(' ');
    }).join(' · ');
  }

  // {"srt":1,"srtla":0,"hls":2,"total":3} -> "3: srt 1 · hls 2"
  function fmtReaders(r) {
    if (!r || typeof r !== 'object') return '—';
    const parts = [];
    for (const [k, v] of Object.entries(r)) {
      if (k === 'total') continue;
      const n = num(v);
      if (n) parts.push(k + ' ' + n);
    }
    const total = num(r.total) !== null ? num(r.total)
      : Object.entries(r).reduce((a, [k, v]) => a + (k === 'total' ? 0 : num(v) || 0), 0);
    if (!total) return 'none';
    return total + (parts.length ? ': ' + parts.join(' · ') : '');
  }

  function updateStreamRow(tr, s) {
    const c = cellsOf.get(tr);
    setText(c.path, s.path);
    setText(c.tracks, describeTracks(s) || '—');
    if (s.ts_output) c.tracks.title = 'SRT readers get: ' + s.ts_output;
    setText(c.bitrate, fmtBitrate(s.bitrate_bps));
    setText(c.readers, fmtReaders(s.readers));
    const pub = s.publisher && typeof s.publisher === 'object' ? s.publisher : null;
    if (pub) {
      setText(c.publisher, (pub.protocol ? pub.protocol + ' ' : '') + str(pub.peer) + ' · ' + shortId(pub) +
        (pub.user ? ' · ' + pub.user : ''));
      setAttr(c.publisher, 'title', 'session ' + str(pub.id));
    } else {
      setText(c.publisher, 'no publisher');
      setAttr(c.publisher, 'title', null);
    }
    const href = playerHref(s.urls);
    setAttr(c.player, 'href', href);
    c.player.classList.toggle('off', !href);
    setAttr(c.player, 'aria-disabled', href ? null : 'true');
    setAttr(c.player, 'aria-label', 'open the player for ' + s.path + ' in a new tab');
    const pubId = pub && pub.id != null ? String(pub.id) : '';
    if (c.kick.dataset.session !== pubId) {
      c.kick.dataset.session = pubId;
      c.kick.dataset.short = pub ? shortId(pub) : '';
      c.kick.disabled = !pubId;
    }
    setAttr(c.kick, 'aria-label', pub ? 'kick the publisher of ' + s.path + ' (session ' + shortId(pub) + ')'
      : 'no publisher to kick on ' + s.path);
  }

  function renderStreams(json) {
    const list = (json && Array.isArray(json.streams) ? json.streams : [])
      .filter((s) => s && typeof s.path === 'string' && s.path)
      .sort((a, b) => a.path.localeCompare(b.path));
    const n = syncRows($('streams'), streamRows, list, (s) => s.path, makeStreamRow, updateStreamRow);
    $('streams-table').parentElement.hidden = n === 0;
    $('streams-empty').hidden = n !== 0;
    setText($('streams-count'), n ? String(n) : '');
  }

  // --- sessions and HLS viewers -----------------------------------------

  const sessionRows = new Map();
  const viewerRows = new Map();
  const viewerRates = new Map();   // viewer id -> {t, bytes, bps}: bitrate from bytes_out deltas

  function makeSessionRow(id, isViewer) {
    const tr = el('tr');
    tr.dataset.session = id;
    if (isViewer) tr.dataset.viewer = '1';
    const c = {};
    c.id = td(tr, 'Id', 'mono');
    c.protocol = td(tr, 'Protocol');
    c.role = td(tr, 'Role');
    c.path = td(tr, 'Path', 'mono');
    c.peer = td(tr, 'Peer', 'mono');
    c.uptime = td(tr, 'Uptime', 'num');
    c.bitrate = td(tr, 'Bitrate', 'num');
    c.rtt = td(tr, 'RTT', 'num');
    c.lost = td(tr, 'Lost', 'num');
    c.retx = td(tr, 'Retransmits', 'num');
    c.act = td(tr, isViewer ? 'Last request' : 'Actions', isViewer ? 'num dim' : 'actions');
    if (!isViewer) {
      c.kick = el('button', 'kick', 'kick');
      c.kick.type = 'button';
      c.kick.addEventListener('click', () => kick(id, c.kick.dataset.short || id, c.kick));
      c.act.appendChild(c.kick);
    } else {
      c.peerText = document.createTextNode('');
      c.agent = el('small');
      const box = el('span');   // one box, so the narrow layout keeps peer and agent together
      box.append(c.peerText, c.agent);
      c.peer.appendChild(box);
    }
    cellsOf.set(tr, c);
    return tr;
  }

  function updateSessionRow(tr, s) {
    const c = cellsOf.get(tr);
    const st = s.stats && typeof s.stats === 'object' ? s.stats : {};
    setText(c.id, shortId(s));
    setAttr(c.id, 'title', str(s.id));
    setText(c.protocol, str(s.protocol) || '—');
    setText(c.role, str(s.role) || '—');
    setText(c.path, str(s.path) || '—');
    setText(c.peer, str(s.peer) + (s.user ? ' · ' + s.user : ''));
    setText(c.uptime, fmtDuration(s.uptime_s));
    setText(c.bitrate, fmtBitrate(st.bitrate_bps));
    const rttVar = num(st.rtt_var_ms);
    setText(c.rtt, num(st.rtt_ms) === null ? '—' : rttVar === null ? fmtMs(st.rtt_ms)
      : fmtMs(st.rtt_ms).replace(' ms', '') + ' ± ' + fmtMs(rttVar));
    setText(c.lost, fmtCount(st.lost));
    setText(c.retx, fmtCount(st.retransmits));
    c.kick.dataset.short = shortId(s);
    setAttr(c.kick, 'aria-label', 'kick session ' + shortId(s) + ' (' + str(s.protocol) + ' ' + str(s.role) +
      ' ' + str(s.path) + ' from ' + str(s.peer) + ')');
  }

  function updateViewerRow(tr, v) {
    const c = cellsOf.get(tr);
    setText(c.id, shortId(v));
    setAttr(c.id, 'title', str(v.id));
    setText(c.protocol, str(v.protocol) || 'hls');
    setText(c.role, str(v.role) || 'read');
    setText(c.path, str(v.path) || '—');
    if (c.peerText.data !== str(v.peer)) c.peerText.data = str(v.peer);
    setText(c.agent, str(v.user_agent));
    setAttr(c.agent, 'title', v.user_agent ? str(v.user_agent) : null);
    const started = num(v.started_unix_ms);
    setText(c.uptime, started === null ? '—' : fmtDuration(Math.max(0, Date.now() - started) / 1000));
    const rate = viewerRates.get(str(v.id));
    setText(c.bitrate, rate && rate.bps !== null ? fmtBitrate(rate.bps) : '—');
    setText(c.rtt, '—');
    setText(c.lost, '—');
    setText(c.retx, '—');
    const ago = num(v.last_seen_ms_ago);
    setText(c.act, ago === null ? '' : 'idle ' + fmtDuration(ago / 1000));
  }

  // bytes_out deltas between polls -> bits per second, per viewer
  function trackViewerRates(viewers, t) {
    const alive = new Set();
    for (const v of viewers) {
      const id = str(v.id);
      const bytes = num(v.bytes_out);
      alive.add(id);
      const prev = viewerRates.get(id);
      let bps = prev ? prev.bps : null;
      if (prev && bytes !== null && bytes >= prev.bytes && t > prev.t) {
        bps = (bytes - prev.bytes) * 8000 / (t - prev.t);
      }
      if (bytes !== null) viewerRates.set(id, { t, bytes, bps });
    }
    for (const id of viewerRates.keys()) if (!alive.has(id)) viewerRates.delete(id);
  }

  const roleOrder = (r) => (r === 'publish' ? 0 : 1);
  function renderSessions(json, t) {
    const sessions = (json && Array.isArray(json.sessions) ? json.sessions : [])
      .filter((s) => s && s.id != null)
      .sort((a, b) => str(a.path).localeCompare(str(b.path)) || roleOrder(a.role) - roleOrder(b.role) ||
        str(a.protocol).localeCompare(str(b.protocol)) || str(a.id).localeCompare(str(b.id)));
    const viewers = (json && Array.isArray(json.hls_viewers) ? json.hls_viewers : [])
      .filter((v) => v && v.id != null)
      .sort((a, b) => str(a.path).localeCompare(str(b.path)) ||
        (num(a.started_unix_ms) || 0) - (num(b.started_unix_ms) || 0) || str(a.id).localeCompare(str(b.id)));
    trackViewerRates(viewers, t);
    const ns = syncRows($('sessions'), sessionRows, sessions, (s) => str(s.id),
      (id) => makeSessionRow(id, false), updateSessionRow);
    const nv = syncRows($('viewers'), viewerRows, viewers, (v) => str(v.id),
      (id) => makeSessionRow(id, true), updateViewerRow);
    $('viewers-head').hidden = nv === 0;
    $('sessions-table').parentElement.hidden = ns + nv === 0;
    $('sessions-empty').hidden = ns + nv !== 0;
    setText($('sessions-count'), ns + nv ? ns + (nv ? ' + ' + nv + ' HLS' : '') : '');
    renderGroups(json && Array.isArray(json.srtla_groups) ? json.srtla_groups : [], t);
  }

  // --- kicking ----------------------------------------------------------

  async function kick(id, label, button) {
    if (button) button.disabled = true;
    try {
      const r = await api('DELETE', '/v1/sessions/' + encodeURIComponent(id));
      const which = r.json && r.json.kicked ? String(r.json.kicked) : id;
      notice('Session ' + label + ' kicked (' + which + '); it closes with "kicked through the API".', 'good');
      pollSoon(0);
      // the row normally disappears with the next poll; if it lingers, allow another try
      if (button) setTimeout(() => { button.disabled = false; }, KICK_RETRY_MS);
    } catch (e) {
      notice('Could not kick session ' + label + ': ' + e.message, 'bad');
      if (button) button.disabled = false;
    }
  }

  // --- SRTLA groups and their link charts -------------------------------

  // group id -> {el, title, counters, canvas, legend, linksBody, linkRows, links: Map(addr -> link history)}
  const groups = new Map();

  function makeGroup(id) {
    const g = { id, links: new Map(), linkRows: new Map(), nextColour: 0 };
    g.el = el('article', 'group');
    g.el.dataset.groupId = id;
    g.title = el('h3');
    g.counters = el('dl', 'counters');
    g.canvas = el('canvas');
    g.canvas.dataset.group = id;
    g.canvas.setAttribute('role', 'img');
    g.canvas.textContent = 'Bitrate per link over the last minute; the values are listed below.';
    g.legend = el('ul', 'legend');
    g.legend.setAttribute('aria-label', 'links, current bitrate');
    const wrap = el('div', 'table-wrap');
    const table = el('table', 'grid');
    const head = el('thead');
    const hr = el('tr');
    for (const [name, cls] of [['Link', ''], ['Packets', 'num'], ['Bytes', 'num'], ['Bitrate', 'num'],
      ['Last seen', 'num']]) {
      const th = el('th', cls, name);
      th.scope = 'col';
      hr.appendChild(th);
    }
    head.appendChild(hr);
    g.linksBody = el('tbody');
    table.append(head, g.linksBody);
    wrap.appendChild(table);
    g.el.append(g.title, g.counters, g.canvas, g.legend, wrap);
    return g;
  }

  const GROUP_KNOWN = new Set(['id', 'short', 'peer', 'path', 'session', 'links']);

  // A group counter of unknown meaning, shown by its name's unit suffix.
  function counterName(k) {
    return k.replace(/_(unix_ms|ms|s|bps)$/, '').replace(/_/g, ' ');
  }
  function fmtCounter(k, v) {
    if (typeof v !== 'number') return String(v);
    if (/_unix_ms$/.test(k)) return new Date(v).toLocaleTimeString();
    if (/_ms$/.test(k)) return fmtMs(v);
    if (/_s$/.test(k)) return fmtDuration(v);
    if (/_bps$/.test(k)) return fmtBitrate(v);
    if (/bytes/.test(k)) return fmtBytes(v);
    return fmtCount(v);
  }

  function updateGroup(g, grp, t) {
    const short = grp.short ? str(grp.short) : str(grp.id).slice(0, 6);
    g.title.textContent = '';
    const sid = el('span', 'mono', short);
    sid.title = 'group ' + str(grp.id);
    g.title.append('group ', sid, ' · ' + (str(grp.path) || 'no path') + ' · from ' + (str(grp.peer) || '?'));
    if (grp.session) {
      const s = grp.session;
      g.title.append(' · session ' + (typeof s === 'object' ? shortId(s) : str(s).slice(0, 6)));
    }
    g.canvas.setAttribute('aria-label', 'Bitrate per link of SRTLA group ' + short + ' over the last 60 seconds');

    // the group's other counters, whatever they are: scalars only
    const counters = Object.entries(grp).filter(([k, v]) => !GROUP_KNOWN.has(k) &&
      (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean'));
    const key = JSON.stringify(counters);
    if (g.countersKey !== key) {
      g.countersKey = key;
      g.counters.textContent = '';
      for (const [k, v] of counters) {
        const d = el('div');
        d.append(el('dt', '', counterName(k)), el('dd', '', fmtCounter(k, v)));
        g.counters.appendChild(d);
      }
      g.counters.hidden = counters.length === 0;
    }

    // link histories: bitrate from successive byte counts
    const links = (Array.isArray(grp.links) ? grp.links : []).filter((l) => l && l.addr != null);
    const present = new Set();
    for (const l of links) {
      const addr = str(l.addr);
      present.add(addr);
      let h = g.links.get(addr);
      if (!h) {
        h = { addr, colour: LINK_COLOURS[g.nextColour++ % LINK_COLOURS.length], points: [], last: null };
        g.links.set(addr, h);
      }
      const bytes = num(l.bytes);
      if (bytes !== null) {
        if (h.last && bytes >= h.last.bytes && t > h.last.t) {
          h.points.push([t, (bytes - h.last.bytes) * 8000 / (t - h.last.t)]);
        } else if (h.last && bytes < h.last.bytes) {
          h.points.push([t, null]);   // counter went back (link registered again): break the line
        }
        h.last = { t, bytes };
      }
    }
    for (const [addr, h] of g.links) {
      if (!present.has(addr) && h.last) { h.last = null; h.points.push([t, null]); }
      while (h.points.length && h.points[0][0] < t - CHART_SPAN_MS) h.points.shift();
      if (!present.has(addr) && !h.points.some((p) => p[1] !== null)) g.links.delete(addr);
    }

    // links table
    syncRows(g.linksBody, g.linkRows, links, (l) => str(l.addr), (addr) => {
      const tr = el('tr');
      tr.dataset.link = addr;
      const c = {};
      c.addr = td(tr, 'Link', 'mono');
      c.swatch = el('span', 'swatch');
      c.addrText = document.createTextNode('');
      const box = el('span');
      box.append(c.swatch, ' ', c.addrText);
      c.addr.appendChild(box);
      c.packets = td(tr, 'Packets', 'num');
      c.bytes = td(tr, 'Bytes', 'num');
      c.bitrate = td(tr, 'Bitrate', 'num');
      c.seen = td(tr, 'Last seen', 'num');
      cellsOf.set(tr, c);
      return tr;
    }, (tr, l) => {
      const c = cellsOf.get(tr);
      const h = g.links.get(str(l.addr));
      c.swatch.style.background = h ? h.colour : 'transparent';
      if (c.addrText.data !== str(l.addr)) c.addrText.data = str(l.addr);
      setText(c.packets, fmtCount(l.packets));
      setText(c.bytes, fmtBytes(l.bytes));
      setText(c.bitrate, fmtBitrate(l.bitrate_bps));
      const ago = num(l.last_seen_ms);
      setText(c.seen, ago === null ? '—' : fmtMs(ago) + ' ago');
    });

    // legend: every line on the chart, including links that just left
    const want = [...g.links.values()];
    const legendKey = JSON.stringify(want.map((h) => [h.addr, h.colour, present.has(h.addr), lastValue(h)]));
    if (g.legendKey !== legendKey) {
      g.legendKey = legendKey;
      g.legend.textContent = '';
      for (const h of want) {
        const li = el('li', present.has(h.addr) ? '' : 'gone');
        const sw = el('span', 'swatch');
        sw.style.background = h.colour;
        const v = lastValue(h);
        li.append(sw, el('span', 'mono', h.addr), el('span', '', present.has(h.addr)
          ? (v === null ? '…' : fmtBitrate(v)) : '(gone)'));
        g.legend.appendChild(li);
      }
    }
    drawChart(g, t);
  }

  function lastValue(h) {
    const p = h.points[h.points.length - 1];
    return p ? p[1] : null;
  }

  function renderGroups(list, t) {
    const box = $('groups');
    const seen = new Set();
    for (const grp of list) {
      if (!grp || grp.id == null) continue;
      const id = str(grp.id);
      if (seen.has(id)) continue;
      seen.add(id);
      let g = groups.get(id);
      if (!g) { g = makeGroup(id); groups.set(id, g); }
      if (g.el.parentNode !== box) box.appendChild(g.el);
      updateGroup(g, grp, t);
    }
    for (const [id, g] of groups) if (!seen.has(id)) { g.el.remove(); groups.delete(id); }
    $('groups-empty').hidden = seen.size !== 0;
    setText($('groups-count'), seen.size ? String(seen.size) : '');
  }

  // Nice axis maximum: 1, 2, 2.5 or 5 times a power of ten, at least v.
  function niceCeil(v) {
    if (!(v > 0)) return 1e6;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // axis label in the unit of the axis maximum: "0", "2.5 Mbit/s", "10 Mbit/s"
  function fmtAxis(v, max) {
    if (v === 0) return '0';
    const [f, u] = max >= 1e9 ? [1e9, 'Gbit/s'] : max >= 1e6 ? [1e6, 'Mbit/s']
      : max >= 1e3 ? [1e3, 'kbit/s'] : [1, 'bit/s'];
    const x = v / f;
    return String(Number(x.toFixed(2))) + ' ' + u;
  }

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // One line per link: bitrate over the last CHART_SPAN_MS, newest at the right.
  function drawChart(g, now) {
    const cv = g.canvas;
    const w = cv.clientWidth, h = cv.clientHeight;
    if (!w || !h) return;   // not laid out (hidden)
    const dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
    }
    const ctx = cv.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const muted = cssVar('--muted', '#8a93a6');
    const line = cssVar('--line', '#262b36');
    const left = 80, right = 12, top = 8, bottom = 20;
    const pw = Math.max(10, w - left - right), ph = Math.max(10, h - top - bottom);
    let max = 0;
    for (const hist of g.links.values()) for (const p of hist.points) if (p[1] > max) max = p[1];
    const yMax = niceCeil(max * 1.05);
    const x = (t) => left + pw * (1 - (now - t) / CHART_SPAN_MS);
    const y = (v) => top + ph * (1 - v / yMax);

    ctx.font = '11px ui-monospace, "DejaVu Sans Mono", monospace';
    ctx.lineWidth = 1;
    ctx.strokeStyle = line;
    ctx.fillStyle = muted;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let i = 0; i <= 4; i++) {
      const v = yMax * i / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + pw, yy); ctx.stroke();
      ctx.fillText(fmtAxis(v, yMax), left - 6, yy);
    }
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    const step = pw < 320 ? 30 : 15;
    for (let s = 60; s >= 0; s -= step) {
      const xx = Math.round(left + pw * (1 - s / 60)) + 0.5;
      ctx.beginPath(); ctx.moveTo(xx, top); ctx.lineTo(xx, top + ph); ctx.stroke();
      ctx.textAlign = s === 0 ? 'right' : s === 60 ? 'left' : 'center';
      ctx.fillText(s === 0 ? 'now' : '−' + s + ' s', xx, top + ph + 4);
    }

    ctx.save();
    ctx.beginPath(); ctx.rect(left, top - 1, pw, ph + 2); ctx.clip();
    ctx.lineWidth = 1.75;
    ctx.lineJoin = 'round';
    for (const hist of g.links.values()) {
      ctx.strokeStyle = hist.colour;
      ctx.fillStyle = hist.colour;
      let drawing = false, run = 0, lastX = 0, lastY = 0;
      ctx.beginPath();
      for (const [t, v] of hist.points) {
        if (v === null) {   // a gap: end the line here (a lone sample shows as a dot)
          if (run === 1) ctx.fillRect(lastX - 1.5, lastY - 1.5, 3, 3);
          drawing = false;
          run = 0;
          continue;
        }
        lastX = x(t); lastY = y(v);
        if (drawing) ctx.lineTo(lastX, lastY); else ctx.moveTo(lastX, lastY);
        drawing = true; run++;
      }
      ctx.stroke();
      if (run === 1) ctx.fillRect(lastX - 1.5, lastY - 1.5, 3, 3);   // a single sample: a dot
    }
    ctx.restore();
  }

  let resizeQueued = false;
  window.addEventListener('resize', () => {
    if (resizeQueued) return;
    resizeQueued = true;
    requestAnimationFrame(() => {
      resizeQueued = false;
      const now = performance.now();
      for (const g of groups.values()) drawChart(g, now);
    });
  });

  // --- polling ----------------------------------------------------------

  const statusEl = $('status');
  let ready = false;
  let pollTimer = 0, polling = false, pollAgain = false;

  function pollSoon(ms) {
    clearTimeout(pollTimer);
    if (polling) { pollAgain = true; return; }
    pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    polling = true;
    try {
      const timed = (p) => p.then((r) => ({ r, t: performance.now() }));
      const [h, st, se] = await Promise.allSettled([api('GET', '/v1/health'), api('GET', '/v1/streams'),
        timed(api('GET', '/v1/sessions'))]);
      if (h.status === 'fulfilled') renderHealth(h.value.json);
      if (st.status === 'fulfilled') renderStreams(st.value.json);
      if (se.status === 'fulfilled') renderSessions(se.value.r.json, se.value.t);
      const failed = [h, st, se].filter((x) => x.status === 'rejected');
      if (failed.length === 0) {
        setText(statusEl, 'updated ' + new Date().toLocaleTimeString());
        statusEl.className = 'status';
        if (!ready) { ready = true; document.body.dataset.ready = '1'; }
      } else {
        setText(statusEl, failed[0].reason.message + ' — retrying');
        statusEl.className = 'status bad';
      }
    } catch (e) {
      // a bug in the rendering code: say so, keep polling
      setText(statusEl, 'dashboard error: ' + (e && e.message || e));
      statusEl.className = 'status bad';
      console.error('srtgate dashboard:', e);
    } finally {
      polling = false;
      if (pollAgain) { pollAgain = false; pollSoon(0); } else pollSoon(POLL_MS);
    }
  }

  // --- configuration editor ---------------------------------------------

  const configText = $('config-text');
  const configError = $('config-error');
  const configResult = $('config-result');
  const configButtons = [$('config-validate'), $('config-apply'), $('config-reload')];
  let configDirty = false;     // edited since loaded: a load must not overwrite it
  let configLoaded = false;
  configText.addEventListener('input', () => { configDirty = true; });

  // force: replace the editor's text even when it was edited.
  async function loadConfig(force) {
    if (!configLoaded) configText.dataset.state = 'loading';
    try {
      const r = await api('GET', '/v1/config');
      if (configDirty && !force) return;
      configText.value = JSON.stringify(r.json, null, 2) + '\n';
      configDirty = false;
      configLoaded = true;
      configText.dataset.state = 'loaded';
    } catch (e) {
      configText.dataset.state = 'error';
      configError.textContent = 'Could not load the configuration: ' + e.message;
    }
  }

  // {"error","file","line","column","key","hint"} (any may be missing) ->
  // "request body:3:7: <error> (key srt.latency) — hint: …"
  function formatConfigError(b) {
    const where = [];
    if (b.file != null && b.file !== '') where.push(String(b.file));
    const line = num(b.line), col = num(b.column);
    if (line !== null) {
      where.push(String(line));
      if (col !== null) where.push(String(col));
    }
    let s = where.length ? where.join(':') + ': ' : '';
    s += b.error != null && b.error !== '' ? String(b.error) : 'invalid configuration';
    if (b.key != null && b.key !== '') s += ' (key ' + b.key + ')';
    if (b.hint != null && b.hint !== '') s += ' — hint: ' + b.hint;
    return s;
  }

  // Put the caret on (1-based) line and column and select the rest of the
  // token there, then scroll so that line shows.
  function selectAt(line, column) {
    const lines = configText.value.split('\n');
    const li = Math.min(Math.max(1, Math.floor(line)), lines.length) - 1;
    let off = 0;
    for (let i = 0; i < li; i++) off += lines[i].length + 1;
    const text = lines[li];
    const ci = Math.min(Math.max(0, Math.floor(column || 1) - 1), text.length);
    // a quoted value is selected with its quotes, anything else up to a separator
    const rest = text.slice(ci);
    const tail = /^"(?:[^"\\]|\\.)*"?|^'[^']*'?|^[^\s,:"']*/.exec(rest);
    const start = off + ci;
    const end = start + (tail ? tail[0].length : 0);
    configText.focus({ preventScroll: true });
    configText.setSelectionRange(start, end);
    const lh = parseFloat(getComputedStyle(configText).lineHeight) || 18;
    configText.scrollTop = Math.max(0, (li - 3) * lh);
    configText.scrollIntoView({ block: 'nearest' });
  }

  function summariseChanges(ch) {
    if (ch == null) return 'none reported';
    if (typeof ch !== 'object') return String(ch);
    const busy = Object.entries(ch).filter(([, v]) => v != null && v !== false && v !== 0 && v !== '' &&
      !(Array.isArray(v) && v.length === 0) &&
      !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0));
    return busy.length ? busy.map(([k]) => k.replace(/_/g, ' ')).join(', ') : 'none';
  }

  function showConfigResult(res, dryRun) {
    const r = res && typeof res === 'object' ? res : {};
    configResult.textContent = '';
    const head = dryRun ? 'Valid (dry run, nothing written or applied).'
      : r.applied === false ? 'Accepted, not applied.' : 'Applied.';
    const restart = Array.isArray(r.restart_needed) ? r.restart_needed.map(String) : [];
    const facts = [
      'applied: ' + (r.applied === true ? 'yes' : r.applied === false ? 'no' : '—'),
      'generation: ' + (r.generation == null ? '—' : String(r.generation)),
      'restart needed: ' + (restart.length ? restart.join(', ') : 'no'),
      'closed sessions: ' + (r.closed_sessions == null ? '—' : String(r.closed_sessions)),
      'changes: ' + summariseChanges(r.changes),
    ];
    configResult.append(el('strong', '', head), ' ' + facts.join(' · '));
    if (r.changes && typeof r.changes === 'object') {
      const d = el('details');
      d.append(el('summary', '', 'changes in detail'), el('pre', 'mono', JSON.stringify(r.changes, null, 2)));
      configResult.appendChild(d);
    }
  }

  async function submitConfig(dryRun) {
    const body = configText.value;
    configError.textContent = '';
    configResult.textContent = '';
    for (const b of configButtons) b.disabled = true;
    configText.setAttribute('aria-busy', 'true');
    try {
      const r = await api('PUT', '/v1/config' + (dryRun ? '?dry_run=true' : ''),
        { body, type: 'application/yaml' });
      showConfigResult(r.json, dryRun);
      if (!dryRun) {
        pollSoon(0);                 // new generation in the header
        await loadConfig(true);      // the editor shows what now runs
      }
    } catch (e) {
      if (e.status === 400 && e.body) {
        configError.textContent = formatConfigError(e.body);
        // the position refers to the text just sent, which is still in the editor
        if (num(e.body.line) !== null && configText.value === body) selectAt(num(e.body.line), num(e.body.column));
      } else {
        configError.textContent = (dryRun ? 'Validation failed: ' : 'Apply failed: ') + e.message;
      }
    } finally {
      for (const b of configButtons) b.disabled = false;
      configText.removeAttribute('aria-busy');
    }
  }

  $('config-validate').addEventListener('click', () => submitConfig(true));
  $('config-apply').addEventListener('click', () => submitConfig(false));
  $('config-reload').addEventListener('click', () => {
    configError.textContent = '';
    configResult.textContent = '';
    loadConfig(true);
  });

  // --- start ------------------------------------------------------------

  poll();
  loadConfig(false);
})();
