"""Environment parsing: defaults, validation errors that name the variable, bind formatting."""

from __future__ import annotations

import pytest

from flask_hello_world.settings import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.workers, s.threads) == ("0.0.0.0", 8080, 2, 4)
    assert (s.drain_delay, s.graceful_timeout, s.log_level) == (5, 20, "info")
    assert s.bind == "0.0.0.0:8080"


def test_overrides_and_ipv6_bind() -> None:
    s = Settings.from_env({"HOST": "::1", "PORT": "9000", "DRAIN_DELAY_SECONDS": "0.5", "LOG_LEVEL": "DEBUG"})
    assert s.bind == "[::1]:9000"
    assert s.drain_delay == 0.5
    assert s.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not an integer"),
        ({"PORT": "70000"}, "PORT=70000 is out of range"),
        ({"PORT": "0"}, "PORT='0' must be >= 1"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY='0' must be >= 1"),
        ({"DRAIN_DELAY_SECONDS": "soon"}, "DRAIN_DELAY_SECONDS='soon' is not a number"),
        ({"GRACEFUL_TIMEOUT_SECONDS": "-3"}, "GRACEFUL_TIMEOUT_SECONDS='-3' must be >= 0"),
        ({"GRACEFUL_TIMEOUT_SECONDS": "1.5"}, "GRACEFUL_TIMEOUT_SECONDS='1.5' is not an integer"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not one of"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(env)
