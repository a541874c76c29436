"""kube-prometheus-stack as the local node runs it (make gitops-e2e, issue 20), here on loopback: the
binaries scripts/tools.sh builds (step monitoring), started with what the chart renders from the
local Flux entry's values (scripts/kps-chart.sh, then helm template with the values of
flux/infrastructure/local/controllers).

- Prometheus + Alertmanager: the rendered Alertmanager config (its webhook moved to a receiver on
  loopback) and the rules the local entry installs (the LocalWatchdog of the local values and the
  Outrigger PrometheusRule of charts/outrigger): every rule loads, and the always-firing one
  travels Prometheus -> Alertmanager -> webhook, read back by tests/cluster/gitops.py webhook.
- prometheus-operator + kube-state-metrics against a real kube-apiserver (scripts/kube-test-env.sh,
  no kubelet): the chart's CRDs and rendered objects applied, the operator turns the Prometheus
  and Alertmanager resources into StatefulSets on the images the node gets, and the Outrigger
  PodMonitor/ServiceMonitor into scrape jobs and its rule ConfigMap; the Alertmanager and
  Prometheus built here start with those StatefulSets' own arguments on the operator's generated
  configs, and with kube-state-metrics scraped every kube-state-metrics query of the Grafana
  dashboards returns data."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml
from conftest import (
    ROOT,
    Procs,
    free_port,
    http_get,
    local_chart_and_values,
    run,
    tool,
    wait_until,
)

GITOPS = ROOT / "tests" / "cluster" / "gitops.py"
RECEIVER = ROOT / "scripts" / "lib" / "alert-receiver.py"
OUTRIGGER_RULE = ROOT / "charts" / "outrigger" / "files" / "prometheusrule.yaml"
RELEASE = "kube-prometheus-stack"
# The Kubernetes version the toolchain pins (the chart requires >= 1.25; helm's default is older).
KUBE_VERSION = re.search(
    r"^KUBERNETES_VERSION=(\S+)", (ROOT / "tools" / "versions.sh").read_text(encoding="utf-8"), re.MULTILINE
).group(1)
# kube-state-metrics' metric names (outrigger_agent_kube_* are the agent's own).
KSM = re.compile(r"\bkube_[a-z_]+")

sys.path.insert(0, str(ROOT / "tools" / "checks"))
from outrigger_checks.promql import dashboard_exprs, grafana_to_promql


def render(tmp: Path, include_crds: bool = False) -> list[dict]:
    """The chart with the values the local entry gives the release, as helm template renders it."""
    chart, values = local_chart_and_values(tmp, "kps-chart.sh", RELEASE, "monitoring")
    argv = [tool("helm"), "template", RELEASE, chart, "-n", "monitoring"]
    argv += ["--kube-version", KUBE_VERSION, "-f", str(values)]
    out = run(argv + (["--include-crds"] if include_crds else []))
    if include_crds:
        (tmp / "rendered.yaml").write_text(out, encoding="utf-8")
        return []
    return [d for d in yaml.safe_load_all(out) if d]


def rule_groups(rendered: list[dict]) -> list[dict]:
    """The groups of every PrometheusRule the local entry installs: the chart's (LocalWatchdog)
    and the Outrigger rule that infra-configs keeps on the local node."""
    groups = [g for d in rendered if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"]]
    groups += yaml.safe_load(OUTRIGGER_RULE.read_text(encoding="utf-8"))["spec"]["groups"]
    return groups


def prom_get(url: str, path: str) -> dict:
    code, body = http_get(f"{url}{path}", timeout=10)
    assert code == 200, body[:500]
    return json.loads(body)["data"]


def test_rules_load_and_the_watchdog_reaches_the_receiver_through_alertmanager(procs: Procs) -> None:
    tmp = procs.tmp
    rendered = render(tmp)
    secret = next(
        d
        for d in rendered
        if d["kind"] == "Secret" and d["metadata"]["name"] == f"alertmanager-{RELEASE}-alertmanager"
    )
    am_config = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    [receiver] = am_config["receivers"]
    url = receiver["webhook_configs"][0]["url"]
    assert url.startswith("http://10.240.0.10:9093/"), url
    # The receiver scripts/gitops-e2e.sh runs on the node's address, here on loopback.
    recv_port = free_port()
    alerts = tmp / "alerts.jsonl"
    procs.start("receiver", [sys.executable, str(RECEIVER), "127.0.0.1", str(recv_port), str(alerts)])
    receiver["webhook_configs"][0]["url"] = url.replace("10.240.0.10:9093", f"127.0.0.1:{recv_port}")
    (tmp / "alertmanager.yaml").write_text(yaml.safe_dump(am_config), encoding="utf-8")
    am_port = free_port()
    am = procs.start(
        "alertmanager",
        [
            tool("alertmanager"),
            f"--config.file={tmp / 'alertmanager.yaml'}",
            f"--storage.path={tmp / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
    )
    wait_until("alertmanager ready", lambda: http_get(f"http://127.0.0.1:{am_port}/-/ready")[0] == 200)

    groups = rule_groups(rendered)
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    prom_port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yaml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "alertmanager", "static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    prom = procs.start(
        "prometheus",
        [
            tool("prometheus3"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prom'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )
    prom_url = f"http://127.0.0.1:{prom_port}"
    wait_until("prometheus ready", lambda: http_get(f"{prom_url}/-/ready")[0] == 200, timeout=60)

    loaded = prom_get(prom_url, "/api/v1/rules")["groups"]
    want = {(g["name"], r.get("alert") or r.get("record")) for g in groups for r in g["rules"]}
    got = {(g["name"], r["name"]) for g in loaded for r in g["rules"]}
    assert got == want
    assert len(want) > 1
    wait_until(
        "every rule evaluated without error",
        lambda: all(
            r.get("health") == "ok" for g in prom_get(prom_url, "/api/v1/rules")["groups"] for r in g["rules"]
        ),
        timeout=30,
    )
    up = "/api/v1/query?query=" + urllib.parse.quote('up{job="alertmanager"} == 1')
    wait_until("Alertmanager scraped", lambda: bool(prom_get(prom_url, up)["result"]), timeout=30)

    # group_wait (10 s in the local values) then the webhook post.
    def webhook_seen() -> bool:
        got = subprocess.run(
            [
                sys.executable,
                str(GITOPS),
                "webhook",
                str(alerts),
                "--after",
                "0",
                "--alertname",
                "LocalWatchdog",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return got.returncode == 0

    wait_until("LocalWatchdog at the receiver through Alertmanager", webhook_seen, timeout=60)
    assert am.popen.poll() is None and prom.popen.poll() is None


def kube(kubectl: str, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return run([kubectl, "--kubeconfig", str(kubeconfig), *args], stdin=stdin)


@pytest.fixture
def kube_api(tmp_path: Path):
    tool("kube-apiserver")
    state = tmp_path / "kube"
    env = {
        **os.environ,
        "OUTRIGGER_KUBE_TEST_DIR": str(state),
        "OUTRIGGER_KUBE_SERVICE_CIDR": "10.242.0.0/24",
    }
    script = ROOT / "scripts" / "kube-test-env.sh"
    started = subprocess.run(
        [str(script), "start"], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        yield state
    finally:
        subprocess.run([str(script), "stop"], capture_output=True, timeout=120, env=env, check=False)


def test_the_operator_and_kube_state_metrics_on_a_real_api_server(procs: Procs, kube_api: Path) -> None:
    tmp, state = procs.tmp, kube_api
    kubectl = tool("kubectl")
    kubeconfig = state / "kubeconfig"
    api = (state / "api-url").read_text().strip()
    render(tmp, include_crds=True)
    rendered_text = (tmp / "rendered.yaml").read_text(encoding="utf-8")
    kube(kubectl, kubeconfig, "create", "namespace", "monitoring")
    kube(kubectl, kubeconfig, "create", "namespace", "outrigger-system")
    # The CRDs first (what `install.crds: Create` does), then the release's objects.
    chunks = rendered_text.split("\n---\n")
    crds = [c for c in chunks if "\nkind: CustomResourceDefinition\n" in f"\n{c}\n"]
    assert len(crds) >= 8
    kube(kubectl, kubeconfig, "apply", "--server-side", "-f", "-", stdin="\n---\n".join(crds))
    kube(kubectl, kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    rest = [c for c in chunks if c not in crds]
    kube(kubectl, kubeconfig, "apply", "--server-side", "-f", "-", stdin="\n---\n".join(rest))
    # The Outrigger chart's PodMonitor and ServiceMonitor, as the local entry now renders them.
    monitors = run(
        [
            tool("helm"),
            "template",
            "outrigger",
            str(ROOT / "charts" / "outrigger"),
            "-n",
            "outrigger-system",
            "--kube-version",
            KUBE_VERSION,
            "--show-only",
            "templates/podmonitor.yaml",
            "--show-only",
            "templates/servicemonitor.yaml",
        ]
    )
    kube(kubectl, kubeconfig, "apply", "--server-side", "-f", "-", stdin=monitors)
    # What the kube-state-metrics dashboard queries read: a node, a pod on it, a DaemonSet.
    objects = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-e2e"}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": "outrigger-system", "labels": {"app": "x"}},
            "spec": {
                "nodeName": "node-e2e",
                "containers": [{"name": "app", "image": "example.invalid/app:1"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "outrigger-agent", "namespace": "outrigger-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "a", "image": "example.invalid/agent:1"}]},
                },
            },
        },
    ]
    kube(kubectl, kubeconfig, "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(o) for o in objects))
    # No kubelet reports the node's capacity: set what it would.
    allocatable = {"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}
    kube(
        kubectl,
        kubeconfig,
        "patch",
        "node",
        "node-e2e",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(allocatable),
    )

    # The operator with the Deployment's arguments, talking to this API server as admin.
    docs = [
        d for d in yaml.safe_load_all(kube(kubectl, kubeconfig, "get", "deploy", "-A", "-o", "yaml")) if d
    ]
    deploys = {d["metadata"]["name"]: d for d in docs[0]["items"]}
    op_args = deploys[f"{RELEASE}-operator"]["spec"]["template"]["spec"]["containers"][0]["args"]
    op_args = [a for a in op_args if not a.startswith("--web.listen-address")]
    procs.start(
        "operator",
        [
            tool("prometheus-operator"),
            *op_args,
            f"--apiserver={api}",
            f"--ca-file={state / 'ca.crt'}",
            f"--cert-file={state / 'admin.crt'}",
            f"--key-file={state / 'admin.key'}",
            f"--web.listen-address=127.0.0.1:{free_port()}",
            "--namespaces=monitoring,outrigger-system",
        ],
    )
    generated = f"prometheus-{RELEASE}-prometheus"

    def secret_json(name: str) -> dict:
        out = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "-n",
                "monitoring",
                "get",
                "secret",
                name,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def generated_config() -> dict:
        data = (secret_json(generated).get("data") or {}).get("prometheus.yaml.gz")
        return yaml.safe_load(gzip.decompress(base64.b64decode(data))) if data else {}

    def config_has_jobs() -> bool:
        jobs = {j["job_name"] for j in generated_config().get("scrape_configs") or []}
        return {
            "podMonitor/outrigger-system/outrigger-proxy/0",
            "serviceMonitor/outrigger-system/outrigger-agent/0",
            f"serviceMonitor/monitoring/{RELEASE}-kube-state-metrics/0",
        } <= jobs

    wait_until(
        "the operator's generated Prometheus config with the Outrigger monitors", config_has_jobs, timeout=120
    )
    sts = {}

    def statefulsets() -> bool:
        nonlocal sts
        got = json.loads(kube(kubectl, kubeconfig, "-n", "monitoring", "get", "statefulsets", "-o", "json"))
        sts = {s["metadata"]["name"]: s for s in got["items"]}
        return {generated, f"alertmanager-{RELEASE}-alertmanager"} <= set(sts)

    wait_until("the operator's StatefulSets", statefulsets, timeout=60)
    images = {
        name: {
            c["name"]: (c["image"], c.get("command"))
            for c in s["spec"]["template"]["spec"].get("initContainers", [])
            + s["spec"]["template"]["spec"]["containers"]
        }
        for name, s in sts.items()
    }
    reloader = (
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
        ["/bin/prometheus-config-reloader"],
    )
    assert images[generated]["prometheus"][0] == "quay.io/prometheus/prometheus:v3.14.0-distroless"
    assert images[generated]["config-reloader"] == reloader
    assert (
        images[f"alertmanager-{RELEASE}-alertmanager"]["alertmanager"][0]
        == "quay.io/prometheus/alertmanager:v0.34.0"
    )
    assert sts[generated]["spec"]["replicas"] == 1

    # kube-state-metrics with the chart's arguments, on loopback.
    ksm_port, ksm_tel = free_port(), free_port()
    ksm_args = deploys[f"{RELEASE}-kube-state-metrics"]["spec"]["template"]["spec"]["containers"][0]["args"]
    ksm_args = [a for a in ksm_args if not a.startswith(("--port", "--telemetry-port"))]
    procs.start(
        "kube-state-metrics",
        [
            tool("kube-state-metrics"),
            *ksm_args,
            f"--kubeconfig={kubeconfig}",
            "--host=127.0.0.1",
            f"--port={ksm_port}",
            "--telemetry-host=127.0.0.1",
            f"--telemetry-port={ksm_tel}",
        ],
    )
    wait_until("kube-state-metrics ready", lambda: http_get(f"http://127.0.0.1:{ksm_port}/healthz")[0] == 200)

    # This Prometheus loads the operator's config (its kubernetes_sd pointed at this API server,
    # as in-cluster it uses the service account) and, besides, scrapes kube-state-metrics directly:
    # without a kubelet no pod has an address for the generated jobs to reach.
    config = generated_config()
    (state / "token-file").write_text((state / "token").read_text().strip(), encoding="utf-8")
    for job in config["scrape_configs"]:
        for sd in job.get("kubernetes_sd_configs") or []:
            sd["api_server"] = api
            sd["tls_config"] = {"ca_file": str(state / "ca.crt")}
            sd["authorization"] = {"credentials_file": str(state / "token-file")}
        job.pop("bearer_token_file", None)
        job.pop("authorization", None)
    config.pop("alerting", None)
    # The rules the operator put in its ConfigMap (the local values' LocalWatchdog), as the pod
    # mounts them.
    rules_dir = tmp / "rules"
    rules_dir.mkdir()
    rulefiles = json.loads(
        kube(
            kubectl,
            kubeconfig,
            "-n",
            "monitoring",
            "get",
            "configmap",
            f"{generated}-rulefiles-0",
            "-o",
            "json",
        )
    )
    for key, text in rulefiles["data"].items():
        (rules_dir / key).write_text(text, encoding="utf-8")
    config["rule_files"] = [str(rules_dir / "*.yaml")]
    config["scrape_configs"].append(
        {"job_name": "ksm-direct", "static_configs": [{"targets": [f"127.0.0.1:{ksm_port}"]}]}
    )
    config["global"]["scrape_interval"] = "1s"
    (tmp / "generated.yml").write_text(yaml.safe_dump(config), encoding="utf-8")

    # Both servers start with the arguments of the operator's StatefulSets (so every flag the
    # operator sets is one these builds accept), only files, ports and the cluster listener moved.
    def sts_args(name: str, container: str) -> list[str]:
        spec = sts[name]["spec"]["template"]["spec"]
        return next(c for c in spec["containers"] if c["name"] == container)["args"]

    def with_overrides(args: list[str], overrides: dict[str, str]) -> list[str]:
        kept = [a for a in args if a.split("=", 1)[0] not in overrides]
        return kept + [f"{k}={v}" for k, v in overrides.items()]

    def secret_file(name: str, key: str, gz: bool = False) -> Path:
        raw = base64.b64decode(secret_json(name)["data"][key])
        path = tmp / f"{name}-{key.removesuffix('.gz')}"
        path.write_bytes(gzip.decompress(raw) if gz else raw)
        return path

    am_name = f"alertmanager-{RELEASE}-alertmanager"
    am_port = free_port()
    am_config = secret_file(f"{am_name}-generated", "alertmanager.yaml.gz", gz=True)
    assert "http://10.240.0.10:9093/alertmanager/webhook" in am_config.read_text(encoding="utf-8")
    am_args = with_overrides(
        sts_args(am_name, "alertmanager"),
        {
            "--config.file": str(am_config),
            "--web.config.file": str(secret_file(f"{am_name}-web-config", "web-config.yaml")),
            "--storage.path": str(tmp / "am"),
            "--web.listen-address": f"127.0.0.1:{am_port}",
            "--cluster.listen-address": "",
        },
    )
    am = procs.start("alertmanager", [tool("alertmanager"), *am_args])
    wait_until("alertmanager ready", lambda: http_get(f"http://127.0.0.1:{am_port}/-/ready")[0] == 200)
    am_status = json.loads(http_get(f"http://127.0.0.1:{am_port}/api/v2/status")[1])
    # The loaded config routes to the receiver (Alertmanager masks the URL itself as <secret>).
    loaded_am = yaml.safe_load(am_status["config"]["original"])
    assert loaded_am["route"]["receiver"] == "local-receiver"
    assert [r["name"] for r in loaded_am["receivers"] if r.get("webhook_configs")] == ["local-receiver"]

    prom_port = free_port()
    prom_args = with_overrides(
        sts_args(generated, "prometheus"),
        {
            "--config.file": str(tmp / "generated.yml"),
            "--web.config.file": str(secret_file(f"{generated}-web-config", "web-config.yaml")),
            "--storage.tsdb.path": str(tmp / "prom"),
            "--web.listen-address": f"127.0.0.1:{prom_port}",
        },
    )
    prom = procs.start("prometheus", [tool("prometheus3"), *prom_args])
    prom_url = f"http://127.0.0.1:{prom_port}"
    wait_until("prometheus ready", lambda: http_get(f"{prom_url}/-/ready")[0] == 200, timeout=60)
    loaded = prom_get(prom_url, "/api/v1/status/config")["yaml"]
    assert "podMonitor/outrigger-system/outrigger-proxy/0" in loaded
    rules = {r["name"] for g in prom_get(prom_url, "/api/v1/rules")["groups"] for r in g["rules"]}
    assert "LocalWatchdog" in rules

    ksm_queries = [
        grafana_to_promql(e.expr, rate_interval="1m")
        for e in dashboard_exprs(ROOT / "charts" / "outrigger" / "dashboards")
        if KSM.search(e.expr)
    ]
    assert ksm_queries, "the dashboards have kube-state-metrics queries"

    def all_have_data() -> bool:
        return all(
            prom_get(prom_url, f"/api/v1/query?query={urllib.parse.quote(q)}")["result"] for q in ksm_queries
        )

    wait_until("every kube-state-metrics dashboard query with data", all_have_data, timeout=60)
    assert prom.popen.poll() is None and am.popen.poll() is None
