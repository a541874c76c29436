#!/usr/bin/env bash
# Self-test of the namespace fabric: two pods talk over the bridge, the root namespace has no way
# in, and everything is gone afterwards even when the test body fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fabric="$here/netns.sh"
name=st$$
name=${name:0:8}

# shellcheck source=scripts/lib/skip.sh
source "$here/../../scripts/lib/skip.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
  skip_or_fail "netns self-test" "needs root and iproute2"
  exit 0
fi

"$fabric" with "$name" 2 "$here/selftest-body.sh"
if ip netns list | grep -q "orx-$name-"; then
  echo "FAIL: namespaces left behind"; exit 1
fi
echo "ok: namespaces cleaned up"
if "$fabric" with "$name" 1 false; then echo "FAIL: failing body reported success"; exit 1; fi
if ip netns list | grep -q "orx-$name-"; then
  echo "FAIL: namespaces left behind after a failing body"; exit 1
fi
echo "ok: cleaned up after a failing body"
