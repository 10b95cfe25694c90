"""Jobs and meters read back from the warehouse (SQLite and real PostgreSQL) give the same
report as the files they were loaded from; the CLI reads them with --db."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, insert

from jobcarbon.synth import Partition, generate_jobs
from schemas.fact import fact_from_record
from warehouse.models import MeterReading, table_of
from warehouse.reports.machine_room import MachineRoom, build_machine_room, job_records
from warehouse.reports.mapping import parse_mapping
from warehouse.reports.meters import parse_meters
from warehouse.reports.report import validate
from warehouse.reports.source import job_energies_from_warehouse, meters_from_warehouse
from warehouse.sink import write_facts

SMALL = (
    Partition("cpu", "cn", 8, 128, 256_000, 0, 140.0, 560.0),
    Partition("bigmem", "bm", 2, 64, 2_048_000, 0, 190.0, 720.0),
)


@pytest.fixture(scope="module")
def small_room() -> MachineRoom:
    jobs = generate_jobs(120, seed=4, partitions=SMALL, days=1.0)
    return build_machine_room(jobs, partitions=SMALL, seed=4, nodes_per_rack=4)


def load(engine: Engine, room: MachineRoom) -> None:
    result = write_facts(engine, [fact_from_record(r) for r in job_records(room.jobs)])
    assert not result.rejected
    where = {row.node: (row.rack, row.room) for row in room.mapping.itertuples()}
    racks = {rack: room_ for rack, room_ in where.values()}
    rows = []
    for r in room.meters.itertuples():
        node = r.meter_id if r.level == "node" else None
        rack = where[node][0] if node else (r.meter_id if r.level == "rack" else None)
        room_id = racks[rack] if rack else r.meter_id
        rows.append(
            {
                "meter_id": f"{r.level}:{r.meter_id}",
                "node": node,
                "rack": rack,
                "room": room_id,
                "ts": r.timestamp.to_pydatetime(),
                "power_w": None if pd.isna(r.power_w) else float(r.power_w),
                "energy_j": None if pd.isna(r.energy_j) else float(r.energy_j),
                "source": r.source,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(table_of(MeterReading)), rows)


def test_warehouse_inputs_match_the_files(engine: Engine, small_room: MachineRoom) -> None:
    load(engine, small_room)
    t = small_room.truth
    jobs, issues = job_energies_from_warehouse(engine, t.start_at, t.end_at)
    assert not issues and len(jobs) == len([j for j in small_room.jobs if j.start])
    meters, mapping = meters_from_warehouse(engine, t.start_at, t.end_at)
    assert len(meters) == len(small_room.meters)
    from_db = validate(jobs, parse_meters(meters), parse_mapping(mapping), t.start_at, t.end_at)
    from_files = validate(
        job_records(small_room.jobs),
        parse_meters(small_room.meters),
        parse_mapping(small_room.mapping),
        t.start_at,
        t.end_at,
    )
    assert from_db.job_stats == from_files.job_stats
    cols = ["node", "rack", "room", "metered_j", "attributed_j", "ratio", "flag"]
    pd.testing.assert_frame_equal(from_db.nodes[cols], from_files.nodes[cols])
    assert t.biased_node in {f["node"] for f in from_db.summary["nodes"]["flagged"]}
    # The warehouse keeps no counter maximum: the PDU wraps become resets, and say so.
    counters = from_db.summary["data_quality"]["issues"]
    assert counters.get("counter_reset", 0) >= 1


def test_cli_validate_from_the_warehouse(
    engine: Engine, small_room: MachineRoom, tmp_path: Path
) -> None:
    load(engine, small_room)
    t = small_room.truth
    proc = subprocess.run(
        [
            sys.executable, "-m", "jobcarbon", "report", "validate",
            "--from", t.start_at.isoformat(),
            "--to", (t.end_at + timedelta(hours=1)).isoformat(),
            "--db", engine.url.render_as_string(hide_password=False),
            "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["jobs"]["jobs"] == len([j for j in small_room.jobs if j.start])
    assert summary["nodes"]["count"] == 10 and summary["nodes"]["metered"] == 10
