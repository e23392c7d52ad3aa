# Independent client for the server interop spec: Python `websockets` (Debian's
# python3-websockets, run with /usr/bin/python3) against our echo server. Prints "ok <check>"
# for each check that passes and exits non-zero at the first failure.
import asyncio
import sys

import websockets


async def checks(url, protocol):
    async with websockets.connect(url, subprotocols=[protocol] if protocol else None,
                                  max_size=None, open_timeout=5, close_timeout=5) as ws:
        assert ws.subprotocol == protocol, ws.subprotocol
        print("ok handshake", flush=True)
        for size in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            text = "é" * (size // 2)
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 5)
            assert got == text, (size, len(got))
        print("ok text", flush=True)
        data = bytes(range(256)) * 1000
        await ws.send(data)
        got = await asyncio.wait_for(ws.recv(), 5)
        assert got == data
        print("ok binary", flush=True)
        await ws.send(["frag", "men", "ted"])  # one message in three frames
        assert await asyncio.wait_for(ws.recv(), 5) == "fragmented"
        print("ok fragmented", flush=True)
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        print("ok ping", flush=True)
        for i in range(200):
            await ws.send("burst %d" % i)
        for i in range(200):
            assert await asyncio.wait_for(ws.recv(), 5) == "burst %d" % i
        print("ok burst", flush=True)
        await ws.close(4000, "done")
        assert ws.close_code == 4000, ws.close_code
        print("ok close", flush=True)

    async def one(i):
        async with websockets.connect(url, open_timeout=5) as ws:
            for j in range(5):
                await ws.send("%d/%d" % (i, j))
                assert await asyncio.wait_for(ws.recv(), 5) == "%d/%d" % (i, j)
    await asyncio.gather(*(one(i) for i in range(100)))
    print("ok concurrent", flush=True)


asyncio.run(checks(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
