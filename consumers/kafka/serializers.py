"""What the pipeline puts on its topics: keys, values and headers (bytes in, bytes out)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import orjson

from consumers.ingest import Rejection
from schemas.avro_codec import AVRO_VERSION_HEADER, encode_job_record
from schemas.job import JOB_RECORD_VERSION, JobRecord

#: DLQ headers: the reason code, and where the record came from.
DLQ_REASON_HEADER: Final = "jobcarbon-dlq-reason"
DLQ_SOURCE_HEADER: Final = "jobcarbon-dlq-source"
DLQ_DETAIL_HEADER: Final = "jobcarbon-dlq-detail"
_DETAIL_HEADER_CHARS: Final = 1000

Headers = list[tuple[str, bytes]]


def header_map(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes] | None,
) -> dict[str, bytes]:
    """Headers as a dict (last value wins); ``None`` values become empty bytes."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k): (v or b"") for k, v in items}


def normalized_message(record: JobRecord) -> tuple[bytes, bytes, Headers]:
    """(key, Avro value, headers) of a record on ``jobs.normalized``, keyed by the natural
    key so all of one job's records share a partition."""
    headers: Headers = [(AVRO_VERSION_HEADER, str(JOB_RECORD_VERSION).encode())]
    return record.message_key.encode(), encode_job_record(record), headers


def dlq_message(rejection: Rejection, source: str) -> tuple[bytes, Headers]:
    """(value, headers) of a dead letter: the value is the original bytes, unchanged;
    reason code, detail (truncated) and ``topic/partition/offset`` travel as headers."""
    detail = rejection.detail[:_DETAIL_HEADER_CHARS]
    return rejection.raw, [
        (DLQ_REASON_HEADER, rejection.reason.encode()),
        (DLQ_DETAIL_HEADER, detail.encode("utf-8", "backslashreplace")),
        (DLQ_SOURCE_HEADER, source.encode()),
    ]


def dlq_json(value: bytes, headers: Mapping[str, bytes]) -> bytes:
    """A dead letter read back as one JSON line (reason, detail, source, raw) for people."""
    rejection = Rejection(
        headers.get(DLQ_REASON_HEADER, b"").decode(),
        headers.get(DLQ_DETAIL_HEADER, b"").decode("utf-8", "replace"),
        value,
    )
    doc = orjson.loads(rejection.to_json_line())
    doc["source"] = headers.get(DLQ_SOURCE_HEADER, b"").decode()
    return orjson.dumps(doc)
