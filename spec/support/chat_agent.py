"""WebSocket clients for the chat specs, driven over a local control socket.

Runs under Debian's /usr/bin/python3 with python3-websockets (an independent client
implementation). It listens on 127.0.0.1 on a free port, prints "port N" on stdout, and serves
one control connection: each request is one JSON line, each answer one JSON line.

  {"op":"open","id":"a","url":"ws://...","origin":null,"slow":false}
        -> {"ok":true} | {"ok":false,"error":"...","status":403}
      "slow": the client never reads; its receive buffer is tiny, so the server's queue for it
      fills up as soon as the room gets busy.
  {"op":"send","id":"a","text":"..."} | {"op":"send","id":"a","binary":"<hex>"}   -> {"ok":true}
  {"op":"flood","id":"a","texts":["...", ...]}     sends them all, awaits nothing  -> {"ok":true}
  {"op":"recv","id":"a","timeout":2}     -> {"ok":true,"data":"..."} | {"ok":false,"error":"timeout"}
                                            | {"ok":false,"error":"closed","code":1000}
  {"op":"drain","id":"a","quiet":0.3}    everything received until `quiet` seconds pass with
                                         nothing new (at most 10 s) -> {"ok":true,"messages":[...]}
  {"op":"wait_for","id":"a","contains":"...","count":N,"timeout":10}
        received messages are counted (and dropped) until N of them contain the string
        -> {"ok":true,"count":N,"seconds":1.2} | {"ok":false,"error":"timeout","count":k}
  {"op":"close","id":"a"}   -> {"ok":true}
  {"op":"quit"}
Every wait is bounded; the agent exits when its control connection closes or after 300 s.
"""

import asyncio
import json
import socket
import sys
import time

import websockets

LIFETIME = 300.0


class Client:
    def __init__(self, ws, slow):
        self.ws = ws
        self.slow = slow
        self.queue = asyncio.Queue()
        self.closed = None
        self.reader = None if slow else asyncio.ensure_future(self.read())

    async def read(self):
        try:
            async for msg in self.ws:
                await self.queue.put(msg if isinstance(msg, str) else msg.hex())
        except websockets.ConnectionClosed:
            pass
        self.closed = self.ws.close_code
        await self.queue.put(None)

    async def next(self, timeout):
        try:
            msg = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return {"ok": False, "error": "timeout"}
        if msg is None:
            await self.queue.put(None)      # stays closed for later calls
            return {"ok": False, "error": "closed", "code": self.closed}
        return {"ok": True, "data": msg}


clients = {}


async def op_open(req):
    url = req["url"]
    kwargs = {"open_timeout": 5, "close_timeout": 2, "ping_interval": None, "max_size": 2 ** 22}
    if req.get("origin"):
        kwargs["origin"] = req["origin"]
    if req.get("slow"):
        # A tiny receive buffer and a one-message queue: the client stops reading almost at once.
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        kwargs.update(sock=sock, max_queue=1, read_limit=4096)
        # Uncompressed (the chat offers permessage-deflate): its backlog then grows by the
        # sizes of the messages it does not read, which is what the slow-reader checks count.
        kwargs["compression"] = None
    try:
        ws = await websockets.connect(url, **kwargs)
    except websockets.InvalidStatusCode as err:
        return {"ok": False, "error": "refused", "status": err.status_code}
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as err:
        return {"ok": False, "error": str(err) or type(err).__name__}
    clients[req["id"]] = Client(ws, req.get("slow"))
    return {"ok": True}


async def op_send(req):
    client = clients[req["id"]]
    data = bytes.fromhex(req["binary"]) if "binary" in req else req["text"]
    await asyncio.wait_for(client.ws.send(data), 5)
    return {"ok": True}


async def op_flood(req):
    client = clients[req["id"]]
    for text in req["texts"]:
        await asyncio.wait_for(client.ws.send(text), 5)
    return {"ok": True}


async def op_recv(req):
    return await clients[req["id"]].next(float(req.get("timeout", 2)))


async def op_drain(req):
    client = clients[req["id"]]
    quiet = float(req.get("quiet", 0.3))
    deadline = time.monotonic() + 10
    messages = []
    while time.monotonic() < deadline:
        got = await client.next(quiet)
        if not got["ok"]:
            break
        messages.append(got["data"])
    return {"ok": True, "messages": messages}


async def op_wait_for(req):
    client = clients[req["id"]]
    want, needle = int(req["count"]), req["contains"]
    start = time.monotonic()
    deadline = start + float(req.get("timeout", 10))
    count = 0
    while count < want:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"ok": False, "error": "timeout", "count": count}
        got = await client.next(left)
        if not got["ok"]:
            return {"ok": False, "error": got["error"], "count": count}
        if needle in got["data"]:
            count += 1
    return {"ok": True, "count": count, "seconds": time.monotonic() - start}


async def op_close(req):
    client = clients.pop(req["id"], None)
    if client:
        if client.slow:
            client.ws.transport.abort()
        else:
            await asyncio.wait_for(client.ws.close(), 5)
    return {"ok": True}


OPS = {"open": op_open, "send": op_send, "flood": op_flood, "recv": op_recv, "drain": op_drain,
       "wait_for": op_wait_for, "close": op_close}


async def control(reader, writer, done):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            req = json.loads(line)
            if req.get("op") == "quit":
                break
            try:
                answer = await OPS[req["op"]](req)
            except Exception as err:  # reported to the spec, which asserts on it
                answer = {"ok": False, "error": "%s: %s" % (type(err).__name__, err)}
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()
    finally:
        for client in list(clients.values()):
            client.ws.transport.abort()
        writer.close()
        done.set_result(True)


async def main():
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: control(r, w, done), "127.0.0.1", 0,
                                        limit=2 ** 22)
    print("port %d" % server.sockets[0].getsockname()[1], flush=True)
    try:
        await asyncio.wait_for(done, LIFETIME)
    except asyncio.TimeoutError:
        pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
