"""End to end with real Slurm: patched slurmctld + slurmd run a job, jobcomp/kafka sends its
record to a real broker (tansu), and the pipeline's normalizer ingests what was consumed.

Set ``JOBCARBON_CAPTURE_SLURM_FIXTURE=1`` to (re)write the captured record under
``tests/data/slurm_patch/`` (used by ``test_captured_record.py``, which needs no build).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC
from pathlib import Path

import pytest

from consumers.ingest import normalize_bytes
from schemas.job import EnergySource, EnergyStatus, JobRecord
from tests.conftest import DATA
from tests.services.slurm_build import (
    Broker,
    KafkaMessage,
    SlurmBuild,
    SlurmCluster,
    consume,
    tansu_broker,
)

# Needs the full Slurm build (about 4 min on an idle 2-core machine, 10 min under load)
# on a fresh clone: kept out of the default CI run. `make test-slow` runs it.
pytestmark = [pytest.mark.slurmbuild, pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

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


def _normalized(msg: KafkaMessage, cluster: SlurmCluster) -> JobRecord:
    record = normalize_bytes(msg.value, headers=msg.headers, default_cluster=cluster.cluster_name)
    assert isinstance(record, JobRecord), record
    assert record.patched
    assert record.message_key.encode() == msg.key
    return record


def test_batch_job_end_record_then_energy_update(
    slurm_cluster: tuple[SlurmCluster, Broker],
) -> None:
    """PrologFlags=Contain: the extern step, which carries the job's energy, is still running
    when slurmctld writes the record; its energy arrives in a second, energy_update record."""
    cluster, broker = slurm_cluster
    job_id = cluster.sbatch("--job-name=jc-e2e", "--exclusive", "--wrap", "sleep 4")
    assert cluster.wait_gone(job_id) == "COMPLETED"

    messages = consume(broker.bootstrap, cluster.topic, 2, timeout_s=60)
    assert len(messages) == 2, f"{len(messages)} record(s) on {cluster.topic}\n{cluster.logs()}"
    end_msg, update_msg = sorted(messages, key=lambda m: json.loads(m.value)["event"] != "end")
    end, update = json.loads(end_msg.value), json.loads(update_msg.value)
    print("end:", end_msg.value.decode())
    print("update:", update_msg.value.decode())

    # One key for both (same partition, so in order), the cluster's name in it; the header.
    assert end_msg.key == f"{cluster.cluster_name}:{job_id}:{end['submit_epoch']}".encode()
    assert update_msg.key == end_msg.key and update_msg.partition == end_msg.partition
    assert end_msg.headers == update_msg.headers == {"jobcarbon-schema": b"1"}

    # The "end" record: the extern step had not completed, so energy is not final.
    assert end["jobid"] == job_id and end["event"] == "end"
    assert end["energy_complete"] is False
    assert end["exclusive"] is True  # --exclusive
    assert isinstance(end["submit_epoch"], int)
    # 24.11 gives every job a SLUID as db_index, even without slurmdbd:
    # ClusterID << 52 | milliseconds << 10 | sequence. Sent as a decimal string.
    assert isinstance(end["job_db_inx"], str) and end["job_db_inx"].isdigit()
    sluid_ms = (int(end["job_db_inx"]) >> 10) & ((1 << 42) - 1)
    assert abs(sluid_ms / 1000 - end["submit_epoch"]) < 60
    assert end["state"] == "COMPLETED" and end["job_name"] == "jc-e2e"

    # The update: same job, final energy from the real pm_counters plugin at 100 W.
    assert update["event"] == "energy_update" and update["energy_complete"] is True
    assert update["jobid"] == job_id and update["job_db_inx"] == end["job_db_inx"]
    energy_j = update["energy_j"]
    assert isinstance(energy_j, int)
    elapsed_s = end["elapsed"]
    # The extern step spans the job (and a little more); counters are sampled every 2 s.
    assert 100 * (elapsed_s - 1) <= energy_j <= 100 * (elapsed_s + 8), (energy_j, elapsed_s)
    # Upstream fields carry it too: raw TRES id 3 and the formatted string.
    assert f"3={energy_j}" in update["tres_alloc_raw"]
    assert f"energy={energy_j}" in update["tres_alloc"]

    end_rec, update_rec = _normalized(end_msg, cluster), _normalized(update_msg, cluster)
    assert end_rec.event == "end" and update_rec.event == "energy_update"
    assert end_rec.key == update_rec.key
    assert end_rec.energy_complete is False and update_rec.energy_complete is True
    assert update_rec.energy_j == energy_j
    assert update_rec.energy_status == EnergyStatus.MEASURED
    assert update_rec.energy_source == EnergySource.PATCH
    assert update_rec.job_db_inx == int(end["job_db_inx"])
    assert update_rec.exclusive is True
    assert update_rec.submit_time is not None
    assert int(update_rec.submit_time.astimezone(UTC).timestamp()) == end["submit_epoch"]

    if os.environ.get("JOBCARBON_CAPTURE_SLURM_FIXTURE") == "1":
        version = cluster.client("scontrol", "--version").split()[-1]
        for name, msg in (("energy-end", end_msg), ("energy-update", update_msg)):
            _save_fixture(name, msg.key, msg.headers, msg.value, version)


def test_record_kept_while_broker_down_is_replayed_with_its_key(
    slurm_install: SlurmBuild, tmp_path: Path
) -> None:
    """The key is derived from the payload when a message is produced, so a record that
    slurmctld saved to its state file (broker down at shutdown) and replayed at the next start
    keeps its key and header (the state file format is upstream's)."""
    broker_cm = tansu_broker(tmp_path)
    broker = broker_cm.__enter__()
    port = broker.port
    cluster = SlurmCluster(
        slurm_install, tmp_path, broker.bootstrap, topic="replay", cluster_name="jcreplay"
    )
    try:
        broker.create_topic(cluster.topic)
        cluster.start()
        broker_cm.__exit__(None, None, None)  # the broker goes away
        job_id = cluster.sbatch("--wrap", "true")
        assert cluster.wait_gone(job_id) == "COMPLETED"
        time.sleep(1)  # the record is in librdkafka's queue, undeliverable
        cluster.stop_slurmctld()
        state = tmp_path / "state" / "jobcomp_kafka_state"
        assert state.exists(), f"nothing saved to the state file\n{cluster.logs()}"

        with tansu_broker(tmp_path, port=port) as broker2:
            broker2.create_topic(cluster.topic)
            cluster.start_slurmctld()  # replays the state file
            messages = consume(broker2.bootstrap, cluster.topic, 1, timeout_s=40)
            assert messages, f"nothing replayed\n{cluster.logs()}"
            doc = json.loads(messages[0].value)
            assert doc["jobid"] == job_id and doc["event"] == "end"
            assert messages[0].key == f"jcreplay:{job_id}:{doc['submit_epoch']}".encode()
            assert messages[0].headers == {"jobcarbon-schema": b"1"}
    finally:
        cluster.stop()
        broker_cm.__exit__(None, None, None)


def test_cancelled_job_gets_its_energy_in_an_update(
    slurm_cluster: tuple[SlurmCluster, Broker],
) -> None:
    """scancel: slurmctld writes the record when it decides the job ended, before the job's
    steps are killed; their energy only arrives afterwards, in the energy_update record."""
    cluster, broker = slurm_cluster
    job_id = cluster.sbatch("--job-name=jc-cancel", "--wrap", "sleep 60")
    deadline = time.monotonic() + 30
    while "RUNNING" not in cluster.client("squeue", "-h", "-j", str(job_id), "-o", "%T"):
        assert time.monotonic() < deadline, "job did not start"
        time.sleep(0.3)
    time.sleep(3)  # let the counters give it some energy
    cluster.client("scancel", str(job_id))
    assert cluster.wait_gone(job_id) == "CANCELLED"

    mine = [
        m
        for m in consume(broker.bootstrap, cluster.topic, 100, timeout_s=20)
        if json.loads(m.value)["jobid"] == job_id
    ]
    by_event = {json.loads(m.value)["event"]: m for m in mine}
    assert set(by_event) == {"end", "energy_update"}, [m.value for m in mine]
    end = _normalized(by_event["end"], cluster)
    update = _normalized(by_event["energy_update"], cluster)
    assert end.state == update.state == "CANCELLED"
    assert end.energy_complete is False and update.energy_complete is True
    assert update.energy_j is not None and update.elapsed_s is not None
    assert 100 * (update.elapsed_s - 1) <= update.energy_j <= 100 * (update.elapsed_s + 8)
