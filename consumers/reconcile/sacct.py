"""The second accounting source: ``sacct --json`` and ``sacct -P`` output files, for sites
without database access (pure: text in, rows out).

``sacct --json`` shapes (``shared/docs/slurm-jobcomp-record.md`` section 12):

* data_parser v0.0.40-v0.0.42 (23.11-25.11): ``state.current`` a list, numbers either plain
  or ``{"set", "infinite", "number"}``, ``exit_code`` ``{"status": [...], "return_code",
  "signal": {"id", "name"}}``; job energy in ``jobs[].tres.allocated`` (type ``energy``; a
  NO_VAL64 count dumps as -2), step energy at ``steps[].statistics.energy.consumed``, step
  ``tres.requested.total`` = usage in (J), ``tres.consumed.total`` = usage out (W);
* openapi/dbv0.0.38 (22.05, what Debian bookworm's sacct prints): the same paths with plain
  strings/ints (``state.current`` a string, ``exit_code`` ``{"status", "return_code"}``).

Each job becomes a ``DbJob`` (the same row type as the slurmdbd source, so the classifier
and ``record_from_db`` serve both); ``SacctSource`` answers the stage's lookups from them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

import msgspec
import orjson

from consumers.reconcile.rules import (
    NO_VAL,
    STEP_BATCH,
    STEP_EXTERN,
    STEP_INTERACTIVE,
    STEP_PENDING,
    DbJob,
    DbStep,
    db_array,
    db_het,
    decode_exit,
    sluid_to_db_inx,
    state_code,
    state_name,
)
from schemas.fact import JobFact, Reconciliation, fact_from_record, with_energy
from schemas.job import EnergySource, JobRecord
from schemas.tres import NO_VAL64, STATIC_TRES_NAMES, TresParseError, parse_formatted

_STATIC_IDS: Final = {name: tres_id for tres_id, name in STATIC_TRES_NAMES.items()}
_STEP_IDS: Final = {
    "batch": STEP_BATCH,
    "extern": STEP_EXTERN,
    "interactive": STEP_INTERACTIVE,
    "pending": STEP_PENDING,
}


class SacctFormatError(ValueError):
    """sacct output that cannot be read; the message names the job and the field."""


@dataclass
class SacctParse:
    """Rows read from one sacct output, and the jobs that could not be read (with why)."""

    jobs: list[DbJob] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    parser: str = ""


# --- sacct --json -------------------------------------------------------------------------------


def _number(value: Any, what: str) -> int | None:
    """A plain int, or data_parser's ``{"set", "infinite", "number"}`` (unset/infinite: None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SacctFormatError(f"{what} is a boolean, not a number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        return _number(value.get("number"), what)
    raise SacctFormatError(f"{what} is not a number: {str(value)[:80]!r}")


def _exit_status(value: Any, what: str) -> int:
    """A data_parser exit code object as a raw wait status (what job_table stores)."""
    if value is None:
        return 0
    if not isinstance(value, Mapping):
        raise SacctFormatError(f"{what} is not an exit code object: {str(value)[:80]!r}")
    status = value.get("status")
    statuses = [status] if isinstance(status, str) else list(status or [])
    if "SIGNALED" in statuses or "CORE_DUMPED" in statuses:
        signal = value.get("signal") or {}
        sig = _number(signal.get("id", signal.get("signal_id")), f"{what}.signal.id") or 0
        return sig & 0x7F
    code = _number(value.get("return_code"), f"{what}.return_code") or 0
    return (code & 0xFF) << 8


def _state(value: Any, what: str) -> int:
    current = value.get("current") if isinstance(value, Mapping) else value
    names = [current] if isinstance(current, str) else list(current or [])
    if not names:
        raise SacctFormatError(f"{what} has no state")
    try:
        codes = [state_code(n) for n in names]
    except ValueError as exc:
        raise SacctFormatError(f"{what}: {exc}") from None
    flags = [c for c in codes if c > 0xFF]  # REQUEUED etc. are stored as the whole value
    return flags[0] if flags else codes[0]


def _tres_raw(items: Any, what: str) -> str:
    """A TRES list (``[{type, name, id, count}]``) as a raw ``id=count`` string; an energy
    count of -2 (NO_VAL64 dumped as INT64) becomes NO_VAL64 again."""
    parts: list[str] = []
    for item in items or []:
        if not isinstance(item, Mapping):
            raise SacctFormatError(f"{what} item is not an object: {str(item)[:80]!r}")
        tres_id = _number(item.get("id"), f"{what}.id")
        count = item.get("count")
        if tres_id is None or count is None:
            continue
        count = _number(count, f"{what}[{tres_id}].count")
        if count is None or count == -2 or count < 0:
            count = NO_VAL64
        if count:
            parts.append(f"{tres_id}={count}")
    return ",".join(parts)


def _tres_names(items: Iterable[Any]) -> dict[int, str]:
    names = dict(STATIC_TRES_NAMES)
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("id"), int):
            kind, name = item.get("type") or "", item.get("name") or ""
            names[item["id"]] = f"{kind}/{name}" if name else kind
    return names


def _step_id(value: Any, job_id: int) -> int:
    text = str(value.get("id") if isinstance(value, Mapping) else value)
    suffix = text.split(".", 1)[1] if "." in text else text
    if suffix in _STEP_IDS:
        return _STEP_IDS[suffix]
    if suffix.lstrip("-").isdigit():
        return int(suffix)
    raise SacctFormatError(f"job {job_id}: step id {text[:40]!r} is not a Slurm step id")


def _step(raw: Mapping[str, Any], job_id: int) -> DbStep:
    what = f"job {job_id} step"
    step_id = _step_id(raw.get("step") or {}, job_id)
    time = raw.get("time") or {}
    tres = raw.get("tres") or {}
    energy = ((raw.get("statistics") or {}).get("energy") or {}).get("consumed")
    consumed = _number(energy, f"{what}.statistics.energy.consumed")
    het = ((raw.get("step") or {}).get("het") or {}).get("component")
    return DbStep(
        id_step=step_id,
        step_het_comp=_number(het, f"{what}.het.component") or NO_VAL,
        state=_state(raw.get("state"), f"{what}.state") if raw.get("state") else 3,
        exit_code=_exit_status(raw.get("exit_code"), f"{what}.exit_code"),
        consumed_energy=NO_VAL64 if consumed is None else consumed,
        time_start=_number(time.get("start"), f"{what}.time.start") or 0,
        time_end=_number(time.get("end"), f"{what}.time.end") or 0,
        step_name=str((raw.get("step") or {}).get("name") or ""),
        tres_usage_in_tot=_tres_raw((tres.get("requested") or {}).get("total"), what) or None,
        tres_usage_out_tot=_tres_raw((tres.get("consumed") or {}).get("total"), what) or None,
    )


def _json_job(raw: Mapping[str, Any], default_cluster: str | None) -> DbJob:
    job_id = _number(raw.get("job_id"), "jobs[].job_id")
    if job_id is None or job_id <= 0:
        raise SacctFormatError(f"jobs[].job_id {raw.get('job_id')!r} is not a job id")
    what = f"job {job_id}"
    time = raw.get("time") or {}
    array = raw.get("array") or {}
    het = raw.get("het") or {}
    tres = raw.get("tres") or {}
    allocated = tres.get("allocated") or []
    assoc = raw.get("association") or {}
    cluster = raw.get("cluster") or assoc.get("cluster") or default_cluster
    if not cluster:
        raise SacctFormatError(f"{what} has no cluster (pass --cluster)")
    sluid = raw.get("sluid")
    inx = sluid_to_db_inx(sluid) if isinstance(sluid, str) and sluid else 0
    array_task = _number(array.get("task_id"), f"{what}.array.task_id")
    het_offset = _number(het.get("job_offset"), f"{what}.het.job_offset")
    limit_min = _number(time.get("limit"), f"{what}.time.limit")
    return DbJob(
        cluster=str(cluster),
        job_db_inx=inx,
        id_job=job_id,
        time_submit=_number(time.get("submission"), f"{what}.time.submission") or 0,
        time_eligible=_number(time.get("eligible"), f"{what}.time.eligible") or 0,
        time_start=_number(time.get("start"), f"{what}.time.start") or 0,
        time_end=_number(time.get("end"), f"{what}.time.end") or 0,
        state=_state(raw.get("state"), f"{what}.state"),
        exit_code=_exit_status(raw.get("exit_code"), f"{what}.exit_code"),
        derived_ec=_exit_status(raw.get("derived_exit_code"), f"{what}.derived_exit_code"),
        tres_alloc=_tres_raw(allocated, f"{what}.tres.allocated"),
        tres_req=_tres_raw(tres.get("requested"), f"{what}.tres.requested"),
        account=raw.get("account") or assoc.get("account"),
        partition=raw.get("partition") or "",
        user=raw.get("user") or assoc.get("user"),
        id_array_job=_number(array.get("job_id"), f"{what}.array.job_id") or 0,
        id_array_task=NO_VAL if array_task is None else array_task,
        het_job_id=_number(het.get("job_id"), f"{what}.het.job_id") or 0,
        het_job_offset=NO_VAL if het_offset is None else het_offset,
        job_name=str(raw.get("name") or ""),
        nodelist=raw.get("nodes"),
        timelimit=limit_min,
        qos=raw.get("qos"),
        tres_names=_tres_names(allocated),
        steps=tuple(_step(s, job_id) for s in raw.get("steps") or []),
    )


def parse_sacct_json(data: bytes | str, default_cluster: str | None = None) -> SacctParse:
    """Read a ``sacct --json`` document. A job that cannot be read is listed in ``errors``
    (with its id and the field) and the others are still returned."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SacctFormatError(f"sacct --json output is not JSON: {exc}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("jobs"), list):
        raise SacctFormatError("sacct --json output has no 'jobs' list")
    meta = doc.get("meta") or {}
    plugin = meta.get("plugin") or {}
    out = SacctParse(parser=str(plugin.get("data_parser") or plugin.get("type") or "unknown"))
    for i, raw in enumerate(doc["jobs"]):
        if not isinstance(raw, Mapping):
            out.errors.append(f"jobs[{i}] is not an object")
            continue
        try:
            out.jobs.append(_json_job(raw, default_cluster))
        except (SacctFormatError, ValueError, TypeError, AttributeError) as exc:
            out.errors.append(f"jobs[{i}] (job_id {str(raw.get('job_id'))[:40]!r}): {exc}")
    return out


# --- sacct -P -----------------------------------------------------------------------------------

_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d-%H:%M:%S", "%Y/%m/%d-%H:%M:%S")


def _psv_time(text: str, tz: tzinfo, what: str) -> int:
    if text in ("", "Unknown", "None"):
        return 0
    for fmt in _TIME_FORMATS:
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=tz).timestamp())
        except ValueError:
            continue
    raise SacctFormatError(f"{what} {text[:40]!r} is not a sacct time")


def _psv_exit(text: str, what: str) -> int:
    if not text:
        return 0
    code, sep, sig = text.partition(":")
    if not (sep and code.isdigit() and sig.isdigit()):
        raise SacctFormatError(f"{what} {text[:40]!r} is not exit:signal")
    return int(sig) & 0x7F if int(sig) else (int(code) & 0xFF) << 8


def _psv_tres(alloc: str, energy_raw: str, what: str) -> str:
    """AllocTRES (formatted names) + ConsumedEnergyRaw as a raw ``id=count`` string (static
    TRES only: site TRES ids are not known from sacct -P)."""
    try:
        counts = parse_formatted(alloc) if alloc else {}
    except TresParseError as exc:
        raise SacctFormatError(f"{what} AllocTRES: {exc}") from None
    parts = [
        f"{_STATIC_IDS[name]}={int(count)}"
        for name, count in counts.items()
        if name in _STATIC_IDS and name != "energy" and count
    ]
    if energy_raw == "":
        parts.append(f"3={NO_VAL64}")  # sacct prints blank for NO_VAL64
    elif energy_raw.isdigit():
        if int(energy_raw):
            parts.append(f"3={energy_raw}")
    else:
        raise SacctFormatError(f"{what} ConsumedEnergyRaw {energy_raw[:40]!r} is not a count")
    return ",".join(parts)


def parse_sacct_psv(text: str, default_cluster: str | None = None, tz: tzinfo = UTC) -> SacctParse:
    """Read ``sacct -P`` (``-p``) output with its header line. Times are read in ``tz`` (sacct
    prints local time). Job lines have a JobID without ``.``; step lines follow their job. A
    repeated job line (as the CSCS table shows for step ``.0``) is kept as an unnamed step."""
    reader = csv.DictReader(io.StringIO(text), delimiter="|")
    if not reader.fieldnames or not {"JobID", "JobIDRaw"} & set(reader.fieldnames):
        raise SacctFormatError("sacct -P output has no header with JobID or JobIDRaw")
    out = SacctParse(parser="sacct -P")
    jobs: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(reader, start=2):
        job_text = (row.get("JobIDRaw") or row.get("JobID") or "").strip()
        what = f"line {n} JobID {job_text[:40]!r}"
        try:
            base, _, suffix = job_text.partition(".")
            if not base.isdigit():
                hint = (
                    " (array/het ids need JobIDRaw in --format)"
                    if "_" in base or "+" in base
                    else ""
                )
                raise SacctFormatError(f"{what} is not a job id{hint}")
            job_id = int(base)
            if not suffix and base not in jobs:
                jobs[base] = {"row": row, "steps": [], "what": what, "id": job_id}
                continue
            if base not in jobs:
                raise SacctFormatError(f"{what} is a step of a job with no job line")
            step_id = _STEP_IDS.get(suffix, int(suffix) if suffix.isdigit() else STEP_PENDING)
            if not suffix:
                out.errors.append(f"{what}: repeated job line kept as an unnamed step")
            energy = row.get("ConsumedEnergyRaw", "")
            jobs[base]["steps"].append(
                DbStep(
                    id_step=step_id,
                    exit_code=_psv_exit(row.get("ExitCode", ""), f"{what} ExitCode"),
                    consumed_energy=int(energy) if energy.isdigit() else NO_VAL64,
                    time_start=_psv_time(row.get("Start", ""), tz, f"{what} Start"),
                    time_end=_psv_time(row.get("End", ""), tz, f"{what} End"),
                    step_name=row.get("JobName", ""),
                    state=_state(row.get("State") or "COMPLETED", f"{what} State"),
                )
            )
        except (SacctFormatError, ValueError) as exc:
            out.errors.append(str(exc) if str(exc).startswith(what) else f"{what}: {exc}")
    for entry in jobs.values():
        row, what = entry["row"], entry["what"]
        try:
            cluster = row.get("Cluster") or default_cluster
            if not cluster:
                raise SacctFormatError(f"{what} has no Cluster (pass --cluster)")
            inx = row.get("DBIndex", "")
            out.jobs.append(
                DbJob(
                    cluster=cluster,
                    job_db_inx=int(inx) if inx.isdigit() else 0,
                    id_job=entry["id"],
                    time_submit=_psv_time(row.get("Submit", ""), tz, f"{what} Submit"),
                    time_eligible=_psv_time(row.get("Eligible", ""), tz, f"{what} Eligible"),
                    time_start=_psv_time(row.get("Start", ""), tz, f"{what} Start"),
                    time_end=_psv_time(row.get("End", ""), tz, f"{what} End"),
                    state=_state(row.get("State") or "", f"{what} State"),
                    exit_code=_psv_exit(row.get("ExitCode", ""), f"{what} ExitCode"),
                    derived_ec=_psv_exit(row.get("DerivedExitCode", ""), f"{what} DerivedExitCode"),
                    tres_alloc=_psv_tres(
                        row.get("AllocTRES", ""), row.get("ConsumedEnergyRaw", ""), what
                    ),
                    account=row.get("Account") or None,
                    partition=row.get("Partition", ""),
                    user=row.get("User") or None,
                    id_user=int(row["UID"]) if (row.get("UID") or "").isdigit() else None,
                    job_name=row.get("JobName", ""),
                    nodelist=row.get("NodeList") or None,
                    qos=row.get("QOS") or None,
                    steps=tuple(entry["steps"]),
                )
            )
        except (SacctFormatError, ValueError) as exc:
            out.errors.append(str(exc))
    return out


# --- rows -> records / facts (backfill) ---------------------------------------------------------


def _when(epoch: int) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch > 0 else None


def record_from_db(job: DbJob, source: str = "slurmdbd") -> JobRecord:
    """A normalized record built from an accounting row (backfill, gap filling)."""
    energy = job.energy
    array_job, array_task = db_array(job.id_array_job, job.id_array_task)
    het_job, het_offset = db_het(job.het_job_id, job.het_job_offset)
    start, end = _when(job.time_start), _when(job.time_end)
    return JobRecord(
        cluster=job.cluster,
        job_id=job.id_job,
        submit_time=_when(job.time_submit),
        array_job_id=array_job,
        array_task_id=array_task,
        het_job_id=het_job,
        het_job_offset=het_offset,
        job_db_inx=job.job_db_inx or None,
        user=job.user,
        user_id=job.id_user,
        group_id=job.id_group,
        account=job.account,
        qos=job.qos,
        partition=job.partition or None,
        job_name=job.job_name or None,
        state=state_name(job.state),
        exit_code=decode_exit(job.exit_code),
        derived_exit_code=decode_exit(job.derived_ec),
        eligible_time=_when(job.time_eligible),
        start_time=start,
        end_time=end,
        elapsed_s=max(0, job.time_end - job.time_start) if start and end else None,
        time_limit_s=None if job.timelimit in (None, NO_VAL, 0xFFFFFFFF) else job.timelimit * 60,
        nodes=job.nodelist,
        energy_j=energy.joules,
        energy_status=energy.status,
        energy_source=EnergySource.NONE
        if energy.joules is None and energy.reported is None
        else EnergySource.TRES_RAW,
        energy_reported=energy.reported,
        energy_complete=True,
        slurm_layout=source,
        extra={"accounting_source": source},
    )


def fact_from_db(job: DbJob, checked_at: datetime, source: str = "slurmdbd") -> JobFact:
    """A fact for a job known only from accounting: slurmdbd's final energy, nothing to
    disagree with (status ``match``)."""
    record = record_from_db(job, source)
    fact = fact_from_record(record)
    fact = with_energy(fact, record.energy_j, "slurmdbd" if record.energy_j is not None else "none")
    return msgspec.structs.replace(
        fact,
        reconciliation=Reconciliation(
            status="match",
            db_energy_j=record.energy_j,
            db_job_db_inx=job.job_db_inx or None,
            db_account=job.account,
            db_partition=job.partition or None,
            db_state=record.state,
            differences=(f"built from {source}",),
            checked_at=checked_at,
            attempts=1,
        ),
    )


class SacctSource:
    """An accounting source over rows read from sacct files (same lookups as slurmdbd)."""

    def __init__(self, jobs: Sequence[DbJob]) -> None:
        self._by_job: dict[tuple[str, int], list[DbJob]] = {}
        self._by_inx: dict[tuple[str, int], DbJob] = {}
        for job in jobs:
            self._by_job.setdefault((job.cluster, job.id_job), []).append(job)
            if job.job_db_inx:
                self._by_inx[(job.cluster, job.job_db_inx)] = job

    def fetch(self, cluster: str, job_ids: Collection[int]) -> list[DbJob]:
        return [j for i in job_ids for j in self._by_job.get((cluster, i), [])]

    def fetch_by_inx(self, cluster: str, job_db_inxs: Collection[int]) -> list[DbJob]:
        return [self._by_inx[(cluster, i)] for i in job_db_inxs if (cluster, i) in self._by_inx]
