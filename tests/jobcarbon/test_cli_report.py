"""``jobcarbon report synth-meters`` then ``report validate``: the shell moves files, the
report finds what the synthetic room injected (CSV and Parquet meters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobcarbon", "report", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_synth_meters_then_validate(tmp_path: Path, fmt: str) -> None:
    room = tmp_path / "room"
    proc = run("synth-meters", "--jobs", "400", "--seed", "5", "--format", fmt, "--out", str(room))
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((room / "truth.json").read_text())
    out = tmp_path / "out"
    proc = run(
        "validate",
        "--from",
        truth["start_at"],
        "--to",
        truth["end_at"],
        "--meters",
        str(room / f"meters.{fmt}"),
        "--mapping",
        str(room / "mapping.csv"),
        "--jobs",
        str(room / "jobs.jsonl"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{truth['biased_node']} (bias)" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    flagged = {f["node"]: f for f in summary["nodes"]["flagged"]}
    assert abs(flagged[truth["biased_node"]]["bias"] - truth["slurm_bias"]) < 0.01
    assert summary["jobs"]["jobs"] == 400
    assert (out / "report.html").stat().st_size > 50_000


def test_validate_rejects_a_backwards_window_and_missing_jobs(tmp_path: Path) -> None:
    meters = tmp_path / "m.csv"
    meters.write_text("timestamp,level,meter_id,power_w\n2024-03-05T20:00:00Z,node,a,1\n")
    proc = run(
        "validate", "--from", "2024-03-06", "--to", "2024-03-05", "--meters", str(meters),
        "--jobs", str(meters), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert proc.returncode == 2 and "is not after" in proc.stderr
    proc = run(
        "validate", "--from", "2024-03-05", "--to", "2024-03-06", "--meters", str(meters),
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert proc.returncode == 2 and "--jobs" in proc.stderr
