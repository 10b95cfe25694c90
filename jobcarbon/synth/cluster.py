"""The synthetic cluster: partitions with their node power, users and an account tree."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Partition:
    """A partition of identical nodes; ``shared`` nodes run several jobs at once."""

    name: str
    node_prefix: str
    node_count: int
    cpus_per_node: int
    mem_mb_per_node: int
    gpus_per_node: int
    idle_power_w: float
    busy_power_w: float
    shared: bool = False
    gpu_type: str | None = None

    @property
    def nodes(self) -> list[str]:
        """Node names, zero-padded as site hostlists are (``cn001``)."""
        width = 3 if self.node_count >= 100 else 2
        return [f"{self.node_prefix}{i:0{width}d}" for i in range(1, self.node_count + 1)]

    def power_w(self, utilization: float) -> float:
        """Whole-node power at a utilization between 0 (idle) and 1 (busy)."""
        return self.idle_power_w + (self.busy_power_w - self.idle_power_w) * utilization


#: A small but realistic machine: CPU, GPU, big-memory and shared partitions.
DEFAULT_PARTITIONS: tuple[Partition, ...] = (
    Partition("cpu", "cn", 256, 128, 256_000, 0, 140.0, 560.0),
    Partition("gpu", "gn", 96, 64, 512_000, 4, 260.0, 2_250.0, gpu_type="a100"),
    Partition("bigmem", "bm", 16, 64, 2_048_000, 0, 190.0, 720.0),
    Partition("shared", "sn", 8, 128, 256_000, 0, 150.0, 580.0, shared=True),
)

DEPARTMENTS = ("physics", "chemistry", "biology", "climate", "cs", "engineering")
_APPS = (
    ("lammps", "cpu"),
    ("gromacs", "cpu"),
    ("vasp", "cpu"),
    ("wrf", "cpu"),
    ("openfoam", "cpu"),
    ("pytorch-train", "gpu"),
    ("jax-train", "gpu"),
    ("cp2k", "gpu"),
    ("assembly", "bigmem"),
    ("r-analysis", "shared"),
    ("python-post", "shared"),
    ("matlab", "shared"),
)


@dataclass(frozen=True, slots=True)
class App:
    """What a user runs: partition, typical size, utilization and runtime/limit ratio."""

    name: str
    partition: str
    nodes: int
    utilization: float
    runtime_ratio: float
    time_limit_s: int


@dataclass(frozen=True, slots=True)
class User:
    """A user with a uid, a default account, and the apps they run."""

    name: str
    uid: int
    gid: int
    group: str
    account: str
    parent_accounts: str
    weight: float
    apps: tuple[App, ...]


_LIMITS_S = (1_800, 3_600, 7_200, 14_400, 28_800, 43_200, 86_400, 172_800)
_LIMIT_WEIGHTS = (25, 25, 15, 15, 8, 5, 5, 2)  # most jobs ask for a few hours at most


def make_users(n_users: int, rng: random.Random) -> list[User]:
    """Users with Zipf-skewed activity in a root/department/project account tree."""
    n_projects = max(2, n_users // 4)
    projects = [f"{DEPARTMENTS[i % len(DEPARTMENTS)][:4]}{i:03d}" for i in range(n_projects)]
    users = []
    for i in range(n_users):
        project = projects[rng.randrange(n_projects)]
        dept = DEPARTMENTS[projects.index(project) % len(DEPARTMENTS)]
        apps = []
        for _ in range(rng.randint(1, 3)):
            app_name, partition = _APPS[rng.randrange(len(_APPS))]
            sizes = (1, 1, 1, 2, 4) if partition == "gpu" else (1, 1, 1, 2, 4, 8)
            nodes = 1 if partition in ("shared", "bigmem") else rng.choice(sizes)
            apps.append(
                App(
                    name=app_name,
                    partition=partition,
                    nodes=nodes,
                    utilization=rng.uniform(0.35, 0.95),
                    runtime_ratio=rng.uniform(0.2, 0.9),
                    time_limit_s=rng.choices(_LIMITS_S, weights=_LIMIT_WEIGHTS)[0],
                )
            )
        name = f"u{i:04d}"
        users.append(
            User(
                name=name,
                uid=20_000 + i,
                gid=10_000 + projects.index(project),
                group=project,
                account=project,
                # jobcomp repeats the leaf account (user and account associations share acct).
                parent_accounts=f"/root/{dept}/{project}/{project}",
                weight=1.0 / (i + 1) ** 1.1,
                apps=tuple(apps),
            )
        )
    return users
