// examples/dashboard.lua in a real browser: headless Debian Chromium driven by playwright-core.
//
//   node spec/support/browser/dashboard_e2e.js --server "lua5.4 examples/dashboard.lua" --out spec/out
//        [--screenshot docs/dashboard.png]
//
// Starts the dashboard (appending --port 0), opens its page, puts a load on its /echo socket with
// Node's `ws` clients, and checks that the charts follow it. Prints one JSON line per check,
//   {"check":"charts-move","ok":true,"detail":"..."}
// then {"done":true,"passed":N,"failed":M}. Every wait is bounded, and a watchdog ends the run.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const { launch, parseArgs, report, check, summary } = require('./e2e');

const WAIT_MS = 15000;          // any single wait
const RUN_LIMIT_MS = 120000;    // the whole run
const LOAD_CLIENTS = 20;
const LOAD_SIZE = 512;

const args = parseArgs(process.argv.slice(2), { server: null, out: 'spec/out', screenshot: null, chromium: '/usr/bin/chromium' });
let chromium, WebSocket;
try {
  ({ chromium } = require('playwright-core'));
  WebSocket = require('ws');
} catch (err) {
  console.log(JSON.stringify({ check: 'node-packages', ok: false,
    detail: 'playwright-core or ws is not installed: run scripts/deps.sh (npm ci)' }));
  process.exit(2);
}


let server = null;
function startServer() {
  return new Promise((resolve, reject) => {
    const words = args.server.split(/\s+/).filter(Boolean);
    const child = spawn(words[0], [...words.slice(1), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${WAIT_MS} ms: ${err.trim()}`));
    }, WAIT_MS);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+?)\/?\s/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, base: m[1], stderr: () => err });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}): ${err.trim()}`));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, what, ms) {
  const deadline = Date.now() + (ms || WAIT_MS);
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Echo clients, each keeping one message in flight, added `step` at a time every `every` ms up
// to LOAD_CLIENTS (a ramp the charts show as steps), until stop() is called.
function startLoad(base, step, every) {
  const url = base.replace(/^http/, 'ws') + '/echo';
  const payload = 'x'.repeat(LOAD_SIZE);
  const clients = [];
  let stopped = false;
  let echoed = 0;
  const open = () => {
    const ws = new WebSocket(url);
    ws.on('open', () => ws.send(payload));
    ws.on('message', () => {
      echoed++;
      if (!stopped) setTimeout(() => { if (!stopped && ws.readyState === WebSocket.OPEN) ws.send(payload); }, 2);
    });
    ws.on('error', () => {});
    clients.push(ws);
  };
  for (let i = 0; i < step; i++) open();
  const timer = setInterval(() => {
    if (stopped || clients.length >= LOAD_CLIENTS) return clearInterval(timer);
    for (let i = 0; i < step && clients.length < LOAD_CLIENTS; i++) open();
  }, every);
  return {
    echoed: () => echoed,
    stop: () => { stopped = true; clearInterval(timer); clients.forEach((ws) => ws.close(1000, 'load done')); },
  };
}

// A few upgrades the server refuses (a path it does not serve): the refusals line moves.
function refusals(base, n) {
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/nowhere');
    ws.on('error', () => {});
  }
}

async function main() {
  fs.mkdirSync(args.out, { recursive: true });
  server = await startServer();
  const { base } = server;
  const browser = await launch(chromium, args.chromium, WAIT_MS);
  let load = null;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => report('no-page-errors', false, err.message));

    await check('page-served', async () => {
      const resp = await page.goto(`${base}/?window=40`, { timeout: WAIT_MS });
      const type = resp.headers()['content-type'] || '';
      if (resp.status() !== 200 || !type.startsWith('text/html')) throw new Error(`${resp.status()} ${type}`);
      return `${resp.status()} ${type}`;
    });

    await check('uplot-from-npm', async () => {
      const version = await page.evaluate(() => typeof window.uPlot === 'function' && 'uPlot loaded');
      if (!version) throw new Error('window.uPlot is not a function');
      const resp = await page.request.get(`${base}/uplot/uPlot.iife.min.js`);
      const body = await resp.text();
      const pkg = JSON.parse(fs.readFileSync(require.resolve('uplot/package.json'), 'utf8'));
      const local = fs.readFileSync(path.join(path.dirname(require.resolve('uplot/package.json')), 'dist', 'uPlot.iife.min.js'), 'utf8');
      if (body !== local) throw new Error('served uPlot differs from node_modules/uplot');
      return `uplot ${pkg.version} served from node_modules`;
    });

    await check('charts-drawn', async () => {
      await until(() => page.evaluate(() => window.dashboard && window.dashboard.samples >= 2), 'two samples');
      const n = await page.evaluate(() => document.querySelectorAll('#charts .uplot canvas').length);
      if (n < 4) throw new Error(`${n} chart canvases`);
      const live = await page.textContent('#status');
      if (live.trim() !== 'live') throw new Error(`status "${live}"`);
      return `${n} uPlot charts, status ${live.trim()}`;
    });

    const before = await page.evaluate(() => window.dashboard.last);

    await check('charts-move-under-load', async () => {
      load = startLoad(base, 5, 1500);
      refusals(base, 3);
      const last = await until(() => page.evaluate((n) => {
        const s = window.dashboard.last;
        return s && s.connections >= n && s.messages_received_rate > 50 && s.messages_sent_rate > 50 ? s : null;
      }, LOAD_CLIENTS), 'the load in the samples');
      // the lines on the charts carry it: the messages chart's series hold the rates
      const drawn = await page.evaluate(() => {
        const u = window.dashboard.charts.messages;
        const max = (a) => a.reduce((m, v) => (v != null && v > m ? v : m), 0);
        return { in: max(u.data[1]), out: max(u.data[2]), conns: max(window.dashboard.charts.connections.data[1]) };
      });
      if (!(drawn.in > 50 && drawn.out > 50 && drawn.conns >= LOAD_CLIENTS)) throw new Error(JSON.stringify(drawn));
      const tile = await page.textContent('#v-connections');
      if (Number(tile) < LOAD_CLIENTS) throw new Error(`connections tile says ${tile}`);
      return `before: ${before.messages_received_rate.toFixed(0)} msg/s in, ${before.connections} open; ` +
        `under load: ${last.messages_received_rate.toFixed(0)} msg/s in, ${last.messages_sent_rate.toFixed(0)} out, ` +
        `${last.connections} open; tile ${tile}; echoed ${load.echoed()}`;
    });

    await check('screenshot', async () => {
      await sleep(3000); // a few seconds of load on the charts, then a few refusals more
      refusals(base, 5);
      await sleep(2500);
      const file = path.join(args.out, 'dashboard.png');
      await page.screenshot({ path: file, fullPage: true });
      if (args.screenshot) fs.copyFileSync(file, args.screenshot);
      return args.screenshot ? `${file} and ${args.screenshot}` : file;
    });

    await check('charts-follow-the-end-of-the-load', async () => {
      load.stop();
      const last = await until(() => page.evaluate((n) => {
        const s = window.dashboard.last;
        return s && s.connections === 1 && s.messages_received_rate < 1 ? s : null;  // the page's own socket is left
      }), 'the load to leave the samples');
      return `${last.connections} open, ${last.closes} closed in all`;
    });
  } finally {
    if (load) load.stop();
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  report('watchdog', false, `the run took over ${RUN_LIMIT_MS} ms`);
  if (server) server.child.kill('SIGKILL');
  process.exit(1);
}, RUN_LIMIT_MS);

main().catch((err) => report('run', false, err && err.stack ? err.stack.split('\n')[0] : String(err))).finally(() => {
  clearTimeout(watchdog);
  if (server) server.child.kill('SIGTERM');
  const failed = summary();
  process.exit(failed ? 1 : 0);
});
