"""The slurmdbd source against both real schemas: the 25.05 dump and Debian's 22.05 slurmdbd.

25.05: values written out by hand from the dump rows, as ``sacct`` prints them.
22.05: jobs run by real slurmctld/slurmd; compared field by field with the real ``sacct``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumers.reconcile.accounting import (
    AccountingSchemaError,
    AccountingUnavailable,
    SlurmdbdSource,
    check_cluster,
)
from consumers.reconcile.rules import (
    STEP_BATCH,
    STEP_EXTERN,
    alloc_tres_text,
    decode_exit,
    expected_job_energy,
    print_sluid,
    sluid_to_db_inx,
    state_name,
)
from schemas.job import EnergyStatus
from tests.services.mariadb import AccountingDB, free_port
from tests.services.slurmdbd import SlurmJobs


@pytest.fixture(scope="module")
def source_2505(slurmdb_2505: AccountingDB) -> Iterator[SlurmdbdSource]:
    source = SlurmdbdSource(slurmdb_2505.url)
    yield source
    source.close()


@pytest.mark.mariadb
class TestSlurm2505Dump:
    def test_job_3_as_sacct_prints_it(self, source_2505: SlurmdbdSource) -> None:
        (job,) = source_2505.fetch("localcluster", [3])
        # Row: (13449544674499264512, ..., 'slurm_test', ..., state 3, timelimit 2,
        #       1754089034, ..., 1754089045, tres_alloc '1=1,2=94946,3=18446744073709551614,...')
        assert job.job_db_inx == 13449544674499264512  # sacct DBIndex
        assert job.time_submit == 1754089034 and job.time_end == 1754089045
        assert state_name(job.state) == "COMPLETED"
        assert decode_exit(job.exit_code) == "0:0"  # ExitCode
        assert job.energy.joules is None  # ConsumedEnergyRaw: blank (3=NO_VAL64)
        assert job.energy.status is EnergyStatus.MISSING
        assert alloc_tres_text(job.tres_alloc, job.tres_names) == (
            "billing=1,cpu=1,mem=94946M,node=1"
        )
        assert (job.account, job.partition, job.qos, job.user) == (
            "root",
            "debug",
            "normal",
            "root",
        )
        assert job.account_path == ()  # lineage '/0-root/'
        assert job.timelimit == 2  # minutes
        assert [(s.label, s.consumed_energy, s.exit_code) for s in job.steps] == [("batch", 0, 0)]

    def test_job_10_timeout_in_a_sub_account(self, source_2505: SlurmdbdSource) -> None:
        (job,) = source_2505.fetch("localcluster", [10])
        assert state_name(job.state) == "TIMEOUT"
        assert (job.account, job.user, job.id_user) == ("oit", "rromero", 1000)
        assert job.account_path == ("ucmerced", "oit")  # lineage /ucmerced/oit/0-rromero/
        assert (job.time_start, job.time_end) == (1754542968, 1754546574)  # Elapsed 01:00:06
        assert alloc_tres_text(job.tres_alloc, job.tres_names) == (
            "billing=177,cpu=1,mem=90000M,node=1"
        )
        (batch,) = job.steps
        assert batch.id_step == STEP_BATCH and decode_exit(batch.exit_code) == "0:15"  # SIGTERM
        assert batch.tres_usage_in_tot == "1=3596120,2=1114112,3=0,6=25414,7=0,8=0"

    def test_gres_names_come_from_tres_table(self, source_2505: SlurmdbdSource) -> None:
        (job,) = source_2505.fetch("localcluster", [11])
        assert alloc_tres_text(job.tres_alloc, job.tres_names) == (
            "billing=406,cpu=10,gres/gpu=1,gres/gpu:quadro_m2000=1,mem=90000M,node=1"
        )

    def test_lookup_by_sluid(self, source_2505: SlurmdbdSource) -> None:
        inx = sluid_to_db_inx("sBN9K1KW4S9000")
        (job,) = source_2505.fetch_by_inx("localcluster", [inx])
        assert job.id_job == 1 and print_sluid(job.job_db_inx) == "sBN9K1KW4S9000"
        assert job.job_db_inx >> 52 == 2986  # cluster_table.id of localcluster

    def test_batched_lookup_is_two_queries(self, source_2505: SlurmdbdSource) -> None:
        source_2505.fetch("localcluster", [1])  # warm the TRES/QoS/assoc caches
        before = source_2505.queries
        jobs = source_2505.fetch("localcluster", [*range(1, 14), 999_999])
        assert sorted(j.id_job for j in jobs) == list(range(1, 14))
        assert source_2505.queries - before == 2  # jobs + steps

    def test_fetch_one_by_natural_key(self, source_2505: SlurmdbdSource) -> None:
        job = source_2505.fetch_one("localcluster", 12, 1754545326)
        assert job is not None and job.job_db_inx == 13449545141743028224
        assert source_2505.fetch_one("localcluster", 12, 1754545327) is None

    def test_ended_between(self, source_2505: SlurmdbdSource) -> None:
        jobs = source_2505.ended_between("localcluster", 1754550203, 1754553804)
        assert sorted(j.id_job for j in jobs) == [11, 12, 13]


@pytest.mark.mariadb
@pytest.mark.parametrize(
    "cluster", ["x; DROP TABLE tres_table", "a`b", "", "../etc", "c\x00", "a" * 65, "cluster name"]
)
def test_hostile_cluster_names_never_reach_sql(source_2505: SlurmdbdSource, cluster: str) -> None:
    with pytest.raises(ValueError, match="not a valid Slurm cluster name"):
        source_2505.fetch(cluster, [1])
    assert check_cluster("localcluster") == "localcluster"


@pytest.mark.mariadb
def test_unknown_cluster_is_a_schema_error(source_2505: SlurmdbdSource) -> None:
    with pytest.raises(AccountingSchemaError, match="nocluster_job_table"):
        source_2505.fetch("nocluster", [1])


def test_unreachable_database_is_a_clear_retryable_error() -> None:
    source = SlurmdbdSource(f"mysql+pymysql://r:secret@127.0.0.1:{free_port()}/db", timeout_s=1)
    with pytest.raises(AccountingUnavailable, match=r"127\.0\.0\.1") as info:
        source.fetch("c", [1])
    assert "secret" not in str(info.value)


@pytest.fixture(scope="module")
def jobs(slurm2205_jobs: SlurmJobs) -> Iterator[tuple[SlurmJobs, SlurmdbdSource]]:
    source = SlurmdbdSource(slurm2205_jobs.stack.db.url)
    yield slurm2205_jobs, source
    source.close()


@pytest.mark.mariadb
@pytest.mark.slurmdbd
class TestSlurm2205RealJobs:
    """Rows written by Debian's slurmdbd 22.05 for jobs run by real slurmctld/slurmd."""

    def test_every_field_equals_real_sacct(self, jobs: tuple[SlurmJobs, SlurmdbdSource]) -> None:
        real, source = jobs
        fields = (
            "JobIDRaw,State,ExitCode,DerivedExitCode,ConsumedEnergyRaw,AllocTRES,"
            "Account,Partition,QOS,DBIndex,Submit"
        )
        out = real.stack.run(
            "sacct",
            "-n",
            "-P",
            "-a",
            "-X",
            "-o",
            fields,
            "-j",
            ",".join(str(i) for i in real.ids.values()),
        )
        rows = {int(line.split("|")[0]): line.split("|") for line in out.splitlines()}
        dbjobs = {j.id_job: j for j in source.fetch("c2205", list(rows))}
        assert set(dbjobs) == set(rows)
        for id_job, (_, state, ec, dec, energy, alloc, account, part, qos, inx, _) in rows.items():
            job = dbjobs[id_job]
            mine = [
                state_name(job.state),
                decode_exit(job.exit_code),
                decode_exit(job.derived_ec),
                "" if job.energy.joules is None else str(job.energy.joules),
                alloc_tres_text(job.tres_alloc, job.tres_names),
                job.account,
                job.partition,
                job.qos,
                str(job.job_db_inx),
            ]
            assert mine == [state, ec, dec, energy, alloc, account, part, qos, inx], id_job

    def test_energy_is_the_extern_step_under_contain(
        self, jobs: tuple[SlurmJobs, SlurmdbdSource]
    ) -> None:
        real, source = jobs
        for job in source.fetch("c2205", real.ids.values()):
            extern = [s for s in job.steps if s.id_step == STEP_EXTERN]
            assert len(extern) == 1
            # 100 W fake counters: each job ran >= 2 s, so >= 100 J; the job = extern step.
            assert job.energy.joules == extern[0].consumed_energy >= 100
            assert expected_job_energy(job.steps) == job.energy

    def test_exit_1_is_stored_as_256(self, jobs: tuple[SlurmJobs, SlurmdbdSource]) -> None:
        real, source = jobs
        (job,) = source.fetch("c2205", [real.ids["exit_one"]])
        assert (job.exit_code, decode_exit(job.exit_code), state_name(job.state)) == (
            256,
            "1:0",
            "FAILED",
        )
        assert (job.account, job.account_path, job.partition) == (
            "proj2",
            ("proj1", "proj2"),
            "other",
        )

    def test_array_tasks(self, jobs: tuple[SlurmJobs, SlurmdbdSource]) -> None:
        real, source = jobs
        master = real.ids["array"]
        tasks = [j for j in source.fetch("c2205", range(master, master + 2)) if j.id_array_job]
        assert sorted((j.id_array_job, j.id_array_task) for j in tasks) == [
            (master, 0),
            (master, 1),
        ]
        assert all(j.het_job_id == 0 and j.het_job_offset == 4294967294 for j in tasks)
