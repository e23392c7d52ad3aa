// examples/socketio_chat.lua on two processes sharing one Redis (--redis), with Node's
// socket.io-client: one client on each (WebSocket only on the first, polling only on the
// second), both in room "lobby"; each message of either arrives once at each, each sender's in order.
//   node spec/support/socketio_bus_chat.js --port1 N --port2 M
'use strict';

const path = require('path');
const { io } = require(path.join(__dirname, '..', '..', 'node_modules', 'socket.io-client'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const WAIT_MS = 5000;
setTimeout(() => { console.log(JSON.stringify({ check: 'watchdog', ok: false })); process.exit(3); }, 40000).unref();
const results = [];
function report(check, ok, detail) { results.push(!!ok); console.log(JSON.stringify({ check, ok: !!ok, detail: String(detail || '') })); }
function within(p, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out: ${what}`)), WAIT_MS); })]).finally(() => clearTimeout(t));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const a = io(`http://127.0.0.1:${args.port1}`, { transports: ['websocket'], reconnection: false, forceNew: true });
  const b = io(`http://127.0.0.1:${args.port2}`, { transports: ['polling'], reconnection: false, forceNew: true });
  const inbox = new Map([[a, []], [b, []]]);
  for (const s of [a, b]) s.on('chat message', (m) => inbox.get(s).push(`${m.from === a.id ? 'a' : m.from === b.id ? 'b' : '?'}:${m.text}`));
  try {
    await within(Promise.all([a, b].map((s) => new Promise((res, rej) => { s.once('connect', res); s.once('connect_error', rej); }))), 'connect');
    await sleep(300); // both nodes' subscriptions of the lobby reach Redis
    const want = [];
    for (let i = 0; i < 5; i++) {
      for (const [s, n] of [[a, 'a'], [b, 'b']]) {
        const acked = await within(new Promise((res) => s.emit('chat message', `m${i}`, res)), 'ack');
        if (acked !== true) throw new Error(`ack: ${JSON.stringify(acked)}`);
        want.push(`${n}:m${i}`);
      }
    }
    const t0 = Date.now();
    while ((inbox.get(a).length < want.length || inbox.get(b).length < want.length) && Date.now() - t0 < WAIT_MS) await sleep(20);
    await sleep(300);
    for (const [s, n] of [[a, 'websocket client'], [b, 'polling client']]) {
      const got = inbox.get(s);
      // Each message once, each sender's in its order; between senders the fast class makes no
      // promise (a node's own members may get its message before an earlier one of the other node).
      const sorted = (list) => [...list].sort();
      const bySender = (list, who) => list.filter((m) => m.startsWith(`${who}:`));
      if (JSON.stringify(sorted(got)) !== JSON.stringify(sorted(want))
          || ['a', 'b'].some((w) => JSON.stringify(bySender(got, w)) !== JSON.stringify(bySender(want, w)))) {
        throw new Error(`${n} got ${JSON.stringify(got)}, expected ${JSON.stringify(want)} (any interleaving)`);
      }
    }
    report('two-processes-one-room', true, `${want.length} messages, each once at each (${a.io.engine.transport.name} / ${b.io.engine.transport.name})`);
  } catch (e) {
    report('two-processes-one-room', false, e.message);
  }
  for (const s of [a, b]) s.close();
  const failed = results.filter((x) => !x).length;
  console.log(JSON.stringify({ done: true, passed: results.length - failed, failed }));
  setTimeout(() => process.exit(failed ? 1 : 0), 50);
})();
