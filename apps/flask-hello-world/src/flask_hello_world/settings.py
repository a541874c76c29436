"""Runtime settings read from the environment, validated once at startup.

Bad values fail fast with a message naming the variable, instead of a gunicorn traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot run with."""


def _number(env: dict[str, str], name: str, default: float, *, minimum: float, integer: bool) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name}={raw!r} is not {kind}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be >= {minimum:g}")
    return value


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    workers: int
    threads: int
    timeout: int
    keepalive: int
    drain_delay: float
    graceful_timeout: int
    log_level: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        port = int(_number(env, "PORT", 8080, minimum=1, integer=True))
        if port > 65535:  # noqa: PLR2004 - the TCP port range, not a tunable
            raise SettingsError(f"PORT={port} is out of range 1..65535")
        log_level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL={log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        return cls(
            host=env.get("HOST", "0.0.0.0").strip() or "0.0.0.0",  # noqa: S104 - pod network, behind the sidecar
            port=port,
            workers=int(_number(env, "WEB_CONCURRENCY", 2, minimum=1, integer=True)),
            threads=int(_number(env, "GUNICORN_THREADS", 4, minimum=1, integer=True)),
            timeout=int(_number(env, "GUNICORN_TIMEOUT_SECONDS", 30, minimum=1, integer=True)),
            keepalive=int(_number(env, "GUNICORN_KEEPALIVE_SECONDS", 5, minimum=0, integer=True)),
            drain_delay=_number(env, "DRAIN_DELAY_SECONDS", 5, minimum=0, integer=False),
            graceful_timeout=int(_number(env, "GRACEFUL_TIMEOUT_SECONDS", 20, minimum=0, integer=True)),
            log_level=log_level,
        )

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"
