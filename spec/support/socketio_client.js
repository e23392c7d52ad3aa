// The official Node Socket.IO client against spec/support/socketio_server.lua.
//
//   node spec/support/socketio_client.js --port N --transports default|websocket|polling
//
// Prints one JSON line per check: {"check":"acks-from-server","ok":true,"detail":"..."}, then
// {"done":true,"passed":N,"failed":M}. Every wait is bounded; a watchdog ends the run.
'use strict';

const path = require('path');
const { io } = require(path.join(__dirname, '..', '..', 'node_modules', 'socket.io-client'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const URL = `http://127.0.0.1:${args.port}`;
const transports = args.transports === 'websocket' ? ['websocket']
  : args.transports === 'polling' ? ['polling'] : undefined;
const WAIT_MS = 5000;

setTimeout(() => { console.log(JSON.stringify({ check: 'watchdog', ok: false, detail: 'run too long' })); process.exit(3); }, 90000).unref();

const results = [];
function report(check, ok, detail) {
  results.push(ok);
  console.log(JSON.stringify({ check, ok: !!ok, detail: detail === undefined ? '' : String(detail) }));
}
const opened = [];
function connect(nsp, opts) {
  const s = io(URL + (nsp || ''), Object.assign({ transports, reconnection: false, forceNew: true, timeout: WAIT_MS }, opts || {}));
  opened.push(s);
  return s;
}
function within(promise, what, ms) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms || WAIT_MS); })])
    .finally(() => clearTimeout(t));
}
function once(s, ev, ms) { return within(new Promise((res) => s.once(ev, (...a) => res(a))), ev, ms); }
function ack(s, ...a) { return within(new Promise((res) => s.emit(...a, (...r) => res(r))), `ack of ${a[0]}`); }
async function connected(s) {
  if (s.connected) return;
  const r = await within(new Promise((res, rej) => { s.once('connect', res); s.once('connect_error', rej); }), 'connect');
  return r;
}
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canon(v[k]);
    return o;
  }
  return v;
}
function eq(a, b, what) {
  const ja = JSON.stringify(canon(a)), jb = JSON.stringify(canon(b));
  if (ja !== jb) throw new Error(`${what || 'value'}: got ${ja}, expected ${jb}`);
}
async function check(name, fn) {
  try { report(name, true, await fn()); } catch (e) { report(name, false, (e && e.message) || String(e)); }
}

(async () => {
  await check('connect', async () => {
    const s = connect();
    await connected(s);
    if (typeof s.id !== 'string' || s.id.length < 10) throw new Error('no id');
    const id = s.id;
    const [greeting] = await ack(s, 'greeting');
    eq(greeting, 'hi nil', 'greeting');
    if (!transports) { // default: polling first, then the upgrade to WebSocket
      const t0 = Date.now();
      while (s.io.engine.transport.name !== 'websocket' && Date.now() - t0 < WAIT_MS) await new Promise((r) => setTimeout(r, 20));
      eq(s.io.engine.transport.name, 'websocket', 'transport after the upgrade');
      const r = await ack(s, 'echo', 'after upgrade');
      eq(r, ['after upgrade'], 'echo after the upgrade');
    }
    s.close();
    return `${id} ${transports ? transports.join(',') : 'default, upgraded'}`;
  });

  await check('auth-accepted', async () => {
    const s = connect('', { auth: { name: 'ann', slow: true } });
    await connected(s);
    const [greeting] = await ack(s, 'greeting');
    eq(greeting, 'hi ann', 'greeting');
    s.close();
  });

  await check('auth-refused', async () => {
    const s = connect('', { auth: { token: 'bad' } });
    const [err] = await once(s, 'connect_error');
    eq(err.message, 'not authorized', 'message');
    eq(err.data, { reason: 'bad token' }, 'data');
    s.close();
    return err.message;
  });

  let main = connect();
  await check('events-both-ways', async () => {
    await connected(main);
    const got = once(main, 'pong');
    main.emit('ping me', 'pong', 1, { a: [1, 2, null] }, 'x');
    const args = await got;
    eq(args, [1, { a: [1, 2, null] }, 'x'], 'args');
  });

  await check('acks-from-server', async () => {
    const r = await ack(main, 'echo', 'x', 2, { y: true });
    eq(r, ['x', 2, { y: true }], 'ack args');
  });

  await check('acks-from-client', async () => {
    main.on('question', (q, cb) => cb(q + '!'));
    const [answer] = await ack(main, 'ask', 'why');
    eq(answer, 'why!', 'answer');
  });

  await check('server-ack-timeout-fires', async () => {
    main.on('silent', () => {}); // never acknowledged
    const [answer] = await ack(main, 'ask silent');
    eq(answer, 'timed out: operation has timed out', 'answer');
  });

  await check('client-ack-timeout-fires', async () => {
    const err = await within(new Promise((res) => main.timeout(300).emit('ignore me', (e) => res(e))), 'the client timeout');
    if (!(err instanceof Error)) throw new Error('no timeout error');
    return err.message;
  });

  await check('binary-payloads', async () => {
    const [r] = await ack(main, 'bin', Buffer.from([1, 2, 3, 255, 0]));
    eq(r.size, 5, 'size');
    eq(r.binary, true, 'binary');
    eq([...Buffer.from(r.back)], [0, 255, 3, 2, 1], 'bytes back');
    const [sizes] = await ack(main, 'bins', [Buffer.alloc(10), Buffer.alloc(1000), Buffer.alloc(0)]);
    eq(sizes, [10, 1000, 0], 'sizes');
  });

  await check('too-many-attachments-closes-that-client', async () => {
    const bad = connect();
    await connected(bad);
    const gone = once(bad, 'disconnect');
    bad.emit('bins', [1, 2, 3, 4, 5, 6].map(() => Buffer.alloc(1)));
    const [reason] = await gone;
    // the others go on
    const r = await ack(main, 'echo', 'still here');
    eq(r, ['still here'], 'other client');
    return reason;
  });

  await check('rooms', async () => {
    const a = connect(), b = connect(), c = connect();
    await Promise.all([connected(a), connected(b), connected(c)]);
    await ack(a, 'join', 'r1');
    await ack(b, 'join', 'r1');
    await ack(c, 'join', 'r2');
    const seenC = [];
    c.on('room msg', (m) => seenC.push(m));
    const ga = once(a, 'room msg'), gb = once(b, 'room msg');
    await ack(a, 'to room', 'r1', 'hello r1');
    const [[ma], [mb]] = await Promise.all([ga, gb]);
    eq(ma, { from: a.id, text: 'hello r1' }, 'a got');
    eq(mb, { from: a.id, text: 'hello r1' }, 'b got');
    // socket.to(room): everyone in the room but the sender
    const seenA = [];
    const countA = (m) => seenA.push(m);
    a.on('room msg', countA);
    const gb2 = once(b, 'room msg');
    await ack(a, 'to room but me', 'r1', 'not me');
    const [mb2] = await gb2;
    await new Promise((r) => setTimeout(r, 100));
    a.off('room msg', countA);
    eq(mb2, { from: a.id, text: 'not me', excl: true }, 'b got');
    // leave: no more room messages
    await ack(b, 'leave', 'r1');
    const seenB = [];
    b.on('room msg', (m) => seenB.push(m));
    const ga3 = once(a, 'room msg');
    await ack(a, 'to room', 'r1', 'after leave');
    await ga3;
    // a private message by socket id
    const gp = once(c, 'private');
    await ack(a, 'to id', c.id, 'psst');
    const [mp] = await gp;
    eq(mp.text, 'psst', 'private');
    await new Promise((r) => setTimeout(r, 200));
    eq(seenC.length, 0, 'messages to c (other room)');
    eq(seenA.length, 0, 'messages to a when excluded');
    eq(seenB.length, 0, 'messages to b after leaving');
    a.close(); b.close(); c.close();
  });

  await check('broadcast-excludes-sender', async () => {
    const a = connect(), b = connect();
    await Promise.all([connected(a), connected(b)]);
    const seenA = [];
    a.on('broadcast msg', (m) => seenA.push(m));
    const gb = once(b, 'broadcast msg');
    await ack(a, 'broadcast', 'to the others');
    const [mb] = await gb;
    eq(mb, 'to the others', 'b got');
    const gb2 = once(b, 'broadcast msg');
    await ack(a, 'broadcast call', 'called');
    const [mb2] = await gb2;
    eq(mb2, 'called', 'b got (socket:broadcast())');
    await new Promise((r) => setTimeout(r, 200));
    eq(seenA.length, 0, 'messages to the sender');
    a.close(); b.close();
  });

  await check('namespaces', async () => {
    const adm = connect('/admin', { auth: { role: 'admin' } });
    await connected(adm);
    const [who, nsp] = await ack(adm, 'whoami');
    eq([who, nsp], ['admin', '/admin'], 'whoami');
    const refused = connect('/admin');
    const [err] = await once(refused, 'connect_error');
    eq(err.message, 'admin only', 'refused');
    const none = connect('/nope');
    const [err2] = await once(none, 'connect_error');
    eq(err2.message, 'Invalid namespace', 'unknown namespace');
    adm.close(); refused.close(); none.close();
  });

  await check('disconnect-reasons', async () => {
    const s = connect();
    await connected(s);
    const gone = once(s, 'disconnect');
    const kicked = s.id;
    s.emit('kick');
    const [reason] = await gone;
    eq(reason, 'io server disconnect', 'client side reason');
    const s2 = connect();
    await connected(s2);
    const id = s2.id;
    s2.disconnect();
    // the connection itself closed, without a DISCONNECT packet
    const s3 = connect();
    await connected(s3);
    const cut = s3.id;
    const gone3 = once(s3, 'disconnect');
    s3.io.engine.close();
    await gone3;
    return `kicked ${kicked}; left ${id}; cut ${cut}`;
  });

  await check('reconnect-after-server-drop', async () => {
    const s = connect('', { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await connected(s);
    const first = s.id;
    const gone = once(s, 'disconnect');
    s.emit('drop');
    const [reason] = await gone;
    eq(reason, 'transport close', 'reason');
    await once(s, 'connect', WAIT_MS);
    const second = s.id;
    if (second === first) throw new Error('same id after reconnect');
    const r = await ack(s, 'echo', 'again');
    eq(r, ['again'], 'echo after reconnect');
    s.close();
    return `${first} -> ${second}`;
  });

  main.close();
  for (const s of opened) s.close();
  const failed = results.filter((x) => !x).length;
  console.log(JSON.stringify({ done: true, passed: results.length - failed, failed }));
  setTimeout(() => process.exit(failed ? 1 : 0), 100);
})();
