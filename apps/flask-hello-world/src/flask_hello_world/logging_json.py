"""JSON log lines on stdout, one object per line, for gunicorn and the app alike."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, ClassVar


class JsonFormatter(logging.Formatter):
    """Render a record as a single JSON object; `extra=` fields are merged in at top level."""

    # Attributes every LogRecord has: anything else on the record came from `extra=`.
    _STANDARD: ClassVar[frozenset[str]] = frozenset(
        vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
    )

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def logconfig_dict(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping, also handed to gunicorn as `logconfig_dict`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stdout}},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        "loggers": {
            # gunicorn's own loggers must not add their plain-text handlers next to ours.
            "gunicorn.error": {"level": level.upper(), "handlers": ["stdout"], "propagate": False},
            # Access logs come from the app (richer fields); gunicorn's access log stays off.
            "gunicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
        },
    }
