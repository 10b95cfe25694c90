"""A one-host Slurm 24.11 "site" for the cluster tests: the patched full build with its own
slurmdbd in MariaDB, real (fake-Cray) node energy, and the stream workers into a warehouse.

* ``AccountedCluster``: ``SlurmCluster`` (tests/services/slurm_build.py) plus slurmdbd of the
  same build, started between writing the configuration and starting slurmctld. Every daemon
  and client uses ``auth/slurm`` with the cluster's one ``slurm.key`` (24.11's slurmdbd
  accepts it: no munged needed); slurmctld stores jobs with
  ``accounting_storage/slurmdbd``; slurmdbd writes MariaDB with ``accounting_storage/mysql``.
* ``slurm_site`` fixture (session): MariaDB (the ``mariadb`` fixture) -> slurmdbd ->
  ``sacctmgr`` cluster/account/users -> slurmctld + slurmd (jobcomp/kafka to the workers'
  broker) -> ``local_stack`` workers reconciling against slurmdbd's database (read-only user).

Every daemon is stopped by its own pid on teardown, also when starting fails.
Recipes: shared/docs/slurm-build.md, slurm-services.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REPO, unavailable
from tests.services.mariadb import MariaDB
from tests.services.munge import MungeService
from tests.services.slurm_build import SlurmBuild, SlurmCluster, free_port

if TYPE_CHECKING:
    from consumers.stream.local import LocalStack

#: The non-root OS user that submits jobs with an account (exists on every Debian system).
OTHER_USER = "nobody"
ACCOUNT = "proj1"
OTHER_ACCOUNT = "proj2"
#: An account whose carbon credit is exhausted: the credit API denies its jobs at sbatch.
EXHAUSTED_ACCOUNT = "proj3"
CLI_FILTER = REPO / "slurm_patch" / "lua" / "cli_filter.lua"
#: The credit policy the API applies (mode "deny" refuses a job the credit cannot cover). Its
#: user tables mirror the sacctmgr associations: the API only checks a user's own accounts.
CREDIT_POLICY = f"""
past_window_days = 28
[accounts.{ACCOUNT}]
allocation_kg = 1000000
period = "year"
mode = "deny"
[accounts.{ACCOUNT}.users.root]
[accounts.{OTHER_ACCOUNT}]
allocation_kg = 1000000
period = "year"
mode = "deny"
[accounts.{OTHER_ACCOUNT}.users.{OTHER_USER}]
[accounts.{EXHAUSTED_ACCOUNT}]
allocation_kg = 0.000001
period = "month"
mode = "deny"
[accounts.{EXHAUSTED_ACCOUNT}.users.root]
"""

#: as_user's wrapper (already in the cluster's private mount namespace): $2 (an ancestor of the
#: build tree $3 the user cannot traverse, or "") becomes a tmpfs holding only the tree.
_AS_USER_SH = """\
set -eu
work=$1; hidden=$2; tree=$3; user=$4; shift 4
if [ -n "$hidden" ]; then
    mkdir -p "$work/tree"
    mount --bind "$tree" "$work/tree"
    mount -t tmpfs -o mode=0755 jc-hide "$hidden"
    mkdir -p "$tree"
    mount --bind "$work/tree" "$tree"
fi
exec runuser -u "$user" -- "$@"
"""


@dataclass
class AccountedCluster(SlurmCluster):
    """slurmctld + slurmd + slurmdbd (accounting_storage/slurmdbd -> MariaDB)."""

    db_host: str = "127.0.0.1"
    db_port: int = 0
    db_name: str = "slurm_acct_db"
    db_user: str = "slurm"
    db_password: str = ""
    dbd_port: int = 0
    #: Environment of every client (the cli_filter's credit API URL and MUNGE socket).
    client_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.client_env}

    def write_config(self) -> None:
        """slurm.conf with accounting to slurmdbd, and slurmdbd.conf (mode 600)."""
        self.dbd_port = self.dbd_port or free_port()
        self.extra_conf = (
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={self.dbd_port}\n"
            "AccountingStorageEnforce=associations\n"
            "JobAcctGatherParams=NoShared\n"
            # A job gets 100 MB unless it asks: by default it would take all the node's
            # memory and the scenarios would run one at a time on the 2 CPUs.
            "DefMemPerCPU=100\n"
            # Our cli_filter at sbatch: cli_filter/lua loads cli_filter.lua next to slurm.conf.
            "CliFilterPlugins=cli_filter/lua\n" + self.extra_conf
        )
        super().write_config()
        shutil.copy(CLI_FILTER, self.etc / "cli_filter.lua")
        # Clients of other users read slurm.conf (never slurm.key, mode 600): the temp dir and
        # etc/ must be traversable; jobs of other users run in jobs/.
        for path in (self.workdir, self.etc):
            path.chmod(0o755)
        (self.etc / "slurm.conf").chmod(0o644)
        w = self.workdir
        conf = self.etc / "slurmdbd.conf"
        conf.write_text(
            f"""\
AuthType=auth/slurm
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
CommunicationParameters=NoInAddrAny
LogFile={w}/log/slurmdbd.log
PidFile={w}/run/slurmdbd.pid
DebugLevel=verbose
StorageType=accounting_storage/mysql
StorageHost={self.db_host}
StoragePort={self.db_port}
StorageUser={self.db_user}
StoragePass={self.db_password}
StorageLoc={self.db_name}
"""
        )
        conf.chmod(0o600)

    def start_slurmdbd(self, timeout_s: float = 60) -> None:
        """Start slurmdbd and wait until ``sacctmgr`` gets an answer from it."""
        out = (self.workdir / "log" / "slurmdbd.out").open("ab")
        self.procs["slurmdbd"] = subprocess.Popen(
            self.in_namespace(str(self.build.bin("slurmdbd")), "-D"),
            env=self.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.procs["slurmdbd"].poll() is not None:
                raise RuntimeError(f"slurmdbd exited\n{self.logs()}")
            proc = subprocess.run(
                self.in_namespace(str(self.build.bin("sacctmgr")), "-n", "list", "cluster"),
                env=self.env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if proc.returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"slurmdbd not answering after {timeout_s} s\n{self.logs()}")

    def sacctmgr(self, *args: str) -> str:
        return self.client("sacctmgr", "-i", *args)

    def as_user(self, user: str, name: str, *args: str, check: bool = True) -> str:
        """Run a Slurm client as another OS user (``runuser``) in the cluster's namespace.

        The build is cached under root's home (mode 700): in that namespace an inaccessible
        ancestor of the build tree is covered by a tmpfs holding only the tree (bind mount),
        so the user can run the clients without the machine's permissions changing."""
        script = self.workdir / "as-user.sh"
        script.write_text(_AS_USER_SH)
        tree = self.build.tree
        hidden = next(
            (p for p in reversed(tree.parents) if p != Path("/") and not p.stat().st_mode & 0o001),
            None,
        )
        cover = [str(hidden), str(tree)] if hidden is not None else ["", ""]
        command = ["sh", str(script), str(self.workdir), *cover, user, str(self.build.bin(name))]
        proc = subprocess.run(
            self.in_namespace(*command, *args),
            env=self.env, capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} as {user}: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, timeout_s: float = 60) -> None:
        """slurmdbd, the cluster's associations, then slurmctld and slurmd."""
        self.write_config()
        self.start_slurmdbd(timeout_s)
        self.sacctmgr("add", "cluster", self.cluster_name)
        self.sacctmgr("add", "account", ACCOUNT, OTHER_ACCOUNT, EXHAUSTED_ACCOUNT)
        self.sacctmgr("add", "user", "root", f"account={ACCOUNT},{EXHAUSTED_ACCOUNT}")
        self.sacctmgr("modify", "user", "root", "set", f"defaultaccount={ACCOUNT}")
        self.sacctmgr("add", "user", OTHER_USER, f"account={OTHER_ACCOUNT}")
        self.start_daemons(timeout_s)

    def logs(self, tail: int = 40) -> str:
        text = super().logs(tail)
        path = self.workdir / "log" / "slurmdbd.log"
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            text += "\n--- slurmdbd.log\n" + "\n".join(lines)
        return text

    def stop(self) -> None:
        """slurmd, slurmctld (so slurmctld can send its last records to slurmdbd), slurmdbd."""
        super().stop()
        proc = self.procs.pop("slurmdbd", None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class SlurmSite:
    """What the ``slurm_site`` fixture runs."""

    cluster: AccountedCluster
    stack: LocalStack
    warehouse_url: str
    accounting_url: str
    credit_api_url: str


@contextlib.contextmanager
def credit_api(warehouse_url: str, cluster: str, munge_socket: str, workdir: Path) -> Iterator[str]:
    """The credit API (real app, uvicorn on a free port) over the site's warehouse, trusting
    the site's munged; yields its URL."""
    import threading

    import uvicorn

    from jobcarbon.api.app import ApiConfig, PolicyHolder, create_app
    from jobcarbon.api.auth import MungeVerifier, uid_resolver
    from jobcarbon.credit.sql import SqlCreditStore
    from warehouse.engine import make_engine

    policy = workdir / "credit-policy.toml"
    policy.write_text(CREDIT_POLICY)
    engine = make_engine(warehouse_url)
    config = ApiConfig(
        store=SqlCreditStore(engine, cluster=cluster),
        policy=PolicyHolder.from_file(str(policy)),
        verifier=MungeVerifier(munge_socket),
        resolve_uid=uid_resolver({}),
        default_cluster=cluster,
        fallback_intensity_g_per_kwh=300.0,
        fallback_source="cluster test default",
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="credit-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                unavailable("the credit API (uvicorn) did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@contextlib.contextmanager
def slurm_site_running(
    build: SlurmBuild, server: MariaDB, munge_socket: str
) -> Iterator[SlurmSite]:
    """MariaDB database + slurmdbd + slurmctld + slurmd + workers; all stopped afterwards."""
    from consumers.stream.local import local_stack
    from jobcarbon.settings import AccountingSettings, ClusterSettings, Settings

    database = f"slurm_acct_{secrets.token_hex(3)}"
    password = secrets.token_hex(12)
    server.execute(
        f"CREATE USER 'slurm_{database[-6:]}'@'127.0.0.1' IDENTIFIED BY '{password}'",
        f"GRANT ALL ON `{database}`.* TO 'slurm_{database[-6:]}'@'127.0.0.1'",
    )
    settings = Settings()
    name = "jcsite"
    with tempfile.TemporaryDirectory(prefix="jc-site-") as tmp:
        work = Path(tmp)
        # The workers reconcile with a read-only user; they create no tables.
        reader = f"rd_{database[-6:]}"
        reader_password = server.add_reader(database, reader)
        accounting_url = (
            f"mysql+pymysql://{reader}:{reader_password}@127.0.0.1:{server.port}/{database}"
        )
        settings = settings.model_copy(
            update={
                "default_cluster": name,
                "accounting": AccountingSettings(
                    url=accounting_url, settle_seconds=20, backoff_base_s=1, backoff_cap_s=3
                ),
                "carbon": settings.carbon.model_copy(
                    update={"clusters": {name: ClusterSettings(zone="DE", site="default")}}
                ),
            }
        )
        with (
            local_stack(settings, workers=1) as stack,
            credit_api(stack.settings.warehouse.url, name, munge_socket, work) as api_url,
        ):
            cluster = AccountedCluster(
                build, work, stack.settings.kafka.bootstrap_servers,
                topic=stack.settings.kafka.topic_jobcomp, cluster_name=name, power_w=100,
                db_port=server.port, db_name=database, db_user=f"slurm_{database[-6:]}",
                db_password=password,
                client_env={
                    "JOBCARBON_CREDIT_API_URL": api_url, "JOBCARBON_MUNGE_SOCKET": munge_socket,
                },
            )  # fmt: skip
            try:
                cluster.start()
            except (RuntimeError, TimeoutError, OSError) as exc:
                cluster.stop()
                unavailable(f"the Slurm site did not start: {exc}")
            try:
                yield SlurmSite(
                    cluster, stack, stack.settings.warehouse.url, accounting_url, api_url
                )
            finally:
                cluster.stop()
                if os.environ.get("JOBCARBON_KEEP_SLURM_LOGS"):
                    keep = Path(os.environ["JOBCARBON_KEEP_SLURM_LOGS"])
                    shutil.copytree(work / "log", keep / "slurm", dirs_exist_ok=True)
                    for log in stack.workdir.glob("*.log"):
                        shutil.copy(log, keep)


@pytest.fixture(scope="session")
def slurm_site(
    slurm_install: SlurmBuild, mariadb: MariaDB, munged: MungeService
) -> Iterator[SlurmSite]:
    """The running site; needs root (daemons), unshare, the full build and MariaDB."""
    if os.geteuid() != 0:
        unavailable("the one-host Slurm site runs its daemons as root")
    if shutil.which("unshare") is None or shutil.which("runuser") is None:
        unavailable("unshare and runuser (util-linux) are needed for the Slurm site")
    with slurm_site_running(slurm_install, mariadb, munged.socket) as site:
        yield site
