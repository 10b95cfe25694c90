"""The fast path (``fast_record``: a msgspec struct with the model's rules) and the pydantic
model (the documented contract) give the same result for every record: synthetic records of
every Slurm layout and event, each documented quirk written into them, the quirk and
adversarial fixtures of the other ingest tests, and the captured patch records.

Each value goes through ``normalize_bytes`` twice, once as it runs and once with the fast
path switched off, and the two results (JobRecord or Rejection, with its reason and detail)
must be equal, down to the normalized JSON line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from consumers import ingest
from consumers.ingest import Rejection, normalize_bytes
from jobcarbon.synth import VERSIONS, generate_jobs, kafka_key_and_headers, record_dict, render
from schemas.job import JobRecord
from schemas.raw import (
    _FAST_DECODER,
    _PLAIN_DECODER,
    _FastStruct,
    _PlainStruct,
    fast_record,
)
from tests.conftest import DATA
from tests.consumers.stream.harness import adversarial_bad, adversarial_good
from tests.consumers.test_ingest import CSCS_SLIDE, encode, upstream_24_11

NO_VAL16, INFINITE16 = 0xFFFE, 0xFFFF
NO_VAL, INFINITE = 0xFFFFFFFE, 0xFFFFFFFF
NO_VAL64 = 0xFFFFFFFFFFFFFFFE

Case = tuple[bytes, bytes | None, dict[str, bytes] | None]

#: One change per documented quirk (and some corrupt values), applied to synthetic records.
QUIRKS: dict[str, dict[str, Any]] = {
    "no_val_32": {"user_id": NO_VAL, "elapsed": INFINITE, "time_limit": NO_VAL},
    "no_val_unused": {"priority": NO_VAL, "ntasks": INFINITE, "cpus_per_task": NO_VAL16},
    "no_val_16": {"ntasks_per_node": NO_VAL16, "ntasks_per_tres": INFINITE16},
    "unknown_times": {"@start": "Unknown", "@eligible": "None", "@end": ""},
    "offset_time": {"@start": "2024-01-01T00:00:00+02:00", "@end": "2024-01-01T05:00:00Z"},
    "bad_time": {"@end": "yesterday"},
    "no_submit": {"@submit": "Unknown"},
    "blank_tres": {"tres_req": "  ", "tres_alloc": ""},
    "spaced_tres": {"tres_alloc": "cpu=4, mem=1000M, energy=1260", "tres_alloc_raw": "1=4, 3=1260"},
    "bad_tres": {"tres_alloc": "cpu=4,mem=lots"},
    "bad_raw_tres": {"tres_alloc_raw": "1=4,3=-1"},
    "energy_1e18": {"tres_alloc_raw": "1=4,3=1000000000000000000", "tres_alloc": "cpu=4"},
    "energy_no_val64": {"tres_alloc_raw": f"1=4,3={NO_VAL64}", "tres_alloc": "cpu=4"},
    "fmt_energy_only": {"tres_alloc_raw": None, "tres_alloc": "cpu=4,energy=77"},
    "cscs": {"tres_alloc_str": "1=4,3=12", "tres_fmt_alloc_str": "cpu=4,energy=12"},
    "unknown_keys": {"new_field": [1, {"a": None}], "end": "x", "huge": 10**30},
    "partition_list": {"partition": "gpu, cpu,,debug"},
    "het": {"het_job_id": 41, "het_job_offset": 0, "pack_job_id": 41},
    "pack_only": {"het_job_id": None, "het_job_offset": None, "pack_job_id": 9},
    "sluid": {"sluid": "s0000000000ABC", "original_sluid": "s0000000000ABD"},
    "patch_fields": {"energy_j": 5, "energy_complete": True, "submit_epoch": 1700000000},
    "patch_null_energy": {"energy_j": None, "energy_complete": False, "event": "end"},
    "patch_energy_1e18": {"energy_j": 10**18, "energy_complete": True},
    "submit_epoch_only": {"@submit": None, "submit_epoch": 1700000000},
    "job_db_inx_str": {"job_db_inx": " 18446744073709551615 "},
    "job_db_inx_big": {"job_db_inx": "18446744073709551616"},
    "job_db_inx_bad": {"job_db_inx": "12a"},
    "start_event": {"event": "start", "state": None},
    "energy_update": {"event": "energy_update", "energy_j": 9, "energy_complete": True},
    "escaped_nul": {"job_name": "a\u0000b"},
    "wrong_types": {"total_cpus": "4"},
    "bool_for_int": {"total_nodes": True},
    "out_of_range": {"user_id": INFINITE + 1},
    "float_for_int": {"elapsed": 7.0},
    "negative": {"group_id": -1},
    "hostile": {"username": "o'brien'; DROP TABLE fact_job;--", "job_name": "\u202e\t\x07"},
}


def _synth_cases() -> Iterator[tuple[str, Case]]:
    jobs = generate_jobs(60, seed=7)
    for version in VERSIONS:
        for i, job in enumerate(jobs):
            key, headers = kafka_key_and_headers(job, version)
            event = "start" if i % 7 == 0 else "end"
            yield f"{version}-{event}", (render(job, version, event=event), key, dict(headers))
            if i % 4 == 0:
                quirk = sorted(QUIRKS)[(i // 4 + VERSIONS.index(version)) % len(QUIRKS)]
                doc = record_dict(job, version) | QUIRKS[quirk]
                value = json.dumps(doc).encode().replace(b"/", b"\\/")
                yield f"{version}-{quirk}", (value, key, dict(headers))


def _quirk_cases() -> Iterator[tuple[str, Case]]:
    job = generate_jobs(1, seed=3)[0]
    for quirk, change in QUIRKS.items():
        for version in ("23.02", "23.11.0-cscs", "24.11", "24.11-patched", "26.05"):
            value = json.dumps(record_dict(job, version) | change).encode()
            yield f"{quirk}-{version}", (value, None, None)
            yield f"{quirk}-{version}-nul", (value + b"\x00", None, None)


def _fixture_cases() -> Iterator[tuple[str, Case]]:
    yield "cscs-slide", (CSCS_SLIDE, None, None)
    yield "cscs-slide-nul", (CSCS_SLIDE + b"\x00", None, None)
    yield "upstream-24.11", (encode(upstream_24_11()), None, None)
    yield "upstream-24.11-unknown-end", (encode(upstream_24_11(end=False, submit="x")), None, None)
    for i, value in enumerate(adversarial_good(5)):
        yield f"adversarial-good-{i}", (value, None, None)
    for value, reason in adversarial_bad(5):
        yield f"adversarial-bad-{reason}", (value, None, None)
    for path in sorted((DATA / "slurm_patch").glob("*.value")):
        meta = json.loads(path.with_suffix(".meta.json").read_text())
        headers = {k: v.encode() for k, v in meta["headers"].items()}
        yield f"captured-{path.stem}", (path.read_bytes(), meta["key"].encode(), headers)
    yield "bad-header", (encode(upstream_24_11()), None, {"jobcarbon-schema": b"x"})


def _cases() -> list[tuple[str, Case]]:
    return [*_synth_cases(), *_quirk_cases(), *_fixture_cases()]


def _run(case: Case) -> JobRecord | Rejection:
    value, key, headers = case
    return normalize_bytes(value, default_cluster="topic", key=key, headers=headers)


def test_the_fast_path_agrees_with_the_model_on_every_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = _cases()
    fast = [_run(case) for _, case in cases]
    monkeypatch.setattr(ingest, "fast_record", lambda body: None)
    model = [_run(case) for _, case in cases]
    for (name, _), got, expected in zip(cases, fast, model, strict=True):
        assert type(got) is type(expected), (name, got, expected)
        assert got == expected, name
        if isinstance(got, JobRecord):
            assert isinstance(expected, JobRecord)
            assert got.to_json() == expected.to_json(), name
    # The corpus exercises both outcomes and every rejection the fast path can reach.
    reasons = {r.reason for r in fast if isinstance(r, Rejection)}
    assert {"invalid_field", "invalid_tres", "missing_key", "nul_in_string"} <= reasons
    assert sum(isinstance(r, JobRecord) for r in fast) > len(cases) // 2


@pytest.mark.parametrize("version", VERSIONS)
def test_synthetic_records_take_the_fast_path(version: str) -> None:
    # What bench.normalize measures: every layout Slurm sends is settled without the model.
    for job in generate_jobs(40, seed=11):
        for event in ("end", "start"):
            body = render(job, version, event=event).rstrip(b"\x00")
            assert fast_record(body) is not None, (version, event, body)


def test_the_plain_struct_differs_from_the_general_one_only_by_the_sentinels() -> None:
    # fast_record decodes with _PlainStruct first (no sentinel check needed) and falls back to
    # _FastStruct; both must read every other value alike.
    assert _PlainStruct.__struct_fields__ == _FastStruct.__struct_fields__
    assert _PlainStruct.__struct_encode_fields__ == _FastStruct.__struct_encode_fields__
    job = generate_jobs(1, seed=3)[0]
    for version in VERSIONS:
        body = json.dumps(record_dict(job, version)).encode()
        plain = msgspec.structs.asdict(_PLAIN_DECODER.decode(body))
        assert plain == msgspec.structs.asdict(_FAST_DECODER.decode(body)), version


@pytest.mark.parametrize("quirk", ["no_val_32", "no_val_unused", "no_val_16"])
def test_records_with_sentinels_are_read_without_the_model(quirk: str) -> None:
    job = generate_jobs(1, seed=3)[0]
    body = json.dumps(record_dict(job, "24.11") | QUIRKS[quirk]).encode()
    with pytest.raises(msgspec.ValidationError):
        _PLAIN_DECODER.decode(body)
    fast = fast_record(body)
    assert fast is not None
    for key in QUIRKS[quirk]:
        assert getattr(fast[0], key) is None, key


@pytest.mark.parametrize("first", [True, False])
def test_unknown_keys_are_read_without_the_model_and_kept_exactly(first: bool) -> None:
    job = generate_jobs(1, seed=3)[0]
    unknown = {"site_big": 10**30, "site_list": [1.5, {"a": None, "b": "é\\/"}], "end": "x"}
    doc = unknown | record_dict(job, "24.11") if first else record_dict(job, "24.11") | unknown
    body = json.dumps(doc | {"time_limit": NO_VAL}).encode()
    fast = fast_record(body)
    assert fast is not None
    struct, extra = fast
    assert extra == unknown and list(extra) == list(unknown)
    assert type(extra["site_big"]) is int
    assert struct.time_limit is None  # the sentinel rule still ran


def test_unknown_values_msgspec_refuses_go_to_the_model() -> None:
    job = generate_jobs(1, seed=3)[0]
    body = json.dumps(record_dict(job, "24.11") | {"site_nan": float("nan")}).encode()
    assert b"NaN" in body and fast_record(body) is None
    record = normalize_bytes(body)
    assert isinstance(record, JobRecord)
    assert record.extra["site_nan"] != record.extra["site_nan"]  # NaN, as the model read it
