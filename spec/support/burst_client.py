# A burst of WebSocket clients for the memory specs: N clients upgrade, each sends MSGS binary
# messages of SIZE bytes and half of one more while reading the echoes, and once half of the
# echoed bytes are back, every connection is reset (SO_LINGER 0) in the middle of its transfer.
# Frames use a zero masking key, so the payload goes out as it is. Bounded: 60 s at most.
#   python3 burst_client.py PORT N SIZE MSGS   -> prints "done BYTES_RECEIVED"
import os, socket, struct, sys, time, selectors, base64
port, n, size, msgs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def frame(size):
    hdr = bytes([0x82])
    if size < 126: hdr += bytes([0x80 | size])
    elif size < 65536: hdr += bytes([0x80 | 126]) + struct.pack(">H", size)
    else: hdr += bytes([0x80 | 127]) + struct.pack(">Q", size)
    return hdr + b"\0\0\0\0"
payload = b"x" * size
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    socks.append(s)
for s in socks:
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d: raise SystemExit("closed during handshake")
        buf += d
    assert buf.startswith(b"HTTP/1.1 101"), buf[:40]
    s.setblocking(False)
sel = selectors.DefaultSelector()
out = {}
for s in socks:
    out[s] = bytearray((frame(size) + payload) * msgs + frame(size) + payload[: size // 2])
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
got = {s: 0 for s in socks}
want = msgs * size  # at least this many echoed bytes before the reset
deadline = time.time() + 60
while out and time.time() < deadline:
    for key, ev in sel.select(1):
        s = key.fileobj
        if ev & selectors.EVENT_READ:
            try:
                d = s.recv(1 << 20)
            except BlockingIOError:
                d = None
            if d: got[s] += len(d)
        if ev & selectors.EVENT_WRITE and out.get(s):
            try:
                k = s.send(out[s])
                del out[s][:k]
            except BlockingIOError:
                pass
        if s in out and not out[s] and got[s] >= want // 2:
            del out[s]
            sel.modify(s, selectors.EVENT_READ)
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
print("done", sum(got.values()))
