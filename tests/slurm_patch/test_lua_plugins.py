"""The Slurm Lua plugins in a real Lua 5.3 interpreter (with lua-cjson, curl and munge),
against the real credit API (uvicorn, PostgreSQL, munged).

harness.lua stands in for the slurmctld / sbatch host environment only (the ``slurm`` table
each plugin gets from Slurm 24.11: no log_user in cli_filter): no Slurm daemon runs here.
The plugins' own code,
their HTTP calls, MUNGE credentials and file reads are real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, unavailable
from tests.services.credit_api import ADMIN_TOKEN, Server

pytestmark = [pytest.mark.lua, pytest.mark.postgres, pytest.mark.munge]
LUA = shutil.which("lua5.3")
HARNESS = Path(__file__).parent / "harness.lua"
PLUGINS = REPO / "slurm_patch" / "lua"


def run_lua(plugin: str, calls: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    if LUA is None:
        unavailable("lua5.3 is not installed (scripts/install.d/71-lua.sh)")
    out = subprocess.run(
        [str(LUA), str(HARNESS), str(PLUGINS / plugin), json.dumps(calls)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # cli_filter/lua has no slurm.log_user in Slurm 24.11: the plugin writes to stderr.
    return {**json.loads(out.stdout), "stderr": out.stderr.splitlines()}


def env_for(server: Server, user: str) -> dict[str, str]:
    return {
        "JOBCARBON_CREDIT_API_URL": server.url,
        "JOBCARBON_MUNGE_SOCKET": server.socket,
        "JOBCARBON_USER": user,
    }


def options(job: Any, **over: str) -> dict[str, str]:
    base = {"account": job.account, "partition": job.partition, "time": "02:00:00",
            "nodes": str(max(1, len(job.nodes))), "job-name": job.job_name}  # fmt: skip
    return {**base, **over}


def test_cli_filter_checks_then_reserves(api_server: Server) -> None:
    alice = api_server.alice
    out = run_lua(
        "cli_filter.lua",
        [{"call": "slurm_cli_pre_submit", "args": [options(alice), 0]},
         {"call": "slurm_cli_post_submit", "args": [0, 5551, 0]}],
        env_for(api_server, alice.user.name),
    )  # fmt: skip
    assert out["results"] == [0, 0], out
    assert not out["user"], out  # nothing calls a log_user that Slurm does not provide
    text = "\n".join(out["stderr"])
    assert "your emissions, last 28 days" in text and "this job:" in text
    assert "ALLOW" in text or "WARN" in text
    assert any("reserved" in line and "job 5551" in line for line in out["info"]), out
    ledger = httpx.get(
        f"{api_server.url}/v1/admin/ledger",
        params={"user": alice.user.name},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert any(e["job_id"] == 5551 and e["entry_type"] == "reservation" for e in ledger)


def test_cli_filter_honours_deny(api_server: Server) -> None:
    bob = api_server.bob
    out = run_lua(
        "cli_filter.lua",
        [{"call": "slurm_cli_pre_submit", "args": [options(bob), 0]},
         {"call": "slurm_cli_post_submit", "args": [0, 5552, 0]}],
        env_for(api_server, bob.user.name),
    )  # fmt: skip
    assert out["results"][0] == -1
    assert any("DENY" in line for line in out["stderr"]), out
    assert not any("reserved" in line for line in out["info"])  # nothing pending after deny


def test_cli_filter_fails_open_without_api(api_server: Server) -> None:
    alice = api_server.alice
    env = {**env_for(api_server, alice.user.name), "JOBCARBON_CREDIT_API_URL": "http://127.0.0.1:9"}
    out = run_lua(
        "cli_filter.lua", [{"call": "slurm_cli_pre_submit", "args": [options(alice), 0]}], env
    )
    assert out["results"] == [0]
    assert any("unreachable" in line for line in out["info"]), out


def test_cli_filter_reports_api_rejections(api_server: Server) -> None:
    alice = api_server.alice
    # An injection string as the account: the API refuses it (422) and the filter says so.
    out = run_lua(
        "cli_filter.lua",
        [{"call": "slurm_cli_pre_submit",
          "args": [options(alice, account="x'; DROP TABLE credit_ledger; --"), 0]}],
        env_for(api_server, alice.user.name),
    )  # fmt: skip
    assert out["results"] == [0]
    assert any("credit check failed (422)" in line for line in out["info"]), out


def submit(account: str | None, user: str) -> dict[str, Any]:
    """A slurm_job_submit call with the job_desc fields the plugin reads."""
    desc = {"user_name": user} if account is None else {"account": account, "user_name": user}
    return {"call": "slurm_job_submit", "args": [desc, {}, 1000]}


def test_job_submit_denies_from_the_local_cache(api_server: Server, tmp_path: Path) -> None:
    deny = httpx.get(
        f"{api_server.url}/v1/admin/deny-list", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).text
    cache = tmp_path / "deny.txt"
    cache.write_text(deny)
    env = {"JOBCARBON_DENY_FILE": str(cache)}
    bob, alice = api_server.bob, api_server.alice
    calls = [
        submit(bob.account, bob.user.name),
        submit(alice.account, alice.user.name),
        submit(None, "x"),
        {"call": "slurm_job_modify", "args": [{}, {}, {}, 1000]},
    ]
    out = run_lua("job_submit.lua", calls, env)
    assert out["results"] == [-1, 0, 0, 0], out
    assert any(bob.account in line for line in out["user"])
    # user-scoped lines deny only that user
    cache.write_text(f"# test\n{alice.account}/{alice.user.name}\n")
    out = run_lua("job_submit.lua", [*calls[:2], submit(alice.account, "other")], env)
    assert out["results"] == [0, -1, 0]
    # no cache file: nothing is denied
    out = run_lua("job_submit.lua", calls[:1], {"JOBCARBON_DENY_FILE": str(tmp_path / "none")})
    assert out["results"] == [0]


def test_job_submit_with_a_large_cache(tmp_path: Path) -> None:
    cache = tmp_path / "deny.txt"
    cache.write_text("\n".join(f"acct{i}" for i in range(5000)) + "\n")
    calls = [submit(f"acct{i}", "u") for i in range(4990, 5010)]
    out = run_lua("job_submit.lua", calls, {"JOBCARBON_DENY_FILE": str(cache)})
    assert out["results"] == [-1] * 10 + [0] * 10  # acct4990..4999 listed, acct5000.. not
