"""A real MariaDB for tests: private data directory, free loopback port, stopped on teardown.

Fixtures (session-scoped, one server for the whole run):

* ``mariadb``: the running server (``MariaDB``), root over its private socket.
* ``slurmdb_2505``: a database loaded from the real Slurm 25.05 slurmdbd dump in
  ``shared/data/slurm`` and a read-only user; yields an ``AccountingDB`` (URL, cluster).

The 22.05 database written by Debian's real slurmdbd is in ``tests/services/slurmdbd.py``.
Recipe: ``shared/docs/slurm-services.md`` ("MariaDB in a private data directory").
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.conftest import unavailable

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
CLIENT = "/usr/bin/mariadb"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port free on loopback right now (the caller retries if it is taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AccountingDB:
    """One slurmdbd database inside the test server, with a read-only user."""

    server: MariaDB
    database: str
    cluster: str
    user: str
    password: str

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the read-only user (TCP, as a real reconciler connects)."""
        return (
            f"mysql+pymysql://{self.user}:{self.password}@127.0.0.1:{self.server.port}/"
            f"{self.database}"
        )

    def root(self) -> pymysql.connections.Connection:
        """A root connection to this database (for tests that write rows)."""
        return self.server.connect(self.database)


class MariaDB:
    """``mariadbd`` in the foreground in a temp dir; ``stop()``/``start()`` keep the data."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.log = base / "mysqld.err"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        """Create the system tables (``mariadb-install-db``) in the private data dir."""
        subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                "--user=root",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        """Start the server (same port and data as before) and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        for _attempt in range(3):
            self.proc = subprocess.Popen(
                [
                    MARIADBD,
                    "--no-defaults",
                    "--user=root",
                    f"--datadir={self.datadir}",
                    f"--socket={self.socket}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    f"--pid-file={self.base / 'mysqld.pid'}",
                    f"--log-error={self.log}",
                    "--innodb-buffer-pool-size=256M",
                    "--innodb-lock-wait-timeout=900",
                    "--innodb-flush-log-at-trx-commit=0",  # test data: speed over durability
                    "--max-connections=500",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            self.stop()
            self.port = free_port()  # most likely another run took the port
        raise RuntimeError(f"mariadbd did not start; see {self.log}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                self.connect().close()
                return True
            except pymysql.err.OperationalError:
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        """SIGTERM our own mariadbd and wait for it (its pid, never by name)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        """A root connection over the private socket."""
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            database=database,
            autocommit=True,
            connect_timeout=5,
        )

    def execute(self, *statements: str, database: str | None = None) -> None:
        """Run administrative statements as root (test setup only)."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def load_sql(self, database: str, dump: Path) -> None:
        """Load a mysqldump file with the real ``mariadb`` client."""
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        with dump.open("rb") as handle:
            subprocess.run(
                [CLIENT, "--no-defaults", f"--socket={self.socket}", "-uroot", database],
                stdin=handle,
                check=True,
                capture_output=True,
                timeout=120,
            )

    def add_reader(self, database: str, user: str) -> str:
        """A least-privilege user: SELECT on one database, from loopback only."""
        password = secrets.token_hex(12)
        self.execute(
            f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'",
            f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'",
            f"GRANT SELECT ON `{database}`.* TO '{user}'@'127.0.0.1'",
        )
        return password


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A running MariaDB server private to this test session."""
    if not (os.path.exists(MARIADBD) and os.path.exists(INSTALL_DB)):
        unavailable("mariadb-server is not installed (scripts/install.d/40-reconcile.sh)")
    base = Path(tempfile.mkdtemp(prefix="jobcarbon-mariadb-"))
    os.chmod(base, 0o755)
    server = MariaDB(base)
    try:
        server.install()
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        server.stop()
        log = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        unavailable(f"mariadbd failed to start: {exc}\n{log}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def slurmdb_2505(mariadb: MariaDB, shared_data: Path) -> AccountingDB:
    """The real Slurm 25.05 slurmdbd dump (cluster ``localcluster``), read-only user."""
    dump = shared_data / "slurm" / "slurmdbd_25.05_example_dump.sql"
    if not dump.is_file():
        unavailable(f"slurmdbd dump not found at {dump}")
    database = "slurm_acct_db_2505"
    mariadb.load_sql(database, dump)
    password = mariadb.add_reader(database, "reader2505")
    return AccountingDB(mariadb, database, "localcluster", "reader2505", password)


@contextlib.contextmanager
def stopped(server: MariaDB) -> Iterator[None]:
    """Stop the server for the duration of the block (outage tests), then start it again."""
    server.stop()
    try:
        yield
    finally:
        server.start()
