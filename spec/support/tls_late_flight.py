"""A TLS 1.3 client whose last handshake record reaches the server only after the server has
refused the handshake, as on a loaded machine: it sends its final flight but for the last
record, waits for the server's answer (the alert), then sends that record and its request,
and reads. Prints "request written" or "write error: ...", then "alert: <reason>" | "EOF" |
"read error: ...". Arguments: port, CA file. Every wait is bounded (10 s)."""
import socket
import ssl
import sys
import time

port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
sock = socket.create_connection(("127.0.0.1", port), timeout=10)


def records(data):
    out = []
    while data:
        n = 5 + int.from_bytes(data[3:5], "big")
        out.append(data[:n])
        data = data[n:]
    return out


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        data = outgoing.read()
        if data:
            sock.sendall(data)
        data = sock.recv(65536)
        if not data:
            sys.exit("closed during the handshake")
        incoming.write(data)

flight = records(outgoing.read())
for rec in flight[:-1]:
    sock.sendall(rec)
answer = sock.recv(65536)  # the server's alert: it has refused the handshake by now
incoming.write(answer)
try:
    sock.sendall(flight[-1])
    time.sleep(0.2)  # time for a reset answering that record to come back
    tls.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sock.sendall(outgoing.read())
    print("request written", flush=True)
except OSError as err:
    print("write error:", err, flush=True)
try:
    while True:
        try:
            tls.read(65536)
        except ssl.SSLWantReadError:
            pass
        data = sock.recv(65536)
        if not data:
            print("EOF")
            break
        incoming.write(data)
except ssl.SSLError as err:
    print("alert:", err.reason)
except OSError as err:
    print("read error:", err)
