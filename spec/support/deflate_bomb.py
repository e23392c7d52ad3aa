"""A permessage-deflate decompression bomb over a raw socket, for spec/server_deflate_spec.lua.

usage: deflate_bomb.py PORT MIB

Opens a WebSocket to 127.0.0.1:PORT offering permessage-deflate, then sends one binary message
whose compressed payload (about 1 KiB per MiB) inflates to MIB mebibytes of zeros, in fragments
of 64 KiB. Prints "sent <compressed bytes>" and then "close <code> <reason>" from the server's
close frame (or "close none" if the socket ended without one).
"""
import base64
import os
import socket
import struct
import sys
import zlib


def bomb(mib):
    # Every mebibyte of zeros after the first compresses to the same bytes (the deflate
    # blocks refer back one byte), so the bomb is built from two compressed pieces.
    c = zlib.compressobj(9, zlib.DEFLATED, -9)
    zeros = bytes(1 << 20)
    first = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    rest = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    return first + rest * (mib - 1)


def frame(opcode, payload, fin, rsv1):
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\0\0\0\0" + payload  # masked with the all-zero key: the payload as is


def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def main():
    port, mib = int(sys.argv[1]), int(sys.argv[2])
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
               % (port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            print("no response", flush=True)
            sys.exit(1)
        head += chunk
    if not head.startswith(b"HTTP/1.1 101") or b"permessage-deflate" not in head.lower():
        print("not accepted:", head.decode(errors="replace"), flush=True)
        sys.exit(1)
    rest = head.split(b"\r\n\r\n", 1)[1]
    payload = bomb(mib)
    piece = 65536
    sent = 0
    try:
        for i in range(0, len(payload), piece):
            last = i + piece >= len(payload)
            s.sendall(frame(2 if i == 0 else 0, payload[i:i + piece], last, i == 0))
            sent += min(piece, len(payload) - i)
    except OSError:
        pass  # the server closed on us: expected
    print("sent %d" % sent, flush=True)
    buf = rest
    try:
        while True:
            while len(buf) < 2:
                buf += s.recv(4096) or b""
            op, n = buf[0] & 15, buf[1] & 127
            at = 2
            if n == 126:
                buf += read_exact(s, max(0, 4 - len(buf)))
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            body = buf[at:]
            if len(body) < n:
                body += read_exact(s, n - len(body))
            if op == 8:
                code = struct.unpack("!H", body[:2])[0] if n >= 2 else 1005
                print("close %d %s" % (code, body[2:n].decode()), flush=True)
                return
            buf = body[n:]
    except (EOFError, OSError):
        print("close none", flush=True)


main()
