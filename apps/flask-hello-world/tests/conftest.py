"""Shared fixtures: an in-process Flask test client (the real-gunicorn fixtures live in test_gunicorn.py)."""

from __future__ import annotations

import os

# Unit tests use the in-process registry; the multiprocess mode belongs to the gunicorn tests only.
# This must happen before prometheus_client is first imported.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import pytest
from flask.testing import FlaskClient

from flask_hello_world import lifecycle
from flask_hello_world.app import create_app


@pytest.fixture
def client() -> FlaskClient:
    lifecycle.set_draining(False)
    app = create_app()
    app.config["TESTING"] = True
    with app.test_client() as test_client:
        yield test_client
    lifecycle.set_draining(False)
