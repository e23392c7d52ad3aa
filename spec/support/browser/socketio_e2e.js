// The Socket.IO chat page in headless Debian Chromium (playwright-core), with the official
// browser bundle, against examples/socketio_chat.lua started by this script.
//
//   node spec/support/browser/socketio_e2e.js --server "lua5.4 examples/socketio_chat.lua"
//
// Prints one JSON line per check, then {"done":true,"passed":N,"failed":M}. Every wait is
// bounded, and a watchdog ends the whole run.
'use strict';

const { spawn } = require('child_process');
const { launch, report, check, summary } = require('./e2e');

const WAIT_MS = 10000;
const RUN_LIMIT_MS = 90000;

const args = { server: null, chromium: '/usr/bin/chromium' };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (err) {
  console.log(JSON.stringify({ check: 'playwright-core', ok: false, detail: 'playwright-core is not installed: npm install' }));
  process.exit(2);
}


let child = null;
const watchdog = setTimeout(() => {
  report('watchdog', false, `the run took over ${RUN_LIMIT_MS} ms`);
  if (child) child.kill('SIGKILL');
  process.exit(3);
}, RUN_LIMIT_MS);

function startServer() {
  return new Promise((resolve, reject) => {
    const words = args.server.split(/\s+/).filter(Boolean);
    child = spawn(words[0], [...words.slice(1), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => reject(new Error(`no listening line within ${WAIT_MS} ms: ${err}`)), WAIT_MS);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/socketio_chat: listening on (http:\/\/[^\s]+?)\/?\s/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${err}`)); });
  });
}

async function main() {
  const base = await startServer();
  const browser = await launch(chromium, args.chromium, WAIT_MS);
  const newPage = async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => report('no-page-errors', false, err.message));
    return page;
  };
  try {
    const ann = await newPage();
    const bob = await newPage();
    await check('page-and-bundle-served', async () => {
      const resp = await ann.goto(`${base}/`, { waitUntil: 'load', timeout: WAIT_MS });
      if (resp.status() !== 200) throw new Error(`page: ${resp.status()}`);
      const kind = await ann.evaluate(() => typeof io);
      if (kind !== 'function') throw new Error(`the browser bundle did not load (io is ${kind})`);
      const bundle = await ann.request.get(`${base}/socket.io.min.js`);
      if (bundle.status() !== 200) throw new Error(`bundle: ${bundle.status()}`);
      const head = (await bundle.text()).slice(0, 80).replace(/\s+/g, ' ');
      return head;
    });
    const online = await check('two-pages-connect-and-upgrade', async () => {
      await bob.goto(`${base}/`, { waitUntil: 'load', timeout: WAIT_MS });
      for (const p of [ann, bob]) {
        await p.waitForSelector('#status[data-state="online"]', { timeout: WAIT_MS });
        await p.waitForFunction(() => document.getElementById('status').textContent.includes('(websocket)'), null, { timeout: WAIT_MS });
      }
      return await ann.locator('#status').innerText();
    });
    if (online) {
      await check('two-pages-chat', async () => {
        await ann.fill('#text', 'hello from ann');
        await ann.press('#text', 'Enter');
        await bob.locator('#messages li', { hasText: 'hello from ann' }).waitFor({ timeout: WAIT_MS });
        await ann.locator('#messages li.mine', { hasText: 'hello from ann' }).waitFor({ timeout: WAIT_MS });
        await bob.fill('#text', 'hi ann, bob here');
        await bob.press('#text', 'Enter');
        await ann.locator('#messages li', { hasText: 'hi ann, bob here' }).waitFor({ timeout: WAIT_MS });
        return 'ann <-> bob in lobby';
      });
      await check('rooms-keep-pages-apart', async () => {
        await bob.fill('#room', 'elsewhere');
        await bob.click('#join-button');
        await bob.waitForTimeout(200);
        await ann.fill('#text', 'only the lobby hears this');
        await ann.press('#text', 'Enter');
        await ann.locator('#messages li', { hasText: 'only the lobby hears this' }).waitFor({ timeout: WAIT_MS });
        await bob.waitForTimeout(300);
        const n = await bob.locator('#messages li', { hasText: 'only the lobby hears this' }).count();
        if (n !== 0) throw new Error('a page in another room got the message');
        return 'bob in "elsewhere" did not get it';
      });
    }
  } finally {
    await browser.close().catch(() => {});
    if (child) child.kill('SIGTERM');
  }
}

main().catch((e) => report('run', false, (e && e.message) || String(e))).finally(() => {
  clearTimeout(watchdog);
  const failed = summary();
  setTimeout(() => process.exit(failed ? 1 : 0), 100);
});
