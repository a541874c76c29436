"""Node-pool placement (outrigger_checks.placement) on the repository's remote-chart HelmReleases
and Terraform, and on pod specs placed wrongly."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from outrigger_checks import ROOT
from outrigger_checks.manifests import load_docs
from outrigger_checks.placement import (
    INFRA_TAINT,
    POOL_LABEL,
    REMOTE_CHART_PLACEMENT,
    check_pod,
    placement_errors,
    terraform_contract_errors,
)

CONTROLLERS = ROOT / "flux" / "infrastructure" / "controllers"
INFRA_POD = {"nodeSelector": {POOL_LABEL: "infra"}, "tolerations": [dict(INFRA_TAINT, operator="Equal")]}
APPS_POD = {"nodeSelector": {POOL_LABEL: "apps"}}


def test_terraform_sets_the_pools_and_taint_the_manifests_assume() -> None:
    assert terraform_contract_errors() == []


def remote_entries() -> list[dict]:
    """The infrastructure HelmReleases of remote charts, as cmd_render indexes them."""
    out = []
    for f in sorted(CONTROLLERS.glob("*.yaml")):
        for d in load_docs(f.read_text()):
            if d.get("kind") != "HelmRelease":
                continue
            name = f"{d['metadata']['namespace']}/{d['metadata']['name']}"
            if name in REMOTE_CHART_PLACEMENT:
                out.append(
                    {"cluster": "t", "class": "infra", "helmrelease": name, "remote": True, "file": str(f), "docs": [d]}
                )
    return out


def test_remote_infrastructure_charts_are_placed_on_the_infra_pool() -> None:
    entries = remote_entries()
    assert {e["helmrelease"] for e in entries} >= {"monitoring/loki", "monitoring/kube-prometheus-stack"}
    errors, checked = placement_errors(entries)
    assert errors == []
    assert checked >= len(entries)


def test_a_remote_chart_losing_its_toleration_or_switching_on_node_exporter_is_caught() -> None:
    entries = copy.deepcopy(remote_entries())
    loki = next(e for e in entries if e["helmrelease"] == "monitoring/loki")
    loki["docs"][0]["spec"]["values"]["singleBinary"].pop("tolerations")
    kps = next(e for e in entries if e["helmrelease"] == "monitoring/kube-prometheus-stack")
    kps["docs"][0]["spec"]["values"]["nodeExporter"]["enabled"] = True
    errors, _ = placement_errors(entries)
    assert any("values.singleBinary: infrastructure workload must tolerate" in e for e in errors), errors
    assert any("nodeExporter.enabled must be false" in e for e in errors), errors


def test_a_remote_chart_without_a_placement_rule_is_an_error() -> None:
    hr = {"kind": "HelmRelease", "metadata": {"namespace": "x", "name": "y"}, "spec": {"values": {}}}
    entry = {"cluster": "t", "class": "infra", "helmrelease": "x/y", "remote": True, "file": "f", "docs": [hr]}
    errors, _ = placement_errors([entry])
    assert errors and "no placement rule" in errors[0]


def deployment(pod: dict, kind: str = "Deployment") -> dict:
    return {"kind": kind, "metadata": {"namespace": "n", "name": "w"}, "spec": {"template": {"spec": pod}}}


@pytest.mark.parametrize(
    ("klass", "pod", "want"),
    [
        ("infra", INFRA_POD, None),
        ("apps", APPS_POD, None),
        ("infra", {"nodeSelector": {POOL_LABEL: "infra"}}, "must tolerate outrigger.io/dedicated=infra:NoSchedule"),
        (
            "infra",
            APPS_POD | {"tolerations": INFRA_POD["tolerations"]},
            "must select doks.digitalocean.com/node-pool=infra",
        ),
        ("apps", INFRA_POD, "app workload must select"),
        ("apps", APPS_POD | {"tolerations": [{"operator": "Exists"}]}, "must not tolerate the infra taint"),
    ],
)
def test_workloads_land_on_the_pool_of_their_class(klass: str, pod: dict, want: str | None) -> None:
    entry = {"cluster": "t", "class": klass, "file": "f.yaml", "docs": [deployment(pod)]}
    errors, checked = placement_errors([entry])
    assert checked == 1
    if want is None:
        assert errors == []
    else:
        assert any(want in e for e in errors), errors


def test_only_the_agent_may_be_a_daemonset_and_it_tolerates_everything() -> None:
    errors: list[str] = []
    check_pod("agent", {"tolerations": [{"operator": "Exists"}]}, "infra", True, errors)
    assert errors == []
    check_pod("agent", {"tolerations": [dict(INFRA_TAINT, operator="Equal")]}, "infra", True, errors)
    assert errors == ["agent: the agent DaemonSet must tolerate every taint (operator: Exists, no key)"]
    entry = {"cluster": "t", "class": "infra", "file": "f.yaml", "docs": [deployment(INFRA_POD, "DaemonSet")]}
    errors, _ = placement_errors([entry])
    assert any("unexpected DaemonSet" in e for e in errors)


def test_bare_test_pods_only_need_to_stay_off_the_infra_pool(tmp_path: Path) -> None:
    pod = {"kind": "Pod", "metadata": {"namespace": "n", "name": "test"}, "spec": {}}
    errors, checked = placement_errors([{"cluster": "t", "class": "apps", "file": "f.yaml", "docs": [pod]}])
    assert (errors, checked) == ([], 1)
