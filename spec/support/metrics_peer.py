# The metrics spec's Python side: optionally some traffic with Python `websockets` (messages,
# a ping, a close with a code), then GET of a metrics URL parsed with prometheus_client's own
# parser (Debian's python3-prometheus-client). Prints one line per family, "family <name>
# <type>", and one per sample, "sample <name> <labels k=v,...> <value>"; exits non-zero when
# the text does not parse or a family lacks HELP.
# Usage: metrics_peer.py <metrics-url> [<ws-url> <messages> <close-code>]
import asyncio
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


async def traffic(url, count, code):
    import websockets
    async with websockets.connect(url, open_timeout=5, close_timeout=5) as ws:
        for i in range(count):
            await ws.send("py %d" % i)
            await asyncio.wait_for(ws.recv(), 5)
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 5)
        await ws.close(code, "py done")


def main():
    metrics_url = sys.argv[1]
    if len(sys.argv) > 2:
        asyncio.run(traffic(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        ctype = resp.headers.get("Content-Type")
        text = resp.read().decode("utf-8")
    print("content-type %s" % ctype)
    for fam in text_string_to_metric_families(text):
        if not fam.documentation:
            print("no HELP for %s" % fam.name, file=sys.stderr)
            sys.exit(2)
        print("family %s %s" % (fam.name, fam.type))
        for s in fam.samples:
            labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
            print("sample %s %s %r" % (s.name, labels or "-", s.value))


main()
