#!/usr/bin/env python3
"""Helpers of scripts/gitops-e2e.sh (make gitops-e2e, issue 20): what the shell would otherwise
do with long jq/sed programs.

  tags        the image tags the local cluster entry names (flux/clusters/local postBuild
              variables, the app's setter-marked tag), one "IMAGE<TAB>TAG" line each, so that the
              script pushes exactly what the tree will pull.
  manifests   the flux-system install (scripts/flux-install-manifests.sh) for a node without
              cluster DNS: source-controller's and notification-controller's Services on fixed
              ClusterIPs, and the controllers' --storage-adv-addr / --events-addr pointed at them.
  ready       from `kubectl get kustomizations,helmreleases -A -o json` on stdin: each object's
              Ready condition and when it became Ready; exit 0 only when every one is Ready and
              the Kustomizations (and, with --hr-order, the named HelmReleases) became Ready in
              their dependsOn order.
  alerts      the alerts the receiver got after a point in time that name an object.
  webhook     the alerts the receiver got from Alertmanager's webhook (the local
              kube-prometheus-stack's Alertmanager routes there) after a point in time, by name.
  loki        how many log lines of a LogQL stream selector Loki holds since a point in time
              (/loki/api/v1/query_range for the lines, /loki/api/v1/query for the total).
  summary     gitops/summary.json, merged into the cluster e2e's summary.json under "gitops".
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "flux" / "clusters" / "local"
APP_VALUES = ROOT / "flux" / "apps" / "local" / "flask-hello-world-values.yaml"


def post_build_vars() -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted(LOCAL.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "Kustomization":
                out.update((doc["spec"].get("postBuild") or {}).get("substitute") or {})
    return out


def cmd_tags(_args: argparse.Namespace) -> int:
    v = post_build_vars()
    app = yaml.safe_load(APP_VALUES.read_text(encoding="utf-8"))["spec"]["values"]["image"]["tag"]
    for image, tag in (
        ("outrigger-proxy", v["proxy_tag"]),
        ("outrigger-agent", v["agent_tag"]),
        ("outrigger-injector", v["injector_tag"]),
        ("flask-hello-world", app),
    ):
        print(f"{image}\t{tag}")
    return 0


def cmd_manifests(args: argparse.Namespace) -> int:
    docs = [d for d in yaml.safe_load_all(Path(args.input).read_text(encoding="utf-8")) if d]
    ips = {"source-controller": args.source_ip, "notification-controller": args.events_ip}
    seen = set()
    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] == "Service" and name in ips:
            d["spec"]["clusterIP"] = ips[name]
            seen.add(name)
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                c["args"] = [
                    f"--events-addr=http://{args.events_ip}/"
                    if a.startswith("--events-addr=")
                    else f"--storage-adv-addr={args.source_ip}"
                    if a.startswith("--storage-adv-addr=")
                    else a
                    for a in c.get("args", [])
                ]
    if seen != set(ips):
        sys.exit(f"gitops.py manifests: no Service {sorted(set(ips) - seen)} in {args.input}")
    Path(args.out).write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return 0


def ready_since(obj: dict) -> tuple[bool, str | None, str]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True", c.get("lastTransitionTime"), c.get("message", "")
    return False, None, "no Ready condition yet"


def cmd_ready(args: argparse.Namespace) -> int:
    items = json.load(sys.stdin)["items"]
    objects = []
    for o in items:
        ok, since, message = ready_since(o)
        objects.append(
            {
                "kind": o["kind"],
                "namespace": o["metadata"]["namespace"],
                "name": o["metadata"]["name"],
                "ready": ok,
                "since": since,
                "message": message[:300],
            }
        )
    want = [n for n in args.order.split(",") if n]
    by_name = {o["name"]: o for o in objects if o["kind"] == "Kustomization"}
    in_order, missing = became_ready_in_order(want, by_name)
    # HelmReleases by NAMESPACE/NAME: chains of dependsOn inside one Kustomization, each in order.
    hr_chains = [[n for n in chain.split(",") if n] for chain in args.hr_order or []]
    hr_by_name = {f"{o['namespace']}/{o['name']}": o for o in objects if o["kind"] == "HelmRelease"}
    hr_in_order, hr_missing = True, []
    for chain in hr_chains:
        ok, missing_here = became_ready_in_order(chain, hr_by_name)
        hr_in_order = hr_in_order and ok
        hr_missing += missing_here
    all_ready = bool(objects) and all(o["ready"] for o in objects)
    report = {
        "all_ready": all_ready,
        "order": want,
        "in_order": in_order and hr_in_order,
        "missing": missing + hr_missing,
        "helmrelease_order": hr_chains,
        "objects": objects,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all_ready and in_order and hr_in_order else 1


def became_ready_in_order(want: list[str], by_name: dict[str, dict]) -> tuple[bool, list[str]]:
    """Whether every named object is Ready, each no earlier than the one before it."""
    missing = [n for n in want if n not in by_name]
    times = [by_name[n]["since"] for n in want if n in by_name and by_name[n]["ready"]]
    parsed = [datetime.fromisoformat(t) for t in times if t]
    return not missing and len(parsed) == len(want) and parsed == sorted(parsed), missing


def cmd_alerts(args: argparse.Namespace) -> int:
    found = []
    path = Path(args.file)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        rec = json.loads(line)
        if rec["received"] < args.after:
            continue
        for alert in rec["body"] if isinstance(rec["body"], list) else []:
            labels = alert.get("labels") or {}
            annotations = alert.get("annotations") or {}
            text = json.dumps(alert)
            if args.name in text:
                found.append(
                    {
                        "received": rec["received"],
                        "labels": labels,
                        "message": (annotations.get("message") or annotations.get("summary") or "")[:400],
                    }
                )
    print(json.dumps(found))
    return 0 if found else 1


def cmd_webhook(args: argparse.Namespace) -> int:
    """Alertmanager's webhook payload is an object ({"version": "4", "receiver": ..., "alerts":
    [...]}), unlike Flux's Alertmanager-API posts (a list), so the two never mix up."""
    found = []
    path = Path(args.file)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        rec = json.loads(line)
        body = rec["body"]
        if (
            rec["received"] < args.after
            or not isinstance(body, dict)
            or not isinstance(body.get("alerts"), list)
        ):
            continue
        for alert in body["alerts"]:
            labels = alert.get("labels") or {}
            if labels.get("alertname") == args.alertname:
                found.append(
                    {
                        "received": rec["received"],
                        "path": rec["path"],
                        "receiver": body.get("receiver"),
                        "status": alert.get("status"),
                        "labels": labels,
                    }
                )
    print(json.dumps(found))
    return 0 if found else 1


def loki_get(url: str, path: str, params: dict[str, str]) -> dict:
    with urllib.request.urlopen(f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"gitops.py loki: {path} answered {body}")
    return body["data"]


def cmd_loki(args: argparse.Namespace) -> int:
    """The lines Loki returns for a stream selector since --since (at most --limit of them), and the
    total count_over_time of the same selector over that window: the agent shipped them and Loki
    made them queryable."""
    now = args.now if args.now is not None else datetime.now().timestamp()
    window = max(1, int(now - args.since) + 1)
    lines = loki_get(
        args.url,
        "/loki/api/v1/query_range",
        {
            "query": args.query,
            "start": str(int(args.since * 1e9)),
            "end": str(int(now * 1e9)),
            "limit": str(args.limit),
            "direction": "backward",
        },
    )
    if lines.get("resultType") != "streams":
        raise SystemExit(
            f"gitops.py loki: query_range of {args.query} gave {lines.get('resultType')}, not streams"
        )
    streams = lines["result"]
    entries = [(s["stream"], v) for s in streams for v in s["values"]]
    total_data = loki_get(
        args.url,
        "/loki/api/v1/query",
        {"query": f"sum(count_over_time({args.query} [{window}s]))", "time": str(int(now * 1e9))},
    )
    total = sum(int(float(r["value"][1])) for r in total_data.get("result") or [])
    report = {
        "query": args.query,
        "window_s": window,
        "lines": total,
        "lines_returned": len(entries),
        "streams": len(streams),
        "labels": sorted({k for s in streams for k in s["stream"]}),
        "pods": sorted({s["stream"].get("pod", "") for s in streams}),
        "sample": entries[0][1][1][:300] if entries else None,
    }
    print(json.dumps(report))
    return 0 if total > 0 and entries else 1


def cmd_summary(args: argparse.Namespace) -> int:
    gitops = json.loads(Path(args.gitops).read_text(encoding="utf-8"))
    out = Path(args.out)
    summary = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"pass": True, "tests": []}
    summary["gitops"] = gitops
    summary["pass"] = bool(summary.get("pass", True)) and bool(gitops["pass"])
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("tags").set_defaults(fn=cmd_tags)
    m = sub.add_parser("manifests")
    m.add_argument("input")
    m.add_argument("out")
    m.add_argument("--source-ip", required=True)
    m.add_argument("--events-ip", required=True)
    m.set_defaults(fn=cmd_manifests)
    r = sub.add_parser("ready")
    r.add_argument("--order", required=True)
    r.add_argument("--out", required=True)
    r.add_argument(
        "--hr-order",
        action="append",
        help="HelmReleases NAMESPACE/NAME,... in their dependsOn order (repeatable: one chain each)",
    )
    r.set_defaults(fn=cmd_ready)
    a = sub.add_parser("alerts")
    a.add_argument("file")
    a.add_argument("--after", type=float, required=True)
    a.add_argument("--name", required=True)
    a.set_defaults(fn=cmd_alerts)
    w = sub.add_parser("webhook")
    w.add_argument("file")
    w.add_argument("--after", type=float, required=True)
    w.add_argument("--alertname", required=True)
    w.set_defaults(fn=cmd_webhook)
    q = sub.add_parser("loki")
    q.add_argument("--url", required=True)
    q.add_argument("--query", required=True, help="a LogQL stream selector with optional line filters")
    q.add_argument("--since", type=float, required=True, help="Unix time the window starts at")
    q.add_argument("--now", type=float, help="Unix time the window ends at (default: now)")
    q.add_argument("--limit", type=int, default=5000)
    q.set_defaults(fn=cmd_loki)
    s = sub.add_parser("summary")
    s.add_argument("--gitops", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_summary)
    args = p.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
