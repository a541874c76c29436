#!/usr/bin/env python3
"""Open N HTTP/1.1 keep-alive connections to HOST:PORT, complete one request on each, and hold
them open until stdin closes. Prints 'ready <n>' once all are established (used by
bench/proxy.sh to measure proxy RSS at 1,000 keep-alive connections)."""
import socket
import sys


def main() -> int:
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("connection closed early")
            data += chunk
        conns.append(s)
    print(f"ready {len(conns)}", flush=True)
    sys.stdin.read()
    for s in conns:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
