"""``jobcarbon credit sweep`` and ``deny-list`` on a real PostgreSQL warehouse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from jobcarbon.cli import cli
from jobcarbon.credit.sql import SqlCreditStore
from tests.services.credit_api import BOB_JOB, POLICY

pytestmark = pytest.mark.postgres


def test_sweep_and_deny_list(warehouse_engine: Engine, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = {
        "JOBCARBON_WAREHOUSE__URL": warehouse_engine.url.render_as_string(hide_password=False),
        "JOBCARBON_CREDIT__POLICY_FILE": str(policy),
        "JOBCARBON_CREDIT__CLUSTER": BOB_JOB.cluster,
    }
    # The CLI runs on the real clock: charge bob's account 5 g this month (budget: 1 g).
    SqlCreditStore(warehouse_engine, cluster=BOB_JOB.cluster).adjust(
        account=BOB_JOB.account, user=None, amount_g=5.0, note="test charge",
        now=datetime.now(UTC), actor="test",
    )  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(cli, ["credit", "sweep"], env=env)
    assert result.exit_code == 0, result.output
    assert "settled 0 reservation(s), released 0" in result.output
    out = tmp_path / "deny.txt"
    result = runner.invoke(cli, ["credit", "deny-list", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines == [BOB_JOB.account]
    assert (out.stat().st_mode & 0o777) == 0o644
