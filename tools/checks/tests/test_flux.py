"""Flux postBuild substitution (outrigger_checks.flux_render) and the Flux API version table
(outrigger_checks.flux_apis) on the repository's flux/ tree and on objects they must reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from outrigger_checks import ROOT
from outrigger_checks.failure import CheckFailed
from outrigger_checks.flux_apis import CURRENT_FLUX_APIS, flux_api_errors, k8s_version_key, stale_table_errors
from outrigger_checks.flux_render import (
    apply_post_build,
    local_chart,
    render_helmrelease,
    substitute,
    substitution_disabled,
)
from outrigger_checks.manifests import load_docs


def test_substitution_applies_values_and_defaults() -> None:
    assert substitute("a: ${x:=d} ${y} ${z:-e}", {"y": "1"}, "t") == "a: d 1 e"


def test_an_unresolved_variable_is_an_error() -> None:
    with pytest.raises(CheckFailed, match=r"t: unresolved postBuild variable\(s\) \['undefined_var'\]"):
        substitute("a: ${undefined_var}", {}, "t")


def test_objects_marked_disabled_are_left_alone() -> None:
    ks = {"spec": {"postBuild": {"substitute": {"x": "1"}}}}
    built = (
        "kind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n"
        "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  k: ${kept}\n"
        "---\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: ${x}\n"
    )
    a, b = apply_post_build(built, ks, "t")
    assert substitution_disabled(a) and a["data"]["k"] == "${kept}"
    assert b["data"]["k"] == 1


def test_substitute_from_is_refused() -> None:
    ks = {"spec": {"postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": "v"}]}}}
    with pytest.raises(CheckFailed, match="substituteFrom is not modelled"):
        apply_post_build("kind: ConfigMap\n", ks, "t")


def test_values_from_is_refused(tmp_path: Path) -> None:
    hr = {
        "metadata": {"name": "outrigger", "namespace": "outrigger-system"},
        "spec": {"values": {}, "valuesFrom": [{"kind": "Secret", "name": "only-in-the-cluster"}]},
    }
    with pytest.raises(CheckFailed, match=r"outrigger-system/outrigger: spec\.valuesFrom is not modelled"):
        render_helmrelease(hr, "charts/outrigger", tmp_path)


def test_local_chart_names_charts_of_this_repository_only() -> None:
    ref = {"kind": "GitRepository", "name": "flux-system"}
    hr = {"spec": {"chart": {"spec": {"chart": "./charts/outrigger", "sourceRef": ref}}}}
    assert local_chart(hr) == "charts/outrigger"
    hr["spec"]["chart"]["spec"]["sourceRef"] = {"kind": "HelmRepository", "name": "grafana"}
    assert local_chart(hr) is None


def flux_tree_docs() -> list[tuple[str, dict]]:
    return [
        (str(f.relative_to(ROOT)), d) for f in sorted((ROOT / "flux").rglob("*.yaml")) for d in load_docs(f.read_text())
    ]


def test_the_flux_tree_uses_current_apis_only() -> None:
    errors, seen = flux_api_errors(flux_tree_docs())
    assert errors == []
    assert seen > 0


@pytest.mark.parametrize(
    ("api", "kind", "want"),
    [
        ("helm.toolkit.fluxcd.io/v2beta2", "HelmRelease", "current is helm.toolkit.fluxcd.io/v2"),
        ("source.toolkit.fluxcd.io/v1beta2", "OCIRepository", "current is source.toolkit.fluxcd.io/v1"),
        ("source.toolkit.fluxcd.io/v1", "Mystery", "is not a known Flux kind"),
    ],
)
def test_deprecated_or_unknown_flux_apis_are_rejected(api: str, kind: str, want: str) -> None:
    errors, seen = flux_api_errors([("t", {"apiVersion": api, "kind": kind, "metadata": {"name": "x"}})])
    assert seen == 1
    assert any(want in e for e in errors), errors


def test_the_version_table_must_name_the_newest_served_version(tmp_path: Path) -> None:
    for kind, api in CURRENT_FLUX_APIS.items():
        group, version = api.split("/")
        (tmp_path / group).mkdir(exist_ok=True)
        (tmp_path / group / f"{kind.lower()}_{version}.json").write_text("{}")
        (tmp_path / group / f"{kind.lower()}_v1alpha1.json").write_text("{}")
    assert stale_table_errors(tmp_path) == []
    (tmp_path / "helm.toolkit.fluxcd.io" / "helmrelease_v3.json").write_text("{}")
    errors = stale_table_errors(tmp_path)
    assert errors == [
        "HelmRelease: newest served version is helm.toolkit.fluxcd.io/v3, table says helm.toolkit.fluxcd.io/v2"
    ]


def test_kubernetes_version_order() -> None:
    versions = ["v1", "v1alpha1", "v2", "v1beta3", "v1beta1", "v2beta2"]
    assert sorted(versions, key=k8s_version_key) == ["v1alpha1", "v1beta1", "v1beta3", "v1", "v2beta2", "v2"]
