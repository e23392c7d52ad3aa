// Node's `ws` as a permessage-deflate client of an echo server, for
// spec/server_deflate_spec.lua: every combination of the offer's parameters, one connection each.
//
//   node deflate_client.js URL
//
// For each combination it prints one line
//   ok snct=<0|1> cnct=<0|1> smwb=<-|n> cmwb=<-|true|n> resp=<the server's answer> sizes=<a>,<b> big=<n>
// where a and b are the bytes on the wire of the same 2 KB message echoed twice (equal without
// context takeover) and big those of a compressible 1 MB message; or "fail <combination> <error>"
// (and the exit status is 1).
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');

const ITEM = (n) => `{"type":"message","room":"lobby","nick":"ada","text":"hello, world","seq":${n}}`;
const json = (n) => '[' + Array.from({ length: 24 }, (_, k) => ITEM(n * 24 + k)).join(',') + ']';

function open(url, pmd) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: pmd, maxPayload: 1 << 24 });
    let resp = null;
    ws.once('upgrade', (res) => { resp = res.headers['sec-websocket-extensions']; });
    ws.once('open', () => resolve({ ws, resp }));
    ws.once('error', reject);
  });
}

// Sends data and waits for its echo; returns the bytes the echo took on the wire.
function roundtrip(ws, data) {
  return new Promise((resolve, reject) => {
    const before = ws._socket.bytesRead;
    const t = setTimeout(() => reject(new Error('timeout')), 5000);
    ws.once('message', (back, isBinary) => {
      clearTimeout(t);
      const same = typeof data === 'string' ? !isBinary && back.toString() === data
        : isBinary && Buffer.compare(back, data) === 0;
      if (!same) return reject(new Error(`echo differs (${data.length} bytes sent)`));
      resolve(ws._socket.bytesRead - before);
    });
    ws.send(data);
  });
}

async function one(url, pmd) {
  const { ws, resp } = await open(url, pmd);
  try {
    if (!ws.extensions.includes('permessage-deflate')) throw new Error('permessage-deflate not negotiated');
    const msg = json(1);
    const a = await roundtrip(ws, msg);
    const b = await roundtrip(ws, msg);
    if (a >= msg.length) throw new Error(`2 KB came back as ${a} bytes`);
    await roundtrip(ws, 'hi');
    await roundtrip(ws, crypto.randomBytes(300000));
    const bigData = Buffer.alloc(1000000).map((_, i) => i % 100);
    const big = await roundtrip(ws, bigData);
    if (big > 100000) throw new Error(`1 MB came back as ${big} bytes`);
    await roundtrip(ws, 'é€𝄞 '.repeat(5000));
    for (let i = 0; i < 20; i++) await roundtrip(ws, json(i));
    return { resp, a, b, big };
  } finally {
    ws.close();
  }
}

const show = (v) => (v === undefined || v === false ? '-' : String(v));

async function main() {
  const url = process.argv[2];
  let failed = false;
  for (const snct of [false, true]) {
    for (const cnct of [false, true]) {
      for (const smwb of [undefined, 8, 11, 15]) {
        for (const cmwb of [false, undefined, 9, 12]) {
          const desc = `snct=${+snct} cnct=${+cnct} smwb=${show(smwb)} cmwb=${cmwb === undefined ? 'true' : show(cmwb)}`;
          // clientNoContextTakeover: false would refuse the server's right (RFC 7692 7.1.1.2)
          // to impose it, which the shared mode does: it is left out rather than false.
          const pmd = { serverNoContextTakeover: snct, threshold: 0 };
          if (cnct) pmd.clientNoContextTakeover = true;
          if (smwb !== undefined) pmd.serverMaxWindowBits = smwb;
          if (cmwb !== undefined) pmd.clientMaxWindowBits = cmwb;
          try {
            const r = await one(url, pmd);
            console.log(`ok ${desc} resp=${r.resp} sizes=${r.a},${r.b} big=${r.big}`);
          } catch (e) {
            failed = true;
            console.log(`fail ${desc} ${e && e.message}`);
          }
        }
      }
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
