"""``jobcarbon sbatch`` against the real credit API (uvicorn, PostgreSQL, munged).

No Slurm runs in this test, so the real ``sbatch`` is replaced by a stand-in script on PATH
that records its argv and prints what sbatch prints ("Submitted batch job N"). Everything
else is real: the API server, the MUNGE credentials the CLI mints, the warehouse and ledger.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobcarbon.cli import cli
from tests.services.credit_api import Server

pytestmark = [pytest.mark.postgres, pytest.mark.munge]

FAKE_SBATCH = """#!/bin/sh
# stand-in for sbatch (no Slurm in this test): record argv, answer like sbatch
printf '%s\\n' "$@" > "{log}"
echo "Submitted batch job {job_id}"
"""


@pytest.fixture
def env(api_server: Server, tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "job.sh"
    job = api_server.alice
    script.write_text(
        f"#!/bin/bash\n#SBATCH --partition={job.partition}\n#SBATCH -J {job.job_name}\nsrun true\n"
    )
    fake = tmp_path / "sbatch"
    fake.write_text(FAKE_SBATCH.format(log=tmp_path / "argv.txt", job_id=4242))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {
        "JOBCARBON_CREDIT__API_URL": api_server.url,
        "JOBCARBON_CREDIT__MUNGE_SOCKET": api_server.socket,
        "JOBCARBON_SBATCH_BIN": str(fake),
        "SBATCH_ACCOUNT": job.account,
        "PATH": os.environ["PATH"],
        "TMP": str(tmp_path),
    }


def argv_of(env: dict[str, str]) -> list[str]:
    return (Path(env["TMP"]) / "argv.txt").read_text().splitlines()


def run(env: dict[str, str], args: list[str], input: str = "") -> object:
    return CliRunner().invoke(cli, ["sbatch", *args], input=input, env=env, catch_exceptions=False)


def test_interactive_edit_then_submit(api_server: Server, env: dict[str, str]) -> None:
    job = api_server.alice
    script = str(Path(env["TMP"]) / "job.sh")
    result = run(
        env,
        [
            "--carbon-user",
            job.user.name,
            "-N",
            str(max(1, len(job.nodes))),
            "-t",
            "4:00:00",
            "--mail-type=END",
            script,
            "in.lj",
        ],
        input="e\n2:00:00\n1\ns\n",
    )
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 0, out  # type: ignore[attr-defined]
    assert out.count("Your emissions") == 2  # checked, edited, checked again
    for row in (
        "past jobs",
        "running/pending jobs",
        "available credit",
        "average CO2 rate",
        "submission date",
        "predicted energy",
        "predicted CO2e",
        "km by train",
    ):
        assert row in out
    assert "walltime / nodes               04:00:00" in out
    assert "walltime / nodes               02:00:00 / 1" in out
    assert "Submitted batch job 4242" in out
    argv = argv_of(env)
    assert argv[-2:] == [script, "in.lj"]
    assert "--time=02:00:00" in argv and "--nodes=1" in argv and "--mail-type=END" in argv
    assert "-t" not in argv and "-N" not in argv


def test_cancel_runs_nothing(api_server: Server, env: dict[str, str]) -> None:
    script = str(Path(env["TMP"]) / "job.sh")
    result = run(
        env, ["--carbon-user", api_server.alice.user.name, "-t", "60", script], input="c\n"
    )
    assert result.exit_code == 0 and "cancelled" in result.output  # type: ignore[attr-defined]
    assert not (Path(env["TMP"]) / "argv.txt").exists()


def test_non_interactive_submit_reserves(api_server: Server, env: dict[str, str]) -> None:
    import httpx

    from tests.services.credit_api import ADMIN_TOKEN

    script = str(Path(env["TMP"]) / "job.sh")
    result = run(
        env,
        [
            "--carbon-choice",
            "s",
            "--carbon-user",
            api_server.alice.user.name,
            "-t",
            "1:00:00",
            script,
        ],
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    ledger = httpx.get(
        f"{api_server.url}/v1/admin/ledger",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        params={"user": api_server.alice.user.name},
    ).json()
    assert any(e["job_id"] == 4242 and e["entry_type"] == "reservation" for e in ledger), (
        json.dumps(ledger)[:500]
    )


def test_deny_is_honoured(api_server: Server, env: dict[str, str]) -> None:
    bob = api_server.bob
    env = {**env, "SBATCH_ACCOUNT": bob.account}
    script = str(Path(env["TMP"]) / "job.sh")
    result = run(
        env,
        [
            "--carbon-choice",
            "s",
            "--carbon-user",
            bob.user.name,
            "-p",
            bob.partition,
            "-t",
            "1:00:00",
            script,
        ],
    )
    assert result.exit_code == 1
    assert "DENY" in result.output  # type: ignore[attr-defined]
    assert not (Path(env["TMP"]) / "argv.txt").exists()


def test_usage_errors(api_server: Server, env: dict[str, str]) -> None:
    script = str(Path(env["TMP"]) / "job.sh")
    result = run(env, ["--carbon-user", api_server.alice.user.name, script])
    assert result.exit_code == 2 and "walltime" in result.output  # type: ignore[attr-defined]
    result = run(env, ["--carbon-user", api_server.alice.user.name, "-t", "soon", script])
    assert result.exit_code == 2 and "--time: 'soon'" in result.output  # type: ignore[attr-defined]
