"""A real one-host Slurm 24.11 site end to end: patched jobcomp/kafka with real (fake-Cray)
node energy -> stream workers -> warehouse, reconciled against the cluster's own slurmdbd.

The scenarios run together (the node has 2 CPUs) and are checked against what Slurm itself
reports: ``sacct`` (the same build, against this slurmdbd) is the truth for which jobs ran and
their ConsumedEnergyRaw; the raw records on the broker for the patch's key, header and fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.services.slurm_build import KafkaMessage, consume
from tests.services.slurm_site import (
    ACCOUNT,
    EXHAUSTED_ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_USER,
    SlurmSite,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slurmbuild, pytest.mark.mariadb,
              pytest.mark.broker]  # fmt: skip

#: How long the workers get to land and reconcile every job before the sweep is tried.
SETTLE_S = 60


@dataclass(frozen=True)
class SacctJob:
    """One allocation line of ``sacct -X``."""

    job_id: int
    job_id_text: str  # 12_1 for array tasks
    state: str
    user: str
    account: str
    energy_j: int


@dataclass
class Ran:
    """The scenarios' job ids and what Slurm says about them."""

    ids: dict[str, list[int]]
    sacct: dict[int, SacctJob]
    messages: list[KafkaMessage]
    started_at: datetime
    array_job_id: int
    denied: subprocess.CompletedProcess[str]


def _wait_running(site: SlurmSite, job_id: int, timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while "RUNNING" not in site.cluster.client("squeue", "-h", "-j", str(job_id), "-o", "%T"):
        assert time.monotonic() < end, f"job {job_id} did not start\n{site.cluster.logs()}"
        time.sleep(0.3)


def _sacct(site: SlurmSite, since: datetime) -> dict[int, SacctJob]:
    out = site.cluster.client(
        "sacct", "-a", "-X", "-n", "-P", "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
        "-o", "JobIDRaw,JobID,State,User,Account,ConsumedEnergyRaw",
    )  # fmt: skip
    jobs = {}
    for line in out.splitlines():
        raw, text, state, user, account, energy = line.split("|")
        jobs[int(raw)] = SacctJob(
            int(raw), text, state.split()[0], user, account, int(energy) if energy else -1
        )
    return jobs


@pytest.fixture(scope="module")
def ran(slurm_site: SlurmSite) -> Ran:
    """Submit every scenario, wait until Slurm has finished them all."""
    cluster = slurm_site.cluster
    started_at = datetime.now(UTC) - timedelta(seconds=5)
    ids: dict[str, list[int]] = {}
    # Timed out: the shortest limit is a minute and slurmctld checks limits every 30 s, so
    # it goes first and runs beside the others on the node's second CPU.
    # Every submission names an account and a walltime, so the cli_filter asks the credit API
    # (check, then a reservation with the job id).
    ids["timeout"] = [
        cluster.sbatch("-A", ACCOUNT, "-J", "jc-timeout", "--time=1", "--wrap", "sleep 300")
    ]
    sub = ("-A", ACCOUNT, "--time=5")
    ids["batch"] = [cluster.sbatch(*sub, "-J", "jc-batch", "--wrap", "sleep 3")]
    srun = cluster.build.bin("srun")  # the job's PATH is the test's: no Slurm on it
    two_steps = f"{srun} sleep 2; {srun} sleep 2"
    ids["steps"] = [cluster.sbatch(*sub, "-J", "jc-steps", "--wrap", two_steps)]
    array = cluster.sbatch(*sub, "-J", "jc-array", "--array=1-2", "--wrap", "sleep 2")
    user = cluster.as_user(
        OTHER_USER, "sbatch", "--parsable", "-A", OTHER_ACCOUNT, "--time=5", "-J", "jc-user",
        "--output=/dev/null", "--chdir=/", "--wrap", "sleep 2",
    )  # fmt: skip
    ids["user"] = [int(user.strip().split(";")[0])]
    ids["cancel"] = [cluster.sbatch(*sub, "-J", "jc-cancel", "--wrap", "sleep 300")]
    # Denied at sbatch: the account's credit is exhausted; Slurm never sees the job.
    denied = subprocess.run(
        cluster.in_namespace(
            str(cluster.build.bin("sbatch")), "-A", EXHAUSTED_ACCOUNT, "--time=5",
            "-J", "jc-denied", "--wrap", "true",
        ),
        env=cluster.env, capture_output=True, text=True, timeout=60, cwd=cluster.workdir,
    )  # fmt: skip
    _wait_running(slurm_site, ids["cancel"][0], timeout_s=90)
    time.sleep(3)  # some energy first
    cluster.client("scancel", str(ids["cancel"][0]))
    for job_id in [j for v in ids.values() for j in v] + [array]:
        cluster.wait_gone(job_id, timeout_s=180)
    # Array tasks: their raw job ids, from slurmdbd.
    sacct = _wait_sacct_final(slurm_site, started_at)
    ids["array"] = sorted(j.job_id for j in sacct.values() if j.job_id_text.startswith(f"{array}_"))
    # Records: an "end" per job and an "energy_update" once its extern step reported.
    messages = consume(
        slurm_site.stack.settings.kafka.bootstrap_servers,
        cluster.topic, 2 * len(sacct), timeout_s=30,
    )  # fmt: skip
    return Ran(ids, sacct, messages, started_at, array, denied)


def _wait_sacct_final(
    site: SlurmSite, since: datetime, timeout_s: float = 60
) -> dict[int, SacctJob]:
    """sacct once every job has ended and has its energy (slurmdbd gets steps asynchronously)."""
    end = time.monotonic() + timeout_s
    while True:
        jobs = _sacct(site, since)
        ended = all(j.state not in {"RUNNING", "PENDING"} for j in jobs.values())
        if jobs and ended and all(j.energy_j > 0 for j in jobs.values()):
            return jobs
        if time.monotonic() > end:
            return jobs
        time.sleep(1)


def _facts(site: SlurmSite) -> list[dict[str, object]]:
    engine = sa.create_engine(site.warehouse_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT f.job_id, f.submit_epoch, f.event, f.energy_it_j, f.energy_complete,"
                    " f.db_energy_j, f.reconcile_status, f.reconcile_differences, f.state,"
                    " f.patched, f.array_job_id,"
                    " u.name AS user_name, a.name AS account_name, c.name AS cluster_name"
                    " FROM fact_job f JOIN dim_cluster c ON c.id = f.cluster_id"
                    " JOIN dim_user u ON u.id = f.user_id"
                    " JOIN dim_account a ON a.id = f.account_id"
                )
            ).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def _settled(site: SlurmSite, ran: Ran) -> bool:
    facts = {f["job_id"]: f for f in _facts(site)}
    return all(
        j in facts and facts[j]["energy_it_j"] == ran.sacct[j].energy_j
        and facts[j]["reconcile_status"] not in {"not_checked", "unreconciled"}
        for j in ran.sacct
    )  # fmt: skip


@pytest.fixture(scope="module")
def landed(slurm_site: SlurmSite, ran: Ran) -> list[dict[str, object]]:
    """The warehouse once the workers (or, after SETTLE_S, one ``jobcarbon reconcile`` sweep)
    have reconciled every job."""
    end = time.monotonic() + SETTLE_S
    while time.monotonic() < end and not _settled(slurm_site, ran):
        slurm_site.stack.check_workers()
        time.sleep(1)
    facts = _facts(slurm_site)
    statuses = sorted(
        (f["job_id"], f["reconcile_status"], f["reconcile_differences"]) for f in facts
    )
    print("after the stream:", statuses)
    if not _settled(slurm_site, ran):
        print("not all reconciled by the stream: jobcarbon reconcile sweep")
        since = (ran.started_at - timedelta(minutes=5)).isoformat()
        subprocess.run(
            [sys.executable, "-m", "jobcarbon", "reconcile", "--since", since,
             "--accounting", slurm_site.accounting_url, "--db", slurm_site.warehouse_url],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    return _facts(slurm_site)


def test_slurm_ran_every_scenario(ran: Ran) -> None:
    """The scenarios ended as intended, as slurmdbd recorded them."""
    states = {name: [ran.sacct[j].state for j in ids] for name, ids in ran.ids.items()}
    assert states["batch"] == ["COMPLETED"]
    assert states["steps"] == ["COMPLETED"]
    assert states["array"] == ["COMPLETED", "COMPLETED"]
    assert states["user"] == ["COMPLETED"]
    assert states["cancel"] == ["CANCELLED"]
    assert states["timeout"] == ["TIMEOUT"]
    user_job = ran.sacct[ran.ids["user"][0]]
    assert (user_job.user, user_job.account) == (OTHER_USER, OTHER_ACCOUNT)
    assert ran.sacct[ran.ids["batch"][0]].account == ACCOUNT
    assert len(ran.sacct) == sum(len(v) for v in ran.ids.values())
    # 100 W on the node: every job that ran got energy.
    assert all(j.energy_j > 0 for j in ran.sacct.values()), ran.sacct


def test_records_carry_the_patch_key_header_and_fields(slurm_site: SlurmSite, ran: Ran) -> None:
    """One "end" record per job, keyed cluster:jobid:submit, with the schema header; the
    extern step (PrologFlags=Contain) outlives the end record, so its energy_complete is false
    and an energy_update with the final energy follows on the same key."""
    name = slurm_site.cluster.cluster_name
    docs = [(m, json.loads(m.value)) for m in ran.messages]
    ends = Counter(d["jobid"] for _, d in docs if d["event"] == "end")
    assert ends == Counter(list(ran.sacct)), "exactly one end record per job Slurm ran"
    for msg, doc in docs:
        assert msg.headers == {"jobcarbon-schema": b"1"}
        assert msg.key == f"{name}:{doc['jobid']}:{doc['submit_epoch']}".encode()
        assert isinstance(doc["job_db_inx"], str) and doc["job_db_inx"].isdigit()
        assert isinstance(doc["energy_complete"], bool)
    batch = ran.ids["batch"][0]
    mine = {d["event"]: d for _, d in docs if d["jobid"] == batch}
    assert mine["end"]["energy_complete"] is False
    assert mine["energy_update"]["energy_complete"] is True
    assert mine["energy_update"]["energy_j"] == ran.sacct[batch].energy_j


def test_every_job_lands_once_with_sacct_energy(landed: list[dict[str, object]], ran: Ran) -> None:
    """Every job Slurm ran is in the warehouse exactly once, and after reconciliation its
    energy is slurmdbd's ConsumedEnergyRaw (also for jobs whose end record had none final)."""
    counts = Counter(f["job_id"] for f in landed)
    assert counts == Counter(list(ran.sacct)), (counts, sorted(ran.sacct))
    by_id = {f["job_id"]: f for f in landed}
    for job_id, job in ran.sacct.items():
        fact = by_id[job_id]
        assert fact["cluster_name"] == "jcsite"
        assert fact["patched"] in (True, 1)
        assert fact["energy_it_j"] == job.energy_j, (job, fact)
        assert fact["db_energy_j"] == job.energy_j, (job, fact)
        assert fact["reconcile_status"] not in {"not_checked", "unreconciled", "missing_in_db"}
    # Jobs that ended normally agree field by field. Killed ones (scancel, time limit) differ
    # in one field only: jobcomp reports the signal (0:15), slurmdbd the job's 0:0.
    for name in ("batch", "steps", "array", "user"):
        for job_id in ran.ids[name]:
            assert by_id[job_id]["reconcile_status"] == "match", by_id[job_id]
    for name in ("cancel", "timeout"):
        fact = by_id[ran.ids[name][0]]
        assert fact["reconcile_status"] in {"match", "conflict"}, fact
        if fact["reconcile_status"] == "conflict":
            assert fact["reconcile_differences"] == "exit_code: jobcomp=0:15 db=0:0", fact
        assert fact["user_name"] == job.user and fact["account_name"] == job.account
    for job_id in ran.ids["array"]:
        assert by_id[job_id]["array_job_id"] == ran.array_job_id


def _ledger(site: SlurmSite) -> list[dict[str, object]]:
    engine = sa.create_engine(site.warehouse_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT entry_type, account, user_name, job_id, amount_g FROM credit_ledger"
                )
            ).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def test_exhausted_credit_denies_at_sbatch(ran: Ran) -> None:
    """cli_filter/lua asked the credit API and refused the job: sbatch failed, saying why,
    and Slurm has no job of that account."""
    assert ran.denied.returncode != 0, ran.denied
    assert "jobcarbon: DENY" in ran.denied.stderr, ran.denied.stderr
    assert not [j for j in ran.sacct.values() if j.account == EXHAUSTED_ACCOUNT]


def test_credit_reserved_at_submission_and_settled_at_completion(
    slurm_site: SlurmSite, ran: Ran, landed: list[dict[str, object]]
) -> None:
    """Each submitted job got a reservation from sbatch's cli_filter (with its job id and
    account); once the facts landed, the ledger sweep settles every one of them."""
    from jobcarbon.credit.sql import SqlCreditStore
    from warehouse.engine import make_engine

    submitted = {ids[0] for name, ids in ran.ids.items() if name != "array"}
    submitted.add(ran.array_job_id)
    reservations = {e["job_id"]: e for e in _ledger(slurm_site) if e["entry_type"] == "reservation"}
    assert set(reservations) == submitted, (sorted(reservations), sorted(submitted))
    assert reservations[ran.ids["user"][0]]["account"] == OTHER_ACCOUNT
    assert reservations[ran.ids["user"][0]]["user_name"] == OTHER_USER
    assert all(float(e["amount_g"]) > 0 for e in reservations.values())  # type: ignore[arg-type]
    engine = make_engine(slurm_site.warehouse_url)
    try:
        now = datetime.now(UTC)
        store = SqlCreditStore(engine, cluster=slurm_site.cluster.cluster_name)
        settled, _ = store.sweep(now=now, stale_before=now - timedelta(days=7), actor="test")
    finally:
        engine.dispose()
    assert settled == len(submitted)
    settlements = {e["job_id"] for e in _ledger(slurm_site) if e["entry_type"] == "settlement"}
    assert settlements == submitted
