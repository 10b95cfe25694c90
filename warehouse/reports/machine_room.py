"""A synthetic machine room for ``jobcarbon.synth`` jobs, with the truth kept for tests.

Per node, the true power is the partition's idle power plus, for every running job, the job's
power above idle (exclusive jobs: ``power_w_per_node - idle``; shared jobs: their power minus
their core share of idle). Meters then add what real ones do: per-sample noise, missing
intervals, one node whose meter drifts (``drift_per_day``), one node whose Slurm energy
counter is biased (every job's reported energy gains ``slurm_bias`` times its share on that
node), PDU counters per rack (with wraps and one reset) and facility power per room
(IT x PUE). Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from consumers.ingest import Rejection, normalize_bytes
from jobcarbon.synth import DEFAULT_PARTITIONS, Partition, SynthJob, render
from schemas.job import ENERGY_INVALID_AT_J, JobRecord

DAY_S = 86_400.0
PDU_COUNTER_MAX_J = 2**32  # a 32-bit joule counter: a 15 kW rack wraps every ~3.3 days


@dataclass(frozen=True, slots=True)
class RoomTruth:
    """What was injected, for tests to recover."""

    start_at: datetime
    end_at: datetime
    sample_period_s: int
    noise_sd: float
    pue: float
    biased_node: str
    slurm_bias: float
    drift_node: str
    drift_per_day: float
    gaps: tuple[tuple[str, datetime, datetime], ...]  # (node, last sample, next sample)
    dropped_samples: int
    pdu_wraps: int
    pdu_reset: tuple[str, datetime] | None
    node_energy_j: dict[str, float]  # true energy per node over the room window


@dataclass(frozen=True, slots=True)
class MachineRoom:
    """Jobs (with the biased Slurm energies), meter rows and mapping as the files hold them."""

    jobs: list[SynthJob]
    meters: pd.DataFrame
    mapping: pd.DataFrame
    truth: RoomTruth


def build_machine_room(
    jobs: Sequence[SynthJob],
    *,
    partitions: tuple[Partition, ...] = DEFAULT_PARTITIONS,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    sample_period_s: int = 300,
    facility_period_s: int = 900,
    noise_sd: float = 0.02,
    slurm_bias: float = 0.08,
    drift_per_day: float = 0.03,
    pue: float = 1.3,
    nodes_per_rack: int = 32,
    gap_nodes: int = 3,
    drop_share: float = 0.001,
) -> MachineRoom:
    """Meter series for every node, rack and room over ``[start, end]`` (default: the jobs'
    span, whole hours)."""
    rng = np.random.default_rng(seed)
    by_node_partition = {n: p for p in partitions for n in p.nodes}
    ran = [j for j in jobs if j.start is not None and j.nodes]
    if start is None:
        start = _floor_hour(min(j.start for j in ran if j.start is not None))
    if end is None:
        end = _ceil_hour(max(j.end for j in ran))
    t0, t1 = start.timestamp(), end.timestamp()
    biased, drifting = _pick_nodes(ran, by_node_partition)
    jobs = [_bias(j, biased, slurm_bias) for j in jobs]

    grid = np.arange(t0, t1, sample_period_s, dtype="float64")
    power_fn = _true_power(ran, by_node_partition)
    mapping_rows, racks = _layout(partitions, nodes_per_rack)
    node_names = [n for p in partitions for n in p.nodes]
    eligible_gap = [n for n in node_names if n not in (biased, drifting)]
    gap_picks = rng.choice(len(eligible_gap), size=min(gap_nodes, len(eligible_gap)), replace=False)
    gaps: list[tuple[str, datetime, datetime]] = []
    frames: list[pd.DataFrame] = []
    node_power: dict[str, np.ndarray] = {}
    node_truth: dict[str, float] = {}
    dropped = 0
    for node in node_names:
        part = by_node_partition[node]
        cum_t, cum_e = power_fn(node, part.idle_power_w, t0, t1)
        edges = np.append(grid, grid[-1] + sample_period_s)
        true_w = np.diff(np.interp(edges, cum_t, cum_e)) / sample_period_s
        node_power[node] = true_w
        node_truth[node] = float(np.interp(t1, cum_t, cum_e) - np.interp(t0, cum_t, cum_e))
        read_w = true_w * (1.0 + rng.normal(0.0, noise_sd, len(grid)))
        if node == drifting:
            read_w *= 1.0 + drift_per_day * (grid + sample_period_s / 2 - t0) / DAY_S
        keep = rng.random(len(grid)) >= drop_share
        if node in (biased, drifting):
            keep[:] = True
        if node in {eligible_gap[i] for i in gap_picks}:
            hours = float(rng.uniform(2.0, 6.0))
            gap_start = t0 + float(rng.uniform(0.1, 0.7)) * (t1 - t0)
            gap_start -= gap_start % sample_period_s
            gap_end = gap_start + hours * 3600.0
            keep &= (grid < gap_start) | (grid >= gap_end)
        gaps.extend((node, _dt(a), _dt(b)) for a, b in _gaps(grid, keep, sample_period_s))
        dropped += int((~keep).sum())
        source = "redfish" if part.gpus_per_node else "ipmi"
        frames.append(_rows(grid[keep], "node", node, source, power_w=read_w[keep]))

    pdu_grid = grid
    wraps = 0
    reset: tuple[str, datetime] | None = None
    reset_rack = sorted(racks)[len(racks) // 2]
    rack_power: dict[str, np.ndarray] = {}
    for rack, members in sorted(racks.items()):
        true_w = np.sum([node_power[n] for n in members], axis=0)
        rack_power[rack] = true_w
        read_w = true_w * (1.0 + rng.normal(0.0, 0.005, len(pdu_grid)))
        energy = np.r_[0.0, np.cumsum(read_w * sample_period_s)][:-1]
        counter = float(rng.uniform(0, PDU_COUNTER_MAX_J)) + energy
        if rack == reset_rack:
            k = len(counter) // 3
            reset_at = pdu_grid[k] - sample_period_s / 2
            counter[k:] = energy[k:] - energy[k] + read_w[k - 1] * sample_period_s / 2
            reset = (rack, _dt(reset_at))
        wraps += int(np.sum(np.diff(np.floor(counter / PDU_COUNTER_MAX_J)) > 0))
        counter = np.mod(counter, PDU_COUNTER_MAX_J)
        frame = _rows(pdu_grid, "rack", rack, "pdu", energy_j=np.round(counter))
        frame["counter_max_j"] = float(PDU_COUNTER_MAX_J)
        frames.append(frame)

    rooms: dict[str, list[str]] = defaultdict(list)
    for rack, room in {r[1]: r[2] for r in mapping_rows}.items():
        rooms[room].append(rack)
    fgrid = np.arange(t0, t1, facility_period_s, dtype="float64")
    for room, room_racks in sorted(rooms.items()):
        it_w = np.sum([rack_power[r] for r in room_racks], axis=0)
        it_cum = np.r_[0.0, np.cumsum(it_w * sample_period_s)]
        fedges = np.append(fgrid, fgrid[-1] + facility_period_s)
        avg_w = np.diff(np.interp(fedges, np.append(grid, grid[-1] + sample_period_s), it_cum))
        avg_w /= facility_period_s
        read_w = avg_w * pue * (1.0 + rng.normal(0.0, 0.005, len(fgrid)))
        frames.append(_rows(fgrid, "facility", room, "bms", power_w=read_w))

    meters = pd.concat(frames, ignore_index=True)
    mapping = pd.DataFrame(mapping_rows, columns=["node", "rack", "room", "partition"])
    truth = RoomTruth(
        start_at=start,
        end_at=end,
        sample_period_s=sample_period_s,
        noise_sd=noise_sd,
        pue=pue,
        biased_node=biased,
        slurm_bias=slurm_bias,
        drift_node=drifting,
        drift_per_day=drift_per_day,
        gaps=tuple(gaps),
        dropped_samples=dropped,
        pdu_wraps=wraps,
        pdu_reset=reset,
        node_energy_j=node_truth,
    )
    return MachineRoom(jobs=list(jobs), meters=meters, mapping=mapping, truth=truth)


def job_records(jobs: Sequence[SynthJob]) -> list[JobRecord]:
    """The jobs as the pipeline sees them: rendered by the patched plugin, normalized."""
    out = []
    for job in jobs:
        result = normalize_bytes(render(job, "24.11-patched"))
        if not isinstance(result, Rejection):
            out.append(result)
    return out


def _pick_nodes(jobs: Sequence[SynthJob], partition_of: dict[str, Partition]) -> tuple[str, str]:
    """The biased node: the node with the most run time of single-node jobs with a final,
    valid energy (Slurm reports one energy per job, so a per-node counter bias shows only
    through single-node jobs; the even split dilutes it over a multi-node job's nodes). The
    drifting node: the node with the most clean job time among the others, CPU ones first."""
    clean: dict[str, float] = defaultdict(float)
    single: dict[str, float] = defaultdict(float)
    for job in jobs:
        energy = job.energy_record_j
        valid = energy is not None and energy < ENERGY_INVALID_AT_J
        if job.exclusive and job.energy_complete and valid:
            for node in job.nodes:
                clean[node] += job.elapsed_s
                if len(job.nodes) == 1:
                    single[node] += job.elapsed_s
    if not single or len(clean) < 2:
        raise ValueError("too few exclusive jobs ran to place a biased and a drifting node")
    biased = min(single, key=lambda n: (-single[n], n))
    others = sorted((n for n in clean if n != biased), key=lambda n: (-clean[n], n))
    cpu = [n for n in others if partition_of[n].name == "cpu"]
    return biased, (cpu or others)[0]


def _bias(job: SynthJob, node: str, bias: float) -> SynthJob:
    """Slurm's counter on ``node`` reads ``1 + bias`` times the truth: the job's reported
    energy gains ``bias`` times the node's share (valid energies only)."""
    if node not in job.nodes:
        return job

    def biased(value: int | None) -> int | None:
        if value is None or value >= ENERGY_INVALID_AT_J:
            return value
        return round(value + bias * value / len(job.nodes))

    return dataclasses.replace(
        job, energy_record_j=biased(job.energy_record_j), energy_db_j=biased(job.energy_db_j)
    )


PowerFn = Callable[[str, float, float, float], tuple[np.ndarray, np.ndarray]]


def _true_power(jobs: Sequence[SynthJob], partition_of: dict[str, Partition]) -> PowerFn:
    """A function ``node, idle_w, t0, t1 -> (t, cumulative J)``: piecewise-linear truth."""
    steps: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for job in jobs:
        if job.start is None or job.elapsed_s < 1:
            continue
        for node in job.nodes:
            part = partition_of[node]
            share = 1.0 if job.exclusive else job.cpus / part.cpus_per_node
            excess = job.power_w_per_node - share * part.idle_power_w
            steps[node].append((job.start.timestamp(), excess))
            steps[node].append((job.end.timestamp(), -excess))

    def cumulative(node: str, idle_w: float, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        events = sorted(steps.get(node, []))
        times = np.array([t0] + [t for t, _ in events] + [t1], dtype="float64")
        deltas = np.array([idle_w] + [d for _, d in events] + [0.0])
        power = np.cumsum(deltas)
        order = np.argsort(times, kind="stable")
        times, power = times[order], power[order]
        energy = np.r_[0.0, np.cumsum(power[:-1] * np.diff(times))]
        return times, energy

    return cumulative


def _layout(
    partitions: tuple[Partition, ...], nodes_per_rack: int
) -> tuple[list[tuple[str, str, str, str]], dict[str, list[str]]]:
    rows: list[tuple[str, str, str, str]] = []
    racks: dict[str, list[str]] = defaultdict(list)
    for part in partitions:
        room = "hall-a" if part.name == "cpu" else "hall-b"
        for i, node in enumerate(part.nodes):
            rack = f"{part.name}-r{i // nodes_per_rack + 1:02d}"
            rows.append((node, rack, room, part.name))
            racks[rack].append(node)
    return rows, racks


def _rows(
    t: np.ndarray,
    level: str,
    meter_id: str,
    source: str,
    *,
    power_w: np.ndarray | None = None,
    energy_j: np.ndarray | None = None,
) -> pd.DataFrame:
    n = len(t)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(t, unit="s", utc=True),
            "level": level,
            "meter_id": meter_id,
            "source": source,
            "power_w": power_w if power_w is not None else np.full(n, np.nan),
            "energy_j": energy_j if energy_j is not None else np.full(n, np.nan),
        }
    )


def _gaps(grid: np.ndarray, keep: np.ndarray, period_s: float) -> list[tuple[float, float]]:
    """Runs of two or more dropped samples (what a reader sees as a gap): last kept sample
    to the next kept one."""
    out = []
    kept_t = grid[keep]
    for a, b in itertools.pairwise(kept_t):
        if b - a > 2.5 * period_s:
            out.append((float(a), float(b)))
    return out


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: datetime) -> datetime:
    floor = _floor_hour(at)
    return floor if floor == at else floor + timedelta(hours=1)
