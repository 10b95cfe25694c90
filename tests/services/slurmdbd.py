"""Debian's real Slurm 22.05 accounting stack for tests: munged, slurmdbd, and (for real job
rows) a one-host slurmctld + slurmd with fake Cray ``pm_counters`` energy.

Fixtures (session-scoped, marker ``slurmdbd``):

* ``slurm2205``: munged (private key and socket) and slurmdbd on loopback, writing into a
  database of the session's MariaDB; ``sacctmgr`` has added cluster ``c2205``, accounts
  ``proj1``/``proj2`` and users. The tables are created by slurmdbd itself.
* ``slurm2205_jobs``: a few real jobs run through slurmctld/slurmd (PrologFlags=Contain,
  pm_counters at a constant power), so their job and step rows are written by Slurm. The
  node daemons are stopped once the jobs are in the database; slurmdbd stays for ``sacct``.

Every daemon is a child ``Popen`` stopped by its own pid (slurmd, slurmctld, slurmdbd, munged
in that order). Recipe: ``shared/docs/slurm-services.md``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.services.mariadb import AccountingDB, MariaDB, free_port

CLUSTER = "c2205"
DATABASE = "slurm_acct_db_2205"
#: Constant node power the fake pm_counters report; energy grows by this many J per second.
POWER_W = 100
BINARIES = ("/usr/sbin/munged", "/usr/sbin/mungekey", "/usr/sbin/slurmdbd", "/usr/bin/sacctmgr")
NODE_BINARIES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/bin/unshare")


def _stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 30.0) -> None:
    """SIGTERM one child and wait; SIGKILL if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Slurm2205:
    """The running accounting stack: config directory, environment for the Slurm clients."""

    base: Path
    db: AccountingDB
    munge_socket: Path
    dbd_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.base / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for sacct/sacctmgr/sbatch: our slurm.conf (and through it, munged)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "TZ": "UTC"}

    def run(self, *argv: str, timeout_s: float = 60.0) -> str:
        """Run a Slurm client; returns stdout, raises with stderr on failure."""
        done = subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _slurm_conf(base: Path, munge_socket: Path, dbd_port: int, ctld_port: int, d_port: int) -> str:
    host = os.uname().nodename.split(".")[0]
    run = base / "run"
    return f"""ClusterName={CLUSTER}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation={run}/state
SlurmdSpoolDir={run}/spool
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
SlurmctldLogFile={run}/slurmctld.log
SlurmdLogFile={run}/slurmd.log
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=2
KillWait=2
InactiveLimit=0
PrologFlags=Contain
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2,energy=2
AcctGatherEnergyType=acct_gather_energy/pm_counters
AcctGatherNodeFreq=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={dbd_port}
AccountingStoragePass=socket={munge_socket}
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=10 State=UP
PartitionName=other Nodes={host} MaxTime=10 State=UP
"""


def _slurmdbd_conf(base: Path, munge_socket: Path, dbd_port: int, db: MariaDB, pw: str) -> str:
    run = base / "run"
    return f"""AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort={dbd_port}
SlurmUser=root
CommunicationParameters=NoInAddrAny
PidFile={run}/slurmdbd.pid
LogFile={run}/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db.port}
StorageUser=slurm2205
StoragePass={pw}
StorageLoc={DATABASE}
"""


def _wait(probe: Callable[[], bool], deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if probe():
            return True
        time.sleep(0.3)
    return False


@pytest.fixture(scope="session")
def slurm2205(mariadb: MariaDB) -> Iterator[Slurm2205]:
    """munged + Debian's slurmdbd 22.05 over the session MariaDB, cluster ``c2205``."""
    missing = [b for b in BINARIES if not os.path.exists(b)]
    if missing:
        unavailable(f"Slurm accounting packages missing: {missing} (40-reconcile.sh)")
    base = Path(tempfile.mkdtemp(prefix="jobcarbon-slurmdbd-"))
    base.chmod(0o755)
    (base / "run").mkdir()
    (base / "munge").mkdir(mode=0o755)
    key = base / "munge" / "munge.key"
    sock = base / "munge" / "munge.sock"
    password = mariadb.add_reader(DATABASE, "slurm2205")
    mariadb.execute(
        f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`",
        f"GRANT ALL ON `{DATABASE}`.* TO 'slurm2205'@'127.0.0.1'",
    )
    dbd_port = free_port()
    stack = Slurm2205(base, AccountingDB(mariadb, DATABASE, CLUSTER, "", ""), sock, dbd_port)
    try:
        subprocess.run(["/usr/sbin/mungekey", "--create", f"--keyfile={key}"], check=True)
        stack.procs.append(
            subprocess.Popen(
                [
                    "/usr/sbin/munged",
                    "-F",
                    f"--socket={sock}",
                    f"--key-file={key}",
                    f"--pid-file={base / 'munge' / 'munged.pid'}",
                    f"--log-file={base / 'munge' / 'munged.log'}",
                    f"--seed-file={base / 'munge' / 'munged.seed'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        if not _wait(sock.exists, 20):
            raise RuntimeError("munged did not create its socket")
        _write(stack.conf, _slurm_conf(base, sock, dbd_port, free_port(), free_port()))
        _write(
            base / "etc" / "slurmdbd.conf",
            _slurmdbd_conf(base, sock, dbd_port, mariadb, password),
            0o600,
        )
        stack.procs.append(
            subprocess.Popen(
                ["/usr/sbin/slurmdbd", "-D"],
                env=stack.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

        def dbd_up() -> bool:
            try:
                stack.run("sacctmgr", "-n", "list", "cluster", timeout_s=15)
                return True
            except (RuntimeError, subprocess.TimeoutExpired):
                return stack.procs[-1].poll() is not None  # died: stop waiting

        if not _wait(dbd_up, 90) or stack.procs[-1].poll() is not None:
            raise RuntimeError("slurmdbd did not answer sacctmgr")
        stack.run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        stack.run("sacctmgr", "-i", "add", "account", "proj1", "description=p1", "org=lab")
        stack.run("sacctmgr", "-i", "add", "account", "proj2", "parent=proj1", "description=p2")
        stack.run("sacctmgr", "-i", "add", "user", "root", "account=proj1,proj2")
        stack.run("sacctmgr", "-i", "add", "user", "nobody", "account=proj2")
        reader_pw = mariadb.add_reader(DATABASE, "reader2205")
        stack.db = AccountingDB(mariadb, DATABASE, CLUSTER, "reader2205", reader_pw)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log = base / "run" / "slurmdbd.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        for proc in reversed(stack.procs):
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)
        unavailable(f"slurmdbd 22.05 stack did not start: {exc}\n{tail}")
    try:
        yield stack
    finally:
        for proc in reversed(stack.procs):
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


# --- real jobs through slurmctld + slurmd -----------------------------------------------------


class _Counters(threading.Thread):
    """Feeds fake ``/sys/cray/pm_counters`` files: constant power, energy only grows."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.dir = directory
        self.stop_event = threading.Event()
        self.energy_j = 1_000_000
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write()

    def _write(self) -> None:
        stamp_us = int(time.time() * 1e6)
        for name, text in (
            ("energy", f"{self.energy_j} J {stamp_us} us\n"),
            ("power", f"{POWER_W} W {stamp_us} us\n"),
        ):
            tmp = self.dir / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(self.dir / name)  # never an empty file for slurmd to read

    def run(self) -> None:
        last = time.monotonic()
        while not self.stop_event.wait(0.25):
            now = time.monotonic()
            self.energy_j += round(POWER_W * (now - last))
            last = now if POWER_W * (now - last) >= 1 else last
            self._write()


_SLURMD_WRAPPER = """set -e
mkdir -p "$BASE/realsys"
mount --rbind /sys "$BASE/realsys"
mount -t tmpfs tmpfs /sys
for d in "$BASE"/realsys/*; do
  n=$(basename "$d"); mkdir -p "/sys/$n"; mount --rbind "$d" "/sys/$n"
done
mkdir -p /sys/cray/pm_counters
mount --bind "$BASE/cray/pm_counters" /sys/cray/pm_counters
exec /usr/sbin/slurmd -D
"""


@dataclass
class SlurmJobs:
    """Jobs run by the real cluster: name -> Slurm job id, and the stack to query."""

    stack: Slurm2205
    ids: dict[str, int]
    seconds: float


def _job_ids_done(stack: Slurm2205, ids: list[int]) -> bool:
    out = stack.run("squeue", "-h", "-o", "%i", timeout_s=20)
    running = {line.strip() for line in out.splitlines() if line.strip()}
    return not any(str(i) in running or any(r.startswith(f"{i}_") for r in running) for i in ids)


@pytest.fixture(scope="session")
def slurm2205_jobs(slurm2205: Slurm2205) -> Iterator[SlurmJobs]:
    """Run a few real jobs (batch, srun step, exit 1, array, other account) and wait until
    slurmdbd has their final rows; then stop slurmd and slurmctld."""
    missing = [b for b in NODE_BINARIES if not os.path.exists(b)]
    if missing:
        unavailable(f"Slurm node packages missing: {missing} (40-reconcile.sh)")
    started = time.monotonic()
    stack = slurm2205
    base = stack.base
    for sub in ("run/state", "run/spool", "work"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "work").chmod(0o1777)
    counters = _Counters(base / "cray" / "pm_counters")
    counters.start()
    wrapper = base / "slurmd-ns.sh"
    _write(wrapper, _SLURMD_WRAPPER, 0o755)
    ctld = subprocess.Popen(
        ["/usr/sbin/slurmctld", "-D", "-i"],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    slurmd = subprocess.Popen(
        ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", str(wrapper)],
        env={**stack.env, "BASE": str(base)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ids: dict[str, int] = {}
    try:

        def node_idle() -> bool:
            if slurmd.poll() is not None or ctld.poll() is not None:
                raise RuntimeError("slurmd or slurmctld exited")
            try:
                out = stack.run("sinfo", "-h", "-o", "%T", "-p", "debug", timeout_s=10)
            except (RuntimeError, subprocess.TimeoutExpired):
                return False
            return out.strip() == "idle"

        if not _wait(node_idle, 60):
            raise RuntimeError("node did not become idle")
        work = str(base / "work")
        common = ["sbatch", "--parsable", f"--chdir={work}", "-o", "/dev/null", "-N1"]

        def submit(name: str, *args: str) -> None:
            out = stack.run(*common, f"--job-name={name}", *args)
            ids[name] = int(out.strip().split(";")[0])

        submit("batch_sleep", "-A", "proj1", "-n1", "--wrap", "sleep 4")
        submit("srun_step", "-A", "proj1", "-n1", "--wrap", "srun sleep 3")
        submit("exit_one", "-A", "proj2", "-n1", "-p", "other", "--wrap", "sleep 2; exit 1")
        submit("array", "-A", "proj1", "-n1", "--array=0-1", "--wrap", "sleep 2")

        def all_done() -> bool:
            return _job_ids_done(stack, list(ids.values()))

        if not _wait(all_done, 120):
            raise RuntimeError(f"jobs did not finish: {stack.run('squeue')}")

        # The final energy reaches the DB with the last step completion: wait for it.
        def in_db() -> bool:
            out = stack.run(
                "sacct",
                "-n",
                "-P",
                "-X",
                "-a",
                "-o",
                "JobID,State,End,ConsumedEnergyRaw",
                "-j",
                ",".join(str(i) for i in ids.values()),
            )
            rows = [line.split("|") for line in out.splitlines() if line]
            # The job's energy lands with its extern step, after the job row: wait for both.
            return len(rows) >= len(ids) + 1 and all(
                r[2] not in ("Unknown", "") and r[3] != "" for r in rows
            )

        if not _wait(in_db, 60):
            raise RuntimeError("job rows did not reach slurmdbd")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log = base / "run" / "slurmctld.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        dlog = base / "run" / "slurmd.log"
        dtail = dlog.read_text(errors="replace")[-1500:] if dlog.exists() else ""
        _stop_node(slurmd, ctld, counters)
        unavailable(f"one-host Slurm cluster failed: {exc}\n{tail}\n{dtail}")
    _stop_node(slurmd, ctld, counters)
    yield SlurmJobs(stack, ids, time.monotonic() - started)


def _stop_node(
    slurmd: subprocess.Popen[bytes], ctld: subprocess.Popen[bytes], counters: _Counters
) -> None:
    """slurmd first (jobs are done), then slurmctld, then the counter feeder."""
    _stop(slurmd)  # unshare execs sh, which execs slurmd: this pid is slurmd itself
    _stop(ctld)
    counters.stop_event.set()
    counters.join(timeout=5)
