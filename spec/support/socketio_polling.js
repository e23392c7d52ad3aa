// Engine.IO long-polling at the HTTP level against spec/support/socketio_server.lua (started
// with --ping-interval 1 --ping-timeout 10): requests split in small TCP chunks, held polls, the protocol's
// errors, and many polling clients at once (the official client, polling only).
//
//   node spec/support/socketio_polling.js --port N [--clients 200]
//
// Prints one JSON line per check, then {"done":true,...}. Every wait is bounded.
'use strict';

const net = require('net');
const path = require('path');
const { io } = require(path.join(__dirname, '..', '..', 'node_modules', 'socket.io-client'));

const args = { clients: '200' };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const PORT = Number(args.port);
const BASE = '/socket.io/?EIO=4&transport=polling';
const WAIT_MS = 8000;

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

// One HTTP/1.1 request on its own connection (the server closes after each answer).
// opts.chunk: write the request this many bytes at a time, opts.gap ms apart.
function request(method, target, body, opts) {
  opts = opts || {};
  return new Promise((resolve, reject) => {
    const sock = net.connect(PORT, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer to ${method} ${target} within ${opts.timeout || WAIT_MS} ms`)); }, opts.timeout || WAIT_MS);
    sock.on('data', (d) => { data = Buffer.concat([data, d]); });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', () => {
      clearTimeout(timer);
      const text = data.toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      if (sep < 0) return reject(new Error(`no HTTP answer: ${JSON.stringify(text)}`));
      const status = Number(text.split(' ')[1]);
      resolve({ status, head: text.slice(0, sep), body: data.slice(sep + 4).toString('utf8') });
    });
    const b = body === undefined ? '' : body;
    const raw = Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\n` +
      (method === 'POST' ? `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(b)}\r\n` : '') +
      `\r\n${b}`);
    if (!opts.chunk) { sock.write(raw); return; }
    (async () => {
      for (let i = 0; i < raw.length; i += opts.chunk) {
        sock.write(raw.slice(i, i + opts.chunk));
        await sleep(opts.gap || 1);
      }
    })();
  });
}

async function open() {
  const r = await request('GET', BASE);
  if (r.status !== 200 || r.body[0] !== '0') throw new Error(`handshake: ${r.status} ${r.body}`);
  const hs = JSON.parse(r.body.slice(1));
  return hs;
}
function expect(cond, what) { if (!cond) throw new Error(what); }

(async () => {
  await check('handshake', async () => {
    const hs = await open();
    expect(typeof hs.sid === 'string' && hs.sid.length >= 20, 'sid');
    expect(JSON.stringify(hs.upgrades) === '["websocket"]', 'upgrades ' + JSON.stringify(hs.upgrades));
    expect(hs.pingInterval === 1000 && hs.pingTimeout === 10000, `ping ${hs.pingInterval} ${hs.pingTimeout}`);
    expect(hs.maxPayload === 1000000, 'maxPayload ' + hs.maxPayload);
    return hs.sid;
  });

  await check('request-split-in-small-chunks', async () => {
    const { sid } = await open();
    const r = await request('POST', `${BASE}&sid=${sid}`, '40{"name":"chunks"}', { chunk: 3, gap: 2 });
    expect(r.status === 200 && r.body === 'ok', `POST: ${r.status} ${r.body}`);
    const p = await request('GET', `${BASE}&sid=${sid}`, undefined, { chunk: 1, gap: 1 });
    expect(p.status === 200 && /^40\{"sid":"[^"]+"\}$/.test(p.body), `poll: ${p.status} ${p.body}`);
    // a body split across many reads, packets separated by the record separator
    const two = '42["ping me","a",1]\x1e42["ping me","b",2]';
    const r2 = await request('POST', `${BASE}&sid=${sid}`, two, { chunk: 5, gap: 1 });
    expect(r2.status === 200 && r2.body === 'ok', `POST 2: ${r2.status} ${r2.body}`);
    const p2 = await request('GET', `${BASE}&sid=${sid}`);
    expect(p2.body === '42["a",1]\x1e42["b",2]', `poll 2: ${JSON.stringify(p2.body)}`);
  });

  await check('held-poll-answered-by-event', async () => {
    const { sid } = await open();
    await request('POST', `${BASE}&sid=${sid}`, '40');
    await request('GET', `${BASE}&sid=${sid}`); // the CONNECT answer
    let answered = null;
    const t0 = Date.now();
    const poll = request('GET', `${BASE}&sid=${sid}`).then((r) => { answered = Date.now() - t0; return r; });
    await sleep(300);
    expect(answered === null, `the poll was answered at once (${answered} ms)`);
    await request('POST', `${BASE}&sid=${sid}`, '42["ping me","news","x"]');
    const r = await poll;
    expect(r.status === 200 && r.body === '42["news","x"]', `poll: ${r.status} ${JSON.stringify(r.body)}`);
    return `held ${answered} ms`;
  });

  await check('held-poll-answered-on-ping-interval', async () => {
    const { sid } = await open();
    await request('POST', `${BASE}&sid=${sid}`, '40');
    await request('GET', `${BASE}&sid=${sid}`);
    const t0 = Date.now();
    const r = await request('GET', `${BASE}&sid=${sid}`, undefined, { timeout: 4000 });
    const took = Date.now() - t0;
    expect(r.status === 200 && r.body === '2', `poll: ${r.status} ${JSON.stringify(r.body)}`);
    expect(took < 2500, `ping came after ${took} ms`);
    const pong = await request('POST', `${BASE}&sid=${sid}`, '3');
    expect(pong.body === 'ok', 'pong');
    return `ping after ${took} ms`;
  });

  await check('protocol-errors', async () => {
    const bad = [
      [`/socket.io/?EIO=3&transport=polling`, 5, 'Unsupported protocol version'],
      [`/socket.io/?EIO=4&transport=carrier-pigeon`, 0, 'Transport unknown'],
      [`${BASE}&sid=nosuchsession`, 1, 'Session ID unknown'],
    ];
    for (const [target, code, message] of bad) {
      const r = await request('GET', target);
      expect(r.status === 400, `${target}: status ${r.status}`);
      const j = JSON.parse(r.body);
      expect(j.code === code && j.message === message, `${target}: ${r.body}`);
    }
    const post = await request('POST', BASE, '40');
    expect(post.status === 400 && JSON.parse(post.body).code === 2, `POST handshake: ${post.status} ${post.body}`);
  });

  await check('malformed-packet-closes-only-that-session', async () => {
    const a = await open(), b = await open();
    await request('POST', `${BASE}&sid=${b.sid}`, '40');
    await request('GET', `${BASE}&sid=${b.sid}`);
    const r = await request('POST', `${BASE}&sid=${a.sid}`, '9nonsense');
    expect(r.status === 400, `bad packet: ${r.status}`);
    const again = await request('GET', `${BASE}&sid=${a.sid}`);
    expect(again.status === 400, `after the bad packet: ${again.status} ${again.body}`);
    const r2 = await request('POST', `${BASE}&sid=${b.sid}`, '4{not json');
    expect(r2.status === 200, `bad Socket.IO packet answered ${r2.status}`); // the engine packet was fine
    const closed = await request('GET', `${BASE}&sid=${b.sid}`);
    expect(closed.status === 200 && closed.body === '1', `b after a bad Socket.IO packet: ${closed.status} ${JSON.stringify(closed.body)}`);
    const c = await open();
    await request('POST', `${BASE}&sid=${c.sid}`, '40');
    const ok = await request('GET', `${BASE}&sid=${c.sid}`);
    expect(ok.status === 200 && ok.body.startsWith('40'), 'a new session still works');
  });

  await check('duplicate-poll-closes-the-session', async () => {
    const { sid } = await open();
    await request('POST', `${BASE}&sid=${sid}`, '40');
    await request('GET', `${BASE}&sid=${sid}`);
    const first = request('GET', `${BASE}&sid=${sid}`);
    await sleep(100);
    const second = await request('GET', `${BASE}&sid=${sid}`);
    expect(second.status === 400, `second poll: ${second.status}`);
    const r1 = await first;
    expect(r1.status === 400 || r1.body === '1', `first poll: ${r1.status} ${JSON.stringify(r1.body)}`);
    const after = await request('GET', `${BASE}&sid=${sid}`);
    expect(after.status === 400, `after: ${after.status}`);
  });

  await check('payload-too-large', async () => {
    const { sid } = await open();
    const r = await request('POST', `${BASE}&sid=${sid}`, '4' + 'x'.repeat(1000001));
    expect(r.status === 413, `status ${r.status}`);
  });

  await check('unfetched-queue-is-bounded', async () => {
    const { sid } = await open();
    await request('POST', `${BASE}&sid=${sid}`, '40');
    await request('GET', `${BASE}&sid=${sid}`);
    // 3 MB of events for a client that does not poll: over the server's max_buffer (1 MB here)
    const r = await request('POST', `${BASE}&sid=${sid}`, '42["flood",300,10000]');
    expect(r.status === 200, `POST: ${r.status}`);
    await sleep(200);
    const after = await request('GET', `${BASE}&sid=${sid}`);
    expect(after.status === 400 && JSON.parse(after.body).code === 1, `after: ${after.status} ${after.body}`);
  });

  await check('many-polling-clients', async () => {
    const n = Number(args.clients);
    const sockets = [];
    for (let i = 0; i < n; i++) {
      sockets.push(io(`http://127.0.0.1:${PORT}`, { transports: ['polling'], reconnection: false, forceNew: true, timeout: 20000 }));
    }
    const all = (p, what) => Promise.race([p, sleep(30000).then(() => { throw new Error(`timed out: ${what}`); })]);
    await all(Promise.all(sockets.map((s) => new Promise((res, rej) => { s.once('connect', res); s.once('connect_error', rej); }))), 'connects');
    // every client's poll gets held: ask until they all are (a loaded machine takes longer)
    let stats;
    for (let tries = 0; tries < 100; tries++) {
      await sleep(100);
      stats = await new Promise((res) => sockets[0].emit('stats', res));
      if (stats.held >= n - 1) break;
    }
    const acks = await all(Promise.all(sockets.map((s, i) => new Promise((res) => s.emit('echo', i, (x) => res(x))))), 'acks');
    for (let i = 0; i < n; i++) expect(acks[i] === i, `ack ${i}: ${acks[i]}`);
    // a room broadcast reaches every polling member
    const got = Promise.all(sockets.map((s) => new Promise((res) => s.once('room msg', res))));
    await Promise.all(sockets.map((s) => new Promise((res) => s.emit('join', 'many', res))));
    await new Promise((res) => sockets[0].emit('to room', 'many', 'to all', res));
    await all(got, 'room messages');
    for (const s of sockets) s.close();
    expect(stats.held >= n - 1, `held polls ${stats.held} of ${n}`);
    return `${n} clients, ${stats.held} polls held at once, ${stats.sessions} sessions`;
  });

  const failed = results.filter((x) => !x).length;
  console.log(JSON.stringify({ done: true, passed: results.length - failed, failed }));
  setTimeout(() => process.exit(failed ? 1 : 0), 100);
})();
