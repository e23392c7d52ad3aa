// permessage-deflate with a real browser: headless Debian Chromium (playwright-core) opens the
// chat page of a running examples/chat.lua, and from inside the page a WebSocket to /ws that
// joins a room and says something long and repetitive (which the browser compresses and the
// server inflates), then waits for it to come back from the room (compressed by the server).
//
//   node spec/support/browser/deflate_e2e.js http://127.0.0.1:PORT
//
// Prints one JSON line: {"ok":true,"extensions":"...","echoed":true,"types":[...]} or
// {"ok":false,"error":"..."}. Every wait is bounded.
'use strict';

const { launch } = require('./e2e');

const WAIT_MS = 10000;

async function main() {
  const base = process.argv[2];
  const { chromium } = require('playwright-core');
  const browser = await launch(chromium, '/usr/bin/chromium', WAIT_MS);
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.goto(`${base}/`, { waitUntil: 'load', timeout: WAIT_MS });
    const result = await page.evaluate((url) => new Promise((resolve) => {
      const text = 'compress me, compress me, compress me! '.repeat(40);
      const types = [];
      const sock = new WebSocket(url);
      const timer = setTimeout(() => resolve({ error: 'timeout', types }), 8000);
      sock.onopen = () => sock.send(JSON.stringify({ type: 'join', room: 'deflate', nick: 'zed' }));
      sock.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        types.push(m.type);
        if (m.type === 'history') sock.send(JSON.stringify({ type: 'message', text }));
        if (m.type === 'message' && m.text === text) {
          clearTimeout(timer);
          resolve({ extensions: sock.extensions, echoed: true, types });
          sock.close(1000);
        }
      };
      sock.onclose = (ev) => { clearTimeout(timer); resolve({ error: `closed ${ev.code}`, types }); };
    }), `${base.replace(/^http/, 'ws')}/ws`);
    console.log(JSON.stringify(Object.assign({ ok: !result.error }, result)));
  } finally {
    await browser.close();
  }
}

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: 'watchdog' }));
  process.exit(1);
}, 60000);
main().then(() => { clearTimeout(watchdog); }, (err) => {
  console.log(JSON.stringify({ ok: false, error: String(err && err.message || err).split('\n')[0] }));
  process.exit(1);
});
