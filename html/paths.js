// srtgate: the one place that knows the shape of GET /v1/paths.
// Used by index.html and player.js. If the server's field names change,
// change them here only.
//
// Expected: {"paths":[{"path":"live/cam1","tracks":["H264","AAC"],
//            "hls":{"ll":"/live/cam1/index.m3u8","ts":"/live/cam1/ts.m3u8"}}]}
'use strict';

// URL path for a stream path: each segment percent-encoded, slashes kept.
function srtgateStreamUrl(path) {
  return '/' + String(path).split('/').filter(Boolean).map(encodeURIComponent).join('/') + '/';
}

// Returns [{path, tracks:[string], ll, ts, player}] and never throws on odd input.
function srtgateParsePaths(json) {
  const list = Array.isArray(json) ? json : (json && (json.paths || json.items)) || [];
  const out = [];
  for (const item of list) {
    const p = typeof item === 'string' ? { path: item } : item || {};
    const path = String(p.path || p.name || '').replace(/^\/+|\/+$/g, '');
    if (!path) continue;
    const base = srtgateStreamUrl(path);
    const hls = p.hls || {};
    const tracks = (Array.isArray(p.tracks) ? p.tracks : [])
      .map((t) => (typeof t === 'string' ? t : t && (t.codec || t.name || t.type)))
      .filter(Boolean)
      .map(String);
    out.push({
      path,
      tracks,
      ll: hls.ll || base + 'index.m3u8',
      ts: hls.ts || base + 'ts.m3u8',
      player: base,
    });
  }
  out.sort((a, b) => a.path.localeCompare(b.path));
  return out;
}
