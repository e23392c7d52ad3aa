// The contract of examples/socketio_chat.lua with the official Node client:
//   node spec/support/socketio_chat_check.js --port N --transports default|websocket
// Prints one JSON line per check, then {"done":true,...}.
'use strict';

const path = require('path');
const { io } = require(path.join(__dirname, '..', '..', 'node_modules', 'socket.io-client'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const transports = args.transports === 'websocket' ? ['websocket'] : undefined;
const WAIT_MS = 5000;
setTimeout(() => { console.log(JSON.stringify({ check: 'watchdog', ok: false })); process.exit(3); }, 30000).unref();

const results = [];
function report(check, ok, detail) { results.push(!!ok); console.log(JSON.stringify({ check, ok: !!ok, detail: String(detail || '') })); }
function within(p, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out: ${what}`)), WAIT_MS); })]).finally(() => clearTimeout(t));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const make = () => io(`http://127.0.0.1:${args.port}`, { transports, reconnection: false, forceNew: true });
  const a = make(), b = make(), c = make();
  const inbox = new Map([[a, []], [b, []], [c, []]]);
  for (const s of [a, b, c]) s.on('chat message', (m) => inbox.get(s).push(m));
  try {
    await within(Promise.all([a, b, c].map((s) => new Promise((res, rej) => { s.once('connect', res); s.once('connect_error', rej); }))), 'connect');
    c.emit('join', 'other');
    await sleep(100);
    const acked = await within(new Promise((res) => a.emit('chat message', 'hi lobby', res)), 'ack');
    if (acked !== true) throw new Error(`ack: ${JSON.stringify(acked)}`);
    const c2 = await within(new Promise((res) => c.emit('chat message', 'hi other', res)), 'ack');
    if (c2 !== true) throw new Error(`ack: ${JSON.stringify(c2)}`);
    await sleep(300);
    const want = JSON.stringify([{ from: a.id, text: 'hi lobby' }]);
    const norm = (l) => JSON.stringify(l.map((m) => ({ from: m.from, text: m.text })));
    if (norm(inbox.get(a)) !== want) throw new Error(`sender got ${norm(inbox.get(a))}`);
    if (norm(inbox.get(b)) !== want) throw new Error(`lobby member got ${norm(inbox.get(b))}`);
    if (norm(inbox.get(c)) !== JSON.stringify([{ from: c.id, text: 'hi other' }])) throw new Error(`other room got ${norm(inbox.get(c))}`);
    report('chat-contract', true, `${a.io.engine.transport.name}: ack true, lobby x2, other x1`);
  } catch (e) {
    report('chat-contract', false, e.message);
  }
  for (const s of [a, b, c]) s.close();
  const failed = results.filter((x) => !x).length;
  console.log(JSON.stringify({ done: true, passed: results.length - failed, failed }));
  setTimeout(() => process.exit(failed ? 1 : 0), 50);
})();
