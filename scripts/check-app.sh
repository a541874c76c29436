#!/usr/bin/env bash
# flask-hello-world: ruff lint + format check, then pytest (unit tests and a real gunicorn server
# on loopback, including the SIGTERM drain sequence).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail

app="$OUTRIGGER_ROOT/apps/flask-hello-world"
cd "$app"

echo "check-app: ruff check (apps/flask-hello-world)"
ruff check --no-cache .
echo "check-app: ruff format --check"
ruff format --no-cache --check .
echo "check-app: pytest (unit + real gunicorn)"
python -m pytest -q -p no:cacheprovider
