"""A real munged with a private key and socket in a temp dir (Debian ``munge``).

Fixtures: ``munged`` (session-scoped, the realm the API trusts) and ``other_munged`` (a second
daemon with another key: its credentials are forgeries to the first). Both are stopped on
teardown. Use ``MungeService.encode()`` to mint credentials, optionally as another OS user.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unavailable


@dataclass(frozen=True)
class MungeService:
    """A running munged: its socket and a way to mint credentials."""

    socket: str
    pid: int

    def encode(
        self, *, as_user: str | None = None, ttl_s: int | None = None, payload: str = ""
    ) -> str:
        """A fresh credential from ``munge``, as root or as OS user ``as_user``."""
        cmd = ["munge", "-S", self.socket, "-s", payload]
        if ttl_s is not None:
            cmd += ["-t", str(ttl_s)]
        if as_user is not None:
            cmd = ["runuser", "-u", as_user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _start(tmp: Path) -> tuple[MungeService, subprocess.Popen[bytes]]:
    if not (shutil.which("munged") and shutil.which("mungekey") and shutil.which("munge")):
        unavailable("munge is not installed (scripts/install.d/70-munge.sh)")
    tmp.chmod(0o755)  # munged checks the socket directory's permissions
    key, sock = tmp / "munge.key", tmp / "munge.socket"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o600)
    proc = subprocess.Popen(
        [
            "munged",
            "-F",
            "--force",
            f"--socket={sock}",
            f"--key-file={key}",
            f"--pid-file={tmp / 'munged.pid'}",
            f"--log-file={tmp / 'munged.log'}",
            f"--seed-file={tmp / 'munged.seed'}",
            "--num-threads=4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            unavailable(f"munged exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if sock.exists():
            probe = subprocess.run(["munge", "-S", str(sock), "-n"], capture_output=True)
            if probe.returncode == 0:
                return MungeService(str(sock), proc.pid), proc
        time.sleep(0.05)
    proc.kill()
    unavailable("munged did not answer within 15 s")
    raise AssertionError("unreachable")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def munged() -> Iterator[MungeService]:
    """The realm the credit API trusts."""
    with tempfile.TemporaryDirectory(prefix="jc-munge-") as tmp:
        service, proc = _start(Path(tmp))
        try:
            yield service
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def other_munged() -> Iterator[MungeService]:
    """Another realm (another key): its credentials must be rejected."""
    with tempfile.TemporaryDirectory(prefix="jc-munge-other-") as tmp:
        service, proc = _start(Path(tmp))
        try:
            yield service
        finally:
            _stop(proc)
