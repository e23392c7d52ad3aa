// The chat in a real browser: headless Debian Chromium driven by playwright-core.
//
//   node spec/support/browser/chat_e2e.js --server "lua5.4 examples/chat.lua" --out spec/out
//        [--screenshot docs/chat.png] [--redis redis://127.0.0.1:PORT]
//
// With --redis it runs the checks of the chat on two processes sharing that Redis instead: two
// pages on two processes, and a page whose process restarts, which comes back with every message
// sent meanwhile, once and in order.
//
// Starts the chat server itself (appending --port 0, then --port <the same port> for the
// restart check), opens pages, and prints one JSON line per check:
//   {"check":"message-delivered","ok":true,"detail":"..."}
// then {"done":true,"passed":N,"failed":M}. Exits 0 when every check passed. Every wait is
// bounded, and a watchdog ends the whole run.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { launch, parseArgs, report, check, summary } = require('./e2e');

const WAIT_MS = 10000;          // any single wait for the page
const RUN_LIMIT_MS = 120000;    // the whole run

const args = parseArgs(process.argv.slice(2), { server: null, out: 'spec/out', screenshot: null, chromium: '/usr/bin/chromium', redis: null });
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (err) {
  console.log(JSON.stringify({ check: 'playwright-core', ok: false,
    detail: 'playwright-core is not installed: run scripts/deps.sh (npm ci)' }));
  process.exit(2);
}


// ---------- the chat server, as a child process ----------

let server = null;

function startServer(port) {
  return new Promise((resolve, reject) => {
    const words = args.server.split(/\s+/).filter(Boolean);
    if (args.redis) words.push('--redis', args.redis);
    const child = spawn(words[0], [...words.slice(1), '--port', String(port)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not print its listening line within ${WAIT_MS} ms: ${err.trim()}`));
    }, WAIT_MS);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+?)\/?\s/);
      if (m && timer) {
        clearTimeout(timer);
        const base = m[1].replace(/\/$/, '');
        resolve({ child, base, port: Number(new URL(base).port), stderr: () => err });
      }
    });
    child.stderr.on('data', (d) => { err += d; if (err.length > 65536) err = err.slice(-65536); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code === null ? signal : code}): ${err.trim()}`));
    });
  });
}

function stopServer(srv) {
  return new Promise((resolve) => {
    if (!srv || srv.child.exitCode !== null || srv.child.signalCode) return resolve();
    const timer = setTimeout(() => { srv.child.kill('SIGKILL'); }, 5000);
    srv.child.once('exit', () => { clearTimeout(timer); resolve(); });
    srv.child.kill('SIGTERM');
  });
}

// ---------- a page on another origin ----------

function foreignOrigin() {
  // A second local origin (another port, and the name "localhost" instead of the address):
  // a page from here is not the chat's page, so the chat's origin policy must refuse it.
  const page = '<!doctype html><meta charset="utf-8"><title>elsewhere</title><p>another site</p>';
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

// Opens a WebSocket from inside a page and says how it ended: "open", or "closed <code>".
function tryWebSocket(page, url) {
  return page.evaluate((u) => new Promise((resolve) => {
    const sock = new WebSocket(u);
    const timer = setTimeout(() => resolve('timeout'), 5000);
    sock.onopen = () => { clearTimeout(timer); sock.close(1000); resolve('open'); };
    sock.onclose = (ev) => { clearTimeout(timer); resolve(`closed ${ev.code}`); };
  }), url);
}

// ---------- the chat pages ----------

async function joinChat(page, base, nick, room) {
  await page.goto(`${base}/`, { waitUntil: 'load', timeout: WAIT_MS });
  await page.fill('#nick', nick);
  await page.fill('#room', room);
  await page.click('#join-button');
  await page.waitForSelector('#status[data-state="online"]', { timeout: WAIT_MS });
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

function bubble(page, text) {
  return page.locator('#messages .bubble', { hasText: text });
}

// The texts of the message bubbles of a page, in the order shown.
function bubbleTexts(page) {
  return page.locator('#messages .bubble').allInnerTexts();
}

function launchBrowser() {
  return launch(chromium, args.chromium, WAIT_MS);
}

let other = null; // the second chat process (--redis)

async function mainCluster() {
  server = await startServer(0);
  other = await startServer(0);
  const browser = await launchBrowser();
  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => report('no-page-errors', false, err.message));
    return page;
  };
  try {
    const ada = await newPage();
    const grace = await newPage();
    const joined = await check('two-processes-join', async () => {
      await joinChat(ada, server.base, 'ada', 'lobby');
      await joinChat(grace, other.base, 'grace', 'lobby');
      await ada.locator('#member-list li', { hasText: 'grace' }).waitFor({ timeout: WAIT_MS });
      await grace.locator('#member-list li', { hasText: 'ada' }).waitFor({ timeout: WAIT_MS });
      return `ada on ${server.base}, grace on ${other.base}`;
    });
    if (!joined) return;
    await check('messages-across-processes', async () => {
      await say(ada, 'from the first process');
      await bubble(grace, 'from the first process').waitFor({ timeout: WAIT_MS });
      await say(grace, 'from the second process');
      await bubble(ada, 'from the second process').waitFor({ timeout: WAIT_MS });
      return 'both ways';
    });
    await check('resumes-after-its-process-restarts', async () => {
      const port = server.port;
      await stopServer(server);
      await ada.waitForSelector('#status[data-state="reconnecting"]', { timeout: WAIT_MS });
      const missed = ['while away 1', 'while away 2', 'while away 3'];
      for (const text of missed) {
        await say(grace, text);
        await bubble(grace, text).waitFor({ timeout: WAIT_MS });
      }
      server = await startServer(port);
      await ada.waitForSelector('#status[data-state="online"]', { timeout: 20000 });
      await bubble(ada, 'while away 3').waitFor({ timeout: WAIT_MS });
      await say(grace, 'after the return');
      await bubble(ada, 'after the return').waitFor({ timeout: WAIT_MS });
      const texts = await bubbleTexts(ada);
      const expected = ['from the first process', 'from the second process', ...missed, 'after the return'];
      if (JSON.stringify(texts) !== JSON.stringify(expected)) {
        throw new Error(`the page shows ${JSON.stringify(texts)}`);
      }
      if (await ada.locator('#messages .notice', { hasText: 'missed' }).count()) {
        throw new Error('the page says messages were missed');
      }
      return `every message once, in order: ${texts.length}`;
    });
    await check('screenshot', async () => {
      const file = path.join(args.out, 'chat-cluster.png');
      await ada.screenshot({ path: file });
      return file;
    });
  } finally {
    await browser.close();
  }
}

async function main() {
  fs.mkdirSync(args.out, { recursive: true });
  if (args.redis) return mainCluster();
  server = await startServer(0);
  const { base } = server;
  const wsUrl = `${base.replace(/^http/, 'ws')}/ws`;

  const browser = await launchBrowser();
  const newPage = async (viewport) => {
    const context = await browser.newContext({ viewport: viewport || { width: 1100, height: 700 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => report('no-page-errors', false, err.message));
    return page;
  };

  try {
    const ada = await newPage();
    const grace = await newPage();

    await check('page-served', async () => {
      const resp = await ada.goto(`${base}/`, { timeout: WAIT_MS });
      const type = resp.headers()['content-type'] || '';
      if (resp.status() !== 200 || !type.startsWith('text/html')) throw new Error(`${resp.status()} ${type}`);
      const title = await ada.title();
      return `${resp.status()} ${type} "${title}"`;
    });

    const joined = await check('two-pages-join', async () => {
      await joinChat(ada, base, 'ada', 'lobby');
      await joinChat(grace, base, 'grace', 'lobby');
      await ada.locator('#member-list li', { hasText: 'grace' }).waitFor({ timeout: WAIT_MS });
      await grace.locator('#member-list li', { hasText: 'ada' }).waitFor({ timeout: WAIT_MS });
      return `members: ${(await ada.locator('#member-list').innerText()).replace(/\s+/g, ' ')}`;
    });

    if (joined) {
      await check('message-delivered', async () => {
        const text = 'Hello Grace, this came through lua-ws';
        await say(ada, text);
        await bubble(grace, text).waitFor({ timeout: WAIT_MS });
        await bubble(ada, text).waitFor({ timeout: WAIT_MS });
        const mine = await ada.locator('#messages .msg.mine .bubble', { hasText: text }).count();
        if (mine !== 1) throw new Error('the sender does not see its own message as its own');
        return 'ada -> grace';
      });

      await check('reply-delivered', async () => {
        await say(grace, 'Hi Ada! Works here too.\nTwo lines, even.');
        await bubble(ada, 'Hi Ada! Works here too.').waitFor({ timeout: WAIT_MS });
        await say(ada, 'Fan-out runs in C, the rooms in Lua.');
        await bubble(grace, 'Fan-out runs in C').waitFor({ timeout: WAIT_MS });
        return 'grace -> ada -> grace';
      });

      await check('history-replayed', async () => {
        const late = await newPage();
        await joinChat(late, base, 'linus', 'lobby');
        await late.locator('#messages .msg.history .bubble', { hasText: 'Hello Grace' }).waitFor({ timeout: WAIT_MS });
        await ada.locator('#messages .notice', { hasText: 'linus joined' }).waitFor({ timeout: WAIT_MS });
        await say(late, 'Glad to be here.');
        await bubble(ada, 'Glad to be here.').waitFor({ timeout: WAIT_MS });
        const n = await late.locator('#messages .msg.history').count();
        await late.close();
        await ada.locator('#messages .notice', { hasText: 'linus left' }).waitFor({ timeout: WAIT_MS });
        return `${n} messages replayed; join and leave notices shown`;
      });

      await check('screenshot', async () => {
        await ada.waitForTimeout(300);   // let the last scroll settle
        const file = path.join(args.out, 'chat.png');
        await ada.screenshot({ path: file });
        if (args.screenshot) fs.copyFileSync(file, args.screenshot);
        const narrow = await newPage({ width: 390, height: 720 });
        await joinChat(narrow, base, 'mobile', 'lobby');
        await narrow.waitForTimeout(300);
        await narrow.screenshot({ path: path.join(args.out, 'chat-narrow.png') });
        await narrow.close();
        return file;
      });

      await check('other-room-isolated', async () => {
        const other = await newPage();
        await joinChat(other, base, 'ken', 'kitchen');
        await say(other, 'only for the kitchen');
        await bubble(other, 'only for the kitchen').waitFor({ timeout: WAIT_MS });
        await say(ada, 'lobby only, after the kitchen');
        await bubble(grace, 'lobby only, after the kitchen').waitFor({ timeout: WAIT_MS });
        if (await bubble(grace, 'only for the kitchen').count()) throw new Error('kitchen message reached the lobby');
        if (await bubble(other, 'lobby only').count()) throw new Error('lobby message reached the kitchen');
        await other.close();
        return 'kitchen and lobby do not see each other';
      });

      await check('bad-nick-refused', async () => {
        const dup = await newPage();
        await dup.goto(`${base}/`, { timeout: WAIT_MS });
        await dup.fill('#nick', 'ada');
        await dup.fill('#room', 'lobby');
        await dup.click('#join-button');
        await dup.waitForSelector('#join-error:not([hidden])', { timeout: WAIT_MS });
        const shown = await dup.locator('#join-error').innerText();
        await dup.close();
        if (!/already used/.test(shown)) throw new Error(`unexpected error text: ${shown}`);
        return shown;
      });

      await check('reconnects-after-restart', async () => {
        const port = server.port;
        await stopServer(server);
        await ada.waitForSelector('#status[data-state="reconnecting"]', { timeout: WAIT_MS });
        const banner = await ada.locator('#banner-text').innerText();
        server = await startServer(port);
        // The backoff after one failure is at most 1 s, after a few at most a few seconds.
        await ada.waitForSelector('#status[data-state="online"]', { timeout: 20000 });
        await grace.waitForSelector('#status[data-state="online"]', { timeout: 20000 });
        await say(grace, 'back after the restart');
        await bubble(ada, 'back after the restart').waitFor({ timeout: WAIT_MS });
        return `banner while down: "${banner}"`;
      });
    }

    await check('same-origin-socket-opens', async () => {
      const r = await tryWebSocket(ada, wsUrl);
      if (r !== 'open') throw new Error(r);
      return `${wsUrl}: ${r}`;
    });

    const foreign = await foreignOrigin();
    try {
      await check('foreign-origin-refused', async () => {
        const page = await newPage();
        const url = `http://localhost:${foreign.address().port}/`;
        await page.goto(url, { timeout: WAIT_MS });
        const r = await tryWebSocket(page, wsUrl);
        await page.close();
        if (r !== 'closed 1006') throw new Error(`a page from ${url} got: ${r}`);
        return `page from ${url} -> ${r}`;
      });
    } finally {
      foreign.close();
    }
  } finally {
    await browser.close();
  }
}

const watchdog = setTimeout(() => {
  report('run-time-limit', false, `the run took over ${RUN_LIMIT_MS} ms`);
  finish(3);
}, RUN_LIMIT_MS);

let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(watchdog);
  await stopServer(server).catch(() => {});
  await stopServer(other).catch(() => {});
  const failed = summary();
  process.exit(code || (failed ? 1 : 0));
}

main().then(() => finish(0), (err) => {
  report('harness', false, err && err.message ? err.message.split('\n')[0] : String(err));
  finish(1);
});
