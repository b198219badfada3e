"""Holds N idle HTTP streams open (docs/BENCHMARKS.md, 1,000 idle event streams).

python3 hold.py 1000 /v1/chains/dev-chain/events 18090 $TOKEN [seconds]
For each of N sockets: send `GET <path> HTTP/1.1` with the token, read to the
end of the response head, keep the socket. Loopback only.
"""
import socket
import sys
import time

n, path, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
token = sys.argv[4] if len(sys.argv) > 4 else ""
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
    if token:
        req += f"Authorization: Bearer {token}\r\n"
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f"connection {i} closed: {buf[:200]!r}")
        buf += chunk
    if i == 0:
        print(buf.split(b"\r\n")[0].decode(), flush=True)
    socks.append(s)
print("holding", len(socks), flush=True)
time.sleep(float(sys.argv[5]) if len(sys.argv) > 5 else 3600)
