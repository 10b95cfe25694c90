"""The reconcile stage: settling window and backoff, both real schemas, odd rows, outage."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from consumers.reconcile.accounting import SlurmdbdSource
from consumers.reconcile.rules import DbJob
from consumers.reconcile.sacct import SacctSource, parse_sacct_psv, record_from_db
from consumers.reconcile.stage import Pending, ReconcileStage, backoff_s, deadline_for, sweep
from schemas.fact import JobFact, fact_from_record
from schemas.job import EnergySource, EnergyStatus, JobRecord
from tests.services.mariadb import AccountingDB, MariaDB
from tests.services.slurmdbd import SlurmJobs


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def rec(cluster: str, job_id: int, submit: int, start: int, end: int, **kw: object) -> JobRecord:
    values: dict[str, object] = dict(
        cluster=cluster,
        job_id=job_id,
        submit_time=at(submit),
        start_time=at(start),
        end_time=at(end),
        state="COMPLETED",
        exit_code="0:0",
    )
    values.update(kw)
    return JobRecord(**values)  # type: ignore[arg-type]


def with_energy_j(record: JobRecord, joules: int) -> JobRecord:
    return record.replace(
        energy_j=joules, energy_status=EnergyStatus.MEASURED, energy_source=EnergySource.TRES_RAW
    )


# --- pure: settling, backoff, no lost jobs (in-memory source: real sacct-row code) ------------

ROW = DbJob(
    cluster="c",
    job_db_inx=7,
    id_job=70,
    time_submit=1000,
    time_start=1010,
    time_end=1100,
    state=3,
    tres_alloc="1=1,3=900,4=1",
)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff_s(30) == 300.0


def test_not_in_db_is_retried_until_the_window_then_missing() -> None:
    record = rec("c", 71, 1000, 1010, 1100)
    stage = ReconcileStage(SacctSource([ROW]), settle_s=60)
    now = at(1100)
    first = stage.run([fact_from_record(record)], now)
    assert first.done == [] and len(first.retry) == 1
    pending = first.retry[0]
    assert pending.deadline_at == at(1160) and pending.next_at == at(1105)  # 5 s backoff
    # Not due yet: handed back untouched.
    again = stage.run([pending], at(1102))
    assert again.retry == [pending] and again.done == []
    # Retries until the deadline (backoff 5, 10, 20, then clipped to the deadline).
    item: JobFact | Pending = pending
    t = pending.next_at
    while True:
        out = stage.run([item], t)
        if out.done:
            break
        item = out.retry[0]
        t = item.next_at
    (fact,) = out.done
    assert t == at(1160)
    assert fact.reconciliation.status == "missing_in_db"
    assert fact.reconciliation.attempts == 5


def test_row_found_later_is_reconciled_on_retry() -> None:
    record = rec("c", 70, 1000, 1010, 1100)
    empty = ReconcileStage(SacctSource([]), settle_s=600)
    (pending,) = empty.run([fact_from_record(record)], at(1100)).retry
    later = ReconcileStage(SacctSource([ROW]), settle_s=600).run([pending], pending.next_at)
    (fact,) = later.done
    assert fact.reconciliation.status == "energy_filled"
    assert (fact.energy_it_j, fact.energy_origin) == (900, "slurmdbd")
    assert fact.reconciliation.attempts == 2


def test_unsettled_row_waits_for_its_steps() -> None:
    from consumers.reconcile.rules import DbStep

    running = DbJob(
        cluster="c",
        job_db_inx=8,
        id_job=80,
        time_submit=1000,
        time_start=1010,
        time_end=1100,
        state=3,
        tres_alloc="1=1,3=18446744073709551614",
        steps=(DbStep(id_step=-4, time_start=1010, time_end=0),),
    )
    record = rec("c", 80, 1000, 1010, 1100)
    out = ReconcileStage(SacctSource([running]), settle_s=60).run(
        [fact_from_record(record)], at(1101)
    )
    assert len(out.retry) == 1  # the extern step has not completed: its energy is coming
    out = ReconcileStage(SacctSource([running]), settle_s=60).run(out.retry, at(1160))
    assert out.done[0].reconciliation.status == "match"  # both without energy


def test_records_without_cluster_or_with_hostile_cluster_still_land() -> None:
    stage = ReconcileStage(SacctSource([ROW]), settle_s=0)
    facts = [
        fact_from_record(rec("c", 70, 1000, 1010, 1100).replace(cluster=None)),
        fact_from_record(rec("x'; DROP TABLE t; --", 70, 1000, 1010, 1100)),
        fact_from_record(rec("c", 70, 1000, 1010, 1100)),
    ]
    out = stage.run(facts, at(2000))
    assert len(out.done) == 3 and out.retry == []
    statuses = sorted(f.reconciliation.status for f in out.done)
    assert statuses == ["energy_filled", "unreconciled", "unreconciled"]
    hostile = next(f for f in out.done if f.record.cluster and "DROP" in f.record.cluster)
    assert "not a valid Slurm cluster name" in hostile.reconciliation.differences[0]


def test_requeued_runs_match_their_own_rows() -> None:
    first = DbJob(
        cluster="c",
        job_db_inx=1,
        id_job=5,
        time_submit=1000,
        time_start=1010,
        time_end=1050,
        state=1024,
        tres_alloc="3=100",
    )
    second = DbJob(
        cluster="c",
        job_db_inx=2,
        id_job=5,
        time_submit=1051,
        time_start=1060,
        time_end=1200,
        state=3,
        tres_alloc="3=700",
    )
    stage = ReconcileStage(SacctSource([first, second]), settle_s=0)
    facts = [
        fact_from_record(rec("c", 5, 1000, 1010, 1050, state="PENDING")),
        fact_from_record(rec("c", 5, 1051, 1060, 1200)),
    ]
    out = stage.run(facts, at(3000))
    got = {
        f.record.submit_time: (f.reconciliation.status, f.energy_it_j, f.reconciliation.db_state)
        for f in out.done
    }
    assert got == {
        at(1000): ("energy_filled", 100, "REQUEUED"),
        at(1051): ("energy_filled", 700, "COMPLETED"),
    }


def test_deadline_counts_from_the_job_end() -> None:
    record = rec("c", 1, 0, 0, 1000)
    assert deadline_for(record, at(5000), 600) == at(1600)  # late record: already settled
    assert deadline_for(record.replace(end_time=None), at(5000), 600) == at(5600)


def test_sweep_returns_every_fact() -> None:
    facts = [fact_from_record(rec("c", i, 1000, 1010, 1100)) for i in (70, 71, 72)]
    out = sweep(facts, SacctSource([ROW]), at(9000))
    assert out.retry == []
    assert sorted((f.record.job_id, f.reconciliation.status) for f in out.done) == [
        (70, "energy_filled"),
        (71, "missing_in_db"),
        (72, "missing_in_db"),
    ]


# --- the real 25.05 dump -----------------------------------------------------------------------


@pytest.mark.mariadb
def test_25_05_jobs_reconcile(slurmdb_2505: AccountingDB) -> None:
    source = SlurmdbdSource(slurmdb_2505.url)
    # What a 25.05 jobcomp record carries for dump jobs 10 and 3 (energy 3=NO_VAL64: missing),
    # and a 26.05-style record found by its sluid alone.
    ten = rec(
        "localcluster",
        10,
        1754540923,
        1754542968,
        1754546574,
        state="TIMEOUT",
        account="oit",
        partition="debug",
        user_id=1000,
        qos="normal",
        parent_accounts="/root/ucmerced/oit/oit",
        job_name="one_core_hour",
    )
    three = rec("localcluster", 3, 1754089034, 1754089034, 1754089045, account="root")
    by_sluid = JobRecord(
        cluster="localcluster",
        job_id=1,
        submit_time=None,
        sluid="sBN9K1KW4S9000",
        state="COMPLETED",
    )
    wrong = rec(
        "localcluster",
        12,
        1754545326,
        1754550203,
        1754553803,
        state="TIMEOUT",
        account="physics",
        partition="gpu",
    )
    stage = ReconcileStage(source, settle_s=600)
    out = stage.run([fact_from_record(r) for r in (ten, three, by_sluid, wrong)], at(1800000000))
    source.close()
    assert out.retry == [] and out.errors == []
    got = {f.record.job_id: f.reconciliation for f in out.done}
    assert (
        got[10].status,
        got[10].db_energy_j,
        got[10].db_account,
        got[10].db_state,
        got[10].db_job_db_inx,
    ) == ("match", None, "oit", "TIMEOUT", 13449545137233928192)
    assert got[3].status == "match" and got[3].db_partition == "debug"
    assert (got[1].status, got[1].db_job_db_inx) == ("match", 13449544672876986368)
    assert got[12].status == "conflict"
    assert got[12].differences == (
        "account: jobcomp=physics db=oit",
        "partition: jobcomp=gpu db=debug",
    )


# --- real jobs written by Debian's slurmdbd 22.05 ---------------------------------------------


@pytest.mark.mariadb
@pytest.mark.slurmdbd
def test_22_05_real_jobs_reconcile_against_sacct(slurm2205_jobs: SlurmJobs) -> None:
    stack = slurm2205_jobs.stack
    fields = (
        "JobIDRaw,Cluster,State,ExitCode,DerivedExitCode,ConsumedEnergyRaw,AllocTRES,"
        "Account,Partition,QOS,DBIndex,Submit,Start,End,JobName,UID"
    )
    ids = ",".join(str(i) for i in slurm2205_jobs.ids.values())
    psv = stack.run("sacct", "-a", "-P", "-X", "-o", fields, "-j", ids)
    records = [record_from_db(j, "sacct -P") for j in parse_sacct_psv(psv).jobs]
    assert len(records) == 5 and all(r.energy_j for r in records)
    source = SlurmdbdSource(stack.db.url)
    stage = ReconcileStage(source, settle_s=600)
    now = datetime.now(UTC)
    # sacct's own values: everything matches.
    out = stage.run([fact_from_record(r) for r in records], now)
    assert [f.reconciliation.status for f in out.done] == ["match"] * 5, [
        f.reconciliation.differences for f in out.done
    ]
    # As jobcomp sends them under PrologFlags=Contain (extern step not done yet): filled.
    missing = [r.replace(energy_j=None, energy_status=EnergyStatus.MISSING) for r in records]
    out = stage.run([fact_from_record(r) for r in missing], now)
    assert [f.reconciliation.status for f in out.done] == ["energy_filled"] * 5
    assert [f.energy_it_j for f in out.done] == [r.energy_j for r in records]
    # A partial jobcomp value (the batch step only): corrected to the job's (extern) value.
    partial = [with_energy_j(r, 100) for r in records]
    out = stage.run([fact_from_record(r) for r in partial], now)
    assert {f.reconciliation.status for f in out.done} == {"energy_corrected"}
    assert all(
        f.reconciliation.differences == (f"energy_j: jobcomp=100 db={f.energy_it_j}",)
        for f in out.done
    )
    # The record of exit 1 (raw 1, printed 0:1 by jobcomp) is not a conflict with 256.
    one = next(r for r in records if r.job_name == "exit_one")
    out = stage.run([fact_from_record(one.replace(exit_code="0:1"))], now)
    assert out.done[0].reconciliation.status == "match"
    source.close()


# --- odd rows ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_db(mariadb: MariaDB, slurmdb_2505: AccountingDB) -> AccountingDB:
    """Cluster ``odd``: the real 25.05 table definitions holding odd rows."""
    db, src = "slurm_acct_db_odd", slurmdb_2505.database
    mariadb.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    for kind in ("job", "step", "assoc"):
        mariadb.execute(
            f"CREATE TABLE IF NOT EXISTS {db}.odd_{kind}_table LIKE {src}.localcluster_{kind}_table"
        )
    for table in ("tres_table", "qos_table"):
        mariadb.execute(
            f"CREATE TABLE IF NOT EXISTS {db}.{table} LIKE {src}.{table}",
            f"INSERT IGNORE INTO {db}.{table} SELECT * FROM {src}.{table}",
        )
    # Older/odd installations: a NULL TRES string.
    mariadb.execute(f"ALTER TABLE {db}.odd_job_table MODIFY tres_alloc text NULL")
    rows = [
        # id_job, id_assoc, state, time_end, tres_alloc
        (1, 999, 3, 1100, "1=1,3=500,4=1"),  # association missing
        (2, 1, 1, 0, "1=1,3=18446744073709551614"),  # still RUNNING, no end
        (3, 1, 99, 1100, "1=1"),  # not a Slurm state
        (4, 1, 3, 1100, "1=1,3=5e3,junk"),  # unreadable TRES
        (5, 1, 3, 1100, "1=1,3=5000000000000000000"),  # >= 1e18 J
        (6, 1, 3, 4700, "1=1,3=42"),  # clock skew: an hour later than the record
        (7, 1, 3, 1100, None),  # NULL TRES
    ]
    for id_job, assoc, state, end, tres in rows:
        mariadb.execute(
            f"INSERT IGNORE INTO {db}.odd_job_table (job_db_inx, id_job, id_assoc, state, "
            "time_submit, time_start, time_end, tres_alloc, cpus_req, job_name, id_resv, "
            "id_wckey, id_user, id_group, het_job_id, het_job_offset, state_reason_prev, "
            "nodes_alloc, `partition`, priority, account) VALUES "
            f"({id_job}, {id_job}, {assoc}, {state}, 1000, 1010, {end}, "
            f"{'NULL' if tres is None else repr(tres)}, 1, 'odd', 0, 0, 0, 0, 0, 4294967294, "
            "0, 1, 'debug', 1, 'acct')"
        )
    password = mariadb.add_reader(db, "readerodd")
    return AccountingDB(mariadb, db, "odd", "readerodd", password)


@pytest.mark.mariadb
def test_odd_rows_give_clear_statuses(odd_db: AccountingDB) -> None:
    source = SlurmdbdSource(odd_db.url)
    stage = ReconcileStage(source, settle_s=60)
    facts = [fact_from_record(rec("odd", i, 1000, 1010, 1100, account="acct")) for i in range(1, 8)]
    facts[0] = fact_from_record(with_energy_j(facts[0].record, 500))
    out = stage.run(facts, at(1101))
    assert [p.fact.record.job_id for p in out.retry] == [2]  # RUNNING row: not final yet
    out2 = stage.run(out.retry, at(1160))  # window over: classified as it is
    source.close()
    got = {f.record.job_id: f.reconciliation for f in out.done + out2.done}
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 7]  # nothing lost
    assert got[1].status == "match" and got[1].db_account == "acct"  # account from the job row
    assert got[2].status == "conflict"
    assert got[2].differences[0] == "state: jobcomp=COMPLETED db=RUNNING (1)"
    assert got[3].status == "conflict"
    assert got[3].differences == (
        "slurmdbd row unreadable: job_table.state 99 is not a Slurm job state",
    )
    assert got[4].status == "conflict" and "job_table.tres_alloc" in got[4].differences[0]
    assert got[5].status == "conflict"
    assert got[5].differences == ("energy_j: jobcomp=missing db=invalid(5000000000000000000)",)
    assert got[6].status == "conflict"
    assert got[6].differences == ("end_time: jobcomp=1970-01-01T00:18:20Z db=1970-01-01T01:18:20Z",)
    assert got[7].status == "match" and got[7].db_energy_j is None  # NULL TRES: not measured


# --- outage: MariaDB stopped mid-run -----------------------------------------------------------


@pytest.fixture
def own_mariadb(shared_data: Path) -> Iterator[tuple[MariaDB, AccountingDB]]:
    """A MariaDB of its own (this test stops it), holding the real 25.05 dump."""
    base = Path(tempfile.mkdtemp(prefix="jobcarbon-mariadb-outage-"))
    server = MariaDB(base)
    try:
        server.install()
        server.start()
        server.load_sql("acct", shared_data / "slurm" / "slurmdbd_25.05_example_dump.sql")
        password = server.add_reader("acct", "reader")
        yield server, AccountingDB(server, "acct", "localcluster", "reader", password)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.mariadb
def test_outage_lands_unreconciled_then_the_sweep_reconciles(
    own_mariadb: tuple[MariaDB, AccountingDB],
) -> None:
    server, db = own_mariadb
    source = SlurmdbdSource(db.url, timeout_s=2)
    stage = ReconcileStage(source, settle_s=600)
    dump = {
        3: (1754089034, 1754089034, 1754089045),
        10: (1754540923, 1754542968, 1754546574),
        11: (1754545063, 1754546574, 1754550203),
        12: (1754545326, 1754550203, 1754553803),
        13: (1754545328, 1754550203, 1754553803),
    }
    state = {3: "COMPLETED"}
    facts = [
        fact_from_record(rec("localcluster", i, *t, state=state.get(i, "TIMEOUT")))
        for i, t in dump.items()
    ]
    now = at(1800000000)
    before = stage.run(facts[:2], now)
    assert [f.reconciliation.status for f in before.done] == ["match", "match"]
    server.stop()  # slurmdbd's database goes away mid-run
    during = stage.run(facts[2:], now)
    assert during.retry == [] and len(during.done) == 3  # landed, not held, not lost
    assert {f.reconciliation.status for f in during.done} == {"unreconciled"}
    reason = during.done[0].reconciliation.differences[0]
    assert "accounting source unavailable" in reason and "127.0.0.1" in reason
    assert "Can't connect" in reason or "Lost connection" in reason or "refused" in reason
    assert during.errors == [f"3 job(s): {reason}"]
    server.start()  # back (same port and data)
    after = sweep(during.done, source, now + timedelta(hours=1))
    source.close()
    assert sorted(f.record.job_id for f in after.done) == [11, 12, 13]
    assert {f.reconciliation.status for f in after.done} == {"match"}
    assert all(f.reconciliation.attempts == 2 for f in after.done)


def test_per_record_seam_never_holds_a_fact() -> None:
    stage = ReconcileStage(SacctSource([ROW]), settle_s=600)
    found = stage(fact_from_record(rec("c", 70, 1000, 1010, 1100)))
    assert found.reconciliation.status == "energy_filled" and found.energy_it_j == 900
    # Not in the database yet: lands at once, for the sweep (the stream never waits).
    fresh = rec("c", 71, 1000, 1010, 1100).replace(end_time=datetime.now(UTC))
    waiting = stage(fact_from_record(fresh))
    assert waiting.reconciliation.status == "unreconciled"
    assert waiting.reconciliation.differences == (
        "not in slurmdbd yet; the reconcile sweep retries",
    )


class CountingSource(SacctSource):
    """An in-memory source that counts its lookups."""

    def __init__(self, jobs: list[DbJob]) -> None:
        super().__init__(jobs)
        self.lookups = 0

    def fetch(self, cluster: str, job_ids: Collection[int]) -> list[DbJob]:
        self.lookups += 1
        return super().fetch(cluster, job_ids)

    def fetch_by_inx(self, cluster: str, job_db_inxs: Collection[int]) -> list[DbJob]:
        self.lookups += 1
        return super().fetch_by_inx(cluster, job_db_inxs)


def test_batch_seam_gives_each_fact_what_the_per_record_seam_gives_it() -> None:
    rows = [
        DbJob(cluster=c, job_db_inx=100 + i, id_job=i, time_submit=1000, time_start=1010,
              time_end=1100, state=3, tres_alloc=f"1=1,3={900 + i},4=1")
        for i in range(0, 40, 2) for c in ("c", "d")
    ]  # fmt: skip
    facts = []
    for i in range(40):
        record = rec(("c", "d")[i % 2], i, 1000, 1010, 1100)
        if i % 7 == 3:
            record = record.replace(end_time=datetime.now(UTC))  # not settled: not held
        if i % 9 == 0:
            record = record.replace(event="start", end_time=None, state=None)
        if i % 11 == 5:
            record = record.replace(cluster=None)  # no cluster, no default
        facts.append(fact_from_record(record))
    single = CountingSource(rows)
    one = [ReconcileStage(single, settle_s=600)(f) for f in facts]
    batched = CountingSource(rows)
    many = ReconcileStage(batched, settle_s=600).many(facts)

    def without_times(f: JobFact) -> JobFact:
        r = f.reconciliation
        return msgspec.structs.replace(
            f, reconciliation=msgspec.structs.replace(r, checked_at=None)
        )

    assert [without_times(f) for f in many] == [without_times(f) for f in one]
    statuses = {f.reconciliation.status for f in many}
    assert {"energy_filled", "unreconciled", "not_checked"} <= statuses
    assert [f.record.job_id for f in many] == list(range(40))  # in input order
    assert batched.lookups <= 4 < single.lookups  # two clusters: at most two lookups each


def test_stage_from_settings() -> None:
    from consumers.reconcile import stage_from_settings
    from jobcarbon.settings import Settings

    settings = Settings()
    a = settings.accounting
    assert stage_from_settings(a.url, settle_s=a.settle_seconds) is None
    stage = stage_from_settings("mysql+pymysql://r:s@127.0.0.1:1/db", settle_s=30, timeout_s=1)
    assert stage is not None and stage.settle_s == 30


@pytest.mark.mariadb
def test_missing_association_reloads_the_cache_once(odd_db: AccountingDB) -> None:
    source = SlurmdbdSource(odd_db.url)
    source.fetch("odd", [1])  # id_assoc 999 is not in the table: one reload
    before = source.queries
    source.fetch("odd", [1])
    source.close()
    assert source.queries - before == 2  # jobs + steps, no reload for the known-missing id


def test_job_start_events_pass_through_unchecked() -> None:
    start = rec("c", 70, 1000, 1010, 1100).replace(event="start", end_time=None, state=None)
    out = ReconcileStage(SacctSource([ROW]), settle_s=600).run([fact_from_record(start)], at(1100))
    assert out.retry == [] and out.done[0].reconciliation.status == "not_checked"
