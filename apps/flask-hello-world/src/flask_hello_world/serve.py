"""Production entrypoint: gunicorn (gthread workers) with a drain-first SIGTERM sequence.

Kubernetes may keep routing to a pod for a few seconds after it sent SIGTERM (endpoint
propagation), so stock gunicorn, which closes its listeners at once, would refuse those requests.
On the first SIGTERM this master instead:
  1. flips the shared draining flag (`/readyz` answers 503 in every worker, `/healthz` stays 200),
  2. keeps serving for `DRAIN_DELAY_SECONDS`,
  3. then stops like gunicorn does: closes listeners, lets workers finish in-flight requests for
     up to `GRACEFUL_TIMEOUT_SECONDS`, and exits 0.
A second SIGTERM skips the rest of the delay; SIGINT/SIGQUIT stay gunicorn's quick shutdown.

Run: `python -m flask_hello_world.serve`.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

# Imported here, in the master, so the shared draining page exists before workers fork.
from flask_hello_world import lifecycle
from flask_hello_world.logging_json import logconfig_dict
from flask_hello_world.settings import Settings, SettingsError


class DrainingArbiter(Arbiter):
    """gunicorn's master with a readiness-first drain phase before the graceful stop."""

    def __init__(self, app: BaseApplication, drain_delay: float) -> None:
        self.drain_delay = drain_delay
        self.drain_deadline: float | None = None
        super().__init__(app)

    def handle_term(self) -> None:
        if self.drain_deadline is not None or self.drain_delay <= 0:
            raise StopIteration
        lifecycle.set_draining()
        self.drain_deadline = time.monotonic() + self.drain_delay
        self.log.info(
            "SIGTERM received: readiness is now false; serving for %.1fs more, then stopping",
            self.drain_delay,
        )

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        if self.drain_deadline is not None:
            timeout = max(0.0, min(timeout, self.drain_deadline - time.monotonic()))
        return super().wait_for_signals(timeout=timeout)

    def manage_workers(self) -> None:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.log.info("Drain delay over: closing listeners, finishing in-flight requests")
            raise StopIteration
        super().manage_workers()


def _child_exit(_server: Arbiter, worker: Any) -> None:
    # Drop the dead worker's live gauges (in-flight) from the multiprocess aggregate.
    from prometheus_client import multiprocess  # noqa: PLC0415 - only needed in the master

    multiprocess.mark_process_dead(worker.pid)


def _prepare_multiproc_dir() -> str:
    """Every worker writes its metric shards here; stale shards from a previous run are removed."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not path:
        path = tempfile.mkdtemp(prefix="prometheus-multiproc-")
        # Made here, so removed here when the master exits. Workers are forked from the master
        # and inherit its exit handlers, so the handler checks that it runs in the master.
        master = os.getpid()
        atexit.register(lambda: os.getpid() == master and shutil.rmtree(path, ignore_errors=True))
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


class HelloApplication(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [s.bind],
            "workers": s.workers,
            "worker_class": "gthread",
            "threads": s.threads,
            "timeout": s.timeout,
            "graceful_timeout": s.graceful_timeout,
            "keepalive": s.keepalive,
            "logconfig_dict": logconfig_dict(s.log_level),
            "accesslog": None,
            "child_exit": _child_exit,
            "proc_name": "flask-hello-world",
            # gunicorn >= 24 opens a control socket under $HOME by default; a read-only, non-root
            # container has no use for it (and no writable home).
            "control_socket_disable": True,
            # Trust X-Forwarded-* only from the local sidecar.
            "forwarded_allow_ips": "127.0.0.1,::1",
        }
        # Heartbeat files on tmpfs: works with a read-only root filesystem and avoids disk stalls.
        if os.access("/dev/shm", os.W_OK):  # noqa: S108 - fixed kernel tmpfs, not a guessable temp file
            options["worker_tmp_dir"] = "/dev/shm"  # noqa: S108
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from flask_hello_world.app import create_app  # noqa: PLC0415 - after the metrics dir is set

        return create_app()

    def run(self) -> None:
        try:
            DrainingArbiter(self, self.settings.drain_delay).run()
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"flask-hello-world: invalid configuration: {err}", file=sys.stderr)
        sys.exit(2)
    _prepare_multiproc_dir()
    lifecycle.set_draining(False)
    HelloApplication(settings).run()


if __name__ == "__main__":
    main()
