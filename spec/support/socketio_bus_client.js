// Node's socket.io-client against two spec/support/socketio_bus_server.lua processes sharing one
// Redis: clients on both, WebSocket and polling-only, every broadcast shape, each delivery counted.
//
//   node spec/support/socketio_bus_client.js --port1 N --port2 M --flag PATH
//
// Prints one JSON line per check ({"check":..,"ok":..,"detail":..}), {"phase":"joined",ids} then
// waits for PATH.1 (the spec reads Redis's PUBSUB NUMSUB meanwhile), leaves some rooms, prints
// {"phase":"left"}, waits for PATH.2, then {"done":true,...}. Every wait is bounded.
'use strict';

const fs = require('fs');
const path = require('path');
const { io } = require(path.join(__dirname, '..', '..', 'node_modules', 'socket.io-client'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const WAIT_MS = 5000;
setTimeout(() => { console.log(JSON.stringify({ check: 'watchdog', ok: false, detail: 'run too long' })); process.exit(3); }, 100000).unref();

const results = [];
function report(check, ok, detail) {
  results.push(ok);
  console.log(JSON.stringify({ check, ok: !!ok, detail: detail === undefined ? '' : String(detail) }));
}
async function check(name, fn) {
  try { report(name, true, await fn()); } catch (e) { report(name, false, (e && e.message) || String(e)); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function within(promise, what, ms) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms || WAIT_MS); })])
    .finally(() => clearTimeout(t));
}
function ack(s, ...a) { return within(new Promise((res) => s.emit(...a, (...r) => res(r))), `ack of ${a[0]}`); }

const clients = {};
function client(name, port, transports, nsp) {
  const s = io(`http://127.0.0.1:${port}${nsp || ''}`, { transports, reconnection: false, forceNew: true, timeout: WAIT_MS });
  const c = { name, s, got: {} };
  s.on('m', (tag, bin) => {
    c.got[tag] = (c.got[tag] || 0) + 1;
    if (!Buffer.isBuffer(bin) || bin.length !== 3 || bin[1] !== 1) c.badBinary = true;
  });
  clients[name] = c;
  return c;
}
async function connected(c) {
  if (c.s.connected) return;
  await within(new Promise((res, rej) => { c.s.once('connect', res); c.s.once('connect_error', rej); }), `connect of ${c.name}`);
}

let seq = 0;
// Sends one broadcast from `from` and checks that each client got it exactly as often as expected.
async function expectDelivery(from, spec, expected) {
  const tag = `t${++seq}`;
  await ack(from.s, 'bcast', spec, tag);
  const t0 = Date.now();
  const done = () => Object.keys(expected).every((n) => (clients[n].got[tag] || 0) >= expected[n]);
  while (!done() && Date.now() - t0 < WAIT_MS) await sleep(20);
  await sleep(300); // anything extra (a duplicate) would come meanwhile
  const got = {};
  for (const n of Object.keys(clients)) got[n] = clients[n].got[tag] || 0;
  for (const n of Object.keys(clients)) {
    const want = expected[n] || 0;
    if (got[n] !== want) throw new Error(`${JSON.stringify(spec)}: got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
  }
  for (const n of Object.keys(clients)) if (clients[n].badBinary) throw new Error(`${n} got a wrong binary attachment`);
  return JSON.stringify(got);
}
async function waitFile(p) {
  const t0 = Date.now();
  while (!fs.existsSync(p) && Date.now() - t0 < 30000) await sleep(50);
}

(async () => {
  const P1 = args.port1, P2 = args.port2;
  // a1: node 1 WebSocket; a2: node 1 polling; b1: node 2 polling; b2: node 2 WebSocket; c1: node 2 /admin
  const a1 = client('a1', P1, ['websocket']);
  const a2 = client('a2', P1, ['polling']);
  const b1 = client('b1', P2, ['polling']);
  const b2 = client('b2', P2, ['websocket']);
  const c1 = client('c1', P2, ['polling'], '/admin');
  let ok = true;
  await check('connect', async () => {
    for (const c of Object.values(clients)) await connected(c);
    const t = {};
    for (const c of Object.values(clients)) [t[c.name]] = await ack(c.s, 'transport');
    if (t.a1 !== 'websocket' || t.b2 !== 'websocket' || t.a2 !== 'polling' || t.b1 !== 'polling' || t.c1 !== 'polling')
      throw new Error(`transports ${JSON.stringify(t)}`);
    await ack(a1.s, 'join', ['r1', 'r2']);
    await ack(a2.s, 'join', 'r1');
    await ack(b1.s, 'join', ['r1', 'r2', 'x']);
    await ack(b2.s, 'join', 'r2');
    await ack(c1.s, 'join', 'r1');
    await sleep(300); // the nodes' SUBSCRIBEs reach Redis
    return JSON.stringify(t);
  }).catch(() => { ok = false; });

  await check('one-room', () => expectDelivery(a1, { to: 'r1' }, { a1: 1, a2: 1, b1: 1 }));
  await check('one-room-from-polling-sender', () => expectDelivery(b1, { from: 'socket', to: 'r1' }, { a1: 1, a2: 1 }));
  await check('many-in-order', async () => {
    const tags = [];
    for (let i = 0; i < 20; i++) { const tag = `many${i}`; tags.push(tag); await ack(a2.s, 'bcast', { to: 'r1' }, tag); }
    const t0 = Date.now();
    const full = () => ['a1', 'a2', 'b1'].every((n) => tags.every((t) => clients[n].got[t] === 1));
    while (!full() && Date.now() - t0 < WAIT_MS) await sleep(20);
    await sleep(300);
    for (const n of Object.keys(clients)) {
      for (const t of tags) {
        const want = ['a1', 'a2', 'b1'].includes(n) ? 1 : 0;
        if ((clients[n].got[t] || 0) !== want) throw new Error(`${n} got ${t} ${clients[n].got[t] || 0} times`);
      }
    }
    return '20 messages, each once at each member';
  });
  await check('multi-room', () => expectDelivery(a1, { to: ['r1', 'r2'] }, { a1: 1, a2: 1, b1: 1, b2: 1 }));
  await check('multi-room-except', () => expectDelivery(a2, { to: ['r2', 'r1'], except: 'x' }, { a1: 1, a2: 1, b2: 1 }));
  await check('except-socket-id', () => expectDelivery(b2, { to: ['r1', 'r2'], except: a1.s.id }, { a2: 1, b1: 1, b2: 1 }));
  await check('namespace', () => expectDelivery(b1, {}, { a1: 1, a2: 1, b1: 1, b2: 1 }));
  await check('namespace-but-sender', () => expectDelivery(a1, { from: 'broadcast' }, { a2: 1, b1: 1, b2: 1 }));
  await check('other-namespace', () => expectDelivery(a1, { nsp: '/admin', to: 'r1' }, { c1: 1 }));
  await check('to-socket-id', () => expectDelivery(a1, { to: b2.s.id }, { b2: 1 }));
  await check('to-socket-id-polling', () => expectDelivery(b2, { to: [a2.s.id, 'x'] }, { a2: 1, b1: 1 }));

  const ids = {};
  for (const c of Object.values(clients)) ids[c.name] = c.s.id;
  console.log(JSON.stringify({ phase: 'joined', ids }));
  await waitFile(args.flag + '.1');
  await check('leave', async () => {
    await ack(b1.s, 'leave', 'r1');
    await ack(b1.s, 'leave', 'x');
    await ack(a1.s, 'leave', 'r2');
    return 'left';
  });
  await check('after-leave', () => expectDelivery(b2, { to: 'r1' }, { a1: 1, a2: 1 }));
  console.log(JSON.stringify({ phase: 'left' }));
  await waitFile(args.flag + '.2');
  for (const c of Object.values(clients)) c.s.close();
  await sleep(500); // the polling clients' close packets reach the servers
  const passed = results.filter(Boolean).length;
  console.log(JSON.stringify({ done: true, passed, failed: results.length - passed }));
  process.exit(ok ? 0 : 1);
})();
