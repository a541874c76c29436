"""Process-wide lifecycle state shared by the gunicorn master and its workers.

The draining flag lives in an anonymous shared memory page created at import time. The runner
imports this module in the gunicorn master *before* workers are forked, so every worker maps the
same page: when the master receives SIGTERM it flips the flag once and every worker's `/readyz`
answers 503 immediately, without any IPC round trip.
"""

from __future__ import annotations

import mmap

_FLAG = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS on Linux: survives fork, shared by children


def set_draining(draining: bool = True) -> None:
    """Mark the whole server as draining (readiness false) or ready again."""
    _FLAG[0] = 1 if draining else 0


def is_draining() -> bool:
    """True once shutdown has begun: readiness must fail, liveness must not."""
    return _FLAG[0] == 1
