// Independent client for the server interop spec: Node's `ws` (npm) against our echo server.
// Prints "ok <check>" for each check that passes; exits non-zero on the first failure.
'use strict';
const WebSocket = require('ws');
const assert = require('assert');

const url = process.argv[2];
const protocol = process.argv[3];

function open(opts) {
  return new Promise((resolve, reject) => {
    const ws = protocol ? new WebSocket(url, [protocol], opts) : new WebSocket(url, opts);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), 5000);
    ws.once('message', (data, isBinary) => { clearTimeout(t); resolve({ data, isBinary }); });
  });
}

async function main() {
  const ws = await open({ perMessageDeflate: false, maxPayload: 64 << 20 });
  assert.strictEqual(ws.protocol, protocol || '');
  console.log('ok handshake');
  for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
    const text = 'é'.repeat(size >> 1);
    const p = next(ws);
    ws.send(text);
    const m = await p;
    assert.strictEqual(m.isBinary, false);
    assert.strictEqual(m.data.toString(), text);
  }
  console.log('ok text');
  const bin = Buffer.alloc(256000, 0).map((_, i) => i & 255);
  let p = next(ws);
  ws.send(bin);
  let m = await p;
  assert.strictEqual(m.isBinary, true);
  assert.ok(Buffer.compare(m.data, bin) === 0);
  console.log('ok binary');
  p = next(ws);
  ws.send('frag', { fin: false });
  ws.send('mented', { fin: true });
  m = await p;
  assert.strictEqual(m.data.toString(), 'fragmented');
  console.log('ok fragmented');
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no pong')), 5000);
    ws.once('pong', (data) => { clearTimeout(t); assert.strictEqual(data.toString(), 'hi'); resolve(); });
    ws.ping('hi');
  });
  console.log('ok ping');
  const got = [];
  await new Promise((resolve) => {
    ws.on('message', (data) => { got.push(data.toString()); if (got.length === 200) resolve(); });
    for (let i = 0; i < 200; i++) ws.send('burst ' + i);
  });
  for (let i = 0; i < 200; i++) assert.strictEqual(got[i], 'burst ' + i);
  ws.removeAllListeners('message');
  console.log('ok burst');
  await new Promise((resolve) => {
    ws.once('close', (code) => { assert.strictEqual(code, 4000); resolve(); });
    ws.close(4000, 'done');
  });
  console.log('ok close');
  await Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const c = await open({ perMessageDeflate: false });
    for (let j = 0; j < 5; j++) {
      const q = next(c);
      c.send(i + '/' + j);
      assert.strictEqual((await q).data.toString(), i + '/' + j);
    }
    c.close();
  }));
  console.log('ok concurrent');
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
