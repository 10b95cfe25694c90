"""The warehouse sink: facts land under their natural key, roll-ups move by the difference.

Pure parts: ``batch`` (JobFacts -> validated columns; ``prepare`` the per-fact reference),
``delta`` (what a batch changes in the roll-ups).
Shells: ``writer.write_facts`` (batched upsert, any database; ``prepare_facts`` then
``write_prepared`` split it into its CPU part and its database part), ``copy.copy_facts``
(PostgreSQL COPY for backfills).
"""

from warehouse.indexes import deferred_indexes
from warehouse.sink.copy import copy_facts
from warehouse.sink.result import Rejected, SinkResult
from warehouse.sink.writer import PreparedFacts, prepare_facts, write_facts, write_prepared

__all__ = [
    "PreparedFacts",
    "Rejected",
    "SinkResult",
    "copy_facts",
    "deferred_indexes",
    "prepare_facts",
    "write_facts",
    "write_prepared",
]
