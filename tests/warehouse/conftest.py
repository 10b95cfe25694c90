"""Warehouse fixtures: an empty database on each backend (SQLite file, real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from warehouse import migrate
from warehouse.engine import make_engine

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        yield request.getfixturevalue("pg_database")


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    """An engine on a warehouse migrated to head, on each backend."""
    eng = make_engine(empty_url)
    migrate.upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()
