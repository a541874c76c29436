"""How a check fails: an exception carrying every error line, turned into ``FAIL: ...`` lines on
stderr and exit status 1 by ``__main__`` (so the checks stay callable from tests)."""

from __future__ import annotations

from typing import NoReturn


class CheckFailed(Exception):
    """A check found problems; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def fail(msg: str) -> NoReturn:
    raise CheckFailed([msg])


def fail_all(errors: list[str]) -> None:
    """Raises when ``errors`` is not empty."""
    if errors:
        raise CheckFailed(errors)
