"""A real PostgreSQL 15 server for the test session, and a fresh database per test.

The server runs as the non-root ``postgres`` user (``runuser`` when the tests run as root),
in a temporary directory, on a free port chosen at start, with a Unix socket in the same
directory; it is stopped on teardown. ``pg_database`` gives each test its own empty
database (``CREATE DATABASE``), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unavailable

PG_BIN = Path(os.environ.get("JOBCARBON_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "jc"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: superuser ``jc`` over TCP on 127.0.0.1 (trust authentication)."""

    host: str
    port: int
    socket_dir: Path
    data_dir: Path

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str = "") -> str:
        """A SQLAlchemy URL (psycopg 3) for ``database``."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{database}"

    def admin_execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement as the superuser in autocommit mode (CREATE DATABASE...)."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname=database, autocommit=True
        ) as conn:
            conn.execute(sql.encode())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def start_server(tmp: Path) -> PostgresServer:
    """initdb and start a server in ``tmp`` (owned by ``postgres``); ``unavailable`` if not."""
    if not (PG_BIN / "initdb").exists():
        unavailable(
            f"PostgreSQL binaries not found in {PG_BIN} (scripts/install.d/30-warehouse.sh)"
        )
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("no 'postgres' user to run the server as")
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    data = tmp / "data"
    run = subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER,
                      "-E", "UTF8", "--no-sync"]),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        unavailable(f"initdb failed: {run.stderr.strip()[-500:]}")
    for _attempt in range(5):
        port = _free_port()
        options = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        run = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                          "-l", str(tmp / "server.log"), "-w", "-t", "60", "start"]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode == 0:
            return PostgresServer("127.0.0.1", port, tmp, data)
    log = (tmp / "server.log").read_text(errors="replace")[-800:]
    unavailable(f"PostgreSQL did not start: {run.stderr.strip()[-300:]} {log}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 server for the whole session."""
    if shutil.which("runuser") is None and os.geteuid() == 0:
        unavailable("runuser is missing (util-linux)")
    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-pg-"))
    server = start_server(tmp)
    try:
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


def stop_server(server: PostgresServer) -> None:
    """Stop a server started by ``start_server`` (immediate: the data is throwaway)."""
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(server.data_dir), "-m", "immediate",
                      "-w", "stop"]),
        capture_output=True, check=False,
    )  # fmt: skip


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new empty database (from ``template0``) for the block; its URL. Dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.admin_execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield server.url(name)
    finally:
        server.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for one test (its SQLAlchemy URL)."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database shared by one test module (its SQLAlchemy URL)."""
    with fresh_database(postgres_server) as url:
        yield url
