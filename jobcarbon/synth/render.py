"""Render synthetic jobs as the bytes each Slurm version's ``jobcomp/kafka`` would send.

Layouts follow ``../shared/docs/slurm-jobcomp-record.md`` §1-§9: the trailing NUL before
23.11.7, ``"Unknown"`` timestamps before 23.11.9/24.05.1, the CSCS key names, raw TRES from
23.11.1, ``priority`` from 24.05, the ran-in partition and optional start events from 25.05,
``sluid`` from 26.05, and the jobcarbon patch fields on ``24.11-patched``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, Final

import orjson

from jobcarbon.synth.jobs import NO_VAL64, SynthJob
from schemas.hostlist import compress_hostlist

VERSIONS: Final = (
    "23.02",
    "23.11.0-cscs",
    "23.11.6",
    "23.11.10",
    "24.05.0",
    "24.05",
    "24.11",
    "24.11-patched",
    "25.05",
    "26.05",
)
#: Weights of the ``mix`` version: mostly current releases, a tail of older ones.
MIX_WEIGHTS: Final = (2, 1, 2, 3, 1, 8, 30, 20, 25, 8)
PATCH_SCHEMA_VERSION: Final = 1
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def print_sluid(value: int) -> str:
    """Slurm's printed SLUID: ``s`` + 13 Crockford base32 digits of the 64-bit job_db_inx."""
    digits = [_CROCKFORD[(value >> (5 * i)) & 31] for i in range(12, -1, -1)]
    return "s" + "".join(digits)


def _ts(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%S") if when is not None else None


def _mem(mb: int) -> str:
    if mb % 1024 == 0 and mb >= 1024:
        gb = mb // 1024
        return f"{gb // 1024}T" if gb % 1024 == 0 else f"{gb}G"
    return f"{mb}M"


def _tres(job: SynthJob, with_energy: bool) -> tuple[str, str]:
    """(raw, formatted) alloc TRES strings; raw keeps NO_VAL64 energy, formatted drops it."""
    energy = job.energy_record_j if with_energy else None
    raw = [f"1={job.cpus}", f"2={job.mem_mb}"]
    fmt = [f"cpu={job.cpus}", f"mem={_mem(job.mem_mb)}"]
    raw_energy = NO_VAL64 if energy is None else energy
    if raw_energy != 0:
        raw.append(f"3={raw_energy}")
    if energy not in (None, 0) and energy < NO_VAL64:
        fmt.append(f"energy={energy}")
    raw.append(f"4={max(1, len(job.nodes))}")
    fmt.append(f"node={max(1, len(job.nodes))}")
    raw.append(f"5={job.cpus}")
    fmt.append(f"billing={job.cpus}")
    if job.gpus:
        raw.append(f"1001={job.gpus}")
        fmt.append(f"gres/gpu={job.gpus}")
        raw.append(f"1002={job.gpus}")
        fmt.append(f"gres/gpu:a100={job.gpus}")
    return ",".join(raw), ",".join(fmt)


def _req(job: SynthJob) -> tuple[str, str]:
    n = max(1, len(job.nodes))
    raw = f"1={job.cpus},2={job.mem_mb},4={n},5={job.cpus}"
    fmt = f"cpu={job.cpus},mem={_mem(job.mem_mb)},node={n},billing={job.cpus}"
    if job.gpus:
        raw += f",1001={job.gpus}"
        fmt += f",gres/gpu={job.gpus}"
    return raw, fmt


def record_dict(job: SynthJob, version: str, *, event: str = "end") -> dict[str, Any]:
    """The record as a dict in Slurm's key order for ``version`` (see ``VERSIONS``)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown Slurm version {version!r}; choose one of {', '.join(VERSIONS)}")
    major = tuple(int(x) for x in version.split("-")[0].split(".")[:2])
    omit_unknown = version in ("23.11.10",) or (major >= (24, 5) and version != "24.05.0")
    cscs = version == "23.11.0-cscs"
    has_raw = major >= (23, 11) and version not in ("23.11.0-cscs",)
    # <=23.11.0 (not the CSCS fix): energy was usually not yet summed into the record.
    energy_in_record = not (version == "23.02" and job.job_id % 3 != 0)
    start_event = event == "start"

    rec: dict[str, Any] = {"jobid": job.job_id}
    if major >= (26, 5):
        rec["sluid"] = print_sluid(job.db_index)
    rec.update(
        container=None,
        username=job.user.name,
        user_id=job.user.uid,
        groupname=job.user.group,
        group_id=job.user.gid,
    )
    start_str = _ts(job.start)
    if job.start is not None and job.start > job.end:
        start_str = "Unknown"
    if start_str is not None or not omit_unknown:
        rec["@start"] = start_str if start_str is not None else "Unknown"
    if not start_event:
        rec["@end"] = _ts(job.end)
        rec["elapsed"] = job.elapsed_s
    partition = job.partition
    if major < (25, 5) and job.job_id % 17 == 0:
        partition = f"{job.partition},cpu" if job.partition != "cpu" else "cpu,shared"
    rec.update(
        partition=partition,
        alloc_node="login01",
        nodes=compress_hostlist(job.nodes) if job.nodes else None,
        total_cpus=job.cpus,
        total_nodes=len(job.nodes),
    )
    if not start_event:
        rec.update(derived_ec=job.derived_ec, exit_code=job.exit_code)
    rec["state"] = None if start_event else job.state
    if not start_event:
        rec["failed_node"] = job.nodes[0] if job.state == "NODE_FAIL" and job.nodes else None
        rec["cpu_hours"] = float(f"{(job.elapsed_s * job.cpus) / 3600.0:.9g}")
    if job.array_job_id is not None:
        rec["array_job_id"] = job.array_job_id
        rec["array_task_id"] = job.array_task_id
    het_id = job.het_job_id or 0
    het_off = job.het_job_offset or 0
    if not (start_event and major >= (25, 5)):
        rec["pack_job_id"] = het_id
        rec["pack_job_offset"] = het_off
    rec["het_job_id"] = het_id
    rec["het_job_offset"] = het_off
    if major >= (24, 5):
        rec["priority"] = job.priority
    rec["@submit"] = _ts(job.submit)
    rec["@eligible"] = _ts(job.eligible)
    if job.start is not None:
        rec["@queue_wait"] = int((job.start - job.eligible).total_seconds())
    rec["work_dir"] = f"/users/{job.user.name}/runs"
    rec["std_out"] = f"/users/{job.user.name}/runs/slurm-%j.out"
    rec["cluster"] = job.cluster
    rec["qos"] = job.qos
    rec.update(ntasks=max(1, len(job.nodes)), ntasks_per_node=0, ntasks_per_tres=0, cpus_per_task=1)
    rec["time_limit"] = job.time_limit_s
    rec["job_name"] = job.job_name
    raw_alloc, fmt_alloc = _tres(job, with_energy=energy_in_record and not start_event)
    raw_req, fmt_req = _req(job)
    if has_raw:
        rec["tres_req_raw"] = raw_req
    rec["tres_req"] = fmt_req
    if cscs:
        rec["tres_alloc_str"] = raw_alloc
        rec["tres_fmt_alloc_str"] = fmt_alloc
    else:
        if has_raw:
            rec["tres_alloc_raw"] = raw_alloc
        rec["tres_alloc"] = fmt_alloc
    rec["account"] = job.account
    if major < (25, 5):
        rec["script"] = f"#!/bin/bash\n#SBATCH -A {job.account}\nsrun ./{job.job_name}\n"
    rec["parent_accounts"] = job.user.parent_accounts
    if version == "24.11-patched":
        energy = None if job.energy_record_j is None or start_event else job.energy_record_j
        rec.update(
            energy_j=energy,
            energy_complete=False if start_event else job.energy_complete,
            job_db_inx=str(job.db_index),
            submit_epoch=int(job.submit.timestamp()),
            event=event,
            exclusive=job.exclusive,
        )
    return rec


def render(job: SynthJob, version: str, *, event: str = "end") -> bytes:
    """The message value as Slurm ``version`` would produce it (NUL byte where it had one)."""
    rec = record_dict(job, version, event=event)
    # json-c escapes "/" as "\/" (JSON_C_TO_STRING_PLAIN without NOSLASHESCAPE).
    body = orjson.dumps(rec).replace(b"/", b"\\/")
    if version in ("23.02", "23.11.0-cscs", "23.11.6"):
        body += b"\x00"
    return body


def kafka_key_and_headers(
    job: SynthJob, version: str
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The key and headers the patched plugin sends (upstream sends neither)."""
    if version != "24.11-patched":
        return None, []
    key = f"{job.cluster}:{job.job_id}:{int(job.submit.timestamp())}".encode()
    return key, [("jobcarbon-schema", str(PATCH_SCHEMA_VERSION).encode())]


def choose_versions(n: int, version: str, seed: int) -> list[str]:
    """One version per job: ``version`` itself, or a seeded draw for ``mix``."""
    if version != "mix":
        if version not in VERSIONS:
            raise ValueError(
                f"unknown Slurm version {version!r}; choose mix or one of {', '.join(VERSIONS)}"
            )
        return [version] * n
    rng = random.Random(seed ^ 0x5EED)
    return rng.choices(VERSIONS, weights=MIX_WEIGHTS, k=n)
