"""Python `websockets` (Debian python3-websockets) peer for the benchmarks: echo or broadcast.

Usage: /usr/bin/python3 bench/peers/python_ws.py --port N [--mode echo|broadcast]
broadcast: every text message received from any connection is sent, unchanged, as one text
frame to every open connection, the sender included (the protocol bench/loadclient.c expects).
"""
import argparse
import asyncio
import signal

import websockets

CLIENTS = set()


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def broadcast(ws, path=None):
    CLIENTS.add(ws)
    try:
        async for msg in ws:
            if isinstance(msg, str):
                websockets.broadcast(CLIENTS, msg)
    finally:
        CLIENTS.discard(ws)


async def main(port, mode):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    handler = echo if mode == "echo" else broadcast
    async with websockets.serve(handler, "127.0.0.1", port, compression=None,
                                max_size=2 ** 24, max_queue=64, ping_interval=None,
                                backlog=4096):
        print(f"python websockets {mode} listening on 127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["echo", "broadcast"], default="echo")
    a = ap.parse_args()
    asyncio.run(main(a.port, a.mode))
