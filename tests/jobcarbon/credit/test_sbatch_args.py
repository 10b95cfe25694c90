"""Reading and rewriting sbatch command lines."""

from __future__ import annotations

import pytest

from jobcarbon.credit.sbatch_args import command, format_time, parse_sbatch, parse_time_s, rewrite

SCRIPT = """#!/bin/bash
#SBATCH --job-name=lmp
#SBATCH -N 2 --time=1:00:00
#SBATCH --partition=cpu  # comment
srun lmp -in in.lj
#SBATCH --nodes=99
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("10:30", 630),
        ("1:00:00", 3600),
        ("2-0", 172800),
        ("1-2:30", 95400),
        ("1-00:00:01", 86401),
    ],
)
def test_slurm_times(text: str, seconds: int) -> None:
    assert parse_time_s(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "0", "1:2:3:4", "infinite", "-5"])
def test_bad_times(bad: str) -> None:
    with pytest.raises(ValueError, match="--time"):
        parse_time_s(bad)


def test_format_time_roundtrip() -> None:
    for s in (60, 3600, 95400, 86401):
        assert parse_time_s(format_time(s)) == s


def test_script_directives_and_command_line() -> None:
    r = parse_sbatch(["-A", "proj", "--nodes=4", "-c8", "job.sh", "arg1"], SCRIPT)
    assert r.account == "proj" and r.partition == "cpu" and r.job_name == "lmp"
    assert r.nodes == 4  # command line wins; the directive after the first command is ignored
    assert r.time_limit_s == 3600 and r.cpus == 8
    assert r.script == "job.sh" and r.script_args == ("arg1",)


def test_rewrite_replaces_time_nodes_and_adds_begin() -> None:
    r = parse_sbatch(["-t", "30", "--nodes", "2", "--mail-type=END", "-Aproj", "job.sh"])
    new = rewrite(r, time_limit_s=7200, nodes=1, begin="now+3600")
    assert command(new, "/usr/bin/sbatch") == [
        "/usr/bin/sbatch",
        "--mail-type=END",
        "-Aproj",
        "--time=02:00:00",
        "--nodes=1",
        "--begin=now+3600",
        "job.sh",
    ]
    assert new.time_limit_s == 7200 and new.nodes == 1


def test_gpus_and_node_ranges() -> None:
    r = parse_sbatch(["--gpus=a100:4", "-N", "2-4", "x.sh"])
    assert r.gpus == 4 and r.nodes == 2
    with pytest.raises(ValueError, match="--nodes"):
        parse_sbatch(["--nodes=lots", "x.sh"])
