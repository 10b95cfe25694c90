"""Deterministic synthetic job histories with known truth (power, energy, placement).

Jobs are scheduled onto named nodes (exclusive partitions never overlap on a node; shared
nodes do), so a synthetic machine room can be built from the same history. Every job keeps
its true energy and what Slurm would report for it in the jobcomp record and in slurmdbd.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobcarbon.synth.cluster import DEFAULT_PARTITIONS, App, Partition, User, make_users

NO_VAL64 = 0xFFFFFFFFFFFFFFFE
DEFAULT_START = datetime(2024, 3, 5, 20, 0, tzinfo=UTC)  # inside the real DE intensity fixture


@dataclass(frozen=True, slots=True)
class SynthJob:
    """One job run with its truth. Times are aware UTC; energies in joules."""

    cluster: str
    job_id: int
    user: User
    account: str
    qos: str
    partition: str
    job_name: str
    submit: datetime
    eligible: datetime
    start: datetime | None
    end: datetime
    time_limit_s: int
    nodes: tuple[str, ...]
    cpus: int
    mem_mb: int
    gpus: int
    exclusive: bool
    state: str
    exit_code: str
    derived_ec: str
    power_w_per_node: float
    # What Slurm writes: None = not measured (NO_VAL64), else joules (may be bogus >= 1e18).
    energy_record_j: int | None
    energy_db_j: int | None
    energy_complete: bool
    array_job_id: int | None = None
    array_task_id: int | None = None
    het_job_id: int | None = None
    het_job_offset: int | None = None
    priority: int = 1
    db_index: int = 0
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def elapsed_s(self) -> int:
        """``end - start`` in seconds, 0 for jobs that never started (as Slurm writes it)."""
        if self.start is None:
            return 0
        return max(0, int((self.end - self.start).total_seconds()))

    @property
    def energy_true_j(self) -> float:
        """Energy the job's nodes really drew while it ran (the machine-room truth)."""
        return self.power_w_per_node * len(self.nodes) * self.elapsed_s


@dataclass(slots=True)
class _NodePool:
    partition: Partition
    free_at: list[tuple[float, str]]


def _pick_state(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.74:
        return "COMPLETED"
    if roll < 0.84:
        return "FAILED"
    if roll < 0.90:
        return "TIMEOUT"
    if roll < 0.95:
        return "CANCELLED"
    if roll < 0.965:
        return "CANCELLED_PENDING"
    if roll < 0.985:
        return "OUT_OF_MEMORY"
    if roll < 0.993:
        return "NODE_FAIL"
    return "PREEMPTED"


_EXIT = {
    "COMPLETED": ("0:0", "0:0"),
    "FAILED": ("1:0", "1:0"),
    "TIMEOUT": ("0:15", "0:15"),
    "CANCELLED": ("0:15", "0:9"),
    "CANCELLED_PENDING": ("0:0", "0:0"),
    "OUT_OF_MEMORY": ("0:125", "0:125"),
    "NODE_FAIL": ("0:0", "0:9"),
    "PREEMPTED": ("0:0", "0:15"),
}


def sluid(cluster_id: int, when: datetime, seq: int) -> int:
    """A 24.11+ job_db_inx: ``[12 bits cluster id][42 bits unix ms][10 bits sequence]``."""
    ms = int(when.timestamp() * 1000)
    return (cluster_id << 52) | (ms << 10) | (seq & 0x3FF)


class _Scheduler:
    def __init__(self, partitions: tuple[Partition, ...], origin: datetime) -> None:
        self.origin = origin
        self.pools = {p.name: _NodePool(p, [(0.0, n) for n in p.nodes]) for p in partitions}
        for pool in self.pools.values():
            heapq.heapify(pool.free_at)

    def place(
        self, partition: str, n_nodes: int, eligible_s: float, run_s: float
    ) -> tuple[float, list[str]]:
        pool = self.pools[partition]
        if pool.partition.shared:
            # Shared nodes: several jobs at once; pick the node that frees soonest.
            free, node = heapq.heappop(pool.free_at)
            start = eligible_s
            heapq.heappush(pool.free_at, (max(free, start), node))
            return start, [node]
        n_nodes = min(n_nodes, len(pool.free_at))
        taken = [heapq.heappop(pool.free_at) for _ in range(n_nodes)]
        start = max([eligible_s] + [t for t, _ in taken])
        for _, node in taken:
            heapq.heappush(pool.free_at, (start + run_s, node))
        return start, sorted(node for _, node in taken)


def generate_jobs(
    n_jobs: int,
    seed: int = 0,
    *,
    cluster: str = "alps",
    start: datetime = DEFAULT_START,
    days: float | None = None,
    partitions: tuple[Partition, ...] = DEFAULT_PARTITIONS,
    cluster_id: int = 2986,
    n_users: int | None = None,
    first_job_id: int = 1000,
) -> list[SynthJob]:
    """Generate ``n_jobs`` job runs (array tasks and het components count as jobs).

    Deterministic for a given seed. Returned in the order Slurm would finish them.
    ``days`` is the submission window; by default it keeps the machine about 75 % loaded
    (three jobs per node per day), so queues stay realistic at any ``n_jobs``.
    """
    rng = random.Random(seed)
    users = make_users(n_users or max(8, min(5_000, n_jobs // 40)), rng)
    weights = [u.weight for u in users]
    cum_weights = list(_accumulate(weights))
    by_name = {p.name: p for p in partitions}
    scheduler = _Scheduler(partitions, start)
    if days is None:
        days = n_jobs / (3.0 * sum(p.node_count for p in partitions))
    # A Poisson arrival process thinned by a diurnal profile (busy days, quiet nights);
    # arrays add ~0.38 jobs per arrival on average.
    rate_per_s = n_jobs / (max(60.0, days * 86_400.0) * _JOBS_PER_ARRIVAL * _DIURNAL_MEAN)
    jobs: list[SynthJob] = []
    job_id = first_job_id
    seq = 0
    t = 0.0
    while len(jobs) < n_jobs:
        t += rng.expovariate(rate_per_s)
        if rng.random() > _diurnal(start.timestamp() + t):
            continue
        user = rng.choices(users, cum_weights=cum_weights)[0]
        app = user.apps[rng.randrange(len(user.apps))]
        if app.partition not in by_name:
            continue
        partition = by_name[app.partition]
        kind = rng.random()
        n_tasks = 1
        if kind < 0.06:
            n_tasks = rng.randint(2, 12)  # array
        het = 0.06 <= kind < 0.08 and partition.name in ("cpu", "gpu")
        submit = start + timedelta(seconds=int(t))
        base_id = job_id
        components = 2 if het else n_tasks
        for index in range(components):
            if len(jobs) >= n_jobs:
                break
            seq += 1
            jobs.append(
                _one_job(
                    rng,
                    cluster=cluster,
                    job_id=job_id,
                    user=user,
                    app=app,
                    partition=partition
                    if not (het and index == 1)
                    else by_name.get("cpu", partition),
                    submit=submit,
                    scheduler=scheduler,
                    array=(base_id, index) if n_tasks > 1 else None,
                    het=(base_id, index) if het else None,
                    db_index=sluid(cluster_id, submit, seq),
                )
            )
            job_id += 1
    jobs.sort(key=lambda j: (j.end, j.job_id))
    return jobs


_JOBS_PER_ARRIVAL = 1.38
_DIURNAL_MEAN = 0.6


def _diurnal(epoch_s: float) -> float:
    """Share of arrivals kept at a time: 1.0 at 14:00 UTC, 0.2 at 02:00 UTC."""
    hour = (epoch_s % 86_400.0) / 3_600.0
    return _DIURNAL_MEAN + 0.4 * math.cos(2 * math.pi * (hour - 14.0) / 24.0)


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def _one_job(
    rng: random.Random,
    *,
    cluster: str,
    job_id: int,
    user: User,
    app: App,
    partition: Partition,
    submit: datetime,
    scheduler: _Scheduler,
    array: tuple[int, int] | None,
    het: tuple[int, int] | None,
    db_index: int,
) -> SynthJob:
    state = _pick_state(rng)
    limit = app.time_limit_s
    ratio = min(1.0, max(0.01, rng.gauss(app.runtime_ratio, 0.08)))
    run_s = {
        "TIMEOUT": limit + rng.randint(1, 90),
        "FAILED": rng.randint(3, max(4, int(limit * 0.1))),
        "CANCELLED": rng.randint(30, max(31, int(limit * ratio))),
        "CANCELLED_PENDING": 0,
        "NODE_FAIL": rng.randint(60, max(61, int(limit * ratio))),
    }.get(state, int(limit * ratio))
    if rng.random() < 0.01:
        run_s = rng.randint(0, 1)  # shorter than an energy counter update: 0 J
    exclusive = not partition.shared
    n_nodes = 1 if partition.shared else app.nodes
    cpus = partition.cpus_per_node * n_nodes if exclusive else rng.choice((1, 2, 4, 8, 16))
    mem_mb = (
        partition.mem_mb_per_node * n_nodes
        if exclusive
        else cpus * (partition.mem_mb_per_node // partition.cpus_per_node)
    )
    gpus = partition.gpus_per_node * n_nodes
    eligible = submit + timedelta(seconds=rng.choice((0, 0, 0, 1, 5, 30)))
    eligible_s = (eligible - scheduler.origin).total_seconds()
    if state == "CANCELLED_PENDING":
        # Cancelled while pending: Slurm sets start = end = now, no nodes.
        cancel = eligible + timedelta(seconds=rng.randint(10, 7_200))
        nodes: list[str] = []
        start: datetime | None = cancel
        end = cancel
    else:
        start_s, nodes = scheduler.place(partition.name, n_nodes, eligible_s, run_s)
        start = scheduler.origin + timedelta(seconds=int(start_s))
        end = start + timedelta(seconds=run_s)
    utilization = min(1.0, max(0.05, rng.gauss(app.utilization, 0.05)))
    if partition.shared:
        # Per-job share of a shared node: its cores' dynamic power plus a share of idle.
        share = cpus / partition.cpus_per_node
        power = share * partition.idle_power_w + share * utilization * (
            partition.busy_power_w - partition.idle_power_w
        )
    else:
        power = partition.power_w(utilization)
    elapsed = int((end - start).total_seconds()) if start else 0
    true_energy = round(power * len(nodes) * elapsed)
    if elapsed < 2:
        true_energy = 0
    energy_db: int | None = true_energy if nodes else None
    energy_record: int | None = energy_db
    complete = True
    tags: set[str] = set()
    if state in ("TIMEOUT", "CANCELLED", "PREEMPTED", "NODE_FAIL") and nodes:
        # The timing trap: the record is written before the extern step reports.
        complete = False
        energy_record = None if rng.random() < 0.6 else int(true_energy * rng.uniform(0.5, 0.95))
        tags.add("energy_late")
    roll = rng.random()
    if nodes and roll < 0.02:
        energy_record, energy_db = None, None  # energy plugin not running on those nodes
        tags.add("energy_unmeasured")
    elif nodes and roll < 0.025:
        bogus = rng.choice((18_446_744_073_709_551_000, 2**63 + 12_345, 10**18 + 7))
        energy_record, energy_db = bogus, bogus
        tags.add("energy_bogus")
    if partition.shared:
        tags.add("shared_node")
    name = app.name if array is None else f"{app.name}-array"
    return SynthJob(
        cluster=cluster,
        job_id=job_id,
        user=user,
        account=user.account,
        qos="normal" if rng.random() < 0.9 else "high",
        partition=partition.name,
        job_name=name,
        submit=submit,
        eligible=eligible,
        start=start,
        end=end,
        time_limit_s=app.time_limit_s,
        nodes=tuple(nodes),
        cpus=cpus,
        mem_mb=mem_mb,
        gpus=gpus,
        exclusive=exclusive,
        state="CANCELLED" if state == "CANCELLED_PENDING" else state,
        exit_code=_EXIT[state][0],
        derived_ec=_EXIT[state][1],
        power_w_per_node=power,
        energy_record_j=energy_record,
        energy_db_j=energy_db,
        energy_complete=complete,
        array_job_id=array[0] if array else None,
        array_task_id=array[1] if array else None,
        het_job_id=het[0] if het else None,
        het_job_offset=het[1] if het else None,
        priority=rng.randint(1, 20_000),
        db_index=db_index,
        tags=frozenset(tags | ({"pending_cancel"} if state == "CANCELLED_PENDING" else set())),
    )
