"""Outrigger's platform checkers: what scripts/check-*.sh run over the Flux tree, the charts, the
dashboards, the alert rules and the Terraform docs, plus the dashboard generator.

Entry point: ``tools/checks/outrigger-checks SUBCOMMAND`` (``python3 -m outrigger_checks``); the
subcommands are listed in ``__main__``. One module per concern; ``promql`` uses the standard
library only, so tests/cluster/e2e.py can import it on a host without the tools venv.
"""

from pathlib import Path

# The repository root: this file is tools/checks/outrigger_checks/__init__.py.
ROOT = Path(__file__).resolve().parents[3]
