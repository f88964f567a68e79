"""Fixtures for the serving and algorithm tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tusk.sdk import Client


@pytest.fixture
def c(tmp_path: Path) -> Iterator[Client]:
    """An embedded client on SQLite + local objects: serving logic does not depend on the store, so most
    serving tests run on one backend (request logging and the multi-worker server run on both)."""
    client = Client(home=tmp_path / "home")
    try:
        yield client
    finally:
        client.close()
