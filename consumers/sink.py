"""Writing facts to the warehouse from a shell: retry what the database cannot do now,
isolate what it will never accept, so one poison record never blocks a partition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from schemas.fact import JobFact

#: A fact the warehouse refused: (job ``cluster:job_id:submit_epoch``, reason).
SinkRejection = tuple[str, str]
#: Writes a batch of facts idempotently on the natural key; returns the refused ones.
FactWriter = Callable[[Sequence[JobFact]], Sequence[SinkRejection]]


def job_label(fact: JobFact) -> str:
    """The job as the warehouse names it: ``cluster:job_id:submit_epoch`` (``?`` if unknown)."""
    return ":".join("?" if part is None else str(part) for part in fact.record.key)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying the same batch (connection lost, database locked or
    down); False for errors the data causes (constraint, type, encoding)."""
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return isinstance(exc, ConnectionError | TimeoutError)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError
        | ConnectionError
        | TimeoutError,
    )


def write_isolating(write: FactWriter, facts: Sequence[JobFact]) -> list[SinkRejection]:
    """Write ``facts``; the writer's own rejections are returned, and when the writer raises
    for the data (not a transient error) the batch is split in halves until the failing
    facts are found. Transient errors propagate so the caller retries the whole batch."""
    if not facts:
        return []
    try:
        return list(write(facts))
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(facts) == 1:
            return [(job_label(facts[0]), f"{type(exc).__name__}: {exc}")]
    middle = len(facts) // 2
    return write_isolating(write, facts[:middle]) + write_isolating(write, facts[middle:])


class WarehouseWriter:
    """A ``FactWriter`` landing facts through ``warehouse.sink``, whose client-side work
    can also run apart from the database round trips: ``prepare`` (CPU only: columns,
    checks, hashes) on the caller's thread, then ``write_prepared`` on the database thread.
    Calling it does both."""

    def __init__(self, engine: Any, default_cluster: str | None) -> None:
        self.engine = engine
        self.default_cluster = default_cluster

    def __call__(self, facts: Sequence[JobFact]) -> list[SinkRejection]:
        return self.write_prepared(self.prepare(facts))

    def prepare(self, facts: Sequence[JobFact]) -> Any:
        """The write's CPU work, no database (``warehouse.sink.writer.prepare_facts``)."""
        from warehouse.sink.writer import prepare_facts

        return prepare_facts(facts, default_cluster=self.default_cluster)

    def write_prepared(self, prepared: Any) -> list[SinkRejection]:
        """Land what ``prepare`` made; the refused facts."""
        from warehouse.sink.writer import write_prepared

        result = write_prepared(self.engine, prepared)
        return [(r.job, r.reason) for r in result.rejected]


def warehouse_writer(
    url: str, *, default_cluster: str | None = None, migrate: bool = True
) -> WarehouseWriter:
    """A writer landing facts in the warehouse at ``url`` through ``warehouse.sink``
    (migrated to head first unless ``migrate`` is False)."""
    from warehouse import migrate as migrations
    from warehouse.engine import make_engine

    engine = make_engine(url)
    if migrate:
        migrations.upgrade(engine)
    return WarehouseWriter(engine, default_cluster)
