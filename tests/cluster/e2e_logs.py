"""The logs test of tests/cluster/e2e.py: the logger pod's numbered lines and every stdout line
of the app pods still running (their CRI log files) reach the sink exactly once, with labels."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

from e2e_api import Api, running


def sink_entries(path: str) -> list[dict]:
    entries = []
    if not os.path.exists(path):
        return entries
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                entries.append(json.loads(line))
    return entries


def cri_lines(paths: list[str]) -> list[tuple[str, str]]:
    """(stream, content) of every complete line in CRI log files (partial P chunks joined)."""
    out, partial = [], {}
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for raw in f:
                parts = raw.rstrip("\n").split(" ", 3)
                if len(parts) < 3:
                    continue
                stream, tag = parts[1], parts[2]
                content = parts[3] if len(parts) > 3 else ""
                if tag == "P":
                    partial[stream] = partial.get(stream, "") + content
                    continue
                out.append((stream, partial.pop(stream, "") + content))
    return out


def cmd_logs(args: argparse.Namespace) -> int:
    api = Api(args.api, args.pki)
    failures: list[str] = []
    deadline = time.monotonic() + args.wait
    while True:
        entries = sink_entries(args.sink)
        failures = []
        # 1. The logger's numbered lines: each exactly once, with the labels.
        mine = [
            e
            for e in entries
            if e["labels"].get("pod") == args.logger_pod and e["labels"].get("namespace") == args.namespace
        ]
        seqs = Counter()
        for e in mine:
            m = re.fullmatch(r"e2e-log (\d+)", e["line"].rstrip("\n"))
            if m:
                seqs[int(m.group(1))] += 1
        missing = [i for i in range(args.count) if seqs[i] == 0]
        dup = {i: n for i, n in seqs.items() if n > 1}
        if missing:
            failures.append(f"logger: {len(missing)} of {args.count} lines missing (first {missing[:5]})")
        if dup:
            failures.append(f"logger: {len(dup)} lines more than once (e.g. {list(dup.items())[:5]})")
        bad_labels = [
            e["labels"]
            for e in mine
            if e["labels"].get("container") != "logger" or e["labels"].get("app") != "e2e-logger"
        ]
        if bad_labels:
            failures.append(
                f"logger: {len(bad_labels)} entries without container=logger/app=e2e-logger (from the API watch): {bad_labels[:2]}"
            )
        # 2. Every stdout line of the app containers still running: once each.
        app_checked = {}
        for pod in api.pods(args.namespace):
            if (
                not running(pod)
                or pod["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "flask-hello-world"
            ):
                continue
            name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
            files = sorted(
                glob.glob(os.path.join(args.log_root, f"{args.namespace}_{name}_{uid}", "app", "*.log*"))
            )
            files = [f for f in files if not f.endswith(".gz") and not f.endswith(".tmp")]
            want = Counter(c for s, c in cri_lines(files) if s == "stdout")
            got = Counter(
                e["line"].rstrip("\n")
                for e in entries
                if e["labels"].get("pod") == name
                and e["labels"].get("container") == "app"
                and e["labels"].get("stream", "stdout") == "stdout"
            )
            lost = sum((want - got).values())
            extra = sum((got - want).values())
            app_checked[name] = {"lines": sum(want.values()), "lost": lost, "duplicated_or_unknown": extra}
            if lost or extra:
                failures.append(
                    f"app pod {name}: {lost} of {sum(want.values())} lines missing, {extra} extra"
                )
        if not app_checked:
            failures.append("no running flask-hello-world pod to check")
        if not failures or time.monotonic() > deadline:
            break
        time.sleep(3)
    result = {
        "name": "logs",
        "pass": not failures,
        "sink_entries": len(entries),
        "logger_lines": {"expected": args.count, "distinct": len(seqs), "received": sum(seqs.values())},
        "app_pods": app_checked,
        "agent_restart": json.loads(args.agent_restart) if args.agent_restart else None,
        "failures": failures,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
