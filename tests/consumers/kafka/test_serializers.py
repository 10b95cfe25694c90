"""What goes on the topics: normalized messages keyed by job, dead letters unchanged."""

from __future__ import annotations

import orjson

from consumers.ingest import Rejection, normalize_bytes
from consumers.kafka.config import client_config, faust_broker_url
from consumers.kafka.serializers import (
    DLQ_DETAIL_HEADER,
    DLQ_REASON_HEADER,
    dlq_json,
    dlq_message,
    header_map,
    normalized_message,
)
from jobcarbon.settings import KafkaSettings
from jobcarbon.synth import generate_jobs, kafka_key_and_headers, render
from schemas.avro_codec import decode_job_record
from schemas.job import JobRecord


def test_normalized_message_is_keyed_like_the_patch_and_round_trips() -> None:
    job = generate_jobs(1, 4)[0]
    record = normalize_bytes(render(job, "24.11"))
    assert isinstance(record, JobRecord)
    key, value, headers = normalized_message(record)
    patch_key, _ = kafka_key_and_headers(job, "24.11-patched")
    assert key == patch_key  # one job's records share a partition whoever produced them
    assert decode_job_record(value) == record
    assert dict(headers)["jobcarbon-record-version"]


def test_dead_letter_keeps_the_original_bytes_and_bounds_the_detail() -> None:
    original = b'\xff\x00{"jobid": "1; DROP TABLE fact_job"}\x1b[31m'
    rejection = Rejection("undecodable", "x" * 5000, original)
    value, headers = dlq_message(rejection, "slurm.jobcomp/3/42")
    assert value == original
    got = header_map(headers)
    assert got[DLQ_REASON_HEADER] == b"undecodable"
    assert len(got[DLQ_DETAIL_HEADER]) == 1000
    doc = orjson.loads(dlq_json(value, got))
    assert doc["reason"] == "undecodable" and doc["raw_encoding"] == "base64"
    assert doc["source"] == "slurm.jobcomp/3/42"


def test_client_config_layers_client_properties() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="a:9092,b:9093", client_properties={"security.protocol": "SSL"}
    )
    config = client_config(kafka, **{"group.id": "g"})
    assert config == {
        "bootstrap.servers": "a:9092,b:9093",
        "security.protocol": "SSL",
        "group.id": "g",
    }
    assert faust_broker_url(kafka) == "kafka://a:9092;kafka://b:9093"
