"""The checks' own test on the real rendered tree: each check must reject a deliberately broken
input (a check that cannot fail proves nothing). Run by check-flux.sh after ``render``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .failure import CheckFailed, fail_all
from .flux_apis import CURRENT_FLUX_APIS, flux_api_errors, stale_table_errors
from .flux_render import substitute
from .manifests import load_docs
from .placement import INFRA_TAINT, POOL_LABEL, POOLLESS_CLUSTERS, placement_errors, pod_spec
from .promql import metric_names


def cmd_selftest(out: Path) -> None:
    """Each check must reject a deliberately broken input; a check that cannot fail proves nothing."""
    index = json.loads((out / "index.json").read_text())
    problems = []

    def expect(label: str, errors: list[str], needle: str) -> None:
        if not any(needle in e for e in errors):
            problems.append(f"{label}: expected an error containing {needle!r}, got {errors[:3]}")

    def mutated(pred, mutate) -> list[dict]:
        idx = []
        hit = False
        for entry in index:
            e = dict(entry)
            docs = load_docs(Path(e["file"]).read_text())
            for d in docs:
                # A pool-less cluster is not placement-checked, so a mutation there proves nothing.
                if not hit and e.get("cluster") not in POOLLESS_CLUSTERS and pred(e, d):
                    mutate(d)
                    hit = True
            e["docs"] = docs
            idx.append(e)
        if not hit:
            problems.append(f"selftest: no object matched for mutation {mutate.__name__}")
        return idx

    def is_remote_hr(name):
        return lambda e, d: (
            e.get("remote")
            and e["helmrelease"] == name
            and d.get("kind") == "HelmRelease"
            and f"{d['metadata']['namespace']}/{d['metadata']['name']}" == name
        )

    def drop_loki_tolerations(d):
        d["spec"]["values"]["singleBinary"].pop("tolerations")

    def loki_on_apps_pool(d):
        d["spec"]["values"]["singleBinary"]["nodeSelector"] = {POOL_LABEL: "apps"}

    def agent_keyed_toleration(d):
        pod_spec(d)["tolerations"] = [dict(INFRA_TAINT, operator="Equal")]

    def app_tolerates_infra(d):
        pod_spec(d).setdefault("tolerations", []).append(dict(INFRA_TAINT, operator="Equal"))

    def app_without_selector(d):
        pod_spec(d).pop("nodeSelector", None)

    def enable_node_exporter(d):
        d["spec"]["values"]["nodeExporter"]["enabled"] = True

    cases = [
        ("loki without tolerations", is_remote_hr("monitoring/loki"), drop_loki_tolerations, "must tolerate"),
        ("loki on the apps pool", is_remote_hr("monitoring/loki"), loki_on_apps_pool, "must select"),
        (
            "kube-prometheus-stack with node-exporter",
            is_remote_hr("monitoring/kube-prometheus-stack"),
            enable_node_exporter,
            "nodeExporter.enabled must be false",
        ),
        (
            "agent tolerating one taint only",
            lambda e, d: e.get("chart") == "charts/outrigger" and d.get("kind") == "DaemonSet",
            agent_keyed_toleration,
            "tolerate every taint",
        ),
        (
            "app tolerating the infra taint",
            lambda e, d: e.get("chart") == "charts/flask-hello-world" and d.get("kind") == "Deployment",
            app_tolerates_infra,
            "must not tolerate",
        ),
        (
            "app without a pool selector",
            lambda e, d: e.get("chart") == "charts/flask-hello-world" and d.get("kind") == "Deployment",
            app_without_selector,
            "must select",
        ),
    ]
    errors, checked = placement_errors(index)
    if errors or not checked:
        problems.append(f"selftest: the unmodified tree must pass placement: {errors[:3]}")
    for label, pred, mutate, needle in cases:
        errs, _ = placement_errors(mutated(pred, mutate))
        expect(f"placement/{label}", errs, needle)

    old = {"apiVersion": "helm.toolkit.fluxcd.io/v2beta2", "kind": "HelmRelease", "metadata": {"name": "x"}}
    expect("flux-apis/v2beta2", flux_api_errors([("selftest", old)])[0], "current is helm.toolkit.fluxcd.io/v2")
    src = {"apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "OCIRepository", "metadata": {"name": "x"}}
    expect("flux-apis/oci v1beta2", flux_api_errors([("selftest", src)])[0], "current is source.toolkit.fluxcd.io/v1")

    with tempfile.TemporaryDirectory() as tmp:
        for kind, api in CURRENT_FLUX_APIS.items():
            group, version = api.split("/")
            (Path(tmp) / group).mkdir(exist_ok=True)
            (Path(tmp) / group / f"{kind.lower()}_{version}.json").write_text("{}")
        if stale_table_errors(Path(tmp)):
            problems.append("flux-apis: the version table disagrees with a matching schema set")
        (Path(tmp) / "helm.toolkit.fluxcd.io" / "helmrelease_v3.json").write_text("{}")
        expect("flux-apis/newer CRD version", stale_table_errors(Path(tmp)), "newest served version")

    if substitute("a: ${x:=d} ${y}", {"y": "1"}, "selftest") != "a: d 1":
        problems.append("substitute: defaults or values not applied")
    try:
        substitute("a: ${undefined_var}", {}, "selftest")
        problems.append("substitute: an unresolved ${var} was accepted")
    except CheckFailed as e:
        if "unresolved postBuild variable" not in str(e):
            problems.append(f"substitute: unexpected error {e}")

    names = metric_names(
        'sum by (le) (rate(foo_bucket{a="b", c=~"x|y"}[5m])) / on (a) group_left (z) '
        'bar_total offset 5m and ignoring (q) count(baz{__name__!="q"}) > bool 1e3'
    )
    if names != {"foo_bucket", "bar_total", "baz"}:
        problems.append(f"metric_names: got {sorted(names)}")

    fail_all(problems)
    print(
        f"selftest ok: {len(cases)} placement mutations, 2 deprecated APIs, a stale API table, substitution and the "
        "PromQL name extractor were all caught/handled"
    )
