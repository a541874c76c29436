"""The app chart's contract (outrigger_checks.app_chart) on renders that keep it and on renders that
break one rule each; check-charts-app.sh runs it on the real chart renders, with a broken render as
its control."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from outrigger_checks.app_chart import (
    CONSUMER_ENV,
    app_invariant_errors,
    consumer_errors,
    drain_token,
    pod_security_errors,
)
from outrigger_checks.failure import CheckFailed

TOKEN = "a" * 64


def hardened(name: str) -> dict:
    return {
        "name": name,
        "resources": {"requests": {"cpu": "10m"}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def app_render() -> list[dict]:
    app = hardened("app") | {
        "livenessProbe": {},
        "readinessProbe": {},
        "lifecycle": {
            "preStop": {
                "httpGet": {
                    "path": "/drain",
                    "port": 4191,
                    "httpHeaders": [{"name": "X-Outrigger-Drain-Token", "value": TOKEN}],
                }
            }
        },
    }
    proxy = hardened("outrigger-proxy") | {
        "restartPolicy": "Always",
        "env": [
            {"name": "OUTRIGGER_TERMINATION_GRACE_PERIOD", "value": "45"},
            {"name": "OUTRIGGER_PROXY_DRAIN_TOKEN", "value": TOKEN},
        ],
    }
    pod = {"terminationGracePeriodSeconds": 45, "containers": [app], "initContainers": [proxy]}
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "minReadySeconds": 5,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod},
            },
        },
        {
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "outrigger"}]},
        },
        {"kind": "PodDisruptionBudget", "metadata": {"name": "web"}},
    ]


def errors_of(tmp_path: Path, docs: list[dict]) -> list[str]:
    f = tmp_path / "render.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    return app_invariant_errors(f)


def _pod(docs: list[dict]) -> dict:
    return docs[0]["spec"]["template"]["spec"]


def test_a_render_that_keeps_the_contract_passes(tmp_path: Path) -> None:
    assert errors_of(tmp_path, app_render()) == []


def test_without_the_sidecar_the_service_targets_the_app(tmp_path: Path) -> None:
    docs = app_render()
    _pod(docs)["initContainers"] = []
    assert errors_of(tmp_path, docs) == [
        "render.yaml: Deployment/web: Service port http must target the app when the sidecar is off"
    ]
    docs[1]["spec"]["ports"][0]["targetPort"] = "http"
    assert errors_of(tmp_path, docs) == []


def _set(path: str, value: object):
    def apply(docs: list[dict]) -> None:
        *keys, last = path.split(".")
        node: object = docs
        for k in keys:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(last) if isinstance(node, list) else last] = value

    return apply


@pytest.mark.parametrize(
    ("break_it", "want"),
    [
        (_set("0.spec.template.spec.hostNetwork", True), "hostNetwork is set"),
        (
            _set("0.spec.template.spec.volumes", [{"name": "h", "hostPath": {"path": "/"}}]),
            "volume h uses ['hostPath']",
        ),
        (_set("0.spec.template.spec.containers.0.securityContext.runAsNonRoot", False), "runAsNonRoot must be true"),
        (_set("0.spec.template.spec.containers.0.securityContext.runAsUser", 0), "runAsUser 0"),
        (
            _set("0.spec.template.spec.containers.0.securityContext.allowPrivilegeEscalation", True),
            "allowPrivilegeEscalation must be false",
        ),
        (_set("0.spec.template.spec.containers.0.securityContext.privileged", True), "privileged"),
        (
            _set("0.spec.template.spec.containers.0.securityContext.capabilities", {"drop": []}),
            "capabilities.drop must contain ALL",
        ),
        (
            _set(
                "0.spec.template.spec.initContainers.0.securityContext.capabilities",
                {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            ),
            "capabilities.add beyond NET_BIND_SERVICE",
        ),
        (
            _set("0.spec.template.spec.containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
            "seccompProfile must be RuntimeDefault or Localhost",
        ),
        (_set("0.spec.template.spec.containers.0.ports", [{"containerPort": 80, "hostPort": 80}]), "hostPort"),
        (
            _set("0.spec.template.spec.containers.0.securityContext.readOnlyRootFilesystem", False),
            "readOnlyRootFilesystem must be true",
        ),
        (_set("0.spec.template.spec.containers.0.resources", {}), "resources.requests missing"),
        (
            _set("0.spec.strategy.rollingUpdate.maxUnavailable", 1),
            "rollout must be RollingUpdate with maxUnavailable 0",
        ),
        (_set("0.spec.strategy", {"type": "Recreate"}), "rollout must be RollingUpdate with maxUnavailable 0"),
        (_set("0.spec.minReadySeconds", 0), "minReadySeconds must be > 0"),
        (
            _set("0.spec.template.metadata", {"labels": {"helm.sh/chart": "flask-hello-world-0.1.0_abc"}}),
            "must not carry helm.sh/chart",
        ),
        (_set("0.spec.template.spec.initContainers.0.restartPolicy", "Never"), "must be a native sidecar"),
        (
            _set("0.spec.template.spec.terminationGracePeriodSeconds", 30),
            "OUTRIGGER_TERMINATION_GRACE_PERIOD != terminationGracePeriodSeconds",
        ),
        (_set("1.spec.ports.0.targetPort", "http"), "must target the proxy when the sidecar is on"),
        (_set("0.spec.template.spec.containers.0.lifecycle", {}), "no preStop httpGet /drain on port 4191"),
        (_set("0.spec.template.spec.initContainers.0.env.1.value", "b" * 64), "is not the proxy's token"),
        (_set("0.spec.template.spec.initContainers.0.env.1.value", "short"), "is not the proxy's token"),
        (lambda docs: docs.pop(2), "no PodDisruptionBudget"),
        (lambda docs: docs.pop(1), "no Service with a port named http"),
        (lambda docs: _pod(docs)["containers"][0].pop("readinessProbe"), "container app has no readinessProbe"),
    ],
)
def test_each_broken_rule_is_reported(tmp_path: Path, break_it, want: str) -> None:
    docs = copy.deepcopy(app_render())
    break_it(docs)
    errors = errors_of(tmp_path, docs)
    assert any(want in e for e in errors), errors


def test_pod_security_applies_to_every_workload_kind(tmp_path: Path) -> None:
    pod = {"containers": [{"name": "c"}]}
    docs = [
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": pod},
        {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": pod}}},
        {"kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"template": {"spec": pod}}},
    ]
    errors = errors_of(tmp_path, docs)
    for where in ("Pod/p", "Job/j", "StatefulSet/s"):
        assert any(where in e and "runAsNonRoot" in e for e in errors), errors


def test_pod_level_settings_count_for_every_container() -> None:
    c = hardened("c")
    del c["securityContext"]["runAsNonRoot"]
    del c["securityContext"]["seccompProfile"]
    pod = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [c]}
    assert pod_security_errors("x", pod) == []
    c["securityContext"]["runAsNonRoot"] = False
    assert pod_security_errors("x", pod) == ["x container c: runAsNonRoot must be true"]


def consumer_render() -> list[dict]:
    proxy = {
        "name": "outrigger-proxy",
        "restartPolicy": "Always",
        "env": [{"name": k, "value": v} for k, v in CONSUMER_ENV.items()],
        "volumeMounts": [{"name": "outrigger-tls", "mountPath": "/var/run/outrigger/tls", "readOnly": True}],
    }
    pod = {
        "initContainers": [proxy],
        "volumes": [{"name": "outrigger-tls", "secret": {"secretName": "consumer-mesh-tls"}}],
    }
    return [
        {"kind": "StatefulSet", "metadata": {"name": "c"}, "spec": {"template": {"spec": pod}}},
        {
            "kind": "Service",
            "metadata": {"name": "c"},
            "spec": {"ports": [{"name": "https", "targetPort": "outrigger", "appProtocol": "https"}]},
        },
    ]


def test_library_consumer(tmp_path: Path) -> None:
    f = tmp_path / "consumer.yaml"
    f.write_text(yaml.safe_dump_all(consumer_render()))
    assert consumer_errors(f) == []
    docs = consumer_render()
    docs[0]["spec"]["template"]["spec"]["initContainers"][0]["env"][1]["value"] = "127.0.0.1:8080"
    docs[0]["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["readOnly"] = False
    docs[1]["spec"]["ports"][0]["appProtocol"] = "http"
    f.write_text(yaml.safe_dump_all(docs))
    errors = consumer_errors(f)
    assert len(errors) == 3, errors
    assert "OUTRIGGER_APP='127.0.0.1:8080', want '127.0.0.1:9000'" in errors[0]
    f.write_text(yaml.safe_dump_all(docs[1:]))
    assert consumer_errors(f) == [
        "consumer.yaml: the consumer render needs a StatefulSet and a Service, got ['Service']"
    ]


def test_drain_token() -> None:
    assert drain_token(yaml.safe_dump_all(app_render())) == TOKEN
    with pytest.raises(CheckFailed, match="no OUTRIGGER_PROXY_DRAIN_TOKEN"):
        drain_token(yaml.safe_dump_all(app_render()[1:]))
