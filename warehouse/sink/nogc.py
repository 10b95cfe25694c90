"""Shell helper: pause Python's cyclic garbage collector around a bulk load.

A bulk load creates a few container objects per fact (rows, dicts, tuples) and keeps them
alive until the chunk is written: every generation-0 collection then walks young objects
that are all still reachable, and the generation-2 collections walk the whole growing batch.
None of it frees anything (the sink builds no reference cycles); it cost ~10-15 % of the
client's time per fact. Reference counting still frees everything as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block (re-enabled after it if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
