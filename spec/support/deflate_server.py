"""Python websockets as a permessage-deflate echo server for lua-ws's client, for
spec/server_deflate_spec.lua.

usage: deflate_server.py <server_max_window_bits|0> <client_max_window_bits|0> <no_context_takeover 0|1>

Prints "listening <port>". Echoes every message; answers "compressed?" with how many compressed
(RSV1) data frames it has received, and "extensions?" with its Sec-WebSocket-Extensions answer.
"""
import asyncio
import sys

import websockets
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory

compressed = 0
_decode = PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    global compressed
    if frame.opcode in (1, 2) and frame.rsv1:
        compressed += 1
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = counting_decode


async def echo(ws):
    async for m in ws:
        if m == "compressed?":
            await ws.send(str(compressed))
        elif m == "extensions?":
            await ws.send(ws.response_headers.get("Sec-WebSocket-Extensions", "none"))
        else:
            await ws.send(m)


async def main():
    smwb, cmwb, nct = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    factory = ServerPerMessageDeflateFactory(server_no_context_takeover=nct,
                                             client_no_context_takeover=nct,
                                             server_max_window_bits=smwb or None,
                                             client_max_window_bits=cmwb or None)
    async with websockets.serve(echo, "127.0.0.1", 0, extensions=[factory], compression=None,
                                max_size=1 << 24) as srv:
        print("listening", srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


asyncio.run(main())
