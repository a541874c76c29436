#!/usr/bin/env bash
# Runs every scripts/check-*.sh matching the given glob patterns (the path-filtered CI jobs run the
# same check scripts as `make test`, only the relevant subset). Fails when nothing matches, so a
# renamed check script cannot silently turn a CI job into a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
ran=0
for pattern in "$@"; do
  for script in scripts/$pattern; do
    [[ -f "$script" ]] || continue
    echo "::group::$script"
    bash "$script"
    echo "::endgroup::"
    ran=$((ran + 1))
  done
done
if (( ran == 0 )); then
  echo "::error::no check script matches: $* (expected scripts/check-<area>*.sh)" >&2
  exit 1
fi
echo "ran $ran check script(s)"
