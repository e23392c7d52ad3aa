"""Peers for spec/client_api_spec.lua: Python `websockets` clients and servers, and a raw
client that prints the frames it receives as they are on the wire.

  client_api_peer.py collect URL N [PROTOCOL]  connect, print the subprotocol, send "hello",
                                               print N messages, close
  client_api_peer.py unix PATH URL N           the same over a Unix socket
  client_api_peer.py until_closed URL          connect, print how the connection ended
  client_api_peer.py status URL                print the status of a refused handshake
  client_api_peer.py frames HOST PORT PATH     raw client: print each frame (opcode, fin, length)
  client_api_peer.py refuse                    server: refuse every handshake with 403, a header
                                               and a body (prints "listening PORT")
  client_api_peer.py echo                      server: echo each message; "close me" closes with
                                               4001 "python done" (prints "listening PORT")
Every step is bounded in time; output is one line per event.
"""
import asyncio
import base64
import http
import os
import socket
import struct
import sys

import websockets

TIMEOUT = 10


def say(*parts):
    print(*parts, flush=True)


async def collect(uri, n, protocol=None, unix_path=None):
    kwargs = {"subprotocols": [protocol]} if protocol else {}
    if unix_path:
        ws = await asyncio.wait_for(websockets.unix_connect(unix_path, uri, **kwargs), TIMEOUT)
    else:
        ws = await asyncio.wait_for(websockets.connect(uri, **kwargs), TIMEOUT)
    say("protocol", ws.subprotocol)
    await ws.send("hello")
    for _ in range(n):
        msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
        kind = "binary" if isinstance(msg, bytes) else "text"
        say("message", kind, len(msg), msg if kind == "text" else msg[:16].hex())
    await asyncio.wait_for(ws.close(), TIMEOUT)
    say("closed", ws.close_code)


async def until_closed(uri):
    ws = await asyncio.wait_for(websockets.connect(uri), TIMEOUT)
    say("open")
    try:
        while True:
            msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
            say("message", msg)
    except websockets.ConnectionClosed as e:
        say("ended", e.code if hasattr(e, "code") else ws.close_code, type(e).__name__)


async def status(uri):
    try:
        ws = await asyncio.wait_for(websockets.connect(uri), TIMEOUT)
        say("open", ws.subprotocol)
        await ws.close()
    except websockets.InvalidStatusCode as e:
        say("refused", e.status_code)


def frames(host, port, path):
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            say("no response")
            return
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    say("status", head.split(b" ")[1].decode())

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    try:
        while True:
            b0, b1 = need(2)
            fin, opcode, n = b0 >> 7, b0 & 15, b1 & 127
            if n == 126:
                n = struct.unpack(">H", need(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", need(8))[0]
            payload = need(n)
            say("frame", opcode, fin, n, payload[:8].hex())
            if opcode == 9:  # answer a ping (masked, as a client must)
                mask = os.urandom(4)
                s.sendall(bytes([0x8A, 0x80 | n]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
            if opcode == 8:
                mask = os.urandom(4)
                s.sendall(bytes([0x88, 0x82]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(b"\x03\xe8")))
                break
    except (EOFError, ConnectionError):
        say("eof")
    s.close()


async def refuse():
    async def handler(ws, path):
        await ws.close()

    async def process_request(path, headers):
        return http.HTTPStatus.FORBIDDEN, [("X-Reason", "banned"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b"you are not welcome here\n"

    async with websockets.serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        say("listening", port)
        await asyncio.sleep(60)


async def echo():
    async def handler(ws, path):
        async for msg in ws:
            if msg == "close me":
                await ws.close(4001, "python done")
                return
            await ws.send(msg)

    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=["chat.v1"]) as server:
        say("listening", server.sockets[0].getsockname()[1])
        await asyncio.sleep(60)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "collect":
        asyncio.run(collect(args[0], int(args[1]), args[2] if len(args) > 2 else None))
    elif mode == "unix":
        asyncio.run(collect(args[1], int(args[2]), unix_path=args[0]))
    elif mode == "until_closed":
        asyncio.run(until_closed(args[0]))
    elif mode == "status":
        asyncio.run(status(args[0]))
    elif mode == "frames":
        frames(*args)
    elif mode == "refuse":
        asyncio.run(refuse())
    elif mode == "echo":
        asyncio.run(echo())


if __name__ == "__main__":
    main()
