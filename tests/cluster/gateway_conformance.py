#!/usr/bin/env python3
"""Helpers of scripts/gateway-conformance.sh (make gateway-conformance, issue 18): the images the
Gateway API conformance suite's manifests name, and the verdict from the suite's own
ConformanceReport plus its `go test -v` log.

  images      every `image:` the suite's manifests (the conformance module's base/ and tests/)
              name, one per line; mesh/ and the TCP/UDP route tests are left out (not GATEWAY-HTTP).
  summary     the verdict: pass only when the report exists and the GATEWAY-HTTP profile's core
              result is "success" with no failed test; per-test pass/fail/skip from the log (the
              report lists only failed and skipped tests); the phases' seconds. Writes OUT and
              merges it into the cluster e2e's summary.json under "gateway_conformance"; prints
              one line per test.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

PROFILE = "GATEWAY-HTTP"
# Manifests of profiles this run does not claim: their images are not pushed.
OTHER_PROFILES = re.compile(r"^(mesh/|tests/(tcproute|udproute|tlsroute|grpcroute)-)")
TEST_LINE = re.compile(r"^\s*--- (PASS|FAIL|SKIP): TestConformance/([^\s/]+) \(([0-9.]+)s\)")


def cmd_images(args: argparse.Namespace) -> int:
    root = Path(args.module)
    images = set()
    for f in sorted(root.glob("base/*.yaml")) + sorted(root.glob("tests/*.yaml")):
        if OTHER_PROFILES.match(str(f.relative_to(root))):
            continue
        images.update(
            re.findall(r"^\s*(?:-\s+)?image:\s*(\S+)\s*$", f.read_text(encoding="utf-8"), flags=re.MULTILINE)
        )
    if not images:
        print(f"no image: lines under {root}/base and {root}/tests", file=sys.stderr)
        return 1
    print("\n".join(sorted(images)))
    return 0


def tests_from_log(log: str) -> dict[str, dict]:
    """TestConformance's direct subtests (one per conformance test) and their outcome."""
    tests: dict[str, dict] = {}
    for line in log.splitlines():
        m = TEST_LINE.match(line)
        if m:
            tests[m.group(2)] = {"result": m.group(1).lower(), "seconds": float(m.group(3))}
    return tests


def assertion_failures(log: str) -> list[str]:
    """Each testify failure block of the log (Error, Test, Messages; the stack lines left out) as
    one line, plus any panic."""
    out: list[str] = []
    block: list[str] | None = None
    for line in log.splitlines():
        field = re.match(r"^\s+\t?(Error Trace|Error|Test|Messages):\s*\t(.*)$", line)
        if field:
            if field.group(1) == "Error Trace":
                if block:
                    out.append(" ".join(block))
                block = []
            elif block is not None:
                block.append(f"{field.group(1)}: {field.group(2).strip()}")
            continue
        cont = re.match(r"^\s+\t\s*\t(.*)$", line)
        if block is not None and cont:
            if not re.search(r"\.go:\d+$", cont.group(1).strip()):
                block.append(cont.group(1).strip())
            continue
        if block:
            out.append(" ".join(block))
        block = None
        if "panic:" in line:
            out.append(line.strip())
    if block:
        out.append(" ".join(block))
    return out


UNMET = re.compile(
    r"(not ready yet: |timeout while waiting|doesn't match|expected .* got|set to False, expected)"
)
SUBTEST = re.compile(r"^=== (?:RUN|NAME|CONT)\s+TestConformance/([^\s/]+)")


def compact(text: str) -> str:
    """A failed request as METHOD URL Host= headers=: what the suite expected and got."""
    if "Response expectation failed" not in text:
        return text
    field = {
        k: (m.group(1) if (m := re.search(rx, text)) else "")
        for k, rx in {
            "addr": r"URL: \{Scheme:\w* Opaque: User: Host:(\S*)",
            "path": r" Path:(\S*)",
            "query": r"RawQuery:(\S*)",
            "host": r"\}, Host: ([^,]*),",
            "method": r"Method: (\w*)",
            "headers": r"Headers: (map\[.*?\]\])",
            "why": r"not ready yet: (.*)$",
        }.items()
    }
    query = f"?{field['query']}" if field["query"] else ""
    return (
        f"{field['method']} http://{field['addr']}{field['path']}{query} Host={field['host'] or '-'} "
        f"headers={field['headers']}: {field['why']}"
    )


def last_unmet(log: str) -> dict[str, str]:
    """Per conformance test, the last expectation the suite logged as not met (a request's
    expected and received response, a status condition): what a failed test was waiting for."""
    out: dict[str, str] = {}
    test = ""
    for line in log.splitlines():
        m = SUBTEST.match(line)
        if m:
            test = m.group(1)
            continue
        if test and UNMET.search(line) and "timeout while waiting" not in line:
            out[test] = compact(re.sub(r"^\s*\S+\.go:\d+: \S+Z: ", "", line).strip())[:900]
    return out


def profile_of(report: dict | None) -> dict | None:
    for p in (report or {}).get("profiles") or []:
        if p.get("name") == PROFILE:
            return p
    return None


def verdict(report: dict | None, log: str, gateway_ready: bool) -> dict:
    tests = tests_from_log(log)
    unmet = last_unmet(log)
    for name, t in tests.items():
        if t["result"] == "fail" and name in unmet:
            t["last_unmet"] = unmet[name]
    profile = profile_of(report)
    core = (profile or {}).get("core") or {}
    extended = (profile or {}).get("extended") or {}
    stats = core.get("statistics") or {}
    failed = int(stats.get("Failed", 0) or 0)
    if report is None:
        reason = "no ConformanceReport was written (the suite stopped before its report; see the log)"
    elif profile is None:
        reason = f"the report has no {PROFILE} profile (the suite stopped before its tests)"
    elif core.get("result") != "success" or failed:
        reason = f"core result {core.get('result')!r} with {failed} failed test(s)"
    else:
        reason = ""
    fatal = assertion_failures(log)[:20]
    return {
        "pass": not reason,
        "reason": reason or "every core test passed",
        "gateway_ready": gateway_ready,
        "profile": PROFILE,
        "gateway_api_version": (report or {}).get("gatewayAPIVersion"),
        "core": {
            "result": core.get("result"),
            "statistics": stats,
            "failed_tests": core.get("failedTests") or [],
            "skipped_tests": core.get("skippedTests") or [],
        },
        "extended": {
            "result": extended.get("result"),
            "statistics": extended.get("statistics") or {},
            "supported_features": extended.get("supportedFeatures") or [],
            "unsupported_features": extended.get("unsupportedFeatures") or [],
            "failed_tests": extended.get("failedTests") or [],
            "skipped_tests": extended.get("skippedTests") or [],
        },
        "tests": tests,
        "log_errors": [] if not reason else fatal,
    }


def cmd_summary(args: argparse.Namespace) -> int:
    report_path = Path(args.report)
    report = yaml.safe_load(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    log = Path(args.log).read_text(encoding="utf-8", errors="replace") if Path(args.log).is_file() else ""
    result = verdict(report, log, args.gateway_ready == "true")
    result["report"] = str(report_path) if report is not None else None
    result["phases_s"] = (
        json.loads(Path(args.phases).read_text(encoding="utf-8")) if Path(args.phases).is_file() else {}
    )
    if args.host_clean:
        host = json.loads(Path(args.host_clean).read_text(encoding="utf-8"))
        result["host_clean"] = host
        result["pass"] = result["pass"] and bool(host.get("pass"))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    merged = Path(args.merge)
    summary = (
        json.loads(merged.read_text(encoding="utf-8")) if merged.exists() else {"pass": True, "tests": []}
    )
    summary["gateway_conformance"] = result
    summary["pass"] = bool(summary.get("pass", True)) and result["pass"]
    merged.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for name, t in sorted(result["tests"].items()):
        print(f"  {t['result'].upper():4} {name} ({t['seconds']} s)")
    print(
        f"  {PROFILE} core: {result['core']['result']} {result['core']['statistics']}; "
        f"extended: {result['extended']['result']} {result['extended']['statistics']}"
    )
    print(f"  verdict: {'PASS' if result['pass'] else 'FAIL'}: {result['reason']}")
    return 0 if result["pass"] else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("images")
    i.add_argument("module", help="the conformance module's directory (Go module cache)")
    i.set_defaults(fn=cmd_images)
    s = sub.add_parser("summary")
    s.add_argument("--report", required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--phases", required=True)
    s.add_argument("--gateway-ready", choices=["true", "false"], required=True)
    s.add_argument("--host-clean", default="")
    s.add_argument("--out", required=True)
    s.add_argument("--merge", required=True)
    s.set_defaults(fn=cmd_summary)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
