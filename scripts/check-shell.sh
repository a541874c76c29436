#!/usr/bin/env bash
# Every shell script in the repository (and .ci/run) is shellcheck-clean at warning level.
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"
mapfile -t scripts < <({ git ls-files -co --exclude-standard '*.sh'; echo .ci/run; } | sort -u)
echo "check-shell: shellcheck ${#scripts[@]} scripts"
shellcheck -x -S warning "${scripts[@]}"
