"""The CLI shells: normalize (exit codes, rejects file, summary), synth, demo, golden output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "jobcarbon", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_normalize_counts_rejects_and_exits_zero(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    good = run("synth", "--jobs", "20", "--seed", "1", "--slurm-version", "mix").stdout
    raw.write_bytes(good + b"not json\n\xff\xfe\n{}\n" + b'{"jobid":1,"@submit":"x"}\n')
    rejects = tmp_path / "rejects.jsonl"
    proc = run("normalize", str(raw), "--rejects", str(rejects))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 20
    required = {
        "job_id",
        "cluster",
        "event",
        "user",
        "account",
        "partition",
        "job_name",
        "submit_time",
        "start_time",
        "end_time",
        "elapsed_s",
        "node_count",
        "cpus",
        "mem_mb",
        "gpus",
        "energy_j",
        "energy_status",
        "array_job_id",
        "array_task_id",
        "het_job_id",
        "het_job_offset",
    }
    for line in lines:
        assert required <= set(json.loads(line))
    bad = [json.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [b["reason"] for b in bad] == [
        "invalid_json",
        "undecodable",
        "missing_field",
        "invalid_field",
    ]
    assert all(b["detail"] and "raw" in b for b in bad)
    assert b"normalized 20 record(s), rejected 4" in proc.stderr


def test_normalize_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("normalize").returncode == 2
    assert run("normalize", str(tmp_path / "missing.jsonl")).returncode == 2
    assert run("normalize", "--bogus-flag", "x").returncode == 2


def test_normalize_reads_stdin() -> None:
    proc = run("normalize", "-", stdin=b'{"jobid":3,"@submit":"2024-01-01T00:00:00"}\x00\n')
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["job_id"] == 3


def test_synth_is_deterministic_bytes() -> None:
    a = run("synth", "--jobs", "50", "--seed", "3", "--slurm-version", "mix").stdout
    b = run("synth", "--jobs", "50", "--seed", "3", "--slurm-version", "mix").stdout
    assert a == b and len(a.splitlines()) == 50


def test_golden_normalized_output() -> None:
    """CEEMS-style golden file: synth | normalize, whole output compared."""
    raw = run(
        "synth", "--jobs", "60", "--seed", "42", "--slurm-version", "mix", "--start-events"
    ).stdout
    out = run("normalize", "-", stdin=raw).stdout
    golden = GOLDEN / "normalize_mix_seed42.jsonl"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_bytes(out)
    assert out == golden.read_bytes(), "normalized output changed; UPDATE_GOLDEN=1 to accept"


@pytest.mark.broker
@pytest.mark.timeout(300)
def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    """Broker, workers, real intensity, reconciliation and the validation report, end to end;
    the footprint table's CO2e is real (not empty) and the report exists."""
    proc = run("demo", "--jobs", "300", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "Top users by energy" in out and "CO2e kg" in out
    swept = next(line for line in out.splitlines() if line.startswith("swept "))
    assert "match" in swept and "rejected 0" in swept
    first_row = out.split("Top users by energy")[1].splitlines()[3].split()
    assert float(first_row[4].replace(",", "")) > 0  # CO2e kg of the top user
    report = tmp_path / "out" / "validation" / "report.html"
    assert report.is_file() and "<svg" in report.read_text()
    assert f"Validation report: {report.resolve()}" in out
