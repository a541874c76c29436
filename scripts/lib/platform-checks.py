#!/usr/bin/env python3
"""Platform checks for the Flux tree and the Outrigger chart (used by scripts/check-*.sh).

Subcommands:
  render OUT        Render what Flux would apply on every cluster in flux/clusters: each Flux
                    Kustomization's path is built (kustomize, no load restrictions, like
                    kustomize-controller), postBuild variables are substituted (objects marked
                    kustomize.toolkit.fluxcd.io/substitute=disabled are left alone, an unresolved
                    ${var} is an error), and every HelmRelease of a chart in this repository is
                    templated with its values and post-renderers. Writes OUT/index.json.
  placement OUT     Assert node-pool placement on the rendered output (placement_errors) and that
                    Terraform's pools/taint/Flux-controller placement match (terraform_contract_errors).
  flux-apis FILE..  Fail on any Flux object whose apiVersion is not the current one for its kind,
                    and on a version table older than the toolchain's Flux CRDs.
  dryrun STATE F..  Create every object with dryRun=All on the kube-test-env API server in STATE.
  selftest OUT      Prove the checks above reject deliberately broken input.
  promql            Parse every PromQL expression in dashboards and rules; every metric name must
                    be documented in docs/metrics.md or listed in platform-known-metrics.txt.
  dashboards        Dashboards parse as JSON, have the expected stable uids and unique panel ids.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FLUX = ROOT / "flux"
POOL_LABEL = "doks.digitalocean.com/node-pool"
INFRA_TAINT = {"key": "outrigger.io/dedicated", "value": "infra", "effect": "NoSchedule"}
KUBE_VERSION = os.environ.get("PLATFORM_KUBE_VERSION", "1.33.0")
SUBST_DISABLED = "kustomize.toolkit.fluxcd.io/substitute"


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def run(cmd: list[str], cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        fail(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stderr.strip()}")
    return res.stdout


def kustomize_build(path: Path) -> str:
    """Builds like kustomize-controller: load restrictions off (files from charts/ are shared)."""
    if shutil.which("kustomize"):
        return run(["kustomize", "build", "--load-restrictor=LoadRestrictionsNone", str(path)])
    if shutil.which("kubectl"):
        return run(["kubectl", "kustomize", "--load-restrictor=LoadRestrictionsNone", str(path)])
    fail("neither kustomize nor kubectl found (scripts/tools.sh installs kustomize)")
    return ""


# --- postBuild substitution (Flux semantics: ${var}, ${var:=default}, ${var:-default}) ----------
VAR_RE = re.compile(r"\$\{([_a-zA-Z][_a-zA-Z0-9]*)(?::[=-]([^}]*))?\}")


def substitute(doc_text: str, variables: dict[str, str], where: str) -> str:
    missing: list[str] = []

    def repl(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in variables:
            return str(variables[name])
        if default is not None:
            return default
        missing.append(name)
        return m.group(0)

    out = VAR_RE.sub(repl, doc_text)
    if missing:
        fail(
            f"{where}: unresolved postBuild variable(s) {sorted(set(missing))}; define them in "
            "spec.postBuild.substitute or mark the object kustomize.toolkit.fluxcd.io/substitute: disabled"
        )
    return out


def substitution_disabled(doc: dict) -> bool:
    meta = doc.get("metadata") or {}
    for field in ("annotations", "labels"):
        if (meta.get(field) or {}).get(SUBST_DISABLED) == "disabled":
            return True
    return False


def apply_post_build(built: str, ks: dict, where: str) -> list[dict]:
    post = (ks.get("spec") or {}).get("postBuild") or {}
    if post.get("substituteFrom"):
        fail(f"{where}: substituteFrom is not modelled by this check; use postBuild.substitute")
    variables = {k: str(v) for k, v in (post.get("substitute") or {}).items()}
    out = []
    for doc in load_docs(built):
        if not post or substitution_disabled(doc):
            out.append(doc)
            continue
        text = yaml.safe_dump(doc, sort_keys=False)
        name = f"{where} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        out.extend(load_docs(substitute(text, variables, name)))
    return out


def dump(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


# --- HelmRelease rendering for charts that live in this repository -----------------------------
def local_chart(hr: dict) -> str | None:
    chart = ((hr.get("spec") or {}).get("chart") or {}).get("spec") or {}
    ref = chart.get("sourceRef") or {}
    if ref.get("kind") == "GitRepository" and ref.get("name") == "flux-system":
        return str(chart.get("chart", "")).removeprefix("./")
    return None


def render_helmrelease(hr: dict, chart_rel: str, work: Path) -> list[dict]:
    spec = hr["spec"]
    meta = hr["metadata"]
    charts_copy = work / "charts"
    if not charts_copy.exists():
        shutil.copytree(ROOT / "charts", charts_copy)
    chart_dir = work / chart_rel
    if not (ROOT / chart_rel / "Chart.yaml").exists():
        fail(f"HelmRelease {meta['namespace']}/{meta['name']}: chart {chart_rel} does not exist in this repository")
    chart_meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    if chart_meta.get("dependencies") and not (chart_dir / "charts").exists():
        run(["helm", "dependency", "build", str(chart_dir)])
    values = work / f"values-{meta['namespace']}-{meta['name']}.yaml"
    values.write_text(yaml.safe_dump(spec.get("values") or {}))
    namespace = spec.get("targetNamespace") or meta["namespace"]
    release = spec.get("releaseName") or meta["name"]
    rendered = run(
        [
            "helm",
            "template",
            release,
            str(chart_dir),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "--include-crds",
            "-f",
            str(values),
        ]
    )
    docs = load_docs(rendered)
    for doc in docs:  # helm-controller applies release objects in the release namespace
        if doc.get("kind") not in CLUSTER_SCOPED:
            doc.setdefault("metadata", {}).setdefault("namespace", namespace)
    for i, pr in enumerate(spec.get("postRenderers") or []):
        docs = post_render(docs, pr, work / f"post-{meta['name']}-{i}")
    return docs


def post_render(docs: list[dict], pr: dict, d: Path) -> list[dict]:
    k = pr.get("kustomize")
    if not k:
        fail(f"unsupported post-renderer {list(pr)}")
    d.mkdir(parents=True)
    (d / "rendered.yaml").write_text(dump(docs))
    kust = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["rendered.yaml"]}
    if k.get("patches"):
        kust["patches"] = k["patches"]
    if k.get("images"):
        kust["images"] = k["images"]
    (d / "kustomization.yaml").write_text(yaml.safe_dump(kust, sort_keys=False))
    return load_docs(kustomize_build(d))


def standin_render(hr: dict, work: Path) -> list[dict]:
    """podinfo 6.x's Deployment and Service as its chart renders them from these values (the parts
    the post-renderer and the placement check touch), then the HelmRelease's post-renderers."""
    meta, spec = hr["metadata"], hr["spec"]
    if meta["name"] != "podinfo":
        fail(f"HelmRelease {meta['namespace']}/{meta['name']}: post-renderers on a remote chart with no stand-in")
    values = spec.get("values") or {}
    name = spec.get("releaseName") or meta["name"]
    labels = {"app.kubernetes.io/name": name}
    pod = {
        "terminationGracePeriodSeconds": 30,
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [
            {
                "name": "podinfo",
                "image": "ghcr.io/stefanprodan/podinfo:6.14.1",
                "ports": [{"name": "http", "containerPort": 9898, "protocol": "TCP"}],
                "securityContext": values.get("securityContext") or {},
                "resources": values.get("resources") or {},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
    }
    if values.get("podSecurityContext"):
        pod["securityContext"] = values["podSecurityContext"]
    for key in ("nodeSelector", "tolerations", "affinity"):
        if values.get(key):
            pod[key] = values[key]
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels},
        "spec": {
            "replicas": values.get("replicaCount", 1),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "http", "port": 9898, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    docs = [deploy, service]
    for i, pr in enumerate(spec.get("postRenderers") or []):
        docs = post_render(docs, pr, work / f"standin-{name}-{i}")
    d = next(x for x in docs if x["kind"] == "Deployment")
    sidecars = [c for c in d["spec"]["template"]["spec"].get("initContainers") or [] if c["name"] == "outrigger-proxy"]
    if not sidecars or sidecars[0].get("restartPolicy") != "Always":
        fail(f"{name}: the post-renderer must add outrigger-proxy as a native sidecar (restartPolicy: Always)")
    ports = {p["name"]: p["containerPort"] for p in sidecars[0].get("ports") or []}
    if ports.get("outrigger") != 4143 or ports.get("outrigger-admin") != 4191:
        fail(f"{name}: the sidecar must expose outrigger (4143) and outrigger-admin (4191), got {ports}")
    if d["spec"]["strategy"]["rollingUpdate"].get("maxUnavailable") != 0:
        fail(f"{name}: the post-renderer must make rollouts keep every replica (maxUnavailable: 0)")
    svc = next(x for x in docs if x["kind"] == "Service")
    if [p.get("targetPort") for p in svc["spec"]["ports"]] != ["outrigger"]:
        fail(f"{name}: the Service must send traffic through the proxy (targetPort outrigger)")
    return docs


CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterIssuer",
    "CustomResourceDefinition",
    "GatewayClass",
    "PriorityClass",
    "StorageClass",
}


def cmd_render(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    index = []
    reached: set[Path] = set()
    clusters = sorted(p for p in (FLUX / "clusters").iterdir() if p.is_dir())
    if not clusters:
        fail("no clusters under flux/clusters")
    work = Path(tempfile.mkdtemp(prefix="platform-render-"))
    try:
        for cluster in clusters:
            cdir = out / cluster.name
            cdir.mkdir()
            cluster_docs = []
            for f in sorted(cluster.glob("*.yaml")):
                cluster_docs.extend(load_docs(f.read_text()))
            (cdir / "00-cluster.yaml").write_text(dump(cluster_docs))
            index.append(
                {
                    "cluster": cluster.name,
                    "source": f"flux/clusters/{cluster.name}",
                    "class": "cluster",
                    "file": str(cdir / "00-cluster.yaml"),
                }
            )
            kss = [
                d
                for d in cluster_docs
                if d.get("kind") == "Kustomization"
                and str(d.get("apiVersion", "")).startswith("kustomize.toolkit.fluxcd.io/")
            ]
            if not kss:
                fail(f"{cluster}: no Flux Kustomizations")
            for ks in kss:
                name = ks["metadata"]["name"]
                spec = ks["spec"]
                if spec.get("patches") or spec.get("images") or spec.get("components"):
                    fail(f"{cluster.name}/{name}: spec.patches/images/components are not modelled by this check")
                path = (ROOT / spec["path"]).resolve()
                if not path.is_dir():
                    fail(f"{cluster.name}/{name}: path {spec['path']} does not exist")
                reached.add(path)
                docs = apply_post_build(kustomize_build(path), ks, f"{cluster.name}/{name}")
                f = cdir / f"ks-{name}.yaml"
                f.write_text(dump(docs))
                klass = "apps" if name.startswith("apps") else "infra"
                index.append(
                    {
                        "cluster": cluster.name,
                        "source": spec["path"],
                        "kustomization": name,
                        "class": klass,
                        "file": str(f),
                    }
                )
                for hr in (d for d in docs if d.get("kind") == "HelmRelease"):
                    chart = local_chart(hr)
                    hf = cdir / f"hr-{hr['metadata']['namespace']}-{hr['metadata']['name']}.yaml"
                    if chart is None and hr["spec"].get("postRenderers"):
                        # The upstream chart cannot be pulled offline; apply the post-renderers to a
                        # stand-in with the chart's object shape so the patches are proven to apply
                        # and to produce valid, well-placed objects.
                        sdocs = standin_render(hr, work / cluster.name / name)
                        sf = cdir / f"standin-{hr['metadata']['namespace']}-{hr['metadata']['name']}.yaml"
                        sf.write_text(dump(sdocs))
                        index.append(
                            {
                                "cluster": cluster.name,
                                "kustomization": name,
                                "class": klass,
                                "helmrelease": f"{hr['metadata']['namespace']}/{hr['metadata']['name']}",
                                "standin": True,
                                "file": str(sf),
                            }
                        )
                    if chart is None:
                        index.append(
                            {
                                "cluster": cluster.name,
                                "kustomization": name,
                                "class": klass,
                                "helmrelease": f"{hr['metadata']['namespace']}/{hr['metadata']['name']}",
                                "remote": True,
                                "file": str(f),
                            }
                        )
                        continue
                    hdocs = render_helmrelease(hr, chart, work / cluster.name / name)
                    hf.write_text(dump(hdocs))
                    index.append(
                        {
                            "cluster": cluster.name,
                            "kustomization": name,
                            "class": klass,
                            "helmrelease": f"{hr['metadata']['namespace']}/{hr['metadata']['name']}",
                            "chart": chart,
                            "file": str(hf),
                        }
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Every overlay must be reachable from a cluster (directly or as a base of a reached path).
    for kfile in sorted(FLUX.rglob("kustomization.yaml")):
        d = kfile.parent.resolve()
        if "clusters" in d.relative_to(FLUX.resolve()).parts:
            continue
        used = any(d == r or is_base_of(d, r) for r in reached)
        if not used:
            fail(f"{d.relative_to(ROOT)} is not deployed by any cluster (orphan overlay)")
    (out / "index.json").write_text(json.dumps(index, indent=2))
    n = sum(1 for i in index if "file" in i)
    print(f"rendered {len(clusters)} clusters, {n} outputs into {out}")


def is_base_of(d: Path, root: Path) -> bool:
    k = root / "kustomization.yaml"
    if not k.exists():
        return False
    kust = yaml.safe_load(k.read_text()) or {}
    for r in kust.get("resources") or []:
        p = (root / r).resolve()
        if p == d or (p.is_dir() and is_base_of(d, p)):
            return True
    return False


# --- placement ----------------------------------------------------------------------------------
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "ReplicaSet", "Pod"}

# Remote charts cannot be rendered offline; their placement lives in values at these paths (each
# path holds a pod's nodeSelector/tolerations pair). A chart missing here fails the check.
REMOTE_CHART_PLACEMENT = {
    "cert-manager/cert-manager": ["", "webhook", "cainjector", "startupapicheck"],
    "traefik/traefik": [""],
    "monitoring/kube-prometheus-stack": [
        "prometheusOperator",
        "prometheusOperator.admissionWebhooks.patch",
        "prometheus.prometheusSpec",
        "alertmanager.alertmanagerSpec",
        "kube-state-metrics",
        "grafana",
    ],
    "monitoring/loki": ["singleBinary"],
    "podinfo/podinfo": [""],
}
# Sub-components a remote chart would deploy unless switched off; the check insists they are off.
REMOTE_CHART_DISABLED = {
    "monitoring/kube-prometheus-stack": ["nodeExporter.enabled"],
    "monitoring/loki": [
        "chunksCache.enabled",
        "resultsCache.enabled",
        "gateway.enabled",
        "lokiCanary.enabled",
        "test.enabled",
    ],
    "podinfo/podinfo": ["redis.enabled"],
}


def get_path(values: dict, dotted: str):
    cur = values
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def tolerates_infra(tols: list[dict]) -> bool:
    for t in tols or []:
        op = t.get("operator", "Equal")
        if op == "Exists" and not t.get("key"):
            return True
        if t.get("key") != INFRA_TAINT["key"]:
            continue
        if t.get("effect") not in (None, "", INFRA_TAINT["effect"]):
            continue
        if op == "Exists" or t.get("value") == INFRA_TAINT["value"]:
            return True
    return False


def tolerates_everything(tols: list[dict]) -> bool:
    return any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect") for t in tols or [])


def selected_pool(pod: dict) -> str | None:
    pool = (pod.get("nodeSelector") or {}).get(POOL_LABEL)
    if pool:
        return pool
    terms = (
        ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        or {}
    ).get("nodeSelectorTerms") or []
    pools = set()
    for term in terms:
        for e in term.get("matchExpressions") or []:
            if e.get("key") == POOL_LABEL and e.get("operator") == "In" and len(e.get("values", [])) == 1:
                pools.add(e["values"][0])
    return pools.pop() if len(pools) == 1 else None


def pod_spec(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        return spec
    if doc["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def check_pod(where: str, pod: dict, klass: str, is_agent: bool, errors: list[str], bare_pod: bool = False) -> None:
    tols = pod.get("tolerations") or []
    if is_agent:
        if not tolerates_everything(tols):
            errors.append(f"{where}: the agent DaemonSet must tolerate every taint (operator: Exists, no key)")
        if selected_pool(pod):
            errors.append(f"{where}: the agent DaemonSet must not be pinned to a pool")
        return
    pool = selected_pool(pod)
    if klass == "infra":
        if pool != "infra":
            errors.append(f"{where}: infrastructure workload must select {POOL_LABEL}=infra (has {pool!r})")
        if not tolerates_infra(tols):
            taint = f"{INFRA_TAINT['key']}={INFRA_TAINT['value']}:NoSchedule"
            errors.append(f"{where}: infrastructure workload must tolerate {taint}")
    else:
        # Bare Pods are helm test hooks: short-lived, they only need to stay off the infra pool,
        # which its taint guarantees as long as they do not tolerate it.
        if pool != "apps" and not (bare_pod and pool is None):
            errors.append(f"{where}: app workload must select {POOL_LABEL}=apps (has {pool!r})")
        if tolerates_infra(tols):
            errors.append(f"{where}: app workload must not tolerate the infra taint")


def placement_errors(index: list[dict]) -> tuple[list[str], int]:
    errors: list[str] = []
    checked = 0
    for entry in index:
        f = Path(entry["file"])
        docs = entry["docs"] if "docs" in entry else load_docs(f.read_text())
        if entry.get("remote"):
            hr_name = entry["helmrelease"]
            ns, name = hr_name.split("/")
            hr = next(
                d
                for d in docs
                if d.get("kind") == "HelmRelease" and d["metadata"]["name"] == name and d["metadata"]["namespace"] == ns
            )
            paths = REMOTE_CHART_PLACEMENT.get(hr_name)
            if paths is None:
                errors.append(
                    f"{entry['cluster']}: HelmRelease {hr_name} uses a remote chart with no placement "
                    "rule in REMOTE_CHART_PLACEMENT (scripts/lib/platform-checks.py)"
                )
                continue
            values = hr["spec"].get("values") or {}
            for p in paths:
                block = get_path(values, p) if p else values
                where = f"{entry['cluster']} HelmRelease {hr_name} values.{p or '<root>'}"
                if not isinstance(block, dict):
                    errors.append(f"{where}: missing")
                    continue
                check_pod(where, block, entry["class"], False, errors)
                checked += 1
            for p in REMOTE_CHART_DISABLED.get(hr_name, []):
                if get_path(values, p) is not False:
                    errors.append(
                        f"{entry['cluster']} HelmRelease {hr_name}: values.{p} must be false "
                        "(its pods would have no placement rule)"
                    )
            continue
        for doc in docs:
            if doc.get("kind") not in WORKLOAD_KINDS:
                continue
            meta = doc.get("metadata") or {}
            where = f"{entry['cluster']} {doc['kind']} {meta.get('namespace')}/{meta.get('name')} ({f.name})"
            is_agent = doc["kind"] == "DaemonSet" and (entry.get("chart") == "charts/outrigger")
            if doc["kind"] == "DaemonSet" and not is_agent:
                errors.append(f"{where}: unexpected DaemonSet (only the Outrigger agent runs on every node)")
                continue
            check_pod(where, pod_spec(doc), entry["class"], is_agent, errors, doc["kind"] == "Pod")
            checked += 1
    return errors, checked


def terraform_contract_errors() -> list[str]:
    """The pool names, taint and Flux controller placement that Terraform sets must be the ones
    the Flux manifests assume (INFRA_TAINT, POOL_LABEL values)."""
    errors = []
    conv = (ROOT / "terraform/modules/conventions/main.tf").read_text()
    for field in ("key", "value", "effect"):
        if not re.search(rf'^\s*{field}\s*=\s*"{re.escape(INFRA_TAINT[field])}"', conv, re.M):
            errors.append(f"terraform/modules/conventions: infra taint {field} is not {INFRA_TAINT[field]!r}")
    for pool in ("infra", "apps"):
        if not re.search(rf'^\s*name\s*=\s*"{pool}"', conv, re.M):
            errors.append(f"terraform/modules/conventions: no node pool named {pool!r}")
    boot = (ROOT / "terraform/bootstrap/main.tf").read_text()
    boot_vars = (ROOT / "terraform/bootstrap/variables.tf").read_text()
    if (
        "toleration_keys        = [var.infra_taint_key]" not in boot
        or f'default     = "{INFRA_TAINT["key"]}"' not in boot_vars
    ):
        errors.append("terraform/bootstrap: Flux controllers must tolerate the infra taint (toleration_keys)")
    if f'"{POOL_LABEL}" = "infra"' not in boot:
        errors.append("terraform/bootstrap: Flux controllers must select the infra pool (kustomization_override)")
    return errors


def cmd_placement(out: Path) -> None:
    errors, checked = placement_errors(json.loads((out / "index.json").read_text()))
    errors += terraform_contract_errors()
    if errors:
        print("\n".join(f"FAIL: {e}" for e in errors), file=sys.stderr)
        sys.exit(1)
    if checked == 0:
        fail("placement: nothing was checked")
    print(
        f"placement ok: {checked} pod specs / value blocks land on their intended pool; Terraform's pools, "
        "taint and Flux controller placement match"
    )


# --- Flux API versions ----------------------------------------------------------------------------
CURRENT_FLUX_APIS = {
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1",
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1",
    "ImagePolicy": "image.toolkit.fluxcd.io/v1",
    "ImageUpdateAutomation": "image.toolkit.fluxcd.io/v1",
    "Receiver": "notification.toolkit.fluxcd.io/v1",
    "Alert": "notification.toolkit.fluxcd.io/v1beta3",
    "Provider": "notification.toolkit.fluxcd.io/v1beta3",
}


def flux_api_errors(named_docs: list[tuple[str, dict]]) -> tuple[list[str], int]:
    errors = []
    seen = 0
    for name, doc in named_docs:
        api = str(doc.get("apiVersion", ""))
        if ".toolkit.fluxcd.io/" not in api and ".extensions.fluxcd.io/" not in api:
            continue
        seen += 1
        want = CURRENT_FLUX_APIS.get(doc.get("kind"))
        if want is None:
            errors.append(f"{name}: {doc.get('kind')} ({api}) is not a known Flux kind")
        elif api != want:
            errors.append(f"{name}: {doc['kind']} {doc['metadata'].get('name')} uses {api}; current is {want}")
    return errors, seen


def k8s_version_key(v: str) -> tuple[int, int, int]:
    """Kubernetes API version order: v2 > v1 > v1beta3 > v1beta1 > v1alpha1."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (int(m.group(1)), stage, int(m.group(3) or 0))


def stale_table_errors(schemas: Path) -> list[str]:
    """The table above must name the newest version the toolchain's Flux CRDs serve for each kind."""
    errors = []
    for kind, api in CURRENT_FLUX_APIS.items():
        group, version = api.split("/")
        files = list((schemas / group).glob(f"{kind.lower()}_*.json"))
        served = sorted((f.stem.split("_", 1)[1] for f in files), key=k8s_version_key)
        if not served:
            errors.append(f"no CRD schema for {group} {kind} in {schemas}")
        elif served[-1] != version:
            errors.append(f"{kind}: newest served version is {group}/{served[-1]}, table says {api}")
    return errors


def cmd_flux_apis(files: list[str]) -> None:
    errors, seen = flux_api_errors([(n, d) for n in files for d in load_docs(Path(n).read_text())])
    schemas = Path(os.environ.get("OUTRIGGER_TOOLS", ROOT / ".tools")) / "schemas" / "crds"
    if not schemas.is_dir():
        fail(f"flux-apis: {schemas} missing (run scripts/tools.sh)")
    errors += stale_table_errors(schemas)
    if errors:
        print("\n".join(f"FAIL: {e}" for e in errors), file=sys.stderr)
        sys.exit(1)
    if seen == 0:
        fail("flux-apis: no Flux objects found")
    print(f"flux api versions ok: {seen} Flux objects, all on current APIs")


# --- PromQL ---------------------------------------------------------------------------------------
DASHBOARDS = ROOT / "charts" / "outrigger" / "dashboards"
RULES = ROOT / "charts" / "outrigger" / "files" / "prometheusrule.yaml"
KNOWN = Path(__file__).resolve().parent / "platform-known-metrics.txt"
# PLATFORM_METRICS_MD only lets the check be exercised against another file (tests of the check).
METRICS_MD = Path(os.environ.get("PLATFORM_METRICS_MD", ROOT / "docs" / "metrics.md"))
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
}


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for f in sorted(DASHBOARDS.glob("*.json")):
        d = json.loads(f.read_text())

        def walk(panels: list[dict], fname: str) -> None:
            for p in panels:
                for t in p.get("targets") or []:
                    if t.get("expr"):
                        out.append((f"{fname} panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
                walk(p.get("panels") or [], fname)

        walk(d.get("panels") or [], f.name)
        for v in (d.get("templating") or {}).get("list") or []:
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)\s*", q or "")
            if v.get("type") == "query" and m:
                out.append((f"{f.name} variable {v['name']}", m.group(1)))
            elif v.get("type") == "query":
                fail(f"{f.name} variable {v['name']}: unsupported query {q!r}")
    return out


def rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for g in doc["spec"]["groups"] for r in g["rules"]]


def grafana_to_promql(expr: str) -> str:
    """Replaces Grafana's template variables with values Prometheus accepts."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    # ${1} inside label_replace() is Prometheus syntax, not a Grafana variable: keep it.
    expr = re.sub(r"\$\{([a-zA-Z_]\w*)\}", ".*", expr)
    return re.sub(r"\$([a-zA-Z_]\w*)", ".*", expr)


def metric_names(expr: str) -> set[str]:
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    names = set(re.findall(r'__name__\s*=\s*"([^"]*)"', expr))
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # ranges / subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word in PROMQL_KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def documented_metrics() -> dict[str, str]:
    text = METRICS_MD.read_text()
    found: dict[str, str] = {}
    sections = re.findall(r"<!-- BEGIN (\w+) -->(.*?)<!-- END \1 -->", text, flags=re.S)
    if not sections:
        fail(f"{METRICS_MD}: no <!-- BEGIN x --> ... <!-- END x --> sections")
    for section, body in sections:
        for line in body.splitlines():
            m = re.match(r"\s*\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
            if m:
                found[m.group(1)] = f"docs/metrics.md ({section})"
    for line in KNOWN.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            found[line] = KNOWN.name
    return found


def cmd_promql() -> None:
    known = documented_metrics()
    exprs = dashboard_exprs() + rule_exprs()
    if not exprs:
        fail("no PromQL expressions found")
    # Syntax: every expression goes through Prometheus' own parser (promtool check rules).
    with tempfile.TemporaryDirectory() as tmp:
        rules = {
            "groups": [
                {
                    "name": "dashboards",
                    "rules": [
                        {"record": f"platform_check:expr_{i}", "expr": grafana_to_promql(e)}
                        for i, (_, e) in enumerate(exprs)
                    ],
                }
            ]
        }
        f = Path(tmp) / "exprs.rules.yaml"
        f.write_text(yaml.safe_dump(rules))
        res = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            fail(f"promtool rejected an expression:\n{res.stdout}{res.stderr}")
    errors = []
    used: dict[str, int] = {}
    for where, e in exprs:
        for name in sorted(metric_names(grafana_to_promql(e))):
            used[name] = used.get(name, 0) + 1
            # A histogram may be documented by its base name or by any of its series.
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            family = {name, base, f"{base}_bucket", f"{base}_count", f"{base}_sum"}
            if not family & known.keys():
                errors.append(f"{where}: metric {name} is not documented in docs/metrics.md (nor in {KNOWN.name})")
    if errors:
        print("\n".join(f"FAIL: {e}" for e in errors), file=sys.stderr)
        sys.exit(1)
    print(f"promql ok: {len(exprs)} expressions parsed by promtool; {len(used)} distinct metric names, all documented")


def cmd_dashboards() -> None:
    expected = {
        "outrigger-mesh.json": "outrigger-mesh",
        "outrigger-agent.json": "outrigger-agent",
        "outrigger-nodes.json": "outrigger-nodes",
    }
    files = sorted(DASHBOARDS.glob("*.json"))
    if {f.name for f in files} != set(expected):
        fail(f"dashboards: expected exactly {sorted(expected)}, found {[f.name for f in files]}")
    uids = set()
    for f in files:
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            fail(f"{f.name}: not JSON: {e}")
        uid = d.get("uid")
        if uid != expected[f.name]:
            fail(f"{f.name}: uid {uid!r}, expected the stable uid {expected[f.name]!r}")
        if uid in uids:
            fail(f"{f.name}: duplicate uid {uid}")
        uids.add(uid)
        if not d.get("title") or not isinstance(d.get("panels"), list) or not d["panels"]:
            fail(f"{f.name}: needs a title and panels")
        ids = [p.get("id") for p in d["panels"]]
        if len(ids) != len(set(ids)) or None in ids:
            fail(f"{f.name}: panel ids must be present and unique")
        for p in d["panels"]:
            if p.get("type") != "row" and not p.get("targets"):
                fail(f"{f.name}: panel {p.get('title')!r} has no query")
        if "datasource" not in [v.get("name") for v in d.get("templating", {}).get("list", [])]:
            fail(f"{f.name}: needs a $datasource variable")
    print(f"dashboards ok: {len(files)} files, uids {sorted(uids)}")


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
                if not hit and pred(e, d):
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
    res = subprocess.run([sys.executable, __file__, "_subst_missing"], capture_output=True, text=True, check=False)
    if res.returncode == 0 or "unresolved postBuild variable" not in res.stderr:
        problems.append("substitute: an unresolved ${var} was accepted")

    names = metric_names(
        'sum by (le) (rate(foo_bucket{a="b", c=~"x|y"}[5m])) / on (a) group_left (z) '
        'bar_total offset 5m and ignoring (q) count(baz{__name__!="q"}) > bool 1e3'
    )
    if names != {"foo_bucket", "bar_total", "baz"}:
        problems.append(f"metric_names: got {sorted(names)}")

    if problems:
        print("\n".join(f"FAIL: {p}" for p in problems), file=sys.stderr)
        sys.exit(1)
    print(
        f"selftest ok: {len(cases)} placement mutations, 2 deprecated APIs, a stale API table, substitution and the "
        "PromQL name extractor were all caught/handled"
    )


# --- server-side dry run against a real kube-apiserver (scripts/kube-test-env.sh) ----------------
class Api:
    """Minimal client for the test API server: admin client certificate, TLS against its CA."""

    def __init__(self, state: Path) -> None:
        import ssl

        self.url = (state / "api-url").read_text().strip()
        if not self.url.startswith("https://127.0.0.1:"):
            fail(f"refusing to talk to a non-loopback API server: {self.url}")
        self.ctx = ssl.create_default_context(cafile=str(state / "ca.crt"))
        self.ctx.load_cert_chain(str(state / "admin.crt"), str(state / "admin.key"))
        self.kinds: dict[tuple[str, str], tuple[str, bool]] = {}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return e.code, {"message": raw.decode(errors="replace").strip()}

    def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        if (api_version, kind) not in self.kinds:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            code, doc = self.call("GET", path)
            for r in doc.get("resources", []) if code == 200 else []:
                if "/" not in r["name"]:
                    self.kinds[(api_version, r["kind"])] = (r["name"], r["namespaced"])
        return self.kinds.get((api_version, kind))


def cmd_dryrun(state: Path, files: list[str]) -> None:
    """Creates every object with dryRun=All and fieldValidation=Strict: the API server's own
    validation (selectors vs template labels, names, ports, quantities, unknown fields...) on top
    of the schema check. Namespaced objects go into one throw-away namespace. Kinds the server does
    not serve (CRDs are not installed there) are counted and left to kubeconform."""
    api = Api(state)
    ns = f"platform-dryrun-{os.getpid()}"
    code, body = api.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    if code not in (200, 201):
        fail(f"dryrun: cannot create namespace {ns}: {body.get('message')}")
    errors, ok, crd = [], 0, 0
    for name in files:
        for doc in load_docs(Path(name).read_text()):
            res = api.resource(doc["apiVersion"], doc["kind"])
            if res is None:
                crd += 1
                continue
            plural, namespaced = res
            doc = json.loads(json.dumps(doc))
            meta = doc.setdefault("metadata", {})
            group = f"/api/{doc['apiVersion']}" if "/" not in doc["apiVersion"] else f"/apis/{doc['apiVersion']}"
            path = f"{group}/namespaces/{ns}/{plural}" if namespaced else f"{group}/{plural}"
            if namespaced:
                meta["namespace"] = ns
            code, body = api.call("POST", f"{path}?dryRun=All&fieldValidation=Strict", doc)
            if code in (200, 201):
                ok += 1
            elif code == 409 and not namespaced:
                ok += 1  # already exists (e.g. a shared cluster-scoped object): creation was validated
            else:
                errors.append(f"{Path(name).name}: {doc['kind']}/{meta.get('name')}: {code} {body.get('message')}")
    if errors:
        print("\n".join(f"FAIL: {e}" for e in errors), file=sys.stderr)
        sys.exit(1)
    if ok == 0:
        fail("dryrun: no object was validated")
    print(
        f"dryrun ok: {ok} objects accepted by kube-apiserver (dryRun=All, fieldValidation=Strict); "
        f"{crd} custom resources left to kubeconform (no CRDs on the test server)"
    )


def main(argv: list[str]) -> None:
    if not argv:
        fail(__doc__ or "usage")
    cmd, args = argv[0], argv[1:]
    if cmd == "render" and len(args) == 1:
        cmd_render(Path(args[0]))
    elif cmd == "placement" and len(args) == 1:
        cmd_placement(Path(args[0]))
    elif cmd == "flux-apis" and args:
        cmd_flux_apis(args)
    elif cmd == "promql" and not args:
        cmd_promql()
    elif cmd == "dashboards" and not args:
        cmd_dashboards()
    elif cmd == "dryrun" and len(args) >= 2:
        cmd_dryrun(Path(args[0]), args[1:])
    elif cmd == "selftest" and len(args) == 1:
        cmd_selftest(Path(args[0]))
    elif cmd == "_subst_missing":
        substitute("a: ${undefined_var}", {}, "selftest")
    else:
        fail(f"bad usage: {' '.join(argv)}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
