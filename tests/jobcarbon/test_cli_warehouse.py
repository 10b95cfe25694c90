"""The warehouse CLI shells on SQLite: db upgrade/downgrade, load (twice), jobs, usage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobcarbon.cli import cli


class _Done:
    """What a run gave: exit code, stdout, stderr (as subprocess would)."""

    def __init__(self, result: Result) -> None:
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def run(*args: str, cwd: Path) -> _Done:
    """Run the CLI in-process (a subprocess per command costs seconds of imports)."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return _Done(CliRunner().invoke(cli, list(args), catch_exceptions=False))
    finally:
        os.chdir(here)


def test_db_load_jobs_usage(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    raw = run("synth", "--jobs", "300", "--seed", "4", "--slurm-version", "mix", cwd=tmp_path)
    (tmp_path / "raw.jsonl").write_text(raw.stdout)
    norm = run("normalize", "raw.jsonl", cwd=tmp_path)
    assert norm.returncode == 0, norm.stderr
    (tmp_path / "norm.jsonl").write_text(norm.stdout + "not json\n")

    refused = run("load", "--db", db, "norm.jsonl", cwd=tmp_path)
    assert refused.returncode != 0 and "db upgrade" in refused.stderr

    up = run("db", "upgrade", "--db", db, cwd=tmp_path)
    from warehouse.migrate import head

    assert up.returncode == 0 and f"revision {head()}" in up.stdout, up.stderr
    first = run("load", "--db", db, "--rejects", "rejects.jsonl", "norm.jsonl", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "inserted 300," in first.stderr and "unreadable lines 1" in first.stderr
    [reject] = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 301 and "not JSON" in reject["reason"]
    again = run("load", "--db", db, "norm.jsonl", cwd=tmp_path)
    assert "inserted 0, updated 0, unchanged 300," in again.stderr

    user = json.loads(norm.stdout.splitlines()[0])["user"]
    listing = run("jobs", "--db", db, "--user", user, "--since", "2000-01-01", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    body = listing.stdout.splitlines()
    assert body[0].split()[:8] == ["cluster", "job_id", "user", "account", "end", "elapsed",
                                   "energy_kwh", "facility_kwh"]  # fmt: skip
    assert len(body) > 2 and all(line.split()[2] == user for line in body[2:])
    everyone = run("jobs", "--db", db, "--all-users", "--since", "2000-01-01", cwd=tmp_path)
    assert "300 job(s)" in everyone.stderr
    bad = run("jobs", "--db", db, "--since", "last tuesday", cwd=tmp_path)
    assert bad.returncode == 2 and "'last tuesday' is not a date" in bad.stderr

    totals = run("usage", "--db", db, "--by", "account", "--since", "2000-01-01", cwd=tmp_path)
    assert totals.returncode == 0, totals.stderr
    jobs = sum(int(line.split()[1].replace(",", "")) for line in totals.stdout.splitlines()[2:])
    assert jobs == 300

    down = run("db", "downgrade", "--db", db, "base", cwd=tmp_path)
    assert down.returncode == 0 and "revision base" in down.stdout


@pytest.mark.postgres
def test_load_copy_with_deferred_indexes(tmp_path: Path, pg_database: str) -> None:
    raw = run("synth", "--jobs", "200", "--seed", "5", "--slurm-version", "mix", cwd=tmp_path)
    (tmp_path / "raw.jsonl").write_text(raw.stdout)
    norm = run("normalize", "raw.jsonl", cwd=tmp_path)
    (tmp_path / "norm.jsonl").write_text(norm.stdout)
    assert run("db", "upgrade", "--db", pg_database, cwd=tmp_path).returncode == 0
    alone = run("load", "--db", pg_database, "--defer-indexes", "norm.jsonl", cwd=tmp_path)
    assert alone.returncode == 2 and "--defer-indexes goes with --copy" in alone.stderr
    args = ("load", "--db", pg_database, "--copy", "--defer-indexes", "norm.jsonl")
    first = run(*args, cwd=tmp_path)
    assert first.returncode == 0 and "inserted 200," in first.stderr, first.stderr
    assert "unchanged 200," in run(*args, cwd=tmp_path).stderr
    from sqlalchemy import create_engine

    from warehouse.indexes import SECONDARY_INDEXES

    engine = create_engine(pg_database)
    with engine.connect() as conn:
        names = {n for (n,) in conn.exec_driver_sql("SELECT indexname FROM pg_indexes")}
    engine.dispose()
    assert {ix.name for ix in SECONDARY_INDEXES} <= names
