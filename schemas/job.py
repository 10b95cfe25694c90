"""The normalized job record every stage after ingest works on.

Units are in the names (``energy_j``, ``mem_mb``, ``elapsed_s``); times are aware UTC.
The natural key is ``(cluster, job_id, submit_time)``: Slurm's own unique key in slurmdbd
(``UNIQUE (id_job, time_submit)`` per cluster). Array tasks and het-job components each have
their own ``job_id``, so their ids are attributes of the key, never needed to tell jobs apart;
a requeued job gets a new ``submit_time`` and therefore a new key, as in slurmdbd.

``JobRecord`` is a frozen ``msgspec.Struct``: the hot path builds one positionally in under
half a microsecond (a frozen dataclass takes ten times longer here, see ``bench/normalize``), and
``job_record_from_json`` validates one strictly at the boundaries (files, topics).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, NamedTuple

import msgspec

from schemas.tres import ENERGY_INVALID_AT_J

__all__ = ["ENERGY_INVALID_AT_J", "EnergySource", "EnergyStatus", "JobKey", "JobRecord"]

#: Version of the normalized record (Avro schema ``schemas/avro/job_record.avsc``).
JOB_RECORD_VERSION: Final = 1


class EnergyStatus(StrEnum):
    """Whether the job's energy can be used."""

    MEASURED = "measured"
    MISSING = "missing"
    INVALID = "invalid"


class EnergySource(StrEnum):
    """Where ``energy_j`` was read from in the jobcomp record."""

    PATCH = "jobcomp_energy_j"  # the patch's explicit field
    TRES_RAW = "jobcomp_tres_raw"  # 3= in tres_alloc_raw (or CSCS tres_alloc_str)
    TRES_FORMATTED = "jobcomp_tres_formatted"  # energy= in tres_alloc / tres_fmt_alloc_str
    NONE = "none"


class JobKey(NamedTuple):
    """Natural key of a job run: one row in ``<cluster>_job_table``."""

    cluster: str | None
    job_id: int
    submit_epoch: int | None


Event = Literal["end", "start", "energy_update"]


class JobRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A validated, normalized jobcomp record (finish, start or energy-update event).

    Not keyword-only: ``consumers.ingest.normalize`` builds it positionally (ten times
    cheaper than 46 keywords) and checks this field order at import; add new fields last.
    """

    cluster: str | None
    job_id: int
    submit_time: datetime | None
    event: Event = "end"
    record_version: int = JOB_RECORD_VERSION
    # Identity attributes (never needed for uniqueness, see module docstring).
    array_job_id: int | None = None
    array_task_id: int | None = None
    het_job_id: int | None = None
    het_job_offset: int | None = None
    sluid: str | None = None
    job_db_inx: int | None = None
    # Who and where.
    user: str | None = None
    user_id: int | None = None
    group: str | None = None
    group_id: int | None = None
    account: str | None = None
    parent_accounts: str | None = None
    qos: str | None = None
    partition: str | None = None
    partitions_requested: list[str] | None = None
    job_name: str | None = None
    # Lifecycle.
    state: str | None = None
    exit_code: str | None = None
    derived_exit_code: str | None = None
    eligible_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    elapsed_s: int | None = None
    time_limit_s: int | None = None
    # Resources.
    nodes: str | None = None
    node_count: int | None = None
    cpus: int | None = None
    mem_mb: float | None = None
    gpus: int | None = None
    billing: int | None = None
    exclusive: bool | None = None
    tres_alloc: dict[str, int | float] = msgspec.field(default_factory=dict)
    tres_req: dict[str, int | float] = msgspec.field(default_factory=dict)
    # Energy, with provenance.
    energy_j: int | None = None
    energy_status: EnergyStatus = EnergyStatus.MISSING
    energy_source: EnergySource = EnergySource.NONE
    energy_reported: str | None = None  # the value as Slurm wrote it when it was not usable
    energy_complete: bool | None = None
    # Provenance of the record itself.
    slurm_layout: str | None = None  # which documented record layout it looked like
    patched: bool = False
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def key(self) -> JobKey:
        """The natural key ``(cluster, job_id, submit_epoch)``."""
        epoch = int(self.submit_time.timestamp()) if self.submit_time is not None else None
        return JobKey(self.cluster, self.job_id, epoch)

    @property
    def message_key(self) -> str:
        """The Kafka message key the patch writes: ``cluster:jobid:submit_epoch``."""
        cluster, job_id, epoch = self.key
        return f"{cluster or ''}:{job_id}:{epoch if epoch is not None else ''}"

    def to_json(self) -> bytes:
        """One normalized JSON line (no newline); times RFC 3339 UTC (``...Z``)."""
        return _ENCODER.encode(self)

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict of the fields (values as they are, not JSON-encoded)."""
        return msgspec.structs.asdict(self)

    def replace(self, **changes: Any) -> JobRecord:
        """A copy with some fields changed (records are immutable)."""
        return msgspec.structs.replace(self, **changes)


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(JobRecord)


class JobRecordError(ValueError):
    """A normalized record that does not match the contract; the message names the field."""


def job_record_from_json(line: bytes | str) -> JobRecord:
    """Parse and validate one normalized JSON line. Raises JobRecordError."""
    try:
        record = _DECODER.decode(line)
    except msgspec.ValidationError as exc:
        raise JobRecordError(f"normalized record: {exc}") from None
    except msgspec.DecodeError as exc:
        raise JobRecordError(f"normalized record is not JSON: {exc}") from None
    for name in ("submit_time", "eligible_time", "start_time", "end_time"):
        value = getattr(record, name)
        if value is not None and value.utcoffset() is None:
            raise JobRecordError(f"normalized record: {name} {value.isoformat()!r} has no offset")
    return record


def job_record_from_dict(data: dict[str, Any]) -> JobRecord:
    """Validate a JobRecord from Python data (e.g. decoded Avro). Raises JobRecordError."""
    try:
        return msgspec.convert(data, JobRecord)
    except msgspec.ValidationError as exc:
        raise JobRecordError(f"normalized record: {exc}") from None
