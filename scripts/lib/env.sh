# shellcheck shell=bash
# Sourced by every script: puts the pinned toolchain that scripts/tools.sh installed first on PATH.
OUTRIGGER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUTRIGGER_TOOLS="${OUTRIGGER_TOOLS:-$OUTRIGGER_ROOT/.tools}"
export OUTRIGGER_ROOT OUTRIGGER_TOOLS
export PATH="$OUTRIGGER_TOOLS/bin:$OUTRIGGER_TOOLS/venv/bin:$PATH"
# terraform installs providers only from the offline mirror that scripts/tools.sh built.
if [[ -f "$OUTRIGGER_TOOLS/terraformrc" ]]; then
  export TF_CLI_CONFIG_FILE="$OUTRIGGER_TOOLS/terraformrc"
fi
# shellcheck source=scripts/lib/skip.sh
source "$OUTRIGGER_ROOT/scripts/lib/skip.sh"
