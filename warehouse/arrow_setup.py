"""Shell helper: keep pandas out of a process that uses pyarrow only for the sink's columns.

pyarrow imports pandas (if installed) the first time it builds an array from Python objects
or runs a compute kernel, to recognise pandas objects. That costs a stream worker ~45 MB of
resident memory (the 300 MB per-worker budget) and the sink never hands pyarrow a pandas
object. ``arrow_without_pandas`` lets pyarrow settle "no pandas" once, with the import
blocked; later explicit conversions (``to_pandas``) still import pandas as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoPandas:
    """A meta-path finder that refuses pandas (so an import of it raises ImportError)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


def arrow_without_pandas() -> bool:
    """Make pyarrow's implicit pandas check find no pandas; True if it took effect (False
    when pandas is already imported in this process)."""
    if "pandas" in sys.modules:
        return False
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        import pyarrow as pa

        pa.array([0])  # pyarrow's shim tries pandas now, once, and remembers the answer
    finally:
        sys.meta_path.remove(blocker)
    return "pandas" not in sys.modules
