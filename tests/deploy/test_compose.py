"""docker-compose.yml is valid for docker-compose (v1, no engine needed), refuses to start
without its secrets, and wires every service the deployment docs promise."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, unavailable

pytestmark = pytest.mark.compose

SECRETS = {
    "JOBCARBON_DB_PASSWORD": "pg-secret",
    "JOBCARBON_ACCT_PASSWORD": "acct-secret",
    "JOBCARBON_ADMIN_TOKEN": "admin-token",
    "MARIADB_ROOT_PASSWORD": "root-secret",
    "SLURMDBD_DB_PASSWORD": "dbd-secret",
    "MUNGE_KEY_FILE": "/etc/munge/munge.key",
}


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose is not installed (scripts/install.d/90-compose.sh)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBCARBON_", "MARIADB_"))}
    return subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_compose_file_is_valid_with_secrets_set() -> None:
    proc = _compose("config", "-q", env=SECRETS)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_run_without_each_secret(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    proc = _compose("config", "-q", env=env)
    assert proc.returncode != 0
    assert missing in proc.stderr


def test_compose_services_and_wiring() -> None:
    proc = _compose("config", env=SECRETS)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    services = config["services"]
    assert {
        "kafka",
        "kafka-topics",
        "postgres",
        "mariadb",
        "slurmdbd",
        "migrate",
        "worker",
        "credit-api",
    } <= set(services)
    for name in ("kafka", "postgres", "mariadb", "worker", "credit-api"):
        assert "healthcheck" in services[name], name
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    worker_env = services["worker"]["environment"]
    assert "pg-secret" in worker_env["JOBCARBON_WAREHOUSE__URL"]
    assert worker_env["JOBCARBON_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (
        services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    )
    assert set(config["volumes"]) == {"kafka-data", "pg-data", "mariadb-data"}


def test_deploy_files_exist_for_every_mount() -> None:
    for path in (
        "deploy/jobcarbon.toml",
        "deploy/mariadb-init/01-jobcarbon-reader.sh",
        "deploy/slurmdbd/Dockerfile",
        "deploy/slurmdbd/slurmdbd.conf",
        "deploy/systemd/jobcarbon-worker@.service",
        "deploy/systemd/jobcarbon-api.service",
    ):
        assert (REPO / path).is_file(), path
    assert Path(REPO / "deploy/compose.env.example").read_text().count("=") >= len(SECRETS)


def _cli_accepts(argv: list[str]) -> None:
    """``jobcarbon ARGV`` names a real command and only options that command has."""
    from click.testing import CliRunner

    from jobcarbon.cli import cli

    words = [a for a in argv if not a.startswith("-")]
    options = [a.split("=")[0] for a in argv if a.startswith("--")]
    # The subcommand path is the leading words that are commands (values follow options).
    path: list[str] = []
    for word in words:
        result = CliRunner().invoke(cli, [*path, word, "--help"])
        if result.exit_code != 0:
            break
        path.append(word)
    assert path, f"'jobcarbon {' '.join(argv)}': no such command"
    help_text = CliRunner().invoke(cli, [*path, "--help"]).output
    for option in options:
        assert option in help_text, f"'jobcarbon {' '.join(path)}' has no option {option}"


def test_every_jobcarbon_command_in_compose_exists() -> None:
    proc = _compose("config", env=SECRETS)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    commands = [
        s["command"]
        for s in services.values()
        if s.get("image", "").startswith("jobcarbon") and "command" in s
    ]
    assert len(commands) >= 3
    for command in commands:
        _cli_accepts(command)


def test_every_jobcarbon_command_in_systemd_units_exists() -> None:
    for unit in (REPO / "deploy" / "systemd").glob("*.service"):
        for line in unit.read_text().splitlines():
            if "/bin/jobcarbon " in line and line.startswith(("ExecStart=", "ExecStartPre=")):
                argv = line.split("/bin/jobcarbon ", 1)[1].replace("%i", "1").split()
                _cli_accepts(argv)
