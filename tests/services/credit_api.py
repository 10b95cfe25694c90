"""The credit API over a real PostgreSQL warehouse loaded with synthetic history and a real
munged. Two synthetic users are mapped to the OS users ``nobody`` and ``daemon`` so their
credentials are minted by real ``munge`` processes running as those uids."""

from __future__ import annotations

import os
import pwd
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from bench.credit_load import load
from jobcarbon.api.app import ApiConfig, CreditApi, PolicyHolder, create_app
from jobcarbon.api.auth import MungeVerifier, uid_resolver
from jobcarbon.api.serve import uvicorn_server
from jobcarbon.credit.memory import Generation, MemoryCreditStore
from jobcarbon.credit.sql import SqlCreditStore
from jobcarbon.synth import SynthJob, generate_jobs
from warehouse import migrate
from warehouse.engine import make_engine

ADMIN_TOKEN = "test-admin-token-0123456789"
JOBS = generate_jobs(2000, seed=5)
NOW = max(j.end for j in JOBS) + timedelta(hours=1)
CLUSTER = JOBS[0].cluster


def _two_users() -> tuple[SynthJob, SynthJob]:
    first = JOBS[0]
    other = next(j for j in JOBS if j.user.name != first.user.name and j.account != first.account)
    return first, other


ALICE_JOB, BOB_JOB = _two_users()
POLICY = f"""
past_window_days = 28
max_delay_hours = 12
[accounts.{ALICE_JOB.account}]
allocation_kg = 1000000
period = "year"
mode = "warn"
[accounts.{BOB_JOB.account}]
allocation_kg = 0.001
period = "month"
mode = "deny"
[[equivalence]]
name = "train_km"
label = "km by train"
unit = "km"
g_co2e_per_unit = 35.46
source = "UK DESNZ conversion factors 2024, national rail"
"""


@dataclass
class Api:
    client: TestClient
    munge: object
    alice: SynthJob
    bob: SynthJob
    engine: Engine

    def cred(self, os_user: str = "nobody", **kwargs: object) -> dict[str, str]:
        return {"X-Munge-Credential": self.munge.encode(as_user=os_user, **kwargs)}  # type: ignore[attr-defined]

    def body(self, job: SynthJob, **over: object) -> dict[str, object]:
        body: dict[str, object] = {
            "user": job.user.name, "account": job.account, "partition": job.partition,
            "nodes": max(1, len(job.nodes)), "cpus": job.cpus, "gpus": job.gpus,
            "time_limit_s": job.time_limit_s, "job_name": job.job_name,
        }  # fmt: skip
        body.update(over)
        return body


@pytest.fixture(scope="module")
def warehouse_engine(pg_module_database: str) -> Iterator[Engine]:
    engine = make_engine(pg_module_database)
    migrate.upgrade(engine)
    load(engine, JOBS)
    yield engine
    engine.dispose()


def memory_store(engine: Engine, generation: Generation | None = None) -> MemoryCreditStore:
    """The in-process store the server runs (no refresh thread: API writes sync it)."""
    return MemoryCreditStore(
        SqlCreditStore(engine, cluster=CLUSTER),
        clock=lambda: NOW,
        past_window_days=lambda: 28,
        generation=generation,
        background=False,
    )


def make_config(engine: Engine, socket: str, policy_file: str, uids: dict[str, int]) -> ApiConfig:
    """The API over the loaded warehouse, a fixed clock just after the history ends."""
    return ApiConfig(
        store=memory_store(engine),
        policy=PolicyHolder.from_file(policy_file),
        verifier=MungeVerifier(socket),
        resolve_uid=uid_resolver(uids),
        admin_token=ADMIN_TOKEN,
        pue_for=lambda cluster: 1.3,
        fallback_intensity_g_per_kwh=300.0,
        fallback_source="test default",
        default_cluster=CLUSTER,
        clock=lambda: NOW,
    )


@pytest.fixture(scope="module")
def api(warehouse_engine: Engine, munged, tmp_path_factory) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    policy_file = tmp_path_factory.mktemp("policy") / "policy.toml"
    policy_file.write_text(POLICY)
    uids = {
        ALICE_JOB.user.name: pwd.getpwnam("nobody").pw_uid,
        BOB_JOB.user.name: pwd.getpwnam("daemon").pw_uid,
    }
    config = make_config(warehouse_engine, munged.socket, str(policy_file), uids)
    with TestClient(create_app(config)) as client:
        yield Api(client, munged, ALICE_JOB, BOB_JOB, warehouse_engine)


@dataclass
class Server:
    url: str
    socket: str
    alice: SynthJob
    bob: SynthJob
    app: CreditApi


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api_server(warehouse_engine: Engine, munged, tmp_path_factory) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    """The API served as ``jobcarbon credit serve`` serves it (uvicorn with the /v1/check
    protocol, jobcarbon.api.serve) on a free port; alice and bob are both the current uid
    here (clients run ``munge`` as this process's user)."""
    policy_file = tmp_path_factory.mktemp("policy") / "policy.toml"
    policy_file.write_text(POLICY)
    me = os.getuid()
    config = make_config(
        warehouse_engine, munged.socket, str(policy_file),
        {ALICE_JOB.user.name: me, BOB_JOB.user.name: me},
    )  # fmt: skip
    port = _free_port()
    app = create_app(config)
    server = uvicorn_server(app, host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", munged.socket, ALICE_JOB, BOB_JOB, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
