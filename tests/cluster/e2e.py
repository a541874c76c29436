#!/usr/bin/env python3
"""Helpers of scripts/cluster-e2e.sh (standard library only; the subcommands that talk to the
cluster run inside the node's network namespace, where the API server and pod IPs are reachable).

  targets   Prometheus file_sd targets from the API server's pod list, rewritten every few
            seconds: Debian's prometheus is built without kubernetes_sd, so this stands in for it
            with the relabelings of charts/outrigger's PodMonitor/ServiceMonitor (job, namespace,
            pod, container, node, workload).
  proxy-requests  sum of outrigger_proxy_requests_total of every meshed pod of a namespace,
            read from each sidecar's admin port (service-through-sidecar test).
  metrics   the metrics test: golden metrics of every meshed pod, the agent's node metrics, the
            injector and app targets, and every Grafana dashboard query of charts/outrigger run
            against this Prometheus.
  logs      the logs test: the logger pod's numbered lines and every stdout line of the app pods
            still running (their CRI log files) reach the sink exactly once, with labels.
  rollout   one rollout test's result from the sidecar and baseline load reports.
  summary   summary.json from the per-test results, one line per test on stdout; exit 1 on any
            failure.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import ssl
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

# ---- API server ------------------------------------------------------------------------------


class Api:
    def __init__(self, url: str, pki: str) -> None:
        self.url = url.rstrip("/")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.ctx = ctx

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, context=self.ctx, timeout=10) as r:
            return json.load(r)

    def pods(self, namespace: str | None = None) -> list[dict]:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        return self.get(path)["items"]


def workload(pod: dict) -> str:
    """The owning controller, a ReplicaSet cut to its Deployment (as the PodMonitor relabels)."""
    for ref in pod["metadata"].get("ownerReferences", []):
        if ref.get("controller"):
            name = ref["name"]
            if ref["kind"] == "ReplicaSet":
                name = re.sub(r"-[a-z0-9]+$", "", name)
            return name
    return pod["metadata"]["name"]


def running(pod: dict) -> bool:
    return (
        pod.get("status", {}).get("phase") == "Running"
        and bool(pod["status"].get("podIP"))
        and not pod["metadata"].get("deletionTimestamp")
    )


def ready(pod: dict) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return running(pod) and any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def named_port(pod: dict, name: str) -> tuple[str, int] | None:
    spec = pod["spec"]
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for p in c.get("ports", []):
            if p.get("name") == name:
                return c["name"], p["containerPort"]
    return None


def meshed(pod: dict) -> bool:
    return named_port(pod, "outrigger-admin") is not None


def target_groups(pods: list[dict]) -> list[dict]:
    groups = []
    for pod in pods:
        if not running(pod):
            continue
        meta, ip = pod["metadata"], pod["status"]["podIP"]
        labels = meta.get("labels", {})
        base = {
            "namespace": meta["namespace"],
            "pod": meta["name"],
            "node": pod["spec"].get("nodeName", ""),
            "workload": workload(pod),
        }
        admin = named_port(pod, "outrigger-admin")
        if admin:
            groups.append(
                {
                    "targets": [f"{ip}:{admin[1]}"],
                    "labels": base | {"job": "outrigger-proxy", "container": admin[0]},
                }
            )
        component = labels.get("app.kubernetes.io/component")
        metrics = named_port(pod, "metrics")
        if component == "agent" and metrics:
            groups.append(
                {
                    "targets": [f"{ip}:{metrics[1]}"],
                    # One agent per node: the ServiceMonitor sets instance = node.
                    "labels": base | {"job": "outrigger-agent", "instance": base["node"]},
                }
            )
        if component == "injector" and metrics:
            groups.append({"targets": [f"{ip}:{metrics[1]}"], "labels": base | {"job": "outrigger-injector"}})
        ann = meta.get("annotations", {})
        if ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port"):
            groups.append(
                {
                    "targets": [f"{ip}:{ann['prometheus.io/port']}"],
                    "labels": base
                    | {
                        "job": "kubernetes-pods",
                        "__metrics_path__": ann.get("prometheus.io/path", "/metrics"),
                    },
                }
            )
    return groups


def cmd_targets(args: argparse.Namespace) -> int:
    api = Api(args.api, args.pki)
    while True:
        try:
            text = json.dumps(target_groups(api.pods()), indent=1, sort_keys=True)
            tmp = args.out + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, args.out)
        except OSError as e:  # the API server may be briefly busy; the next round retries
            print(f"targets: {e}", file=sys.stderr)
        if args.once:
            return 0
        time.sleep(args.interval)


# ---- Prometheus ------------------------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def sample_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cmd_proxy_requests(args: argparse.Namespace) -> int:
    api = Api(args.api, args.pki)
    out = {}
    for pod in api.pods(args.namespace):
        if not running(pod) or not meshed(pod):
            continue
        if args.selector and not all(
            pod["metadata"].get("labels", {}).get(k) == v
            for k, v in (kv.split("=", 1) for kv in args.selector.split(","))
        ):
            continue
        port = named_port(pod, "outrigger-admin")
        assert port is not None
        text = scrape(f"http://{pod['status']['podIP']}:{port[1]}/metrics")
        out[pod["metadata"]["name"]] = sample_sum(text, "outrigger_proxy_requests_total")
    print(json.dumps(out))
    return 0


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=30) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]


# Dashboard queries that need kube-state-metrics, which this cluster does not run (it is not
# built here): reported as a known gap, not as data.
KSM = re.compile(r"\bkube_[a-z_]+")
METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)")


def dashboard_queries(directory: str) -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        board = json.loads(Path(path).read_text(encoding="utf-8"))

        def walk(panels: list[dict], board_name: str = Path(path).name) -> None:
            for p in panels:
                for t in p.get("targets") or []:
                    if t.get("expr"):
                        out.append((board_name, p.get("title", ""), t["expr"]))
                walk(p.get("panels") or [])

        walk(board.get("panels", []))
    return out


def labeled_families(metrics_md: str) -> set[str]:
    """Metrics docs/metrics.md documents with labels: their series appear only with the first
    event of a label set (prometheus-client exports nothing, not even HELP/TYPE, for an empty
    family). Unlabeled metrics always have a series once their exporter is scraped."""
    out = set()
    for row in Path(metrics_md).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) > 4 and cells[1].startswith("`") and cells[3] not in ("", "—", "-"):
            out.add(cells[1].strip("`").split("{")[0])
    return out


def family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def substitute(expr: str) -> str:
    # Grafana's variables at "All" and its rate interval (4 x the 5 s scrape interval, rounded up).
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$\{?[a-zA-Z_]+\}?", ".*", expr)


def cmd_metrics(args: argparse.Namespace) -> int:
    api, prom = Api(args.api, args.pki), Prom(args.prom)
    checks: list[dict] = []
    meshed_pods = [p for p in api.pods() if ready(p) and meshed(p)]
    golden = [
        "outrigger_proxy_requests_total",
        "outrigger_proxy_request_duration_seconds_count",
        "outrigger_proxy_response_headers_duration_seconds_count",
        "outrigger_proxy_requests_in_flight",
        "outrigger_proxy_open_connections",
    ]
    node = [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "outrigger_agent_lines_read_total",
        "outrigger_agent_build_info",
    ]
    # Scrapes lag pod changes by a few seconds (target refresh + 5 s scrape interval).
    deadline = time.monotonic() + args.wait
    while True:
        checks = []
        for pod in meshed_pods:
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            for m in golden:
                n = len(prom.query(f'{m}{{job="outrigger-proxy", namespace="{ns}", pod="{name}"}}'))
                checks.append({"check": f"{m} of {ns}/{name}", "series": n, "ok": n > 0})
        for m in node:
            n = len(prom.query(f'{m}{{job="outrigger-agent"}}'))
            checks.append({"check": f"{m} (agent)", "series": n, "ok": n > 0})
        for job in ["outrigger-agent", "outrigger-injector", "kubernetes-pods", "outrigger-proxy"]:
            up = prom.query(f'up{{job="{job}"}} == 1')
            checks.append({"check": f"up{{job={job}}} == 1", "series": len(up), "ok": len(up) > 0})
        n = len(prom.query('outrigger_injector_admissions_total{result="injected"}'))
        checks.append(
            {"check": "outrigger_injector_admissions_total{result=injected}", "series": n, "ok": n > 0}
        )
        if all(c["ok"] for c in checks) or time.monotonic() > deadline:
            break
        time.sleep(3)

    # Every dashboard query: data; or empty because each metric it reads either has series here
    # or is a documented labeled event family with no event yet (`no_events`, listed); or a
    # kube-state-metrics gap. Anything else is a failure.
    events = labeled_families(args.metrics_md)
    queries = []
    for board, title, expr in dashboard_queries(args.dashboards):
        q = substitute(expr)
        try:
            result = prom.query(q)
            error = None
        except Exception as e:  # noqa: BLE001 - a bad query is a failure, reported as such
            result, error = [], str(e)
        names = set(METRIC.findall(q))
        if error:
            status = "error"
        elif result:
            status = "data"
        elif KSM.search(q):
            status = "needs_kube_state_metrics"
        elif names and all(family(n) in events or prom.query(f'count({{__name__="{n}"}})') for n in names):
            status = "no_events"
        else:
            status = "no_data"
        queries.append(
            {
                "dashboard": board,
                "panel": title,
                "query": q,
                "status": status,
                "series": len(result),
                "error": error,
            }
        )
    by_status = Counter(q["status"] for q in queries)
    failed = [q for q in queries if q["status"] in ("error", "no_data")]
    result = {
        "name": "metrics",
        "pass": all(c["ok"] for c in checks) and not failed,
        "meshed_pods": [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in meshed_pods],
        "checks_failed": [c for c in checks if not c["ok"]],
        "checks_passed": sum(1 for c in checks if c["ok"]),
        "dashboard_queries": dict(by_status),
        "dashboard_failures": failed,
        "dashboard_known_gaps": [q["query"] for q in queries if q["status"] == "needs_kube_state_metrics"],
        "dashboard_no_events": [q["query"] for q in queries if q["status"] == "no_events"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


# ---- logs ------------------------------------------------------------------------------------


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


# ---- results ---------------------------------------------------------------------------------


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
    problems = []
    for setup, run in (("sidecar", sidecar), ("baseline", baseline)):
        if run["sent"] == 0:
            problems.append(f"{setup}: no request sent")
        if run["achieved_rate"] < 0.95 * args.rate:
            problems.append(
                f"{setup}: {run['achieved_rate']} req/s, below the {args.rate} req/s the test needs"
            )
    if args.zero_failures and sidecar["failed"]:
        problems.append(f"sidecar: {sidecar['failed']} failed requests")
    result = {
        "name": args.name,
        "pass": not problems,
        "goal": "sidecar: zero failed requests" if args.zero_failures else "failures counted and reported",
        "sidecar": figures(sidecar),
        "baseline": figures(baseline),
        "problems": problems,
    }
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def api_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--api", default="https://10.240.0.10:6443")
        p.add_argument("--pki", required=True)

    p = sub.add_parser("targets")
    api_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--once", action="store_true")
    p.set_defaults(fn=cmd_targets)

    p = sub.add_parser("proxy-requests")
    api_args(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--selector", default="")
    p.set_defaults(fn=cmd_proxy_requests)

    p = sub.add_parser("metrics")
    api_args(p)
    p.add_argument("--prom", default="http://127.0.0.1:9090")
    p.add_argument("--dashboards", required=True)
    p.add_argument("--metrics-md", required=True, help="docs/metrics.md")
    p.add_argument("--wait", type=float, default=60)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_metrics)

    p = sub.add_parser("logs")
    api_args(p)
    p.add_argument("--sink", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--logger-pod", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--log-root", required=True)
    p.add_argument("--wait", type=float, default=60)
    p.add_argument("--agent-restart", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_logs)

    p = sub.add_parser("rollout")
    p.add_argument("--name", required=True)
    p.add_argument("--sidecar", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--zero-failures", action="store_true")
    p.add_argument("--extra", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_rollout)

    p = sub.add_parser("summary")
    p.add_argument("--dir", required=True)
    p.add_argument("--order", default="")
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_summary)

    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
