#!/usr/bin/env python3
"""Prefills a kubelet-style pod log root for bench/agent.sh: LINES CRI lines of exactly
LINE_BYTES bytes (terminator included) spread over PODS pods, one container each, written the
way containerd writes them (`<RFC3339Nano> stdout F <msg>\\n`)."""
import os
import sys
import time

root, lines, pods, line_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per_pod = lines // pods
base = time.time()
for p in range(pods):
    d = os.path.join(root, f"bench_load-{p}_00000000-0000-0000-0000-{p:012d}", "app")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "0.log"), "w", buffering=1 << 20) as f:
        for i in range(per_pod):
            t = base + i * 1e-6
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)
            head = f"{ts} stdout F pod={p} seq={i:08d} "
            f.write(head + "x" * (line_bytes - len(head) - 1) + "\n")
