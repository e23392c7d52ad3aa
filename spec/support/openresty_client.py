"""An independent WebSocket client (Python `websockets`) for spec/openresty_spec.lua.

    /usr/bin/python3 spec/support/openresty_client.py BASE_URL SCENARIO

BASE_URL is ws://127.0.0.1:PORT. Runs one scenario against the nginx server and prints what it
observed as one JSON object; the spec makes the assertions. Every wait is bounded.
"""
import asyncio
import json
import socket
import struct
import sys
import urllib.request

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.frames import OP_CLOSE, OP_CONT, OP_TEXT

WAIT = 10  # seconds, for any single step


def closed_info(ws, exc=None):
    """What the server said when it closed: its close frame's code and reason."""
    rcvd = getattr(exc, "rcvd", None) if exc is not None else None
    if rcvd is None:
        rcvd = getattr(ws, "close_rcvd", None)
    if rcvd is None:
        return {"code": ws.close_code, "reason": ws.close_reason}
    return {"code": rcvd.code, "reason": rcvd.reason}


async def connect(url, **kw):
    kw.setdefault("compression", None)
    kw.setdefault("max_size", None)
    kw.setdefault("close_timeout", WAIT)
    kw.setdefault("open_timeout", WAIT)
    return await websockets.connect(url, **kw)


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), WAIT)


async def expect_close(ws):
    """Reads until the server closes; returns its close code and reason."""
    try:
        for _ in range(100):
            await recv(ws)
    except ConnectionClosed as exc:
        return closed_info(ws, exc)
    return {"code": None, "reason": "still open"}


async def echo(ws, messages):
    out = []
    for m in messages:
        await asyncio.wait_for(ws.send(m), WAIT)
        got = await recv(ws)
        out.append(got == m and type(got) is type(m))
    return out


def masked_frame(opcode, payload, fin=True):
    """One client frame (masked), built here so that several can leave in one write."""
    import os
    key = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def write_all(ws, messages, after_first=b"", tail=b""):
    """Writes every message (with `after_first` frames after the first and `tail` frames
    after the last) in one write."""
    frames = []
    for i, m in enumerate(messages):
        data = m.encode() if isinstance(m, str) else m
        frames.append(masked_frame(1 if isinstance(m, str) else 2, data))
        if i == 0:
            frames.append(after_first)
    ws.transport.write(b"".join(frames) + tail)


async def pipelined(ws, messages, after_first=b"", tail=b""):
    """write_all, then reads the answers; True for each one that came back unchanged, in order."""
    write_all(ws, messages, after_first, tail)
    out = []
    for m in messages:
        got = await recv(ws)
        out.append(got == m and type(got) is type(m))
    return out


async def scenario(base, name):
    if name == "text":
        ws = await connect(base + "/")
        msgs = ["hello", "", "ünïcødé ☃ 😀"]
        res = {"equal": await echo(ws, msgs), "subprotocol": ws.subprotocol}
        await ws.close()
        return res
    if name == "binary":
        ws = await connect(base + "/")
        res = {"equal": await echo(ws, [bytes(range(256)) * 4, b"", b"\x00"])}
        await ws.close()
        return res
    if name == "large":
        ws = await connect(base + "/")
        text = "αβγ-" * 100000          # 700,000 bytes of UTF-8
        blob = bytes(i % 251 for i in range(1000000))
        res = {"equal": await echo(ws, [text, blob])}
        await ws.close()
        return res
    if name == "fragmented":
        ws = await connect(base + "/")
        await asyncio.wait_for(ws.send(["frag", "mented ", "tëxt"]), WAIT)
        t = await recv(ws)
        await asyncio.wait_for(ws.send([b"\x01\x02", b"", b"\x03"]), WAIT)
        b = await recv(ws)
        await ws.close()
        return {"text": t, "binary": list(b)}
    if name == "ping":
        ws = await connect(base + "/")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, WAIT)
        await ws.send("after ping")
        res = {"pong": True, "echo": await recv(ws)}
        await ws.close()
        return res
    if name.startswith("close_"):
        ws = await connect(base + "/")
        what = name[len("close_"):]
        if what == "normal":
            await asyncio.wait_for(ws.close(1000, "bye"), WAIT)
            return closed_info(ws)
        if what == "custom":
            await asyncio.wait_for(ws.close(4000, "custom"), WAIT)
            return closed_info(ws)
        if what == "empty":
            await ws.write_frame(True, OP_CLOSE, b"")
            return await expect_close(ws)
        if what == "reserved":           # 1005 must never be sent
            await ws.write_frame(True, OP_CLOSE, struct.pack("!H", 1005))
            return await expect_close(ws)
        if what == "out_of_range":
            await ws.write_frame(True, OP_CLOSE, struct.pack("!H", 999))
            return await expect_close(ws)
        if what == "one_byte":
            await ws.write_frame(True, OP_CLOSE, b"\x03")
            return await expect_close(ws)
        if what == "bad_reason":
            await ws.write_frame(True, OP_CLOSE, struct.pack("!H", 1000) + b"\xff")
            return await expect_close(ws)
    if name == "invalid_utf8":
        ws = await connect(base + "/")
        await ws.write_frame(True, OP_TEXT, "κόσμε".encode() + b"\xed\xa0\x80edited")
        return await expect_close(ws)
    if name == "invalid_utf8_fragment":
        ws = await connect(base + "/")
        await ws.write_frame(False, OP_TEXT, "κό".encode())
        await ws.write_frame(True, OP_CONT, b"\xf4\x90\x80\x80")
        return await expect_close(ws)
    if name == "too_big":
        ws = await connect(base + "/")
        try:
            await asyncio.wait_for(ws.send(b"x" * (16 * 1048576 + 1)), WAIT)
        except ConnectionClosed as exc:
            return closed_info(ws, exc)
        return await expect_close(ws)
    if name == "deflate":
        ws = await connect(base + "/", compression="deflate")
        names = [e.name for e in ws.extensions]
        text = "compress me " * 20000
        res = {"extensions": names,
               "equal": await echo(ws, [text, "small", bytes(100000)])}
        await ws.close()
        return res
    if name == "deflate_bomb":
        # 32 MiB of zeros compress to a few dozen KiB; the server must stop inflating at
        # max_message (16 MiB).
        ws = await connect(base + "/", compression="deflate")
        names = [e.name for e in ws.extensions]
        try:
            await asyncio.wait_for(ws.send(bytes(32 * 1048576)), WAIT)
        except ConnectionClosed as exc:
            res = closed_info(ws, exc)
        else:
            res = await expect_close(ws)
        res["extensions"] = names
        return res
    if name == "subprotocol":
        ws = await connect(base + "/proto", subprotocols=["chat.v1", "chat.v2"])
        chosen = ws.subprotocol
        said = await recv(ws)
        await ws.close()
        ws = await connect(base + "/proto", subprotocols=["other"])
        none = ws.subprotocol
        said_none = await recv(ws)
        await ws.close()
        return {"chosen": chosen, "said": said, "none": none, "said_none": said_none}
    if name == "server_close":
        ws = await connect(base + "/server-close")
        await ws.send("close please")
        return await expect_close(ws)
    if name == "limited":
        ws = await connect(base + "/limited")
        ok = await echo(ws, ["x" * 1024])
        await ws.send("y" * 1025)
        res = await expect_close(ws)
        res["first"] = ok
        return res
    if name == "pipelined":
        # Messages small and large (held and streamed by the codec), a ping and fragments
        # among them, all in one write: every answer comes back, in order.
        ws = await connect(base + "/")
        big = bytes(i % 251 for i in range(200000))
        mixed = ["a", big, "b", "c" * 300, bytes(70000), "d" * 70000, "e"]
        first = await pipelined(ws, mixed, masked_frame(9, b"p"),
                                masked_frame(1, b"fr", fin=False) + masked_frame(0, b"ag"))
        frag = await recv(ws)
        many = await pipelined(ws, ["m%d" % i for i in range(500)])
        await ws.close()
        return {"mixed": first, "fragmented": frag, "many": sum(many), "all": len(many) == sum(many)}
    if name == "slow_handler":
        # The handler answers, then sleeps 2 s before it reads again: its answer leaves at once
        # although the next message is already there.
        ws = await connect(base + "/slow-handler")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        write_all(ws, ["one", "two"])
        got = [await recv(ws)]
        ms = round((loop.time() - t0) * 1000)
        got.append(await recv(ws))
        await ws.close()
        return {"got": got, "first_ms": ms}
    if name == "chat":
        alice = await connect(base + "/chat?name=alice", subprotocols=["chat"])
        welcome = await recv(alice)
        bob = await connect(base + "/chat?name=bob", subprotocols=["chat"])
        await recv(bob)                          # welcome
        seen_by_alice = []
        for _ in range(20):                      # up to "* bob joined", after any history
            m = await recv(alice)
            seen_by_alice.append(m)
            if m == "* bob joined":
                break
        await alice.send("hi bob")
        got = None
        for _ in range(200):                     # bob first gets the history
            m = await recv(bob)
            if m == "alice: hi bob":
                got = m
                break
        await bob.close()
        left = None
        for _ in range(20):
            m = await recv(alice)
            if m == "* bob left":
                left = m
                break
        await alice.close()
        return {"welcome": welcome, "protocol": alice.subprotocol, "bob_got": got,
                "alice_saw_left": left}
    raise SystemExit("unknown scenario " + name)


def http_raw(base, request):
    """Sends a raw HTTP request; returns the status line and the headers (lower-case)."""
    host, port = base[len("ws://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as s:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return {"status": int(head[0].split()[1]), "headers": headers}


def handshake(base, name):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    ok = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n")
    reqs = {
        "accept": ok + "\r\n",
        "plain_get": "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad_version": ok.replace("Version: 13", "Version: 12") + "\r\n",
        "no_key": ok.replace("Sec-WebSocket-Key: " + key + "\r\n", "") + "\r\n",
        "post": ok.replace("GET", "POST", 1) + "Content-Length: 0\r\n\r\n",
        "http10": ok.replace("HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
    }
    return http_raw(base, reqs[name])


def request_info(base, name):
    """The first message of /request: what the server's conn.request says of our request."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    value = {"plain": "a b", "ows": "a b \t "}[name]
    req = ("GET /request?q=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "X-Test: " + value + "\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
    host, port = base[len("ws://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as s:
        s.sendall(req.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return {"status": int(head.split(b" ")[1]), "message": data[2:2 + (data[1] & 0x7F)].decode()}


def main():
    base, name = sys.argv[1], sys.argv[2]
    if name.startswith("handshake_"):
        res = handshake(base, name[len("handshake_"):])
    elif name.startswith("request_"):
        res = request_info(base, name[len("request_"):])
    elif name.startswith("http_"):
        url = "http" + base[len("ws"):] + "/" + name[len("http_"):]
        with urllib.request.urlopen(url, timeout=30) as r:
            res = {"status": r.status, "body": r.read().decode()}
    else:
        res = asyncio.run(asyncio.wait_for(scenario(base, name), 60))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
