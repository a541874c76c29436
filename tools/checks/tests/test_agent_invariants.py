"""The agent's contract (outrigger_checks.agent_invariants) on a render that keeps it and on
renders that break one rule each; check-charts-platform.sh runs it on the real chart renders."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from outrigger_checks.agent_invariants import invariant_errors


def agent_render() -> list[dict]:
    host = {"logs": "/var/log/pods", "proc": "/proc", "sys": "/sys", "state": "/var/lib/outrigger-agent"}
    container = {
        "name": "agent",
        "args": ["--loki-url=http://loki:3100"],
        "ports": [{"containerPort": 4192}],
        "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": n, "mountPath": p, "readOnly": n != "state"} for n, p in host.items()],
    }
    pod = {
        "tolerations": [{"operator": "Exists"}],
        "automountServiceAccountToken": False,
        "volumes": [{"name": n, "hostPath": {"path": p}} for n, p in host.items()],
        "containers": [container],
    }
    return [
        {"kind": "DaemonSet", "spec": {"template": {"spec": pod}}},
        {
            "kind": "ClusterRole",
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
    ]


def errors_of(tmp_path: Path, docs: list[dict]) -> list[str]:
    f = tmp_path / "ci.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    return invariant_errors(f)


def test_an_agent_that_keeps_the_contract_passes(tmp_path: Path) -> None:
    assert errors_of(tmp_path, agent_render()) == []


def _pod(docs: list[dict]) -> dict:
    return docs[0]["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("break_it", "want"),
    [
        (lambda d: _pod(d).update(tolerations=[{"key": "a", "operator": "Exists"}]), "must tolerate every taint"),
        (lambda d: _pod(d).update(hostPID=True), "hostPID must stay off"),
        (lambda d: _pod(d)["containers"][0]["securityContext"].update(privileged=True), "no privilege"),
        (lambda d: _pod(d)["containers"][0]["volumeMounts"][0].update(readOnly=False), "only the state dir"),
        (lambda d: _pod(d)["containers"][0].update(ports=[{"containerPort": 80}]), "exactly port 4192"),
        (lambda d: _pod(d)["containers"][0].update(args=[]), "no log sink configured"),
        (lambda d: d[1].update(rules=[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]), "pods only"),
    ],
)
def test_each_broken_rule_is_reported(tmp_path: Path, break_it, want: str) -> None:
    docs = copy.deepcopy(agent_render())
    break_it(docs)
    assert any(want in e for e in errors_of(tmp_path, docs)), want
