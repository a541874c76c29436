#!/usr/bin/env bash
# Body of selftest.sh, run by `netns.sh with` (NETNS_NAME set). Sends only inside the fabric.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fabric="$here/netns.sh"
ip1=$("$fabric" ip "$NETNS_NAME" 1)

"$fabric" exec "$NETNS_NAME" 1 python3 -m http.server 18080 --bind "$ip1" --directory "$here" \
  >/dev/null 2>&1 &
fetch() {
  "$fabric" exec "$NETNS_NAME" 2 python3 -c '
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}:18080/netns.sh", timeout=2).read().decode()[:40])
' "$ip1"
}
out=""
for _ in $(seq 1 50); do
  if out=$(fetch 2>/dev/null); then break; fi
  sleep 0.1
done
case "$out" in
  *"#!/usr/bin/env bash"*) echo "ok: pod2 fetched a file from pod1 over the bridge" ;;
  *) echo "FAIL: pod2 could not fetch from pod1 (got: $out)"; exit 1 ;;
esac
# Inspect only, never send: the root namespace must have no address on the subnet.
if ip -4 addr show | grep -q " ${OUTRIGGER_NETNS_SUBNET_PREFIX:-10.231.0}\."; then
  echo "FAIL: root namespace has an address on the test subnet"; exit 1
fi
echo "ok: root namespace has no address on the test subnet"
# Inside the fabric an off-subnet destination has no route, so it fails locally.
if "$fabric" exec "$NETNS_NAME" 2 ip route get 192.0.2.1 >/dev/null 2>&1; then
  echo "FAIL: pod has a route off the test subnet"; exit 1
fi
echo "ok: pods have no route off the test subnet"
