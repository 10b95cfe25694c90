"""Ingest: raw jobcomp bytes -> a normalized ``JobRecord``, or a ``Rejection`` with its reason.

Pure functions, no Kafka and no clock: the faust agent, ``jobcarbon normalize`` and the backfill
path all call ``normalize_bytes``. Every input ends as exactly one of the two results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from schemas.job import (
    ENERGY_INVALID_AT_J,
    JOB_RECORD_VERSION,
    EnergySource,
    EnergyStatus,
    JobRecord,
)
from schemas.raw import NO_VAL64, RawJobcompRecord, fast_record
from schemas.tres import TresParseError, read_tres_counts, read_tres_parts

logger = logging.getLogger(__name__)

#: Kafka header our patch sets; its value is the patch's record schema version.
SCHEMA_HEADER: Final = "jobcarbon-schema"
#: Default largest record accepted (Slurm's default max batch script is 4 MB).
DEFAULT_MAX_BYTES: Final = 8 * 1024 * 1024
_DETAIL_VALUE_CHARS: Final = 120


class Reason:
    """Stable reason codes for rejected records (DLQ ``reason``)."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    UNDECODABLE = "undecodable"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    MISSING_KEY = "missing_key"
    INVALID_TRES = "invalid_tres"
    NUL_IN_STRING = "nul_in_string"
    #: A bug of ours, not of the record: kept in the DLQ with the exception, never a crash.
    INTERNAL_ERROR = "internal_error"

    ALL: Final = frozenset(
        {
            EMPTY,
            OVERSIZED,
            UNDECODABLE,
            INVALID_JSON,
            NOT_AN_OBJECT,
            MISSING_FIELD,
            INVALID_FIELD,
            MISSING_KEY,
            INVALID_TRES,
            NUL_IN_STRING,
            INTERNAL_ERROR,
        }
    )


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that could not be normalized: reason code, human detail, original bytes."""

    reason: str
    detail: str
    raw: bytes
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json_line(self) -> bytes:
        """The rejects-file / DLQ JSON form; ``raw`` is text when it decodes, else base64."""
        try:
            raw_text: str = self.raw.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            import base64

            raw_text = base64.b64encode(self.raw).decode("ascii")
            encoding = "base64"
        doc = {"reason": self.reason, "detail": self.detail, "raw": raw_text}
        if encoding != "utf-8":
            doc["raw_encoding"] = encoding
        return orjson.dumps(doc)


def show_value(value: Any) -> str:
    """A short, escaped rendering of a bad value for error details (safe for logs)."""
    text = repr(value)
    if len(text) > _DETAIL_VALUE_CHARS:
        text = text[:_DETAIL_VALUE_CHARS] + f"... ({len(text)} chars)"
    return text


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<record>"


def _rejection_from_validation(exc: ValidationError, raw: bytes) -> Rejection:
    error = exc.errors(include_url=False)[0]
    kind, loc = error["type"], error["loc"]
    if kind == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return Rejection(
                Reason.UNDECODABLE,
                f"record is not UTF-8: byte {decode_error.start} is "
                f"{raw[decode_error.start : decode_error.start + 1]!r}",
                raw,
            )
        return Rejection(Reason.INVALID_JSON, f"record is not JSON: {error['msg']}", raw)
    if kind == "model_type":
        return Rejection(
            Reason.NOT_AN_OBJECT,
            f"record is a JSON {type(error['input']).__name__}, not an object: "
            f"{show_value(error['input'])}",
            raw,
        )
    if kind == "missing":
        return Rejection(Reason.MISSING_FIELD, f"field {_field_name(loc)!r} is missing", raw)
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return Rejection(
        Reason.INVALID_FIELD,
        f"field {_field_name(loc)!r} has value {show_value(error.get('input'))}: "
        f"{error['msg']}{more}",
        raw,
    )


def _find_nul(doc: Any, path: str = "") -> str | None:
    if isinstance(doc, str):
        return path if "\x00" in doc else None
    if isinstance(doc, dict):
        for key, value in doc.items():
            if "\x00" in key:
                return f"{path}.{key!r}" if path else repr(key)
            found = _find_nul(value, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    if isinstance(doc, list):
        for i, value in enumerate(doc):
            found = _find_nul(value, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def is_patched(r: RawJobcompRecord) -> bool:
    """The patch always sends ``energy_complete`` (true/false) and ``submit_epoch``."""
    return r.energy_complete is not None or r.submit_epoch is not None


# Enum members bound once: each ``EnergyStatus.X`` lookup costs ~0.2 us on Python 3.11.
_PATCH: Final = EnergySource.PATCH
_TRES_RAW: Final = EnergySource.TRES_RAW
_TRES_FORMATTED: Final = EnergySource.TRES_FORMATTED
_NO_SOURCE: Final = EnergySource.NONE
_MISSING: Final = EnergyStatus.MISSING
_INVALID: Final = EnergyStatus.INVALID
_MEASURED: Final = EnergyStatus.MEASURED
_ALLOC_FIELDS: Final = ("tres_alloc_raw", "tres_alloc")
_CSCS_ALLOC_FIELDS: Final = ("tres_alloc_str", "tres_fmt_alloc_str")
_REQ_FIELDS: Final = ("tres_req_raw", "tres_req")


# ``normalize`` builds JobRecord positionally (ten times cheaper than 46 keywords); this is
# the order it passes the fields in, checked against the struct's own order at import.
_JOB_RECORD_ORDER: Final = (
    "cluster",
    "job_id",
    "submit_time",
    "event",
    "record_version",
    "array_job_id",
    "array_task_id",
    "het_job_id",
    "het_job_offset",
    "sluid",
    "job_db_inx",
    "user",
    "user_id",
    "group",
    "group_id",
    "account",
    "parent_accounts",
    "qos",
    "partition",
    "partitions_requested",
    "job_name",
    "state",
    "exit_code",
    "derived_exit_code",
    "eligible_time",
    "start_time",
    "end_time",
    "elapsed_s",
    "time_limit_s",
    "nodes",
    "node_count",
    "cpus",
    "mem_mb",
    "gpus",
    "billing",
    "exclusive",
    "tres_alloc",
    "tres_req",
    "energy_j",
    "energy_status",
    "energy_source",
    "energy_reported",
    "energy_complete",
    "slurm_layout",
    "patched",
    "extra",
)
if JobRecord.__struct_fields__ != _JOB_RECORD_ORDER:
    raise ImportError("JobRecord's fields changed: update _JOB_RECORD_ORDER and normalize()")


def normalize(
    r: RawJobcompRecord,
    extra: dict[str, Any] | None = None,
    *,
    default_cluster: str | None = None,
    patch_schema: int | None = None,
    had_nul: bool = False,
) -> JobRecord:
    """Normalize one validated record: a ``RawJobcompRecord``, or the struct ``fast_record``
    returns (the same attributes with the model's rules applied).

    Raises TresParseError for unreadable TRES strings."""
    return _normalize(r, extra, default_cluster, patch_schema, had_nul)


def _normalize(
    r: RawJobcompRecord,
    extra: dict[str, Any] | None,
    default_cluster: str | None,
    patch_schema: int | None,
    had_nul: bool,
) -> JobRecord:
    # One function on purpose, called positionally: it runs once per record, and each
    # Python call it saves is ~0.1 us of the hot path (bench/normalize).
    alloc_raw, alloc_fmt = r.tres_alloc_raw, r.tres_alloc
    cscs = alloc_raw is None and alloc_fmt is None
    if cscs:  # the CSCS branch's spellings
        alloc_raw, alloc_fmt = r.tres_alloc_str, r.tres_fmt_alloc_str
    try:
        tres_alloc, raw_energy, fmt_energy, has_raw, _, gpus = read_tres_parts(alloc_raw, alloc_fmt)
    except TresParseError as exc:
        fields = _CSCS_ALLOC_FIELDS if cscs else _ALLOC_FIELDS
        raise TresParseError(f"field {fields[0]!r} or {fields[1]!r}: {exc}") from None
    try:
        tres_req = read_tres_counts(r.tres_req_raw, r.tres_req)
    except TresParseError as exc:
        raise TresParseError(f"field {_REQ_FIELDS[0]!r} or {_REQ_FIELDS[1]!r}: {exc}") from None

    # The patch always sends energy_complete (true/false) and submit_epoch.
    energy_complete, submit_epoch = r.energy_complete, r.submit_epoch
    patched = energy_complete is not None or submit_epoch is not None
    start, end, elapsed, state = r.start, r.end, r.elapsed, r.state
    event = r.event
    if event != "end" and event != "start" and event != "energy_update":
        # 25.05+ job-start events: state null, no finish-only keys.
        event = (
            "start"
            if state is None
            and end is None
            and elapsed is None
            and r.exit_code is None
            and r.derived_ec is None
            else "end"
        )

    # The job's energy: the patch's field, else raw TRES "3=", else formatted "energy=".
    energy_j: int | None = None
    reported: str | None = None
    status, source = _MISSING, _NO_SOURCE
    if event != "start":
        value: int | None
        if patched:
            value, source = r.energy_j, _PATCH  # null: not measured
        elif has_raw:
            # The raw form prints NO_VAL64 and leaves out only zero counts: absent means 0 J.
            value, source = raw_energy, _TRES_RAW
        else:
            value = fmt_energy
            if value is not None:
                source = _TRES_FORMATTED
        if value is None:
            pass
        elif value == NO_VAL64:
            reported = str(value)
        elif value >= ENERGY_INVALID_AT_J:
            status, reported = _INVALID, str(value)
        else:
            energy_j, status = value, _MEASURED

    submit_time = r.submit
    if submit_time is None and submit_epoch:
        submit_time = datetime.fromtimestamp(submit_epoch, UTC)

    partition, requested = r.partition, None
    if partition is not None and "," in partition:
        # <=24.11 sends every requested partition; the one it ran in comes from slurmdbd.
        requested = [p.strip() for p in partition.split(",") if p.strip()]
        partition = None

    het_job_id = r.het_job_id if r.het_job_id is not None else r.pack_job_id
    het_offset = r.het_job_offset if r.het_job_offset is not None else r.pack_job_offset
    if not het_job_id:  # 0 means "not a het job"
        het_job_id, het_offset = None, None
    array_job_id = r.array_job_id or None
    array_task_id = r.array_task_id if array_job_id is not None else None

    if elapsed is None and start is not None and end is not None and event == "end":
        elapsed = max(0, int((end - start).total_seconds()))

    if r.sluid is not None:
        layout = "26.05+"
    elif r.tres_alloc_str is not None or r.tres_fmt_alloc_str is not None:
        layout = "cscs-23.11.0"
    elif r.tres_alloc_raw is not None or r.tres_req_raw is not None:
        layout = "23.11.1+"
    else:
        layout = "23.02-23.11.0"
    if had_nul:
        layout += "+nul"

    mem = tres_alloc.get("mem")
    billing = tres_alloc.get("billing")
    return JobRecord(  # positional, in _JOB_RECORD_ORDER
        r.cluster or default_cluster,
        r.jobid,
        submit_time,
        event,  # type: ignore[arg-type]
        JOB_RECORD_VERSION,
        array_job_id,
        array_task_id,
        het_job_id,
        het_offset,
        r.sluid,
        r.job_db_inx,
        r.username,
        r.user_id,
        r.groupname,
        r.group_id,
        r.account,
        r.parent_accounts,
        r.qos,
        partition,
        requested,
        r.job_name,
        state,
        r.exit_code,
        r.derived_ec,
        r.eligible,
        start,
        end,
        elapsed,
        r.time_limit,
        r.nodes,
        r.total_nodes,
        r.total_cpus,
        float(mem) if mem is not None else None,
        gpus,
        int(billing) if billing is not None else None,
        r.exclusive,
        tres_alloc,
        tres_req,
        energy_j,
        status,
        source,
        reported,
        energy_complete,
        layout,
        patch_schema is not None or patched,
        extra if extra is not None else {},  # fast_record's dict is the record's own
    )


def cluster_from_key(key: bytes | None) -> str | None:
    """The cluster in the patch's message key ``cluster:jobid:submit_epoch``, if any."""
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.split(":")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        return None
    return parts[0]


def normalize_bytes(
    value: bytes | None,
    *,
    default_cluster: str | None = None,
    headers: Mapping[str, bytes] | None = None,
    key: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> JobRecord | Rejection:
    """Normalize one message value as Slurm sent it; never raises for bad input.

    A record without ``cluster`` (no accounting) takes the cluster from the patch's message
    ``key`` when there is one, else ``default_cluster``: use the topic's cluster, which is
    what ``JobCompParams=topic`` defaults to.
    """
    try:
        if key:
            default_cluster = cluster_from_key(key) or default_cluster
        raw_bytes = value if type(value) is bytes else bytes(value) if value is not None else b""
        if len(raw_bytes) > max_bytes:
            return Rejection(
                Reason.OVERSIZED,
                f"record is {len(raw_bytes)} bytes, over the {max_bytes} limit",
                raw_bytes,
            )
        # 23.02.0-23.11.6 and 24.05.0rc1 send strlen+1 bytes: a trailing NUL.
        body = raw_bytes.rstrip(b"\x00")
        had_nul = len(body) != len(raw_bytes)
        body = body.strip()
        if not body:
            return Rejection(Reason.EMPTY, "record is empty", raw_bytes)
        checked = fast_record(body)
        if checked is None:
            # Anything the fast rules do not settle goes through the model itself.
            try:
                raw = RawJobcompRecord.model_validate_json(body)
            except ValidationError as exc:
                return _rejection_from_validation(exc, raw_bytes)
            checked = raw, raw.extra_fields
        fields, extra = checked

        # rfind, not ``in``: ``bytes in bytes`` first tries the needle as an integer and
        # raises and clears a TypeError, and the backwards search tests the needle's first
        # byte (a backslash) rather than its last (a digit, ~60 per record): 0.63 -> 0.37 us.
        if body.rfind(b"\\u0000") >= 0:
            # Slurm's strings are C strings: an escaped NUL means a corrupt record, and
            # PostgreSQL text cannot hold it. The bytes only hint at one: ``\\u0000`` (an
            # escaped backslash, then the text u0000) is no NUL, so the decoded document
            # decides. The stdlib parser reads everything the model accepted (Infinity, NaN,
            # big ints).
            where = _find_nul(json.loads(body))
            if where is not None:
                return Rejection(
                    Reason.NUL_IN_STRING,
                    f"field {where or '<record>'} contains a NUL character",
                    raw_bytes,
                )

        patch_schema = None
        if headers and SCHEMA_HEADER in headers:
            try:
                patch_schema = int(headers[SCHEMA_HEADER])
            except ValueError:
                return Rejection(
                    Reason.INVALID_FIELD,
                    f"header {SCHEMA_HEADER!r} has value {show_value(headers[SCHEMA_HEADER])}: "
                    "not an integer",
                    raw_bytes,
                )
        try:
            record = _normalize(fields, extra, default_cluster, patch_schema, had_nul)
        except TresParseError as exc:
            return Rejection(Reason.INVALID_TRES, str(exc), raw_bytes)
        if record.submit_time is None:
            return Rejection(
                Reason.MISSING_KEY,
                f"field '@submit' is missing or 'Unknown' (jobid={record.job_id}): the natural "
                "key (cluster, jobid, submit time) is incomplete",
                raw_bytes,
            )
        return record
    except Exception as exc:  # a poison record must never stop a worker
        logger.exception("normalizer failed on a record; dead-lettered as internal_error")
        return Rejection(
            Reason.INTERNAL_ERROR,
            f"{type(exc).__name__}: {show_value(str(exc))}",
            bytes(value) if value is not None else b"",
        )
