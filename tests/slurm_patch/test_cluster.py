"""End to end with real Slurm: patched slurmctld + slurmd run a job, jobcomp/kafka sends its
record to a real broker (tansu), and the pipeline's normalizer ingests what was consumed.

Set ``JOBCARBON_CAPTURE_SLURM_FIXTURE=1`` to (re)write the captured record under
``tests/data/slurm_patch/`` (used by ``test_captured_record.py``, which needs no build).
"""

from __future__ import annotations

import json
import os
from datetime import UTC

import pytest

from consumers.ingest import normalize_bytes
from schemas.job import EnergySource, EnergyStatus, JobRecord
from tests.conftest import DATA
from tests.services.slurm_build import Broker, SlurmCluster, consume

pytestmark = [pytest.mark.slurmbuild, pytest.mark.cluster, pytest.mark.broker]

FIXTURE_DIR = DATA / "slurm_patch"


def _save_fixture(name: str, msg_key: bytes | None, headers: dict[str, bytes], value: bytes,
                  slurm_version: str) -> None:  # fmt: skip
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    (FIXTURE_DIR / f"{name}.value").write_bytes(value)
    meta = {
        "key": msg_key.decode() if msg_key is not None else None,
        "headers": {k: v.decode() for k, v in headers.items()},
        "slurm_version": slurm_version,
        "how": "captured by tests/slurm_patch/test_cluster.py from a real patched slurmctld",
    }
    (FIXTURE_DIR / f"{name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def test_batch_job_record_is_keyed_and_ingested(
    slurm_cluster: tuple[SlurmCluster, Broker],
) -> None:
    cluster, broker = slurm_cluster
    job_id = cluster.sbatch("--job-name=jc-e2e", "--exclusive", "--wrap", "sleep 2")
    assert cluster.wait_gone(job_id) == "COMPLETED"

    messages = [m for m in consume(broker.bootstrap, cluster.topic, 1)]
    assert messages, f"no record on {cluster.topic}\n{cluster.logs()}"
    msg = messages[0]
    doc = json.loads(msg.value)
    assert doc["jobid"] == job_id

    # The message key and header the patch adds.
    assert msg.key == f"{cluster.cluster_name}:{job_id}:{doc['submit_epoch']}".encode()
    assert msg.headers == {"jobcarbon-schema": b"1"}

    # Added fields, with the types the contract says.
    assert doc["event"] == "end"
    assert doc["energy_j"] is None  # no energy plugin in this cluster: not measured
    assert doc["energy_complete"] is True  # the batch job's steps are all done
    # 24.11 gives every job a SLUID as db_index, even without slurmdbd:
    # ClusterID << 52 | milliseconds << 10 | sequence. Sent as a decimal string.
    assert isinstance(doc["job_db_inx"], str) and doc["job_db_inx"].isdigit()
    sluid_ms = (int(doc["job_db_inx"]) >> 10) & ((1 << 42) - 1)
    assert abs(sluid_ms / 1000 - doc["submit_epoch"]) < 60
    assert isinstance(doc["submit_epoch"], int)
    assert doc["exclusive"] is True  # --exclusive
    # Upstream fields unchanged: the raw TRES string still prints NO_VAL64 for energy.
    assert "3=18446744073709551614" in doc["tres_alloc_raw"]
    assert doc["state"] == "COMPLETED" and doc["job_name"] == "jc-e2e"

    record = normalize_bytes(msg.value, headers=msg.headers, default_cluster=cluster.cluster_name)
    assert isinstance(record, JobRecord), record
    assert record.patched and record.energy_complete is True
    assert record.job_id == job_id and record.exclusive is True
    assert record.job_db_inx == int(doc["job_db_inx"])
    assert record.energy_j is None and record.energy_status == EnergyStatus.MISSING
    assert record.energy_source == EnergySource.PATCH
    assert record.submit_time is not None
    assert int(record.submit_time.astimezone(UTC).timestamp()) == doc["submit_epoch"]
    assert record.message_key.encode() == msg.key

    if os.environ.get("JOBCARBON_CAPTURE_SLURM_FIXTURE") == "1":
        version = cluster.client("scontrol", "--version").split()[-1]
        _save_fixture("batch-exclusive", msg.key, msg.headers, msg.value, version)
