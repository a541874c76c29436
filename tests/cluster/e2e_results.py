"""Results of tests/cluster/e2e.py: one rollout test's result from the sidecar and baseline load
reports, and summary.json from every test's result with one line per test."""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path


def load(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def figures(run: dict) -> dict:
    keys = [
        "sent",
        "succeeded",
        "failed",
        "achieved_rate",
        "seconds",
        "status",
        "errors",
        "latency_ms",
        "first_failures",
    ]
    return {k: run.get(k) for k in keys}


def cmd_rollout(args: argparse.Namespace) -> int:
    sidecar, baseline = load(args.sidecar), load(args.baseline)
    # The same rollout with the load through the gateway (client -> gateway -> the baseline's pods),
    # when the run has one.
    gateway = load(args.gateway) if getattr(args, "gateway", "") else None
    problems = []
    legs = [("sidecar", sidecar), ("baseline", baseline)] + ([("gateway", gateway)] if gateway else [])
    for setup, run in legs:
        if run["sent"] == 0:
            problems.append(f"{setup}: no request sent")
        if run["achieved_rate"] < 0.95 * args.rate:
            problems.append(
                f"{setup}: {run['achieved_rate']} req/s, below the {args.rate} req/s the test needs"
            )
    if args.zero_failures and sidecar["failed"]:
        problems.append(f"sidecar: {sidecar['failed']} failed requests")
    if args.zero_failures and gateway and gateway["failed"]:
        problems.append(f"gateway: {gateway['failed']} failed requests")
    result = {
        "name": args.name,
        "pass": not problems,
        "goal": (
            ("sidecar" + (" and gateway" if gateway else "") + ": zero failed requests")
            if args.zero_failures
            else "failures counted and reported"
        ),
        "sidecar": figures(sidecar),
        "baseline": figures(baseline),
        "problems": problems,
    }
    if gateway:
        result["gateway"] = figures(gateway)
    if args.extra:
        result.update(json.loads(args.extra))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def line(t: dict) -> str:
    word = "PASS" if t["pass"] else "FAIL"
    if "sidecar" in t and "baseline" in t:
        s, b = t["sidecar"], t["baseline"]
        detail = (
            f"sidecar {s['sent']} sent / {s['failed']} failed {s['status']} {s['errors']}; "
            f"baseline {b['sent']} sent / {b['failed']} failed {b['status']} {b['errors']}"
        )
        if "gateway" in t:
            g = t["gateway"]
            detail += f"; gateway {g['sent']} sent / {g['failed']} failed {g['status']} {g['errors']}"
    else:
        detail = t.get("detail") or ", ".join(t.get("failures", []) + t.get("problems", [])) or ""
        if t["name"] == "metrics" and "checks_passed" in t:
            detail = f"{t['checks_passed']} checks ok, {len(t['checks_failed'])} failed; dashboard queries {t['dashboard_queries']}"
        if t["name"] == "logs" and "logger_lines" in t:
            detail = f"logger {t['logger_lines']}, app pods {t['app_pods']}" + (
                f"; {'; '.join(t['failures'])}" if t["failures"] else ""
            )
    if t.get("problems") and "sidecar" in t:
        detail += f"; {'; '.join(t['problems'])}"
    return f"cluster-e2e: {word} {t['name']}: {detail}"


def cmd_summary(args: argparse.Namespace) -> int:
    order = args.order.split(",") if args.order else []
    tests = {}
    for path in glob.glob(os.path.join(args.dir, "*.json")):
        t = load(path)
        tests[t["name"]] = t
    for name in order:
        if name not in tests:
            tests[name] = {
                "name": name,
                "pass": False,
                "detail": "did not run (an earlier step failed; see the log)",
            }
    ordered = [tests[n] for n in order] + [t for n, t in sorted(tests.items()) if n not in order]
    summary = {
        "pass": all(t["pass"] for t in ordered),
        "seconds": args.seconds,
        "tests": ordered,
    }
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for t in ordered:
        print(line(t))
    return 0 if summary["pass"] else 1
