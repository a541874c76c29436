"""Server-side dry run against a real kube-apiserver (scripts/kube-test-env.sh): the API server's
own validation on top of the schema check."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .failure import fail, fail_all
from .manifests import load_docs


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
        # The Warning headers of the last call (deprecated fields, PodSecurity "warn" mode...).
        self.warnings: list[str] = []

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        self.warnings = []
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                self.warnings = r.headers.get_all("Warning") or []
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
    fail_all(errors)
    if ok == 0:
        fail("dryrun: no object was validated")
    print(
        f"dryrun ok: {ok} objects accepted by kube-apiserver (dryRun=All, fieldValidation=Strict); "
        f"{crd} custom resources left to kubeconform (no CRDs on the test server)"
    )
