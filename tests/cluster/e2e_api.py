"""The cluster as tests/cluster/e2e.py sees it: the API server's pods (with the node's admin
client certificate), which of them are running, ready and meshed, the Prometheus file_sd targets
that stand in for kubernetes_sd, and each sidecar's own request counter."""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import time
import urllib.request


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
