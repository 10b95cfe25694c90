"""The Avro schema of jobs.normalized round-trips every record the normalizer makes."""

import pytest

from consumers.ingest import normalize_bytes
from jobcarbon.synth import VERSIONS, generate_jobs, render
from schemas.avro_codec import decode_job_record, encode_job_record, job_record_schema
from schemas.job import JobRecord, JobRecordError


@pytest.mark.parametrize("version", VERSIONS)
def test_fastavro_round_trip_for_every_layout(version: str) -> None:
    jobs = generate_jobs(150, seed=11)
    for job in jobs:
        record = normalize_bytes(render(job, version))
        assert isinstance(record, JobRecord)
        back = decode_job_record(encode_job_record(record))
        assert back == record
        assert back.to_json() == record.to_json()


def test_extra_keys_and_huge_db_index_survive() -> None:
    record = normalize_bytes(
        b'{"jobid":9,"@submit":"2024-01-01T00:00:00","job_db_inx":"18446744073709551000",'
        b'"energy_complete":true,"weird":{"a":[1,null]}}'
    )
    assert isinstance(record, JobRecord)
    back = decode_job_record(encode_job_record(record))
    assert back.job_db_inx == 18446744073709551000
    assert back.extra == {"weird": {"a": [1, None]}}


def test_schema_names_every_field() -> None:
    names = {f["name"] for f in job_record_schema()["fields"]}
    assert names == set(JobRecord.__struct_fields__)


def test_garbage_is_a_clear_error() -> None:
    with pytest.raises(JobRecordError):
        decode_job_record(b"\x02\x05")
