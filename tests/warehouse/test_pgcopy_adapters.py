"""The sink's binary array parameters work on a connection opened before the sink was
imported (a worker's engine migrates first; psycopg copies its global adapters when a
connection opens). A fresh interpreter, so the import order is the worker's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from warehouse import migrate
from warehouse.engine import make_engine
engine = make_engine(sys.argv[1])
migrate.upgrade(engine)  # pooled connection opened before warehouse.sink is imported
assert "warehouse.sink.pgcopy" not in sys.modules
from tests.warehouse import synthdata
from warehouse.sink import write_facts
result = write_facts(engine, synthdata.facts(200, seed=9))
print(result.inserted, len(result.rejected), result.rejected[:1])
"""


@pytest.mark.postgres
def test_arrays_bind_on_a_connection_opened_before_the_sink_import(pg_database: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, pg_database],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.split()[:2] == ["200", "0"], out.stdout + out.stderr
