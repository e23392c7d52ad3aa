// The same Socket.IO benchmark server on Node's socket.io (the official server), for
// bench/socketio/run.sh: node bench/socketio/node_server.js --port N
'use strict';
const path = require('path');
const { Server } = require(path.join(__dirname, '..', '..', 'node_modules', 'socket.io'));

let port = 3000;
for (let i = 2; i < process.argv.length; i += 2) if (process.argv[i] === '--port') port = Number(process.argv[i + 1]);

const io = new Server(port, { serveClient: false });
io.on('connection', (socket) => {
  socket.join('bench');
  socket.on('echo', (data, ack) => ack(data));
  socket.on('pub', (data) => io.to('bench').emit('msg', data));
});
console.log(`listening ${port}`);
