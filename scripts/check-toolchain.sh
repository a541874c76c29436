#!/usr/bin/env bash
# Checks the verification toolchain itself: shellcheck of the toolchain scripts, ruff on the
# generators, and tools/tests (schema generator rules, kubeconform over the generated schemas,
# the real kube-apiserver via kube-test-env.sh, terraform's mirror-only config, sops and age at
# their pins, tools.sh idempotence).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"

echo "check-toolchain: shellcheck toolchain scripts"
shellcheck -x scripts/tools.sh scripts/kubeconform.sh scripts/kube-test-env.sh scripts/check-toolchain.sh \
  scripts/lib/env.sh tools/install/*.sh tools/versions.sh tools/kube-apiserver/regen.sh \
  tools/flux-controllers/regen.sh tools/cert-manager/regen.sh scripts/flux-install-manifests.sh

echo "check-toolchain: ruff tools/schemas tools/tests"
ruff check tools/schemas tools/tests
ruff format --check tools/schemas tools/tests

echo "check-toolchain: pytest tools/tests"
pytest -q -p no:cacheprovider tools/tests
