"""``arrow_without_pandas``: a worker process lands facts without importing pandas, and
explicit conversions to pandas still work. Each case runs in a fresh interpreter (pyarrow's
pandas check happens once per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from warehouse.arrow_setup import arrow_without_pandas
took = arrow_without_pandas()
from tests.warehouse import synthdata
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.sink import write_facts
engine = make_engine("sqlite:///" + sys.argv[1])
migrate.upgrade(engine)
result = write_facts(engine, synthdata.facts(300, seed=5))
assert result.inserted == 300 and not result.rejected, result.summary()
print(took, "pandas" in sys.modules)
import pyarrow as pa
print(type(pa.table({"a": [1]}).to_pandas()).__name__)
"""


def test_sink_runs_without_pandas_and_to_pandas_still_works(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "w.db")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split("\n")
    assert out[0] == "True False"  # took effect; facts landed; pandas never imported
    assert out[1] == "DataFrame"


def test_without_the_setup_pyarrow_imports_pandas() -> None:
    """The control: the same imports and a first array do pull pandas in."""
    code = "import sys, pyarrow as pa; pa.array([0]); print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
