"""What Flux would apply on every cluster in flux/clusters: each Flux Kustomization's path built
(kustomize, no load restrictions, like kustomize-controller), postBuild variables substituted
(objects marked kustomize.toolkit.fluxcd.io/substitute=disabled are left alone, an unresolved
${var} is an error), and every HelmRelease of a chart in this repository templated with its values
and post-renderers. ``cmd_render`` writes the outputs and OUT/index.json for the other checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from . import ROOT
from .failure import fail
from .manifests import dump, kustomize_build, load_docs, run

FLUX = ROOT / "flux"
KUBE_VERSION = os.environ.get("PLATFORM_KUBE_VERSION", "1.33.0")
SUBST_DISABLED = "kustomize.toolkit.fluxcd.io/substitute"


# --- postBuild substitution (Flux semantics: ${var}, ${var:=default}, ${var:-default}) ----------
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
    if spec.get("valuesFrom"):
        # Its objects exist only in a running cluster; rendering without them would check
        # something other than what Flux applies.
        fail(f"HelmRelease {meta['namespace']}/{meta['name']}: spec.valuesFrom is not modelled by this check")
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
