#!/usr/bin/env python3
"""Generate offline, standalone, strict JSON schemas for kubeconform.

Two sources, two sub-commands:

* ``kubernetes``: the OpenAPI v2 spec (``api/openapi-spec/swagger.json``) shipped in the
  ``k8s.io/kubernetes`` Go module. One file per group/version/kind, named the way kubeconform's
  ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` template expects (``deployment-apps-v1.json``,
  ``pod-v1.json``).
* ``crds``: CustomResourceDefinition YAML files (found in projects' Go modules). One file per
  served version, ``{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json``.

The conversion follows kubeconform's ``openapi2jsonschema`` approach, with these rules (each one is
why a real manifest passes or fails the way the API server would treat it):

* "standalone": every ``$ref`` points inside the same file (the needed definitions are copied into
  its ``definitions``), so nothing is fetched at validation time;
* "strict": an object schema that lists ``properties`` gets ``additionalProperties: false`` unless it
  says otherwise or preserves unknown fields, so a misspelt field is an error;
* optional scalar and array fields also accept ``null`` (the API server treats ``null`` as unset);
* int-or-string fields accept both; ``Quantity`` accepts strings and numbers (``cpu: 1``);
* ``apiVersion`` and ``kind`` are pinned with ``enum`` so a schema only matches its own GVK;
* descriptions are dropped (kubeconform never prints them; they would triple the size);
* CRD ``metadata`` is validated against the real ``ObjectMeta`` from the Kubernetes schemas.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
DROPPED_KEYS = {"description", "x-kubernetes-group-version-kind"}


def nullable(schema: Schema) -> Schema:
    """Let an optional field be ``null`` as well as its declared type.

    A ``$ref`` stays as it is: wrapping it in ``anyOf [ref, null]`` would bury every error inside it
    under "anyOf failed ... want null" noise, and ``field: null`` for an object is rare.
    """
    if "$ref" in schema:
        return schema
    if "oneOf" in schema and "type" not in schema:
        return {**schema, "oneOf": [*schema["oneOf"], {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list) and "null" not in kind:
        return {**schema, "type": [*kind, "null"]}
    return schema


def convert(schema: Any, refs: set[str], *, strict: bool, crd: bool = False) -> Any:
    """Turn an OpenAPI (v2 or CRD v3) schema node into a JSON-schema node (recursively)."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        refs.add(name)
        return {"$ref": f"#/definitions/{name}"}
    int_or_string = schema.get("format") == "int-or-string" or schema.get(
        "x-kubernetes-int-or-string"
    )
    out: Schema = {}
    for key, value in schema.items():
        if key in DROPPED_KEYS:
            continue
        if key == "properties":
            required = set(schema.get("required", []))
            props = {}
            for name, sub in value.items():
                sub = convert(sub, refs, strict=strict, crd=crd)
                props[name] = sub if name in required else nullable(sub)
            out[key] = props
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value, refs, strict=strict, crd=crd)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(v, refs, strict=strict, crd=crd) for v in value]
        else:
            out[key] = value
    if int_or_string:
        out.pop("format", None)
        out.pop("x-kubernetes-int-or-string", None)
        if "anyOf" not in out and "oneOf" not in out:
            out.pop("type", None)
            out.update(copy.deepcopy(INT_OR_STRING))
    if crd and out.pop("nullable", False):
        out = nullable(out)
    preserves = out.get("x-kubernetes-preserve-unknown-fields") is True
    if (
        strict
        and "properties" in out
        and "additionalProperties" not in out
        and not preserves
    ):
        out["additionalProperties"] = False
    return out


def gvk_suffix(group: str, version: str) -> str:
    """kubeconform's KindSuffix: first label of the group (if any) and the version."""
    if not group:
        return f"-{version}".lower()
    return f"-{group.split('.')[0]}-{version}".lower()


def with_gvk(schema: Schema, api_version: str, kind: str) -> Schema:
    """Pin apiVersion/kind so a document of another GVK cannot validate against this schema."""
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    props["kind"] = {"type": "string", "enum": [kind]}
    return schema


def closure(
    names: set[str], defs: dict[str, Schema], strict: bool
) -> dict[str, Schema]:
    """Converted definitions for ``names`` and everything they reference."""
    done: dict[str, Schema] = {}
    todo = sorted(names)
    while todo:
        name = todo.pop()
        if name in done:
            continue
        if name == QUANTITY:
            done[name] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
            continue
        refs: set[str] = set()
        done[name] = convert(defs[name], refs, strict=strict)
        todo.extend(sorted(refs - done.keys()))
    return done


def write_json(path: Path, schema: Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")


def gen_kubernetes(swagger: Path, out: Path, strict: bool) -> int:
    defs: dict[str, Schema] = json.loads(swagger.read_text())["definitions"]
    written: dict[str, str] = {}
    for name, definition in sorted(defs.items()):
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            api_version = f"{group}/{version}" if group else version
            refs: set[str] = set()
            root = with_gvk(convert(definition, refs, strict=strict), api_version, kind)
            root["$schema"] = "http://json-schema.org/schema#"
            if refs:
                root["definitions"] = closure(refs, defs, strict)
            filename = f"{kind.lower()}{gvk_suffix(group, version)}.json"
            if filename in written and written[filename] != name:
                # Same kind in two groups sharing a first label: kubeconform cannot tell them
                # apart either. Keep the first, say so.
                print(
                    f"warning: {filename}: {name} collides with {written[filename]}",
                    file=sys.stderr,
                )
                continue
            written[filename] = name
            write_json(out / filename, root)
    # The ObjectMeta closure, for CRD metadata (see gen_crds).
    meta = closure({OBJECT_META}, defs, strict)
    write_json(
        out / "_objectmeta.json",
        {"definitions": meta, "$ref": f"#/definitions/{OBJECT_META}"},
    )
    return len(written)


class CrdLoader(yaml.SafeLoader):
    """SafeLoader that reads a bare ``=`` (YAML 1.1's "value" tag, found in CRD enums) as a string."""


CrdLoader.add_constructor("tag:yaml.org,2002:value", CrdLoader.construct_yaml_str)


def load_crds(path: Path) -> list[Schema]:
    docs = [
        d
        for d in yaml.load_all(path.read_text(), Loader=CrdLoader)
        if isinstance(d, dict)
    ]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


def gen_crds(
    files: list[Path], out: Path, objectmeta: Path | None, strict: bool
) -> int:
    meta = json.loads(objectmeta.read_text()) if objectmeta else None
    count = 0
    for path in files:
        crds = load_crds(path)
        if not crds:
            continue
        for crd in crds:
            spec = crd["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for ver in spec.get("versions", []):
                schema = (ver.get("schema") or {}).get("openAPIV3Schema")
                if not schema or not ver.get("served", True):
                    continue
                root = convert(schema, set(), strict=strict, crd=True)
                root = with_gvk(root, f"{group}/{ver['name']}", kind)
                root["$schema"] = "http://json-schema.org/schema#"
                if meta is not None:
                    root["properties"]["metadata"] = nullable(
                        {"$ref": f"#/definitions/{OBJECT_META}"}
                    )
                    root["definitions"] = meta["definitions"]
                write_json(out / group / f"{kind.lower()}_{ver['name']}.json", root)
                count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--non-strict", action="store_true", help="do not forbid unknown fields"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    k8s = sub.add_parser("kubernetes", help="schemas from a Kubernetes swagger.json")
    k8s.add_argument("--swagger", type=Path, required=True)
    k8s.add_argument("--out", type=Path, required=True)
    crds = sub.add_parser("crds", help="schemas from CRD YAML files")
    crds.add_argument("--out", type=Path, required=True)
    crds.add_argument(
        "--objectmeta", type=Path, help="_objectmeta.json written by `kubernetes`"
    )
    crds.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    strict = not args.non_strict
    try:
        if args.cmd == "kubernetes":
            n = gen_kubernetes(args.swagger, args.out, strict)
        else:
            n = gen_crds(args.files, args.out, args.objectmeta, strict)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
        print(f"gen_schemas: {exc}", file=sys.stderr)
        return 1
    if n == 0:
        print("gen_schemas: no schema generated", file=sys.stderr)
        return 1
    print(f"gen_schemas: wrote {n} schemas to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
