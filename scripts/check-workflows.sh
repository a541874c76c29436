#!/usr/bin/env bash
# The delivery pipeline's own hygiene:
#   actionlint on .github/workflows (with shellcheck on every run: block),
#   yamllint (.yamllint.yaml) over .github and the charts' non-template YAML,
#   hadolint on every Dockerfile in the repository,
#   every `uses:` pinned to a 40-hex commit SHA with a version comment (local actions excepted),
#   release-please config/manifest and dependabot directories consistent with the tree.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"

for tool in actionlint yamllint hadolint python3; do
  command -v "$tool" >/dev/null || { echo "check-workflows: $tool not installed (run scripts/tools.sh)" >&2; exit 1; }
done

echo "check-workflows: actionlint .github/workflows"
actionlint .github/workflows/*.yml

echo "check-workflows: yamllint (.github, chart values and metadata)"
yaml_files=(.yamllint.yaml)
while IFS= read -r -d '' f; do yaml_files+=("$f"); done < <(
  find .github charts -path '*/templates' -prune -o -path 'charts/*/charts' -prune -o \
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
echo "check-workflows: ok"
