"""A synthetic machine room and its validation, built once per session (about 15 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobcarbon.synth import generate_jobs
from warehouse.reports.machine_room import MachineRoom, build_machine_room, job_records
from warehouse.reports.mapping import parse_mapping
from warehouse.reports.meters import parse_meters
from warehouse.reports.report import ReportSummary, Validation, build_validation_report, validate


@pytest.fixture(scope="session")
def room() -> MachineRoom:
    """1,200 synth jobs on the default partitions, about 2.2 days of meters."""
    return build_machine_room(generate_jobs(1_200, seed=3), seed=3)


@pytest.fixture(scope="session")
def room_validation(room: MachineRoom) -> Validation:
    return validate(
        job_records(room.jobs),
        parse_meters(room.meters),
        parse_mapping(room.mapping),
        room.truth.start_at,
        room.truth.end_at,
    )


@pytest.fixture(scope="session")
def room_report(room: MachineRoom, tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    out: Path = tmp_path_factory.mktemp("report")
    return build_validation_report(
        job_records(room.jobs),
        room.meters,
        room.mapping,
        room.truth.start_at,
        room.truth.end_at,
        out,
    )
