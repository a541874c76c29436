"""Tests of the verification toolchain itself (scripts/tools.sh and what it installs).

They run the real things: the schema generator on small inputs, kubeconform through
scripts/kubeconform.sh against the generated schemas, the real kube-apiserver + etcd through
scripts/kube-test-env.sh, terraform with the mirror-only CLI config, and a second tools.sh run.
A tool that is genuinely absent fails its test under ``CI=true`` (.ci/run) and elsewhere prints
``SKIPPED: <tool> not installed``, skips, and is listed at the end of ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("OUTRIGGER_TOOLS", ROOT / ".tools"))
sys.path.insert(0, str(ROOT / "tools" / "schemas"))

import gen_schemas


def skip_or_fail(what: str) -> None:
    """The repository's skip policy (scripts/lib/skip.sh): fail under CI=true, else skip loudly
    and record the skip in $OUTRIGGER_SKIP_LOG for the summary at the end of ``make test``."""
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{what} (CI=true: a missing tool is a failure; run scripts/tools.sh)"
        )
    print(f"SKIPPED: {what}", file=sys.stderr)
    if log := os.environ.get("OUTRIGGER_SKIP_LOG"):
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"SKIPPED: tools/tests: {what}\n")
    pytest.skip(what)


def need(tool: str) -> str:
    """Path of ``tool`` in .tools/bin or on PATH, else the skip policy above."""
    for candidate in (TOOLS / "bin" / tool, shutil.which(tool)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    skip_or_fail(f"{tool} not installed")
    raise AssertionError  # unreachable: pytest.skip and pytest.fail raise


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **kwargs.pop("env", {})}
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 300),
        env=env,
        check=False,
        **kwargs,
    )


# --- schema generator -----------------------------------------------------------------------

SWAGGER = {
    "definitions": {
        "io.k8s.api.demo.v1.Widget": {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {
                    "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
                },
                "spec": {"$ref": "#/definitions/io.k8s.api.demo.v1.WidgetSpec"},
            },
            "x-kubernetes-group-version-kind": [
                {"group": "demo.example.io", "version": "v1", "kind": "Widget"}
            ],
        },
        "io.k8s.api.demo.v1.WidgetSpec": {
            "type": "object",
            "description": "dropped",
            "properties": {
                "replicas": {"type": "integer"},
                "port": {
                    "$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
                },
                "cpu": {
                    "$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"
                },
            },
        },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
            "type": "string",
            "format": "int-or-string",
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
        },
        "io.k8s.api.core.v1.Thing": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "x-kubernetes-group-version-kind": [
                {"group": "", "version": "v1", "kind": "Thing"}
            ],
        },
    }
}


def test_kubernetes_schemas_follow_kubeconform_layout_and_rules(tmp_path: Path) -> None:
    swagger = tmp_path / "swagger.json"
    swagger.write_text(json.dumps(SWAGGER))
    out = tmp_path / "out"
    assert gen_schemas.gen_kubernetes(swagger, out, strict=True) == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "_objectmeta.json",
        "thing-v1.json",
        "widget-demo-v1.json",
    ]
    widget = json.loads((out / "widget-demo-v1.json").read_text())
    assert widget["additionalProperties"] is False
    assert widget["properties"]["apiVersion"]["enum"] == ["demo.example.io/v1"]
    assert widget["properties"]["kind"]["enum"] == ["Widget"]
    spec = widget["definitions"]["io.k8s.api.demo.v1.WidgetSpec"]
    assert "description" not in spec
    assert spec["additionalProperties"] is False
    assert spec["properties"]["replicas"]["type"] == ["integer", "null"]
    int_or_string = widget["definitions"][
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    ]
    assert int_or_string == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    quantity = widget["definitions"]["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert {"type": "number"} in quantity["oneOf"]
    # Standalone: every $ref resolves inside the file.
    text = (out / "widget-demo-v1.json").read_text()
    for ref in {part.split('"')[0] for part in text.split('"$ref":"')[1:]}:
        assert ref.startswith("#/definitions/")
        assert ref.removeprefix("#/definitions/") in widget["definitions"]


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.demo.example.io}
spec:
  group: demo.example.io
  names: {kind: Gizmo, plural: gizmos}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: false
    storage: false
    schema: {openAPIV3Schema: {type: object}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [op]
            properties:
              op: {type: string, enum: ["=", "!="]}
              port: {x-kubernetes-int-or-string: true}
              values: {type: object, x-kubernetes-preserve-unknown-fields: true}
              note: {type: string, nullable: true}
"""


def test_crd_schemas_are_strict_per_served_version(tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(CRD)
    out = tmp_path / "crds"
    assert gen_schemas.gen_crds([crd], out, None, strict=True) == 1
    schema = json.loads((out / "demo.example.io" / "gizmo_v1.json").read_text())
    assert not (out / "demo.example.io" / "gizmo_v1alpha1.json").exists()
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["op"]["enum"] == ["=", "!="]
    assert spec["properties"]["port"]["oneOf"][1] == {"type": "integer"}
    assert "additionalProperties" not in spec["properties"]["values"]
    assert spec["properties"]["note"]["type"] == ["string", "null"]
    assert schema["properties"]["kind"]["enum"] == ["Gizmo"]


# --- kubeconform over the generated schemas ------------------------------------------------------

GOOD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 8080, name: http}]
        resources: {limits: {cpu: 1, memory: 128Mi}}
        readinessProbe: {httpGet: {path: /, port: http}}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: apps}
spec:
  interval: 10m
  chart: {spec: {chart: web, sourceRef: {kind: HelmRepository, name: charts}}}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web}
spec: {selector: {matchLabels: {app: web}}, endpoints: [{port: http}]}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: selfsigned}
spec: {selfSigned: {}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: web, port: 80}]}]}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: web}
spec: {imageRepositoryRef: {name: web}, policy: {semver: {range: ">=1.0.0"}}}
"""


def kubeconform(
    *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    need("kubeconform")
    if not (TOOLS / "schemas" / "crds").is_dir():
        skip_or_fail("kubeconform schemas not installed")
    return run(str(ROOT / "scripts" / "kubeconform.sh"), *args, input=stdin, env=env)


def test_kubeconform_accepts_valid_core_and_crd_objects() -> None:
    result = kubeconform("-", stdin=GOOD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 6, Invalid: 0, Errors: 0" in result.stdout


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            GOOD.split("---")[0].replace("replicas: 2", "replicas: two"),
            "/spec/replicas': got string, want null or integer",
        ),
        (
            GOOD.split("---")[0].replace(
                "image: nginx:1.27", "image: x\n        imagee: y"
            ),
            "additional properties 'imagee' not allowed",
        ),
        (
            GOOD.split("---")[1].replace("interval: 10m", "intervall: 10m"),
            "additional properties 'intervall' not allowed",
        ),
        (
            GOOD.split("---")[2].replace("{name: web}", "{name: web, labelz: {}}"),
            "additional properties 'labelz' not allowed",
        ),
        (
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
            "could not find schema for Widget",
        ),
    ],
)
def test_kubeconform_rejects_bad_objects(manifest: str, expected: str) -> None:
    result = kubeconform("-", stdin=manifest)
    assert result.returncode == 1, result.stdout
    assert expected in result.stdout


def test_kubeconform_skip_list_is_explicit() -> None:
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    result = kubeconform(
        "-",
        stdin=widget + "---\n" + kustomization,
        OUTRIGGER_KUBECONFORM_SKIP="example.com/v1/Widget",
    )
    assert result.returncode == 0, result.stdout
    assert "Skipped: 2" in result.stdout


# --- kube-apiserver ------------------------------------------------------------------------


def test_kube_test_env_serves_real_objects(tmp_path: Path) -> None:
    need("kube-apiserver")
    need("etcd")
    state = tmp_path / "kube"
    result = run(
        str(ROOT / "scripts" / "kube-test-env.sh"),
        "selftest",
        env={"OUTRIGGER_KUBE_TEST_DIR": str(state)},
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "created pod outrigger-selftest/web (HTTP 201, bearer token)" in result.stderr
    )
    assert "anonymous request refused" in result.stderr
    assert not state.exists(), "selftest must stop the servers and remove its state"


# --- terraform -----------------------------------------------------------------------------


def test_terraform_uses_only_the_offline_mirror(tmp_path: Path) -> None:
    terraform = need("terraform")
    rc = TOOLS / "terraformrc"
    if not rc.exists():
        skip_or_fail(".tools/terraformrc not installed")
    env = {
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }
    free = tmp_path / "free"
    free.mkdir()
    (free / "main.tf").write_text(
        'variable "n" {\n  type    = number\n  default = 2\n}\n\noutput "x" {\n  value = var.n * 2\n}\n'
    )
    init = run(
        terraform,
        "init",
        "-backend=false",
        "-input=false",
        "-no-color",
        cwd=free,
        env=env,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    valid = run(terraform, "validate", "-no-color", cwd=free, env=env)
    assert "The configuration is valid" in valid.stdout

    do = tmp_path / "do"
    do.mkdir()
    (do / "main.tf").write_text(
        "terraform {\n  required_providers {\n    digitalocean = {\n"
        '      source = "digitalocean/digitalocean"\n    }\n  }\n}\n\n'
        'resource "digitalocean_vpc" "main" {\n  name     = "outrigger"\n'
        '  region   = "ams3"\n  ip_range = "10.10.0.0/16"\n}\n'
    )
    init = run(
        terraform,
        "init",
        "-backend=false",
        "-input=false",
        "-no-color",
        cwd=do,
        env=env,
    )
    mirror = (
        TOOLS
        / "terraform-mirror"
        / "registry.terraform.io"
        / "digitalocean"
        / "digitalocean"
    )
    if mirror.is_dir():
        assert init.returncode == 0, init.stdout + init.stderr
        valid = run(terraform, "validate", "-no-color", cwd=do, env=env)
        assert valid.returncode == 0, valid.stdout + valid.stderr
    else:
        # Provider not buildable (docs/tools.md): the failure must name the mirror, i.e. terraform
        # looked nowhere else.
        assert init.returncode != 0
        assert str(TOOLS / "terraform-mirror") in init.stdout + init.stderr


# --- tools.sh ------------------------------------------------------------------------------


def test_second_tools_run_installs_nothing() -> None:
    if not (TOOLS / "stamps").is_dir():
        skip_or_fail("scripts/tools.sh has not run")
    # Every step is required, so a second run of all of them must be a no-op.
    result = run(str(ROOT / "scripts" / "tools.sh"), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stderr, result.stderr
    assert "build " not in result.stderr and "install " not in result.stderr


# --- GitOps secrets: sops + age ------------------------------------------------------------


def pin(*names: str) -> list[str]:
    """Values from tools/versions.sh, as bash sees them (APT_PINS entries by package name)."""
    script = (
        'source tools/versions.sh; for n in "$@"; do case $n in apt:*) p=${n#apt:}; '
        'for x in "${APT_PINS[@]}"; do [[ ${x%%=*} == "$p" ]] && echo "${x#*=}"; done ;; '
        '*) echo "${!n}" ;; esac; done'
    )
    out = subprocess.run(
        ["bash", "-c", script, "pin", *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == len(names) and all(out), (names, out)
    return out


def test_sops_and_age_are_the_pinned_versions() -> None:
    # The round trip itself (encrypt a Secret, decrypt it with the key) is tests/e2e/test_sops_age.py.
    sops_pin, age_pin = pin("SOPS_VERSION", "apt:age")
    sops = need("sops")
    version = run(sops, "--version", "--disable-version-check")
    assert version.returncode == 0, version.stderr
    assert version.stdout.split()[:2] == ["sops", sops_pin.removeprefix("v")], (
        version.stdout
    )
    age, keygen = need("age"), need("age-keygen")
    # Debian's 1.1.1-1+b3 is upstream 1.1.1, which is what `age --version` says.
    upstream = age_pin.split(":", 1)[-1].split("-", 1)[0]
    for tool in (age, keygen):
        out = run(tool, "--version")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == upstream, (tool, out.stdout)
