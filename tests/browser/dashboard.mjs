#!/usr/bin/env node
// Headless Chromium probe of the srtgate operator dashboard (html/dashboard.html).
//
//   node dashboard.mjs --url http://127.0.0.1:9997/ --path live/x [--token T]
//                      [--kick ID] [--broken-config FILE]
//
// Opens the dashboard, waits until it has polled the API once
// (body[data-ready="1"]) and lists the stream row tr[data-path=PATH], then
// optionally kicks a session through its row's button and feeds a broken
// configuration to the editor. Prints ONE JSON line on stdout:
//
//   {ok, streamListed, rowText, kicked, configError, applyError, charts,
//    errors, consoleErrors, ...}
//
//   ok             the page became ready
//   streamListed   the row for --path appeared; rowText is its text, cells joined by " | "
//   kicked         --kick: the session's row went away within 10 s of clicking
//                  its button.kick (null without --kick); kickNotice is #notice
//   configError    --broken-config: #config-error after "Validate" (null without);
//                  configCaret is where the editor's selection went {line, column, selected}
//   applyError     the same text sent with "Apply": #config-error again
//   charts         whether any canvas[data-group] (SRTLA link chart) exists; chartGroups their ids
//   errors         uncaught page errors
//   consoleErrors  console.error messages; favicon misses and the browser's
//                  "Failed to load resource" lines for /v1/ answers (4xx the
//                  page handles itself, e.g. the broken config's 400) are left out
//
// Exit status: 0 = the probe ran (judge the values), 1 = the page never got
// ready (JSON has ok:false and error), 2 = harness failure (bad arguments,
// browser would not start, overall time limit hit).
//
// Options:
//   --url URL              dashboard address (required)
//   --path PATH            stream path whose row must be listed (required)
//   --token T              API token; passed to the page as ?token=T
//   --kick ID              session id to kick through the page
//   --broken-config FILE   configuration text that the API must refuse
//   --ready-timeout N      seconds to wait for readiness and the row (default 20)
//   --viewport WxH         window size (default 1280x800)
//   --screenshot FILE      save a PNG of the whole page at the end
//   --chromium PATH        browser binary (default $SRTGATE_CHROMIUM or /usr/bin/chromium)

import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const KICK_FIND_MS = 5000;      // the session's row must show up within this
const KICK_GONE_MS = 10000;     // ... and be gone this long after the click
const CONFIG_MS = 10000;        // Validate / Apply must answer within this
const CONFIG_LOAD_MS = 5000;    // wait this long for the editor's first load

function parseArgs(argv) {
  const o = { url: null, path: null, token: null, kick: null, brokenConfig: null, brokenText: null,
    readyTimeout: 20, viewport: { width: 1280, height: 800 }, screenshot: null,
    chromium: process.env.SRTGATE_CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
      return argv[++i];
    };
    if (a === '--url') o.url = val();
    else if (a === '--path') o.path = val();
    else if (a === '--token') o.token = val();
    else if (a === '--kick') o.kick = val();
    else if (a === '--broken-config') o.brokenConfig = val();
    else if (a === '--ready-timeout') o.readyTimeout = Number(val());
    else if (a === '--viewport') {
      const m = /^(\d+)x(\d+)$/.exec(val());
      if (!m) throw new Error('--viewport is WIDTHxHEIGHT, e.g. 390x800');
      o.viewport = { width: Number(m[1]), height: Number(m[2]) };
    } else if (a === '--screenshot') o.screenshot = val();
    else if (a === '--chromium') o.chromium = val();
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error('unknown argument ' + a);
  }
  if (o.help) return o;
  if (!o.url) throw new Error('--url is required');
  if (!o.path) throw new Error('--path is required');
  o.path = o.path.replace(/^\/+|\/+$/g, '');
  if (!(o.readyTimeout > 0 && o.readyTimeout <= 300)) throw new Error('--ready-timeout must be in (0, 300]');
  o.pageUrl = new URL(o.url);     // also rejects a malformed --url
  if (o.token) o.pageUrl.searchParams.set('token', o.token);
  if (o.brokenConfig) {
    try {
      o.brokenText = readFileSync(o.brokenConfig, 'utf8');
    } catch (e) {
      throw new Error('cannot read --broken-config ' + o.brokenConfig + ': ' + e.message);
    }
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

// A CSS string literal for attribute selectors.
function cssString(s) {
  return '"' + String(s).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\a ') + '"';
}

const oneLine = (e) => String((e && e.message) || e).split('\n')[0];

async function main() {
  let opt;
  try {
    opt = parseArgs(process.argv.slice(2));
  } catch (e) {
    emit({ ok: false, error: 'usage: ' + e.message }, 2);
    return;
  }
  if (opt.help) {
    process.stdout.write('usage: node dashboard.mjs --url URL --path PATH [--token T] [--kick ID] ' +
      '[--broken-config FILE] [--ready-timeout N] [--viewport WxH] [--screenshot FILE] [--chromium PATH]\n');
    return;
  }

  const result = { ok: false, url: opt.url, path: opt.path, streamListed: false, rowText: null,
    kicked: null, configError: null, applyError: null, charts: false, chartGroups: [],
    errors: [], consoleErrors: [] };
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
  const limitMs = (opt.readyTimeout + 60) * 1000;
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
        viewport: opt.viewport,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
    } catch (e) {
      finished = true;
      emit({ ...result, error: 'could not start chromium at ' + opt.chromium + ': ' + oneLine(e) }, 2);
      return;
    }
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const loc = (m.location && m.location()) || {};
      const url = loc.url || '';
      if (/\/favicon\.ico$/.test(url)) return;
      // the browser logs every non-2xx fetch; answers from the API are the page's business
      if (/^Failed to load resource/.test(m.text()) && /^https?:\/\/[^/]+\/v1\//.test(url)) return;
      if (result.consoleErrors.length < 50) result.consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => {
      if (result.errors.length < 50) result.errors.push(String((e && e.message) || e));
    });

    try {
      const cdp = await ctx.newCDPSession(page);
      const v = await cdp.send('Browser.getVersion');
      result.browser = v.product;
      await cdp.detach();
    } catch { /* informational only */ }

    const tNav = Date.now();
    const deadline = tNav + opt.readyTimeout * 1000;
    const left = () => Math.max(1, deadline - Date.now());
    try {
      const resp = await page.goto(opt.pageUrl.href, { waitUntil: 'domcontentloaded', timeout: left() });
      if (resp && !resp.ok()) {
        finished = true;
        emit({ ...result, error: 'page returned HTTP ' + resp.status() }, 1);
        return;
      }
    } catch (e) {
      finished = true;
      emit({ ...result, error: 'could not load page: ' + oneLine(e) }, 1);
      return;
    }

    const statusText = () => page.evaluate(() => {
      const s = document.getElementById('status');
      return s ? s.textContent : null;
    }).catch(() => null);

    // 1. ready: the page polled the API successfully once
    try {
      await page.waitForFunction(() => document.body && document.body.dataset.ready === '1', null,
        { timeout: left(), polling: 100 });
    } catch {
      finished = true;
      emit({ ...result, status: await statusText(),
        error: 'dashboard not ready (body[data-ready=1]) within ' + opt.readyTimeout + ' s' }, 1);
      return;
    }
    result.ok = true;
    result.readyMs = Date.now() - tNav;

    // 2. the stream's row
    try {
      await page.waitForFunction((p) => Array.from(document.querySelectorAll('tr[data-path]'))
        .some((tr) => tr.dataset.path === p), opt.path, { timeout: left(), polling: 100 });
      result.streamListed = true;
      result.rowText = await page.evaluate((p) => {
        const tr = Array.from(document.querySelectorAll('tr[data-path]')).find((r) => r.dataset.path === p);
        return tr ? Array.from(tr.cells).map((c) => c.innerText.replace(/\s+/g, ' ').trim()).join(' | ') : null;
      }, opt.path);
    } catch {
      result.streamListed = false;
    }

    // 3. kick a session through its row's button
    if (opt.kick) {
      result.kicked = false;
      const row = 'tr[data-session=' + cssString(opt.kick) + ']';
      const rowPresent = () => page.evaluate((id) => Array.from(document.querySelectorAll('tr[data-session]'))
        .some((tr) => tr.dataset.session === id), opt.kick);
      try {
        await page.waitForFunction((id) => Array.from(document.querySelectorAll('tr[data-session]'))
          .some((tr) => tr.dataset.session === id), opt.kick, { timeout: KICK_FIND_MS, polling: 100 });
        const button = page.locator(row + ' button.kick');
        if (await button.count() === 0) {
          result.kickError = 'the session row has no button.kick';
        } else {
          await button.first().click({ timeout: KICK_FIND_MS });
          try {
            await page.waitForFunction((id) => !Array.from(document.querySelectorAll('tr[data-session]'))
              .some((tr) => tr.dataset.session === id), opt.kick, { timeout: KICK_GONE_MS, polling: 100 });
            result.kicked = true;
          } catch {
            result.kicked = !(await rowPresent().catch(() => true));
            if (!result.kicked) result.kickError = 'row still listed ' + KICK_GONE_MS / 1000 + ' s after the click';
          }
        }
      } catch (e) {
        result.kickError = (await rowPresent().catch(() => false)) ? 'kick failed: ' + oneLine(e)
          : 'no row tr[data-session=' + opt.kick + '] within ' + KICK_FIND_MS / 1000 + ' s';
      }
      result.kickNotice = await page.evaluate(() => {
        const n = document.getElementById('notice');
        return n && n.textContent.trim() ? n.textContent.trim() : null;
      }).catch(() => null);
    }

    // 4. a broken configuration: Validate, then Apply; both must show an error
    if (opt.brokenText !== null) {
      // let the editor's own load finish first, so it cannot replace our text
      await page.waitForFunction(() => {
        const t = document.getElementById('config-text');
        return t && (t.dataset.state === 'loaded' || t.dataset.state === 'error');
      }, null, { timeout: CONFIG_LOAD_MS, polling: 100 }).catch(() => {});
      const submit = async (buttonId) => {
        await page.locator('#config-text').fill(opt.brokenText, { timeout: CONFIG_MS });
        await page.locator('#' + buttonId).click({ timeout: CONFIG_MS });
        try {
          await page.waitForFunction(() => {
            const e = document.getElementById('config-error');
            const r = document.getElementById('config-result');
            return (e && e.textContent.trim() !== '') || (r && r.textContent.trim() !== '');
          }, null, { timeout: CONFIG_MS, polling: 100 });
        } catch { /* neither appeared: reported as empty below */ }
        return page.evaluate(() => {
          const e = document.getElementById('config-error');
          const r = document.getElementById('config-result');
          const t = document.getElementById('config-text');
          const before = t.value.slice(0, t.selectionStart).split('\n');
          return { error: e ? e.textContent.trim() : '', result: r ? r.textContent.trim() : '',
            caret: { line: before.length, column: before[before.length - 1].length + 1,
              selected: t.value.slice(t.selectionStart, t.selectionEnd) } };
        });
      };
      try {
        const v = await submit('config-validate');
        result.configError = v.error;
        result.configCaret = v.caret;
        if (v.result) result.configResult = v.result;
        const a = await submit('config-apply');
        result.applyError = a.error;
        if (a.result) result.applyResult = a.result;
      } catch (e) {
        result.configHarnessError = oneLine(e);
        if (result.configError === null) result.configError = '';
        if (result.applyError === null) result.applyError = '';
      }
    }

    // 5. charts
    result.chartGroups = await page.evaluate(() => Array.from(document.querySelectorAll('canvas[data-group]'))
      .map((c) => c.dataset.group)).catch(() => []);
    result.charts = result.chartGroups.length > 0;
    result.status = await statusText();

    if (opt.screenshot) await page.screenshot({ path: opt.screenshot, fullPage: true }).catch(() => {});
    finished = true;
    emit(result, 0);
  } catch (e) {
    finished = true;
    emit({ ...result, ok: false, error: 'harness: ' + oneLine(e) }, 2);
  } finally {
    clearTimeout(guard);
    await cleanup();
  }
}

await main();
