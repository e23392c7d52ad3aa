// Socket.IO with @socket.io/redis-adapter (npm, node-redis v4 clients) for the bus benchmarks:
// several such processes on one Redis serve one set of rooms.
// Usage: node bench/peers/socketio_redis.js --port N --redis redis://127.0.0.1:R [--mode broadcast|chat]
// Engine.IO v4 over WebSocket at /socket.io/; the load client speaks it (bench/loadclient.c --socketio).
//   broadcast: every socket is in room "all"; an event 42["pub","<payload>"] from any socket is
//              emitted to the room as 42["msg","<payload>"] on every process, the sender included.
//   chat:      a socket connecting with ?room=N joins room "rN"; its 42["pub",...] goes to the
//              room's other members as 42["msg",...] (socket.to(room).emit), on every process.
// Every 0.25 s, when they changed, it prints a line "bus received=N published=N": the messages its
// Redis subscriber received (every one the adapter handed to onmessage, its own included) and the
// events it published.
'use strict';
const path = require('path');
const nm = path.join(__dirname, '..', '..', 'node_modules');
const { Server } = require(path.join(nm, 'socket.io'));
const { createAdapter } = require(path.join(nm, '@socket.io/redis-adapter'));
const { createClient } = require(path.join(nm, 'redis'));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const url = opt('--redis', '');
const mode = opt('--mode', 'broadcast');
if (!(port > 0) || !/^redis:\/\/127\.0\.0\.1:\d+$/.test(url) || !['broadcast', 'chat'].includes(mode)) {
  console.error('usage: socketio_redis.js --port N --redis redis://127.0.0.1:R [--mode broadcast|chat]');
  process.exit(2);
}

let received = 0;
let published = 0;

async function main() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  pub.on('error', (e) => console.error('redis:', e.message));
  sub.on('error', (e) => console.error('redis:', e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({ serveClient: false, transports: ['websocket'], maxHttpBufferSize: 1e6 });
  io.adapter(createAdapter(pub, sub));
  const adapter = io.of('/').adapter;
  const onmessage = adapter.onmessage.bind(adapter);
  adapter.onmessage = (pattern, channel, msg) => {
    received++;
    return onmessage(pattern, channel, msg);
  };
  io.on('connection', (socket) => {
    if (mode === 'broadcast') {
      socket.join('all');
      socket.on('pub', (data) => {
        published++;
        io.to('all').emit('msg', data);
      });
    } else {
      const room = 'r' + String(socket.handshake.query.room || '0');
      socket.join(room);
      socket.on('pub', (data) => {
        published++;
        socket.to(room).emit('msg', data);
      });
    }
  });
  io.listen(port);
  console.log(`socket.io ${mode} with the Redis adapter listening on 127.0.0.1:${port}`);
  let last = '';
  setInterval(() => {
    const line = `bus received=${received} published=${published}`;
    if (line !== last) console.log(line);
    last = line;
  }, 250);
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
