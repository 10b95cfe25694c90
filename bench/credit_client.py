"""Closed-loop HTTP/1.1 load clients for bench.credit: ``concurrency`` keep-alive
connections, each sending its next request as soon as the previous answer is read, every
request sent once (pre-encoded bytes, a fresh MUNGE credential each).

``run_native`` drives ``credit_client.c`` (built here with the system's C compiler: a few
microseconds of CPU per request); ``run`` is the same loop in asyncio (~100 us per request,
on the cores the server under test needs), kept for machines without a compiler and to
compare with earlier runs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

NATIVE_SOURCE = Path(__file__).with_name("credit_client.c")


def encode_check(host: str, body: dict[str, object], credential: str) -> bytes:
    """One ``POST /v1/check`` as raw HTTP/1.1 bytes (keep-alive)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-Munge-Credential: {credential}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _drive(
    host: str, port: int, requests: Sequence[bytes], concurrency: int
) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    it = iter(range(len(requests)))

    # Connect one at a time: a burst of connects lets the first worker process to wake accept
    # most of them, and keep-alive connections stay where they were accepted.
    streams = []
    for _ in range(concurrency):
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        streams.append((reader, writer))
        await asyncio.sleep(0.002)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for i in it:
                started = time.perf_counter()
                writer.write(requests[i])
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(f"{status}: {body[:200]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(r, w) for r, w in streams))
    return latencies, errors, time.perf_counter() - started


def run(
    host: str, port: int, requests: Sequence[bytes], concurrency: int
) -> tuple[list[float], list[str], float]:
    """(latencies s, non-200 answers, wall s) of ``requests`` over ``concurrency`` connections."""
    try:
        import uvloop

        return uvloop.run(_drive(host, port, requests, concurrency))
    except ImportError:
        return asyncio.run(_drive(host, port, requests, concurrency))


def build_native(directory: Path) -> Path | None:
    """Compile ``credit_client.c`` into ``directory``; None without a C compiler."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    binary = directory / "credit_client"
    subprocess.run([cc, "-O2", "-o", str(binary), str(NATIVE_SOURCE)], check=True)
    return binary


def run_native(
    binary: Path, host: str, port: int, requests: Sequence[bytes], concurrency: int
) -> tuple[list[float], list[str], float, float]:
    """(latencies s, failures, wall s, client CPU s) of ``requests`` over ``concurrency``
    connections, driven by the compiled client (``build_native``)."""
    with tempfile.TemporaryDirectory(prefix="jc-credit-client-") as tmp:
        req_path, out_path = Path(tmp) / "requests", Path(tmp) / "results"
        with open(req_path, "wb") as fh:
            for r in requests:
                fh.write(struct.pack("<I", len(r)) + r)
        out = subprocess.run(
            [str(binary), host, str(port), str(concurrency), str(req_path), str(out_path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        summary = json.loads(out.stdout)
        raw = out_path.read_bytes()
    latencies, failures = [], []
    for latency_ns, status in struct.iter_unpack("<QI", raw):
        latencies.append(latency_ns / 1e9)
        if status != 200:
            failures.append(f"status {status}")
    failures += ["no answer"] * int(summary["failed"])
    return latencies, failures, float(summary["wall_s"]), float(summary["cpu_s"])


def _stat_seconds(path: str) -> float:
    """User + system CPU seconds in a /proc ``stat`` file (0 once the process is gone)."""
    try:
        with open(path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` (Linux /proc)."""
    return sum(_stat_seconds(f"/proc/{pid}/stat") for pid in pids)


def thread_cpu_seconds(pids: Sequence[int]) -> tuple[float, float]:
    """CPU seconds of ``pids``' main threads (a server worker's event loop, which answers
    the checks) and of their other threads (the state refresh), Linux /proc."""
    main = other = 0.0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            seconds = _stat_seconds(f"/proc/{pid}/task/{tid}/stat")
            if int(tid) == pid:
                main += seconds
            else:
                other += seconds
    return main, other


def children(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    found = [pid]
    for p in found:
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                found += [int(c) for c in fh.read().split()]
        except FileNotFoundError:
            continue
    return found
