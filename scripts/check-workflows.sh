#!/usr/bin/env bash
# The delivery pipeline's own hygiene:
#   actionlint on .github/workflows (with shellcheck on every run: block),
#   yamllint (.yamllint.yaml) over .github and the charts' non-template YAML,
#   hadolint on every Dockerfile in the repository,
#   every `uses:` pinned to a 40-hex commit SHA with a version comment (local actions excepted),
#   release-please config/manifest and dependabot directories consistent with the tree,
#   .github/scripts/promote.py (used by promote.yml) against a copy of the real Flux tree,
#   .github/scripts/release_plan.py (release.yml's publish plan) on release/pre-release/no-op cases.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"

for tool in actionlint yamllint hadolint ruff python3; do
  command -v "$tool" >/dev/null || { echo "check-workflows: $tool not installed (run scripts/tools.sh)" >&2; exit 1; }
done

echo "check-workflows: actionlint .github/workflows"
actionlint .github/workflows/*.yml

echo "check-workflows: yamllint (.github, chart values and metadata; not crds/, upstream's files as pinned)"
yaml_files=(.yamllint.yaml)
while IFS= read -r -d '' f; do yaml_files+=("$f"); done < <(
  find .github charts -path '*/templates' -prune -o -path 'charts/*/charts' -prune -o \
    -path 'charts/*/crds' -prune -o \
    -type f \( -name '*.yml' -o -name '*.yaml' -o -name 'Chart.lock' \) -print0 | sort -z)
yamllint --strict -c .yamllint.yaml "${yaml_files[@]}"

echo "check-workflows: hadolint (every Dockerfile)"
dockerfiles=()
while IFS= read -r -d '' f; do dockerfiles+=("$f"); done < <(
  find . \( -path ./.git -o -path ./.tools -o -path ./target -o -name node_modules \) -prune -o \
    -type f \( -name Dockerfile -o -name '*.Dockerfile' -o -name 'Dockerfile.*' \) -print0 | sort -z)
(( ${#dockerfiles[@]} > 0 )) || { echo "check-workflows: no Dockerfile found" >&2; exit 1; }
printf '  %s\n' "${dockerfiles[@]}"
hadolint "${dockerfiles[@]}"

echo "check-workflows: action pins, release-please and dependabot consistency"
python3 - <<'PY'
import glob
import json
import os
import re
import sys

import yaml

errors = []
# owner/repo[/path]@<40 hex> # v1 | v1.2 | v1.2.3 (the tag the SHA was taken from)
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+){0,2}\b")
USES = re.compile(r"^\s*(-\s+)?uses:\s*(?P<ref>[^\s#]+)(?P<rest>.*)$")

files = sorted(glob.glob(".github/workflows/*.y*ml") + glob.glob(".github/actions/**/action.y*ml", recursive=True))
count = 0
for path in files:
    for n, line in enumerate(open(path), 1):
        m = USES.match(line)
        if not m:
            continue
        ref = m["ref"].strip("'\"")
        count += 1
        if ref.startswith("./"):
            continue  # local composite action, versioned with this repository
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                errors.append(f"{path}:{n}: docker action not pinned by digest: {ref}")
            continue
        if not PINNED.match(ref):
            errors.append(f"{path}:{n}: not pinned to a full commit SHA: {ref}")
        elif not VERSION_COMMENT.search(m["rest"]):
            errors.append(f"{path}:{n}: pinned SHA without a '# vX.Y.Z' version comment: {ref}")
if count == 0:
    errors.append("no `uses:` found at all: is the workflow glob right?")

config = json.load(open("release-please-config.json"))
manifest = json.load(open(".release-please-manifest.json"))
packages = config.get("packages", {})
if set(packages) != set(manifest):
    errors.append(f"release-please: config packages {sorted(packages)} != manifest {sorted(manifest)}")
components = set()
for path, pkg in packages.items():
    if not os.path.isdir(path):
        errors.append(f"release-please: package path {path} does not exist")
    components.add(pkg.get("component"))
    for extra in pkg.get("extra-files", []):
        rel = extra if isinstance(extra, str) else extra["path"]
        full = rel[1:] if rel.startswith("/") else os.path.join(path, rel)
        if not os.path.isfile(full):
            errors.append(f"release-please: extra-file {full} ({path}) does not exist")
        elif (isinstance(extra, str) or extra.get("type") == "generic") and "x-release-please-" not in open(full).read():
            errors.append(f"release-please: generic extra-file {full} has no x-release-please marker")
for plugin in config.get("plugins", []):
    for comp in plugin.get("components", []):
        if comp not in components:
            errors.append(f"release-please: plugin {plugin.get('groupName')} names unknown component {comp}")

dependabot = yaml.safe_load(open(".github/dependabot.yml"))
for update in dependabot["updates"]:
    dirs = update.get("directories") or [update.get("directory")]
    for d in dirs:
        if not glob.glob("." + d):
            errors.append(f"dependabot: {update['package-ecosystem']} directory {d} matches nothing")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"  {count} uses: references in {len(files)} files pinned; release-please and dependabot consistent")
PY
echo "check-workflows: ruff on .github/scripts"
ruff check --no-cache .github/scripts
ruff format --no-cache --check .github/scripts

echo "check-workflows: promote.py on a copy of the real Flux tree (pin, unpin, refusals)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -R flux "$tmp/flux"
python3 - "$tmp/flux" <<'PY'
import pathlib
import subprocess
import sys

root = pathlib.Path(sys.argv[1])
promote = ".github/scripts/promote.py"


def run(*args):
    return subprocess.run([sys.executable, promote, "--root", str(root), *args], capture_output=True, text=True)


def text():
    return "".join(p.read_text() for p in sorted(root.rglob("*.yaml")))


errors = []
staging_before = text().count("-staging:tag")
for comp in ("flask-hello-world", "outrigger-proxy", "outrigger-agent"):
    policy = f'{{"$imagepolicy": "flux-system:{comp}-production:tag"}}'
    if policy not in text():
        errors.append(f"{comp}: no production setter in flux/ to promote")
        continue
    r = run(comp, "9.9.9", "pin")
    after = text()
    if r.returncode != 0 or f'"9.9.9" # {{"outrigger-pin": "{comp}-production"}}' not in after or policy in after:
        errors.append(f"{comp}: pin did not rewrite the setter ({r.returncode}: {r.stderr.strip()})")
    r = run(comp, "9.9.10", "unpin")
    if r.returncode != 0 or f'"9.9.10" # {policy}' not in text():
        errors.append(f"{comp}: unpin did not restore the automation marker ({r.returncode}: {r.stderr.strip()})")
if text().count("-staging:tag") != staging_before:
    errors.append("staging setters were touched")
if run("no-such-component", "1.0.0", "pin").returncode != 1:
    errors.append("an unknown component was not refused")
if run("flask-hello-world", "1.0.0-rc.1", "pin").returncode != 2:
    errors.append("a pre-release version was not refused")
if errors:
    sys.exit("promote.py: " + "; ".join(errors))
print("  pin/unpin rewrite only the production setters; bad input refused")
PY
echo "check-workflows: release_plan.py decisions (release, pre-release, nothing)"
python3 - <<'PY'
import importlib.util
import json
import os
import subprocess
import sys

spec = importlib.util.spec_from_file_location("release_plan", ".github/scripts/release_plan.py")
rp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rp)
manifest = json.load(open(".release-please-manifest.json"))
errors = []

# 1. proxy + sidecar released (linked group), app sources changed: proxy at its release, app rc.
images, charts = rp.plan({"proxy--release_created": "true", "proxy--version": "7.1.0",
                          "charts/outrigger-sidecar--release_created": "true",
                          "charts/outrigger-sidecar--version": "7.1.0"},
                         manifest, 42, ["apps/flask-hello-world/src/flask_hello_world/app.py", "docs/x.md"])
got = {i["name"]: (i["version"], i["release"]) for i in images["include"]}
major, minor, patch = manifest["apps/flask-hello-world"].split(".")
want = {"outrigger-proxy": ("7.1.0", True), "flask-hello-world": (f"{major}.{minor}.{int(patch) + 1}-rc.42", False)}
if got != want:
    errors.append(f"release + change: got {got}, want {want}")
if [c["name"] for c in charts["include"]] != ["outrigger-sidecar"]:
    errors.append(f"charts: got {charts}")
# 2. nothing released, only docs changed: nothing to publish.
images, charts = rp.plan({}, manifest, 43, ["docs/ci-cd.md"])
if images["include"] or charts["include"]:
    errors.append(f"docs-only push published {images} {charts}")
# 3. a shared crate changed: every Rust image gets a pre-release.
images, _ = rp.plan({}, manifest, 44, ["crates/file-tailer/src/lib.rs"])
if sorted(i["name"] for i in images["include"]) != ["outrigger-agent", "outrigger-injector", "outrigger-proxy"]:
    errors.append(f"crate change: got {images}")
# 4. the shared daemon Dockerfile changed: the three Rust images, each with its own build args.
images, _ = rp.plan({}, manifest, 45, ["Dockerfile"])
args = {i["name"]: dict(a.split("=", 1) for a in i["build_args"].splitlines()) for i in images["include"]}
if sorted(args) != ["outrigger-agent", "outrigger-injector", "outrigger-proxy"]:
    errors.append(f"Dockerfile change: got {images}")
for name, a in args.items():
    if a.get("PACKAGE") != name or not a.get("DESCRIPTION") or not a.get("PORTS", "").replace(" ", "").isdigit():
        errors.append(f"{name}: build args {a} lack PACKAGE={name}, DESCRIPTION or numeric PORTS")
    if not os.path.isfile(f"{name.removeprefix('outrigger-')}/Cargo.toml"):
        errors.append(f"{name}: no workspace member {name.removeprefix('outrigger-')}/")
# 5. every image's Dockerfile and context exist (ci.yml builds `--all`).
for i in json.loads(subprocess.run([sys.executable, ".github/scripts/release_plan.py", "--all"], check=True,
                                   capture_output=True, text=True).stdout.split("=", 1)[1])["include"]:
    if not (os.path.isfile(i["file"]) and os.path.isdir(i["context"])):
        errors.append(f"{i['name']}: Dockerfile {i['file']} or context {i['context']} missing")
if errors:
    sys.exit("release_plan.py: " + "; ".join(errors))
print("  release, pre-release and no-op pushes planned as expected")
PY
echo "check-workflows: ok"
