"""``jobcarbon credit serve --workers 2`` (real uvicorn worker processes, real PostgreSQL,
real munged): a reservation is counted by the user's very next check, whichever worker
answers it (each request on a new connection, so the kernel spreads them over both)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.services.credit_api import ALICE_JOB, CLUSTER, POLICY

pytestmark = [pytest.mark.postgres, pytest.mark.munge]


@pytest.fixture(scope="module")
def served(warehouse_engine: Engine, munged, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "policy.toml").write_text(POLICY)
    url = warehouse_engine.url.render_as_string(hide_password=False)
    (tmp / "jobcarbon.toml").write_text(
        f'[warehouse]\nurl = "{url}"\n[credit]\nmunge_socket = "{munged.socket}"\n'
        f'cluster = "{CLUSTER}"\npolicy_file = "{tmp / "policy.toml"}"\n'
        f"[credit.user_uids]\n{ALICE_JOB.user.name} = {os.getuid()}\n"
    )
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jobcarbon = shutil.which("jobcarbon", path=os.path.dirname(sys.executable)) or "jobcarbon"
    server = subprocess.Popen(
        [jobcarbon, "--config", str(tmp / "jobcarbon.toml"), "credit", "serve",
         "--port", str(port), "--workers", "2"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("jobcarbon credit serve did not start")
            time.sleep(0.2)
        workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(workers) >= 2, workers  # uvicorn's two worker processes
        time.sleep(2)  # both workers load their state
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_reservation_visible_to_the_next_check_in_any_worker(served: str, munged) -> None:  # type: ignore[no-untyped-def]
    job = ALICE_JOB
    body = {"user": job.user.name, "account": job.account, "partition": job.partition,
            "nodes": max(1, len(job.nodes)), "cpus": job.cpus, "time_limit_s": 3600,
            "job_name": job.job_name}  # fmt: skip

    def post(path: str, payload: dict[str, object]) -> dict[str, object]:
        with httpx.Client(base_url=served) as client:  # a new connection each time
            r = client.post(path, json=payload, headers={"X-Munge-Credential": munged.encode()})
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    running = float(post("/v1/check", body)["running_co2e_g"])  # type: ignore[arg-type]
    for i in range(8):
        reserved = post("/v1/reservations", {**body, "job_id": 7_100_000 + i})
        running += float(reserved["co2e_g"])  # type: ignore[arg-type]
        assert reserved["co2e_g"] and float(reserved["co2e_g"]) > 0  # type: ignore[arg-type]
        for _ in range(2):
            seen = float(post("/v1/check", body)["running_co2e_g"])  # type: ignore[arg-type]
            assert seen == pytest.approx(running, rel=1e-12), i
