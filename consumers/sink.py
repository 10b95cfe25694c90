"""Writing facts to the warehouse from a shell: retry what the database cannot do now,
isolate what it will never accept, so one poison record never blocks a partition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from schemas.fact import JobFact

#: Writes a batch of facts in one transaction, idempotently on the natural key.
FactWriter = Callable[[Sequence[JobFact]], Any]


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


def write_isolating(
    write: FactWriter, facts: Sequence[JobFact]
) -> list[tuple[JobFact, BaseException]]:
    """Write ``facts``; when the database rejects the batch for its data, split it in halves
    until the rejected facts are found. Returns those with their errors (for the DLQ);
    transient errors propagate so the caller retries the whole batch."""
    if not facts:
        return []
    try:
        write(facts)
        return []
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(facts) == 1:
            return [(facts[0], exc)]
    middle = len(facts) // 2
    return write_isolating(write, facts[:middle]) + write_isolating(write, facts[middle:])
