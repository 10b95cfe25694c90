"""Run the credit API in worker processes, each with its own listening socket on the same
port (SO_REUSEPORT): the kernel spreads connections over the workers by address hash.

uvicorn's own ``--workers`` shares one listening socket; the worker whose event loop wakes
first accepts a burst of connections, and keep-alive clients stay where they landed (bench
.credit measured one worker doing 73 % of the work). The supervisor here restarts a worker
that dies and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from jobcarbon.api.app import CreditApi
from jobcarbon.api.http_check import check_protocol

log = logging.getLogger("jobcarbon.api.serve")


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket bound with SO_REUSEPORT (other workers bind the same port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def worker(host: str, port: int) -> None:
    """One worker process: uvicorn (uvloop) on its own reuse-port socket, with
    ``POST /v1/check`` answered by ``CheckProtocol`` and everything else by uvicorn's
    httptools protocol (jobcarbon.api.http_check)."""
    from jobcarbon.api.factory import app_from_environment

    app = app_from_environment()
    uvicorn_server(app).run(sockets=[listen(host, port)])


def uvicorn_server(app: CreditApi, **options: Any) -> uvicorn.Server:
    """uvicorn serving ``app`` with the /v1/check protocol (``options``: more of
    ``uvicorn.Config``'s, e.g. host and port)."""
    protocol = check_protocol(app.front) if app.front is not None else "httptools"
    config = uvicorn.Config(app, log_level="warning", loop="uvloop", http=protocol,
                            access_log=False, **options)  # fmt: skip
    return uvicorn.Server(config)


def serve(host: str, port: int, workers: int) -> None:
    """Start ``workers`` processes and supervise them until SIGTERM or SIGINT."""
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> BaseProcess:
        process = spawn.Process(target=worker, args=(host, port), name="credit-api-worker")
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    try:
        while not stopping:
            wait([p.sentinel for p in processes], timeout=0.5)
            for i, p in enumerate(processes):
                if not p.is_alive() and not stopping:
                    log.warning("credit API worker %s exited (%s): restarting", p.pid, p.exitcode)
                    processes[i] = start()
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.join(timeout=30)
