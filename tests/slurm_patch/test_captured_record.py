"""A record captured from the real patched jobcomp/kafka (tests/data/slurm_patch/, written by
test_cluster.py) is ingested by the pipeline. Needs no Slurm build: runs in every CI pass."""

from __future__ import annotations

import json

import pytest

from consumers.ingest import normalize_bytes
from schemas.job import EnergySource, EnergyStatus, JobRecord
from tests.conftest import DATA

FIXTURES = DATA / "slurm_patch"
CAPTURED = sorted(p.name.removesuffix(".value") for p in FIXTURES.glob("*.value"))


def _load(name: str) -> tuple[bytes, dict[str, object]]:
    return (FIXTURES / f"{name}.value").read_bytes(), json.loads(
        (FIXTURES / f"{name}.meta.json").read_text()
    )


def test_fixtures_present() -> None:
    assert "batch-exclusive" in CAPTURED


@pytest.mark.parametrize("name", CAPTURED)
def test_captured_record_is_ingested(name: str) -> None:
    value, meta = _load(name)
    headers = {k: str(v).encode() for k, v in dict(meta["headers"]).items()}  # type: ignore[call-overload]
    key = str(meta["key"])
    cluster = key.split(":")[0]
    record = normalize_bytes(value, headers=headers, default_cluster=cluster)
    assert isinstance(record, JobRecord), record
    doc = json.loads(value)
    assert record.patched
    assert record.message_key == key
    assert record.job_id == doc["jobid"] == int(key.split(":")[1])
    assert record.job_db_inx == int(doc["job_db_inx"])
    assert record.energy_complete is doc["energy_complete"]
    assert record.exclusive is doc["exclusive"]
    assert record.event == doc["event"]
    assert record.energy_source == EnergySource.PATCH
    if doc["energy_j"] is None:
        assert record.energy_j is None and record.energy_status == EnergyStatus.MISSING
    else:
        assert record.energy_j == doc["energy_j"]
        assert record.energy_status == EnergyStatus.MEASURED


def test_captured_record_without_header_is_still_read_as_patched() -> None:
    """A consumer that drops headers still sees the patch's fields in the body."""
    value, _ = _load("batch-exclusive")
    record = normalize_bytes(value, default_cluster="jctest")
    assert isinstance(record, JobRecord) and record.patched


def test_captured_record_value_is_what_slurm_sent() -> None:
    """Upstream fields are untouched: json-c's escaped slashes, raw TRES with NO_VAL64."""
    value, _ = _load("batch-exclusive")
    assert b'"work_dir":"\\/' in value
    assert b"3=18446744073709551614" in value
    assert not value.endswith(b"\x00")  # 24.05+ sends no trailing NUL


def test_captured_end_and_energy_update_pair() -> None:
    """PrologFlags=Contain, 100 W fake pm_counters: the end record had no energy yet (the
    extern step was still running); the energy_update record, same key, has it."""
    end_value, end_meta = _load("energy-end")
    update_value, update_meta = _load("energy-update")
    assert end_meta["key"] == update_meta["key"]
    cluster = str(end_meta["key"]).split(":")[0]
    end = normalize_bytes(end_value, headers={"jobcarbon-schema": b"1"}, default_cluster=cluster)
    update = normalize_bytes(
        update_value, headers={"jobcarbon-schema": b"1"}, default_cluster=cluster
    )
    assert isinstance(end, JobRecord) and isinstance(update, JobRecord)
    assert end.key == update.key
    assert (end.event, end.energy_complete, end.energy_j) == ("end", False, None)
    assert end.energy_status == EnergyStatus.MISSING
    assert update.event == "energy_update" and update.energy_complete is True
    assert update.energy_status == EnergyStatus.MEASURED
    doc = json.loads(update_value)
    # 100 W for the extern step's life (the job's elapsed seconds plus its cleanup).
    assert update.energy_j is not None
    assert 100 * (doc["elapsed"] - 1) <= update.energy_j <= 100 * (doc["elapsed"] + 8)
    assert update.tres_alloc.get("energy") == update.energy_j
