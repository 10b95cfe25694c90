"""Writing from a shell: data errors isolated by bisection, transient errors retried."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from consumers.ingest import normalize_bytes
from consumers.sink import SinkRejection, is_transient, job_label, write_isolating
from jobcarbon.synth import generate_jobs, render
from schemas.fact import JobFact, fact_from_record
from schemas.job import JobRecord


def facts(n: int) -> list[JobFact]:
    out = []
    for job in generate_jobs(n, 5):
        record = normalize_bytes(render(job, "24.11"))
        assert isinstance(record, JobRecord)
        out.append(fact_from_record(record))
    return out


def test_poison_facts_are_isolated_and_the_rest_is_written() -> None:
    batch = facts(9)
    poison = {batch[2].record.job_id, batch[7].record.job_id}
    written: list[int] = []

    # A stand-in writer (the real sink isolates its own StatementErrors; this covers a writer
    # that raises instead): it refuses any batch holding a poison fact, as one transaction.
    def writer(chunk: Sequence[JobFact]) -> list[SinkRejection]:
        if any(f.record.job_id in poison for f in chunk):
            raise IntegrityError("INSERT", {}, Exception("CHECK constraint failed"))
        written.extend(f.record.job_id for f in chunk)
        return []

    rejected = write_isolating(writer, batch)
    assert sorted(written) == sorted(
        f.record.job_id for f in batch if f.record.job_id not in poison
    )
    assert [job for job, _ in rejected] == [job_label(batch[2]), job_label(batch[7])]
    assert all("IntegrityError" in reason for _, reason in rejected)


def test_transient_errors_propagate_for_a_retry() -> None:
    def writer(chunk: Sequence[JobFact]) -> list[SinkRejection]:
        raise OperationalError("connect", {}, Exception("database is locked"))

    with pytest.raises(OperationalError):
        write_isolating(writer, facts(3))


def test_writer_rejections_are_passed_on() -> None:
    batch = facts(2)
    assert write_isolating(lambda chunk: [(job_label(chunk[0]), "stale")], batch) == [
        (job_label(batch[0]), "stale")
    ]


def test_transient_classification() -> None:
    assert is_transient(OperationalError("x", {}, Exception("server closed the connection")))
    assert is_transient(ConnectionResetError())
    assert not is_transient(IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_transient(ValueError("bad"))
