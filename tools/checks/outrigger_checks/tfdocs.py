"""Writes the terraform-docs style tables of terraform/README.md from the HCL.

terraform-docs itself is not obtainable offline (the Go module proxy refuses it), so this is a
small equivalent for the way this repository writes HCL (terraform fmt output): for every module
and root it lists requirements, providers, modules, resources, inputs and outputs between
`<!-- BEGIN_TF_DOCS <dir> -->` and `<!-- END_TF_DOCS <dir> -->`. `--check` fails when the README
is out of date, so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from . import ROOT

TF = ROOT / "terraform"
README = TF / "README.md"
DIRS = ["modules/conventions", "modules/doks", "envs/staging", "envs/production", "bootstrap"]


def blocks(text: str, kind: str) -> list[tuple[list[str], str]]:
    """Top-level `kind "a" "b" { ... }` blocks as (labels, body)."""
    out = []
    for m in re.finditer(rf'^{kind}((?: "[^"]+")*) \{{\n', text, re.M):
        depth, i = 1, m.end()
        while depth:
            c = text[i]
            depth += c == "{"
            depth -= c == "}"
            i += 1
        out.append((re.findall(r'"([^"]+)"', m.group(1)), text[m.end() : i - 1]))
    return out


def attr(body: str, name: str) -> str | None:
    """A top-level attribute of a block body (2-space indent), multi-line values included."""
    m = re.search(rf"^  {name}\s*=\s*", body, re.M)
    if not m:
        return None
    rest = body[m.end() :]
    if rest.startswith("<<-EOT"):
        end = rest.index("EOT", 6)
        return " ".join(line.strip() for line in rest[7:end].splitlines() if line.strip())
    depth, i = 0, 0
    while i < len(rest):
        c = rest[i]
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        elif c == "\n" and depth == 0:
            break
        i += 1
    value = rest[:i].split(" #")[0].strip() if depth == 0 and "\n" not in rest[:i] else rest[:i].strip()
    return value


def unquote(s: str | None) -> str:
    if s is None:
        return ""
    s = s.strip()
    if s.startswith('"') and s.endswith('"'):
        s = s[1:-1].replace('\\"', '"')
    return s


def cell(s: str) -> str:
    s = re.sub(r"\s+", " ", s.replace("|", "\\|")).strip()
    return s or "n/a"


def code(s: str | None) -> str:
    if s is None:
        return "n/a"
    return "`" + re.sub(r"\s+", " ", s).replace("|", "\\|") + "`"


def md_table(title: str, head: str, rows: list[str], always: bool = False) -> list[str]:
    """A ``#### title`` section with a markdown table (header and separator in ``head``), or
    nothing when there are no rows (unless ``always``)."""
    if not rows and not always:
        return []
    return [f"#### {title}", "", *head.split("\n"), *rows, ""]


def document(d: str) -> str:
    path = TF / d
    text = "\n".join(f.read_text() for f in sorted(path.glob("*.tf")))
    lines = [f"### `terraform/{d}`", ""]
    tf = blocks(text, "terraform")
    reqs = [("terraform", unquote(attr(tf[0][1], "required_version")))] if tf else []
    providers = re.findall(r'^\s{4}(\w+) = \{\n\s+source\s+= "([^"]+)"\n\s+version = "([^"]+)"', text, re.M)
    lines += md_table(
        "Requirements",
        "| Name | Version |\n|------|---------|",
        [f"| {n} | {code(v)} |" for n, v in reqs] + [f"| {n} ({s}) | {code(v)} |" for n, s, v in providers],
        always=True,
    )
    lines += md_table(
        "Modules",
        "| Name | Source |\n|------|--------|",
        [f"| {labels[0]} | `{unquote(attr(body, 'source'))}` |" for labels, body in blocks(text, "module")],
    )
    res = [("resource", lbl, b) for lbl, b in blocks(text, "resource")]
    res += [("data source", lbl, b) for lbl, b in blocks(text, "data")]
    lines += md_table(
        "Resources", "| Name | Type |\n|------|------|", [f"| `{lbl[0]}.{lbl[1]}` | {kind} |" for kind, lbl, _ in res]
    )
    inputs = []
    for labels, body in blocks(text, "variable"):
        default = attr(body, "default")
        inputs.append(
            f"| {labels[0]} | {cell(unquote(attr(body, 'description')))} | {code(attr(body, 'type'))} "
            f"| {code(default)} | {'no' if default is not None else 'yes'} |"
        )
    lines += md_table(
        "Inputs",
        "| Name | Description | Type | Default | Required |\n|------|-------------|------|---------|:--------:|",
        inputs,
    )
    lines += md_table(
        "Outputs",
        "| Name | Description |\n|------|-------------|",
        [f"| {labels[0]} | {cell(unquote(attr(body, 'description')))} |" for labels, body in blocks(text, "output")],
    )
    return "\n".join(lines)


def cmd_tfdocs(check: bool, readme_path: Path | None = None) -> int:
    readme_path = readme_path or README
    readme = readme_path.read_text()
    new = readme
    for d in DIRS:
        begin, end = f"<!-- BEGIN_TF_DOCS {d} -->", f"<!-- END_TF_DOCS {d} -->"
        if begin not in new or end not in new:
            print(f"{readme_path}: markers for {d} missing", file=sys.stderr)
            return 1
        head, rest = new.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = f"{head}{begin}\n{document(d)}\n{end}{tail}"
    if new == readme:
        return 0
    if check:
        print("terraform/README.md is out of date: run tools/checks/outrigger-checks tfdocs", file=sys.stderr)
        return 1
    readme_path.write_text(new)
    print("updated terraform/README.md")
    return 0
