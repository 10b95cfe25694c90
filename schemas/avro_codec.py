"""Avro encoding of ``JobRecord`` for the ``jobs.normalized`` topic (fastavro, schemaless
values with the schema version in a header, so consumers can pick the reader schema)."""

from __future__ import annotations

import io
import json
from functools import cache
from importlib import resources
from typing import Any, Final

import fastavro
import msgspec
import orjson

from schemas.job import JOB_RECORD_VERSION, JobRecord, JobRecordError, job_record_from_dict

SCHEMA_FILE: Final = "job_record.avsc"
#: Header naming the writer schema version of an Avro value on jobs.normalized.
AVRO_VERSION_HEADER: Final = "jobcarbon-record-version"


@cache
def job_record_schema() -> Any:
    """The parsed Avro schema of JobRecord (``schemas/avro/job_record.avsc``)."""
    text = resources.files("schemas.avro").joinpath(SCHEMA_FILE).read_text()
    return fastavro.parse_schema(json.loads(text))


def _to_avro(record: JobRecord) -> dict[str, Any]:
    data = msgspec.structs.asdict(record)
    data["job_db_inx"] = None if record.job_db_inx is None else str(record.job_db_inx)
    data["extra"] = {k: orjson.dumps(v).decode() for k, v in record.extra.items()}
    data["energy_status"] = record.energy_status.value
    data["energy_source"] = record.energy_source.value
    return data


def encode_job_record(record: JobRecord) -> bytes:
    """One Avro value (schemaless binary) for a JobRecord."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, job_record_schema(), _to_avro(record))
    return buffer.getvalue()


def decode_job_record(value: bytes) -> JobRecord:
    """Read an Avro value written by ``encode_job_record``. Raises JobRecordError."""
    try:
        data = fastavro.schemaless_reader(io.BytesIO(value), job_record_schema(), None)
    except (EOFError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise JobRecordError(
            f"Avro value is not a JobRecord v{JOB_RECORD_VERSION}: {exc}"
        ) from None
    assert isinstance(data, dict)
    inx = data.get("job_db_inx")
    data["job_db_inx"] = int(inx) if inx is not None else None
    data["extra"] = {k: orjson.loads(v) for k, v in (data.get("extra") or {}).items()}
    return job_record_from_dict(data)
