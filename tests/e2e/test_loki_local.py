"""Loki as the local node runs it (make gitops-e2e, issue 20), here on loopback: the binary
scripts/tools.sh builds (step loki), started with the config Loki's own chart renders from the
local Flux entry's values (scripts/loki-chart.sh, then helm template with the values of
flux/infrastructure/local/controllers), only its paths and ports moved into the test's folder. The
Flask app's request lines, laid out as the kubelet writes them, are shipped by outrigger-agent with
its default protobuf encoding and asked back with tests/cluster/gitops.py loki, the query the
GitOps e2e runs on the node."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from conftest import ROOT, Procs, binary, free_port, http_get, local_chart_and_values, run, tool, wait_until

GITOPS = ROOT / "tests" / "cluster" / "gitops.py"


def rendered_config(tmp: Path) -> dict:
    """config.yaml of the chart's ConfigMap, from the values the local entry gives the release."""
    chart, values = local_chart_and_values(tmp, "loki-chart.sh", "loki", "loki")
    out = run([tool("helm"), "template", "loki", chart, "-n", "monitoring", "-f", str(values)])
    config_map = next(
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "loki"
    )
    return yaml.safe_load(config_map["data"]["config.yaml"])


def cri_line(stream: str, line: str) -> str:
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{ts} {stream} F {line}\n"


def test_the_local_loki_config_stores_and_answers_the_app_request_lines(procs: Procs) -> None:
    tmp_path = procs.tmp
    loki = tool("loki")
    config = rendered_config(tmp_path)
    # What the pod would have: /var/loki on its volume, the runtime ConfigMap, ports 3100/9095 and
    # the compactor on its own loopback. Here: the test's folder and free loopback ports.
    http_port, grpc_port = free_port(), free_port()
    text = yaml.safe_dump(config).replace("/var/loki", str(tmp_path / "loki"))
    config = yaml.safe_load(text)
    assert config["common"]["compactor_grpc_address"] == "127.0.0.1:9095"
    assert config["common"]["ring"]["kvstore"]["store"] == "inmemory"
    config["common"]["compactor_grpc_address"] = f"127.0.0.1:{grpc_port}"
    # The address the ingester announces in its ring: in the pod, eth0's (its gRPC listens on
    # every address); here the gRPC port is on loopback only, so loopback is the address.
    config["common"]["instance_addr"] = "127.0.0.1"
    config["server"].update(
        http_listen_address="127.0.0.1",
        http_listen_port=http_port,
        grpc_listen_address="127.0.0.1",
        grpc_listen_port=grpc_port,
    )
    (tmp_path / "runtime.yaml").write_text("{}\n", encoding="utf-8")
    config["runtime_config"]["file"] = str(tmp_path / "runtime.yaml")
    config_file = tmp_path / "loki.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    url = f"http://127.0.0.1:{http_port}"

    # The chart's container arguments.
    server = procs.start("loki", [loki, f"-config.file={config_file}", "-target=all"])
    app = procs.app()
    for i in range(20):
        assert http_get(app.url("http", f"/?n={i}"))[0] == 200
    assert app.stop() == 0
    requests = [
        line for line in app.log.read_text().splitlines() if line.startswith("{") and '"path"' in line
    ]
    assert len(requests) == 20, app.log.read_text()[-2000:]

    log_root = tmp_path / "pods"
    container = log_root / "hello_flask-hello-world-7c9d_0c2d7a1e-1111-2222-3333-444455556666" / "app"
    container.mkdir(parents=True)
    (container / "0.log").write_text("".join(cri_line("stdout", line) for line in requests))

    # Loki reports ready only after its ingester has been up for a while (15 s by default).
    wait_until("loki /ready", lambda: http_get(f"{url}/ready")[0] == 200, timeout=120)
    since = time.time() - 600
    procs.start(
        "agent",
        [
            str(binary("outrigger-agent")),
            "--log-root",
            str(log_root),
            "--state-dir",
            str(tmp_path / "state"),
            "--loki-url",
            f"{url}/loki/api/v1/push",
            "--metrics",
            f"127.0.0.1:{free_port()}",
            "--node-name",
            "node-e2e",
            "--kube-metadata",
            "off",
        ],
    )
    query = '{namespace="hello", container="app"} |= "\\"path\\""'
    report: dict = {}

    def all_queryable() -> bool:
        nonlocal report
        got = subprocess.run(
            [sys.executable, str(GITOPS), "loki", "--url", url, "--query", query, "--since", str(since)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        report = json.loads(got.stdout) if got.stdout.strip() else {}
        return got.returncode == 0 and report.get("lines") == len(requests)

    wait_until("the request lines in Loki", all_queryable, timeout=90)
    assert server.popen.poll() is None, server.log.read_text()[-2000:]
    assert report["lines_returned"] == len(requests)
    assert report["pods"] == ["flask-hello-world-7c9d"]
    assert {"namespace", "pod", "container", "node", "stream"} <= set(report["labels"])
    assert json.loads(report["sample"])["path"] == "/"
