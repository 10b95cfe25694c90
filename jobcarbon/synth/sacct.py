"""Render synthetic jobs as ``sacct --json`` output (data_parser v0.0.41): what slurmdbd holds
for them after every step reported, i.e. each job's final energy (``SynthJob.energy_db_j``).

The demo and tests reconcile warehouse facts against this through the real sacct parser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from jobcarbon.synth.jobs import NO_VAL64, SynthJob
from schemas.hostlist import compress_hostlist


def _number(value: int | None) -> dict[str, Any]:
    return {"set": value is not None, "infinite": False, "number": value or 0}


def _exit(code: str) -> dict[str, Any]:
    status, signal = (int(x) for x in code.split(":"))
    return {
        "status": ["SIGNALED"] if signal else (["SUCCESS"] if status == 0 else ["ERROR"]),
        "return_code": _number(None if signal else status),
        "signal": {"id": _number(signal or None), "name": ""},
    }


def _job(job: SynthJob) -> dict[str, Any]:
    energy = NO_VAL64 if job.energy_db_j is None else job.energy_db_j
    allocated = [
        {"type": "cpu", "name": "", "id": 1, "count": job.cpus},
        {"type": "mem", "name": "", "id": 2, "count": job.mem_mb},
        # sacct --json dumps NO_VAL64 as -2 (count is INT64).
        {"type": "energy", "name": "", "id": 3, "count": -2 if energy == NO_VAL64 else energy},
        {"type": "node", "name": "", "id": 4, "count": max(1, len(job.nodes))},
        {"type": "billing", "name": "", "id": 5, "count": job.cpus},
    ]
    return {
        "job_id": job.job_id,
        "cluster": job.cluster,
        "account": job.account,
        "partition": job.partition,
        "user": job.user.name,
        "name": job.job_name,
        "nodes": compress_hostlist(job.nodes) if job.nodes else "None assigned",
        "qos": job.qos,
        "state": {"current": [job.state], "reason": "None"},
        "exit_code": _exit(job.exit_code),
        "derived_exit_code": _exit(job.derived_ec),
        "array": {
            "job_id": job.array_job_id or 0,
            "task_id": _number(job.array_task_id),
        },
        "het": {"job_id": job.het_job_id or 0, "job_offset": _number(job.het_job_offset)},
        "time": {
            "submission": int(job.submit.timestamp()),
            "eligible": int(job.eligible.timestamp()),
            "start": int(job.start.timestamp()) if job.start else 0,
            "end": int(job.end.timestamp()),
            "limit": _number(job.time_limit_s // 60),
        },
        "tres": {"allocated": allocated, "requested": allocated[:2]},
        "steps": [],
    }


def sacct_json(jobs: Sequence[SynthJob]) -> bytes:
    """The ``sacct --json`` document for ``jobs``."""
    doc = {
        "meta": {"plugin": {"type": "openapi/slurmdbd", "data_parser": "data_parser/v0.0.41"}},
        "jobs": [_job(job) for job in jobs],
        "warnings": [],
        "errors": [],
    }
    return orjson.dumps(doc)
