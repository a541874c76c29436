#!/usr/bin/env bash
# The network-namespace fabric for end-to-end tests works and cleans up after itself.
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
echo "check-netns: namespace fabric self-test"
"$OUTRIGGER_ROOT/tests/netns/selftest.sh"
