"""Python websockets as a permessage-deflate client of an echo server, for
spec/server_deflate_spec.lua: every combination of the offer's parameters, one connection each.

usage: deflate_client.py URL
       deflate_client.py URL plain       (the server answers "plain?" with 1000 x sent with
                                          compress = false: prints "plain rsv1=<0|1> echo rsv1=<0|1>")
       deflate_client.py URL publish     (see publish() below)

For each combination it prints one line
  ok snct=<0|1> cnct=<0|1> smwb=<-|n> cmwb=<-|true|n> resp=<the server's answer> \
     sizes=<a>,<b> small=<0|1> inc=<0|1>
where a and b are the compressed sizes of the same message received twice (equal without
context takeover), small says whether a 2-byte message came back compressed and inc whether
incompressible bytes did; or "fail <combination> <error>" and exits 1.
"""
import asyncio
import os
import sys
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

received = []  # (rsv1, payload length on the wire) of every data frame, in order
_decode = PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    if frame.opcode in (1, 2):  # text, binary (never fragmented here)
        received.append((frame.rsv1, len(frame.data)))
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = counting_decode

ITEM = '{"type":"message","room":"lobby","nick":"ada","text":"hello, world","seq":%d}'


def json(n):  # about 2 KB of chat-like JSON
    return "[" + ",".join(ITEM % (n * 24 + k) for k in range(24)) + "]"


async def exchange(c, data):
    """Sends data, returns the answer and (rsv1, wire length) of its frame ((False, -1) on a
    connection without deflate)."""
    del received[:]
    await c.send(data)
    back = await asyncio.wait_for(c.recv(), 5)
    return back, (received[-1] if received else (False, -1))


async def roundtrip(c, data):
    back, frame = await exchange(c, data)
    if back != data:
        raise AssertionError("echo differs (%d bytes sent, %d back)" % (len(data), len(back)))
    return frame


async def one(url, snct, cnct, smwb, cmwb):
    factory = ClientPerMessageDeflateFactory(server_no_context_takeover=snct,
                                             client_no_context_takeover=cnct,
                                             server_max_window_bits=smwb,
                                             client_max_window_bits=cmwb)
    async with websockets.connect(url, extensions=[factory], compression=None,
                                  max_size=1 << 24, open_timeout=5, close_timeout=5) as c:
        if not any(isinstance(e, PerMessageDeflate) for e in c.extensions):
            raise AssertionError("permessage-deflate not negotiated")
        resp = c.response_headers.get("Sec-WebSocket-Extensions")
        msg = json(1)
        a = await roundtrip(c, msg)
        b = await roundtrip(c, msg)
        if not (a[0] and b[0]):
            raise AssertionError("the JSON message came back uncompressed")
        small = await roundtrip(c, "hi")
        inc = await roundtrip(c, os.urandom(300000))
        big = await roundtrip(c, bytes(range(100)) * 10000)  # 1 MB, compressible in any window
        if not big[0] or big[1] > 100000:
            raise AssertionError("1 MiB came back as %d bytes (rsv1 %s)" % (big[1], big[0]))
        await roundtrip(c, "é€𝄞 " * 5000)
        for i in range(20):  # context takeover across many messages, both ways
            await roundtrip(c, json(i))
        return resp, a[1], b[1], small[0], inc[0]


def show(v):
    return "-" if v is None else ("true" if v is True else str(v))


async def plain(url):
    async with websockets.connect(url, compression="deflate", open_timeout=5) as c:
        _, p = await exchange(c, "plain?")
        e = await roundtrip(c, "x" * 1000)
        print("plain rsv1=%d echo rsv1=%d" % (p[0], e[0]), flush=True)


async def publish(url):
    """Four subscribers: two with deflate and the server's window, one with a 10-bit server
    window, one without deflate. Each first has a message echoed (so a dedicated compressor
    has context), then the server publishes a message to all ("pub" asks for it), then each
    has the same message echoed again, which must still inflate right. Prints per subscriber
    "sub <name> rsv1=<0|1> len=<wire bytes> hash=<crc32 of the wire bytes> echo=<wire bytes>"."""
    offers = {
        "a": [ClientPerMessageDeflateFactory(client_max_window_bits=True)],
        "b": [ClientPerMessageDeflateFactory(client_max_window_bits=True)],
        "w10": [ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=True)],
        "plain": [],
    }
    conns = {}
    for name, ext in offers.items():
        conns[name] = await websockets.connect(url, extensions=ext, compression=None, open_timeout=5)
    try:
        msg = json(7)
        for c in conns.values():
            await exchange(c, "sub")
            await roundtrip(c, msg)
        original = PerMessageDeflate.decode
        seen = {}

        def recording(self, frame, *, max_size=None):
            if frame.opcode in (1, 2):
                seen[id(self)] = (frame.rsv1, len(frame.data), zlib.crc32(frame.data))
            return original(self, frame, max_size=max_size)

        PerMessageDeflate.decode = recording
        await conns["plain"].send("pub")
        for name, c in conns.items():
            got = await asyncio.wait_for(c.recv(), 5)
            if got != "P" + msg[::-1]:
                raise AssertionError("%s got a wrong publish" % name)
        PerMessageDeflate.decode = original
        for name, c in conns.items():
            ext = [e for e in c.extensions if isinstance(e, PerMessageDeflate)]
            rsv1, n, h = seen.get(id(ext[0]), (0, 0, 0)) if ext else (0, 0, 0)
            echo = await roundtrip(c, msg) if ext else (False, -1)
            print("sub %s rsv1=%d len=%d hash=%d echo=%d" % (name, rsv1, n, h, echo[1]), flush=True)
    finally:
        for c in conns.values():
            await c.close()


async def main():
    url = sys.argv[1]
    if len(sys.argv) > 2:
        await {"plain": plain, "publish": publish}[sys.argv[2]](url)
        return
    failed = False
    for snct in (False, True):
        for cnct in (False, True):
            for smwb in (None, 8, 11, 15):
                for cmwb in (None, True, 9, 12):
                    desc = "snct=%d cnct=%d smwb=%s cmwb=%s" % (snct, cnct, show(smwb), show(cmwb))
                    try:
                        resp, a, b, small, inc = await one(url, snct, cnct, smwb, cmwb)
                        print("ok %s resp=%s sizes=%d,%d small=%d inc=%d" % (desc, resp, a, b, small, inc),
                              flush=True)
                    except Exception as e:  # report and go on: the spec names every failure
                        failed = True
                        print("fail %s %r" % (desc, e), flush=True)
    sys.exit(1 if failed else 0)


asyncio.run(main())
