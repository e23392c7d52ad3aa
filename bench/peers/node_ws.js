// Node `ws` peer for the benchmarks: echo or broadcast on 127.0.0.1.
// Usage: node bench/peers/node_ws.js --port N [--mode echo|broadcast] [--tls-cert F --tls-key F] [--deflate]
// With a certificate and key it serves wss:// from Node's `https` server.
// --deflate: permessage-deflate on with ws's defaults (zlib's level 6, memLevel 8, 15-bit
// windows, context takeover unless the client asks otherwise; inflate and deflate run on
// libuv's thread pool) and threshold 0, so that every message is compressed.
// broadcast: every text message received from any connection is sent, unchanged, as one text
// frame to every open connection, the sender included (the protocol bench/loadclient.c expects).
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const mode = opt('--mode', 'echo');
const cert = opt('--tls-cert', null);
const key = opt('--tls-key', null);
const deflate = args.includes('--deflate') ? { threshold: 0 } : false;
if (!(port > 0) || !['echo', 'broadcast'].includes(mode) || !cert !== !key) {
  console.error('usage: node_ws.js --port N [--mode echo|broadcast] [--tls-cert F --tls-key F] [--deflate]');
  process.exit(2);
}

let wss;
if (cert) {
  const fs = require('fs');
  const https = require('https');
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
  wss = new WebSocketServer({ server, perMessageDeflate: deflate });
  server.listen(port, '127.0.0.1', 4096, () => console.log(`node ws ${mode} listening on wss://127.0.0.1:${port}`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: deflate, backlog: 4096 });
  wss.on('listening', () => console.log(`node ws ${mode} listening on 127.0.0.1:${port}`));
}
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (mode === 'echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
      }
    });
  }
});
const stop = () => { wss.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
