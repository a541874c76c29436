"""The pieces of make gitops-e2e that run outside the cluster: scripts/lib/alert-receiver.py (the
Alertmanager stand-in Flux posts to) over a real socket, and tests/cluster/gitops.py's readiness
order, install-manifest rewrite, tag lookup and Loki query on real inputs (the Loki query against
an HTTP server on loopback that answers as Loki's API does)."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = ROOT / "scripts" / "lib" / "alert-receiver.py"
GITOPS = ROOT / "tests" / "cluster" / "gitops.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver(tmp_path):
    port = free_port()
    out = tmp_path / "alerts.jsonl"
    proc = subprocess.Popen([sys.executable, str(RECEIVER), "127.0.0.1", str(port), str(out)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/ready", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("alert-receiver never answered /ready")
    yield url, out, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code


def test_receiver_keeps_each_alert_and_refuses_bad_bodies(receiver):
    url, out, proc = receiver
    alert = [{"labels": {"name": "flask-hello-world", "severity": "error"}, "annotations": {"message": "x"}}]
    assert post(f"{url}/api/v2/alerts/", json.dumps(alert).encode()) == 200
    assert post(f"{url}/api/v2/alerts/", b"{not json") == 400
    assert post(f"{url}/api/v2/alerts/", b"[" + b" " * (1 << 20) + b"]") == 413
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["path"] == "/api/v2/alerts/" and lines[0]["body"] == alert
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def run_gitops(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GITOPS), *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alerts_only_after_the_given_time_and_naming_the_object(receiver):
    url, out, _ = receiver
    post(f"{url}/x", json.dumps([{"labels": {"name": "podinfo"}}]).encode())
    cut = time.time()
    time.sleep(0.01)
    assert run_gitops("alerts", str(out), "--after", str(cut), "--name", "flask-hello-world").returncode == 1
    post(
        f"{url}/x",
        json.dumps([{"labels": {"name": "flask-hello-world"}, "annotations": {"message": "m"}}]).encode(),
    )
    got = run_gitops("alerts", str(out), "--after", str(cut), "--name", "flask-hello-world")
    assert got.returncode == 0, got.stderr
    assert [a["labels"]["name"] for a in json.loads(got.stdout)] == ["flask-hello-world"]


def test_webhook_finds_alertmanagers_alerts_by_name_and_not_fluxs(receiver):
    url, out, _ = receiver
    cut = time.time()
    time.sleep(0.01)
    # Flux's post (a list) names the alert too: it must not count as Alertmanager's.
    post(f"{url}/api/v2/alerts/", json.dumps([{"labels": {"alertname": "LocalWatchdog"}}]).encode())
    assert (
        run_gitops("webhook", str(out), "--after", str(cut), "--alertname", "LocalWatchdog").returncode == 1
    )
    payload = {
        "version": "4",
        "receiver": "local-receiver",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "OutriggerProxyDown"}},
            {"status": "firing", "labels": {"alertname": "LocalWatchdog", "severity": "none"}},
        ],
    }
    post(f"{url}/alertmanager/webhook", json.dumps(payload).encode())
    got = run_gitops("webhook", str(out), "--after", str(cut), "--alertname", "LocalWatchdog")
    assert got.returncode == 0, got.stderr
    found = json.loads(got.stdout)
    assert [(a["path"], a["receiver"], a["labels"]["alertname"]) for a in found] == [
        ("/alertmanager/webhook", "local-receiver", "LocalWatchdog")
    ]
    # Before the cut-off nothing counts.
    assert (
        run_gitops(
            "webhook", str(out), "--after", str(time.time() + 1), "--alertname", "LocalWatchdog"
        ).returncode
        == 1
    )


def flux_obj(kind: str, name: str, ready: str, since: str, namespace: str = "flux-system") -> dict:
    return {
        "kind": kind,
        "metadata": {"namespace": namespace, "name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}]},
    }


ORDER = "cluster-secrets,infra-controllers,apps"


@pytest.mark.parametrize(
    ("objects", "want_rc", "want_in_order"),
    [
        (
            [
                flux_obj("Kustomization", "cluster-secrets", "True", "2026-12-06T23:00:00Z"),
                flux_obj("Kustomization", "infra-controllers", "True", "2026-12-06T23:00:10Z"),
                flux_obj("Kustomization", "apps", "True", "2026-12-06T23:00:20Z"),
                flux_obj("HelmRelease", "app", "True", "2026-12-06T23:00:19Z"),
            ],
            0,
            True,
        ),
        (  # apps Ready before what it depends on: the order is broken
            [
                flux_obj("Kustomization", "cluster-secrets", "True", "2026-12-06T23:00:00Z"),
                flux_obj("Kustomization", "infra-controllers", "True", "2026-12-06T23:00:30Z"),
                flux_obj("Kustomization", "apps", "True", "2026-12-06T23:00:20Z"),
            ],
            1,
            False,
        ),
        (  # a HelmRelease not Ready
            [
                flux_obj("Kustomization", "cluster-secrets", "True", "2026-12-06T23:00:00Z"),
                flux_obj("Kustomization", "infra-controllers", "True", "2026-12-06T23:00:10Z"),
                flux_obj("Kustomization", "apps", "True", "2026-12-06T23:00:20Z"),
                flux_obj("HelmRelease", "app", "False", "2026-12-06T23:00:19Z"),
            ],
            1,
            True,
        ),
        (  # one Kustomization not created yet
            [flux_obj("Kustomization", "cluster-secrets", "True", "2026-12-06T23:00:00Z")],
            1,
            False,
        ),
    ],
)
def test_ready_needs_every_object_ready_in_dependency_order(tmp_path, objects, want_rc, want_in_order):
    out = tmp_path / "ready.json"
    got = run_gitops("ready", "--order", ORDER, "--out", str(out), stdin=json.dumps({"items": objects}))
    assert got.returncode == want_rc, got.stderr
    assert json.loads(out.read_text())["in_order"] is want_in_order


def with_releases(loki_since: str | None, outrigger_since: str) -> list[dict]:
    objs = [
        flux_obj("Kustomization", "cluster-secrets", "True", "2026-12-06T23:00:00Z"),
        flux_obj("Kustomization", "infra-controllers", "True", "2026-12-06T23:00:10Z"),
        flux_obj("Kustomization", "apps", "True", "2026-12-06T23:00:20Z"),
        flux_obj("HelmRelease", "outrigger", "True", outrigger_since, "outrigger-system"),
    ]
    if loki_since:
        objs.append(flux_obj("HelmRelease", "loki", "True", loki_since, "monitoring"))
    return objs


@pytest.mark.parametrize(
    ("objects", "want_rc"),
    [
        (with_releases("2026-12-06T23:00:03Z", "2026-12-06T23:00:08Z"), 0),
        # The agent's release Ready before the Loki it depends on.
        (with_releases("2026-12-06T23:00:09Z", "2026-12-06T23:00:08Z"), 1),
        # No Loki release at all (the overlay deleted it again).
        (with_releases(None, "2026-12-06T23:00:08Z"), 1),
    ],
)
def test_ready_checks_the_helmrelease_order_when_asked(tmp_path, objects, want_rc):
    out = tmp_path / "ready.json"
    args = [
        "ready",
        "--order",
        ORDER,
        "--out",
        str(out),
        "--hr-order",
        "monitoring/loki,outrigger-system/outrigger",
    ]
    got = run_gitops(*args, stdin=json.dumps({"items": objects}))
    assert got.returncode == want_rc, got.stderr
    report = json.loads(out.read_text())
    assert report["in_order"] is (want_rc == 0)
    assert report["helmrelease_order"] == [["monitoring/loki", "outrigger-system/outrigger"]]


class FakeLoki(http.server.BaseHTTPRequestHandler):
    """Loki's two query endpoints with the answer shapes of Loki 3 (streams for a log query, a
    vector for an instant metric query); records what it was asked."""

    streams: ClassVar[list[dict]] = []
    asked: ClassVar[list[tuple[str, dict]]] = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        self.asked.append((url.path, params))
        if url.path == "/loki/api/v1/query_range":
            data = {"resultType": "streams", "result": self.streams}
        elif url.path == "/loki/api/v1/query":
            n = sum(len(s["values"]) for s in self.streams)
            data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, str(n)]}] if n else []}
        else:
            self.send_error(404)
            return
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


@pytest.fixture
def fake_loki():
    FakeLoki.streams, FakeLoki.asked = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLoki)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeLoki
    server.shutdown()
    server.server_close()


def test_loki_counts_the_lines_of_the_selector_since_the_given_time(fake_loki):
    url, loki = fake_loki
    query = '{namespace="hello", container="app"} |= "path"'
    loki.streams = [
        {
            "stream": {"namespace": "hello", "pod": "a", "container": "app"},
            "values": [["1765062000000000000", '{"path": "/"}'], ["1765061999000000000", '{"path": "/"}']],
        },
        {
            "stream": {"namespace": "hello", "pod": "b", "container": "app"},
            "values": [["1", '{"path": "/x"}']],
        },
    ]
    got = run_gitops("loki", "--url", url, "--query", query, "--since", "1765061990", "--now", "1765062000.5")
    assert got.returncode == 0, got.stderr
    report = json.loads(got.stdout)
    assert (report["lines"], report["lines_returned"], report["streams"]) == (3, 3, 2)
    assert report["pods"] == ["a", "b"] and report["window_s"] == 11
    assert report["sample"] == '{"path": "/"}'
    (range_path, range_params), (instant_path, instant_params) = loki.asked
    assert range_path == "/loki/api/v1/query_range"
    assert range_params["query"] == query
    assert (range_params["start"], range_params["end"]) == ("1765061990000000000", "1765062000500000000")
    assert instant_path == "/loki/api/v1/query"
    assert instant_params["query"] == f"sum(count_over_time({query} [11s]))"


def test_loki_fails_when_nothing_arrived(fake_loki):
    url, _ = fake_loki
    got = run_gitops("loki", "--url", url, "--query", '{namespace="hello"}', "--since", "0", "--now", "10")
    assert got.returncode == 1
    assert json.loads(got.stdout)["lines"] == 0


def test_manifests_pin_the_services_other_controllers_address(tmp_path):
    docs = [
        {"kind": "Service", "metadata": {"name": "source-controller"}, "spec": {"ports": []}},
        {"kind": "Service", "metadata": {"name": "notification-controller"}, "spec": {"ports": []}},
        {
            "kind": "Deployment",
            "metadata": {"name": "source-controller"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "manager",
                                "args": [
                                    "--events-addr=http://notification-controller.flux-system.svc.cluster.local./",
                                    "--storage-adv-addr=source-controller.flux-system.svc.cluster.local.",
                                    "--log-level=info",
                                ],
                            }
                        ]
                    }
                }
            },
        },
    ]
    src, dst = tmp_path / "in.yaml", tmp_path / "out.yaml"
    src.write_text(yaml.safe_dump_all(docs))
    got = run_gitops(
        "manifests", str(src), str(dst), "--source-ip", "10.242.0.200", "--events-ip", "10.242.0.201"
    )
    assert got.returncode == 0, got.stderr
    out = list(yaml.safe_load_all(dst.read_text()))
    assert [d["spec"].get("clusterIP") for d in out[:2]] == ["10.242.0.200", "10.242.0.201"]
    assert out[2]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "--events-addr=http://10.242.0.201/",
        "--storage-adv-addr=10.242.0.200",
        "--log-level=info",
    ]
    src.write_text(yaml.safe_dump_all(docs[2:]))
    assert run_gitops("manifests", str(src), str(dst), "--source-ip", "a", "--events-ip", "b").returncode != 0


def test_tags_are_the_ones_the_local_entry_pulls():
    got = run_gitops("tags")
    assert got.returncode == 0, got.stderr
    tags = dict(line.split("\t") for line in got.stdout.splitlines())
    assert set(tags) == {"outrigger-proxy", "outrigger-agent", "outrigger-injector", "flask-hello-world"}
    local = (ROOT / "flux" / "clusters" / "local" / "infrastructure.yaml").read_text()
    assert f'proxy_tag: "{tags["outrigger-proxy"]}"' in local
    assert f'agent_tag: "{tags["outrigger-agent"]}"' in local


def test_the_e2e_addresses_and_hostnames_are_the_trees():
    # scripts/gitops-e2e.sh sends its load and queries to fixed addresses (no cluster DNS on the
    # node); the tree must give the Services exactly those, or the e2e would talk to nothing.
    script = (ROOT / "scripts" / "gitops-e2e.sh").read_text()
    consts = dict(
        line.split("=", 1)
        for line in script.splitlines()
        if line.split("=", 1)[0] in ("LOKI_IP", "GATEWAY_IP", "DOMAIN", "PROM_IP")
    )
    controllers = ROOT / "flux" / "infrastructure" / "local" / "controllers"
    loki = [
        d
        for d in yaml.safe_load_all((controllers / "loki-source.yaml").read_text())
        if d["kind"] == "Service"
    ]
    assert [d["spec"]["clusterIP"] for d in loki] == [consts["LOKI_IP"]]
    kps = yaml.safe_load((controllers / "kube-prometheus-stack-values.yaml").read_text())["spec"]["values"]
    assert kps["prometheus"]["service"]["clusterIP"] == consts["PROM_IP"]
    # Alertmanager's webhook goes to the receiver the e2e runs on the node's address.
    node_ip, alert_port = (
        dict(
            line.split("=", 1)
            for line in script.splitlines()
            if line.split("=", 1)[0] in ("NODE_IP", "ALERT_PORT")
        )[k]
        for k in ("NODE_IP", "ALERT_PORT")
    )
    [receiver] = kps["alertmanager"]["config"]["receivers"]
    assert receiver["webhook_configs"][0]["url"].startswith(f"http://{node_ip}:{alert_port}/")
    # The static band: the lowest 16 addresses of 10.242.0.0/24, each Service its own.
    fixed = [
        consts["LOKI_IP"],
        consts["GATEWAY_IP"],
        consts["PROM_IP"],
        kps["alertmanager"]["service"]["clusterIP"],
    ]
    assert len(set(fixed)) == len(fixed)
    assert all(ip.startswith("10.242.0.") and 1 <= int(ip.rsplit(".", 1)[1]) <= 15 for ip in fixed)
    outrigger = yaml.safe_load((controllers / "outrigger-values.yaml").read_text())
    # The public Gateway asks for its Service's address (the gateway makes one Service per Gateway).
    configs = yaml.safe_load(
        (ROOT / "flux" / "infrastructure" / "local" / "configs" / "kustomization.yaml").read_text()
    )
    [gateway_patch] = [
        doc
        for p in configs["patches"]
        for doc in [yaml.safe_load(p["patch"])]
        if doc.get("kind") == "Gateway" and "spec" in doc
    ]
    assert gateway_patch["spec"]["addresses"] == [{"type": "IPAddress", "value": consts["GATEWAY_IP"]}]
    assert (
        outrigger["spec"]["values"]["agent"]["loki"]["url"]
        == f"http://{consts['LOKI_IP']}:3100/loki/api/v1/push"
    )
    domains = set()
    for f in (ROOT / "flux" / "clusters" / "local").glob("*.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and "domain" in ((doc["spec"].get("postBuild") or {}).get("substitute") or {}):
                domains.add(doc["spec"]["postBuild"]["substitute"]["domain"])
    assert domains == {consts["DOMAIN"]}
