"""The cyclic garbage collector of a worker: collected between batches, not during them.

A batch keeps every record, fact and footprint it builds alive until its write lands (tens
of objects per record, two batches in flight). Python's automatic collections then walk
those young objects again and again without freeing any (the stages build no reference
cycles; reference counting frees a batch when it is dropped) and every few batches a full
collection walks the whole heap of the worker's libraries: about 7 us of CPU per record in
the worker, a tenth of its time. ``BetweenBatches`` freezes what start-up allocated (the
modules, faust, SQLAlchemy: never garbage), turns the automatic collections off and runs a
full collection every ``every_s`` seconds between two batches instead, so cycles made
elsewhere (asyncio, the HTTP page, exceptions) are still reclaimed.
"""

from __future__ import annotations

import gc
import threading
import time
from types import TracebackType

_lock = threading.Lock()
_active = 0  # loops inside a ``BetweenBatches`` block (the GC is restored when none is)
_was_enabled = False


class BetweenBatches:
    """``with BetweenBatches(every_s) as collector: ... collector.between_batches()``.

    The collector's settings are the process's: with several loops in one process the first
    to enter turns the automatic collections off and the last to leave restores them."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self._due = 0.0

    def __enter__(self) -> BetweenBatches:
        global _active, _was_enabled
        with _lock:
            if _active == 0:
                _was_enabled = gc.isenabled()
                gc.collect()
                gc.freeze()
                gc.disable()
            _active += 1
        self._due = time.monotonic() + self.every_s
        return self

    def between_batches(self) -> None:
        """A full collection when one is due (call it where no batch is half built)."""
        now = time.monotonic()
        if now >= self._due:
            gc.collect()
            self._due = now + self.every_s

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _active
        with _lock:
            _active -= 1
            if _active == 0:
                gc.unfreeze()
                if _was_enabled:
                    gc.enable()
