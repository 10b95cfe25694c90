"""Throw-away PostgreSQL and munged for benchmarks (the recipes of tests/services/, without
pytest): temp directories, free ports, stopped by the caller."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("JOBCARBON_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def start_postgres(tmp: Path) -> tuple[str, list[str]]:
    """(SQLAlchemy URL, stop command) of a fresh server in ``tmp``."""
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    data = tmp / "data"
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "jc",
                      "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    options = (
        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        "-c shared_buffers=512MB -c maintenance_work_mem=512MB"
    )
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                      "-l", str(tmp / "server.log"), "-w", "-t", "60", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user="jc", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE bench")
    stop = _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    return f"postgresql+psycopg://jc@127.0.0.1:{port}/bench", stop


def start_munged(tmp: Path, threads: int = 8) -> tuple[str, subprocess.Popen[bytes]]:
    """(socket path, process) of a munged with a fresh key in ``tmp`` and ``threads`` work
    threads."""
    tmp.chmod(0o755)
    key, sock = tmp / "munge.key", tmp / "munge.socket"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    proc = subprocess.Popen(
        ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={key}",
         f"--pid-file={tmp / 'munged.pid'}", f"--log-file={tmp / 'munged.log'}",
         f"--seed-file={tmp / 'munged.seed'}", f"--num-threads={threads}"],
    )  # fmt: skip
    for _ in range(300):
        if sock.exists():
            return str(sock), proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("munged did not start")
