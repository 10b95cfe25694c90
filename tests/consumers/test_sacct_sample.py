"""The real CSCS santis job 38113 (sacct output in shared/data) as a jobcomp record."""

import csv
from pathlib import Path

from consumers.ingest import normalize_bytes
from schemas.hostlist import expand_hostlist
from schemas.job import EnergyStatus, JobRecord


def _rows(shared_data: Path) -> list[dict[str, str]]:
    path = shared_data / "slurm" / "cscs_santis_sacct_energy_job38113.psv"
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="|"))


def test_record_built_from_real_sacct_values(shared_data: Path) -> None:
    job = _rows(shared_data)[0]
    assert job["JobID"] == "38113"
    start = job["Start"][:10] + "T" + job["Start"][11:]
    end = job["End"][:10] + "T" + job["End"][11:]
    # What a 24.11 jobcomp/kafka record for this job carries (AllocTRES as tres_alloc).
    value = (
        '{{"jobid":38113,"username":"{}","@start":"{}","@end":"{}","elapsed":{},'
        '"partition":"{}","nodes":"{}","total_cpus":{},"total_nodes":{},"state":"{}",'
        '"@submit":"{}","cluster":"{}","job_name":"{}","tres_alloc":"{}"}}'.format(
            job["User"],
            start,
            end,
            job["ElapsedRaw"],
            job["Partition"],
            job["NodeList"],
            job["NCPUS"],
            job["NNodes"],
            job["State"],
            start,
            job["Cluster"],
            job["JobName"],
            job["AllocTRES"],
        )
    ).encode()
    record = normalize_bytes(value)
    assert isinstance(record, JobRecord)
    assert record.energy_j == int(job["ConsumedEnergyRaw"]) == 20543125
    assert record.energy_status is EnergyStatus.MEASURED
    assert record.mem_mb == 1840000 and record.cpus == 1152 and record.node_count == 4
    assert len(expand_hostlist(record.nodes)) == 4
    assert record.elapsed_s == 2102
    # sacct's job ConsumedEnergy is the extern step's (PrologFlags=Contain), not a sum.
    steps = {r["JobID"]: int(r["ConsumedEnergyRaw"]) for r in _rows(shared_data)[1:3]}
    assert steps["38113.extern"] == record.energy_j
    assert steps["38113.batch"] != record.energy_j
