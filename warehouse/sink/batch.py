"""Pure: a batch of ``JobFact`` -> validated columns (``FactBatch``), or clear errors.

The columnar core of the sink. Every attribute is read once for the whole batch (one list
per column), then checked column by column: integers and floats through Arrow / numpy
conversions and range tests, text for NUL and lone surrogates, the run window, the key,
duplicate estimates. Only a row some check flags goes through the per-fact ``prepare``,
which names the job, the field and the value exactly as it always did; a row that
``prepare`` accepts but the screen does not (a value of the wrong type) is refused with the
screen's own message. The content hash is ``prepare``'s (same payload, same digest).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from schemas.fact import Co2eEstimate, Footprint, JobFact, Reconciliation
from schemas.job import JobRecord
from warehouse.models.dims import NONE
from warehouse.sink.hashing import DIM_COLUMNS, TIMESTAMP, UNSIGNED, content_hashes
from warehouse.sink.prepare import (
    BOOL_COLUMNS,
    CO2E_FIELDS,
    CO2E_RULES,
    FACT_COLUMNS,
    FINAL_RECONCILE,
    INT_RULES,
    LANDABLE_EVENTS,
    REAL_RULES,
    TEXT_COLUMNS,
    TIME_COLUMNS,
    UINT64_MAX,
    FactError,
    NaturalKey,
    account_parent,
    key_label,
    prepare,
)

_DIM_TEXT: Final = tuple(c for c in DIM_COLUMNS if c != "uid")
#: Record attributes copied as they are: column -> ``JobRecord`` attribute.
_RECORD_COLUMNS: Final = {
    "job_id": "job_id", "event": "event", "record_version": "record_version",
    "array_job_id": "array_job_id", "array_task_id": "array_task_id",
    "het_job_id": "het_job_id", "het_job_offset": "het_job_offset", "sluid": "sluid",
    "job_db_inx": "job_db_inx", "job_name": "job_name", "uid": "user_id",
    "group_name": "group", "gid": "group_id", "state": "state", "exit_code": "exit_code",
    "derived_exit_code": "derived_exit_code", "submit_at": "submit_time",
    "eligible_at": "eligible_time", "start_at": "start_time", "end_at": "end_time",
    "elapsed_s": "elapsed_s", "time_limit_s": "time_limit_s", "node_count": "node_count",
    "nodes": "nodes", "cpus": "cpus", "gpus": "gpus", "mem_mb": "mem_mb",
    "billing": "billing", "jobcomp_energy_j": "energy_j",
    "energy_reported": "energy_reported", "energy_complete": "energy_complete",
    "slurm_layout": "slurm_layout", "patched": "patched",
}  # fmt: skip
_FOOTPRINT_ATTRS: Final = {
    "site": "site", "pue_factor": "pue_factor", "pue_source": "pue_source",
    "pue_coverage": "pue_coverage", "energy_facility_j": "energy_facility_j", "cost": "cost",
    "currency": "currency", "tariff": "tariff", "footprint_computed_at": "computed_at",
}  # fmt: skip
#: Accounting-estimate columns: column -> ``Co2eEstimate`` attribute.
_ACCOUNTING_ATTRS: Final = {
    "co2e_g": "co2e_g", "co2e_provider": "provider", "co2e_zone": "zone",
    "co2e_factor_g_per_kwh_it": "factor_g_per_kwh_it", "co2e_coverage": "coverage",
}  # fmt: skip
_RECONCILE_ATTRS: Final = {
    "db_energy_j": "db_energy_j", "reconcile_status": "status",
    "db_job_db_inx": "db_job_db_inx", "db_account": "db_account",
    "db_partition": "db_partition", "db_state": "db_state", "reconciled_at": "checked_at",
    "reconcile_attempts": "attempts",
}  # fmt: skip
_CO2E_TEXT: Final = tuple(c for c in CO2E_FIELDS if c not in CO2E_RULES)
_FINAL: Final = pa.array(sorted(FINAL_RECONCILE))


@dataclass(frozen=True, slots=True)
class FactBatch:
    """Validated facts as columns, one row per fact, and their CO2e estimates.

    ``values``: Python values of every ``FACT_COLUMNS`` and ``DIM_COLUMNS`` column (what
    ``prepare`` puts in ``PreparedFact.columns`` / ``.dims``); ``arrays``: the same fact
    columns as typed Arrow arrays (timestamps as UTC microseconds); ``co2e_row``: the
    fact row of each estimate, with ``co2e_values`` / ``co2e_arrays`` by ``CO2E_FIELDS``.
    """

    keys: list[NaturalKey]
    values: dict[str, list[Any]]
    arrays: dict[str, pa.Array]
    content_hash: list[str]
    precedence: npt.NDArray[np.int64]
    position: npt.NDArray[np.int64]  # index of each fact in the caller's input
    co2e_row: npt.NDArray[np.int64]
    co2e_values: dict[str, list[Any]]
    co2e_arrays: dict[str, pa.Array]

    def __len__(self) -> int:
        return len(self.keys)

    def label(self, row: int) -> str:
        """``cluster:job_id:submit_epoch`` of one row."""
        return key_label(self.keys[row])

    def take(self, rows: npt.NDArray[np.int64] | Sequence[int]) -> FactBatch:
        """The batch of these rows, in this order."""
        idx = np.asarray(rows, dtype=np.int64)
        if len(idx) == len(self) and np.array_equal(idx, np.arange(len(self))):
            return self
        span = _span(idx)
        where = pa.array(idx, type=pa.int64())

        def pick_array(a: pa.Array) -> pa.Array:
            return a.slice(span.start, span.stop - span.start) if span else a.take(where)

        remap = np.full(len(self), -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx), dtype=np.int64)
        new_row = remap[self.co2e_row]
        keep = np.flatnonzero(new_row >= 0)
        order = keep[np.argsort(new_row[keep], kind="stable")]
        estimates = pa.array(order, type=pa.int64())
        pick, pick_estimates = _picker(idx), _picker(order)
        return FactBatch(
            keys=pick(self.keys),
            values={c: pick(v) for c, v in self.values.items()},
            arrays={c: pick_array(a) for c, a in self.arrays.items()},
            content_hash=pick(self.content_hash),
            precedence=self.precedence[idx],
            position=self.position[idx],
            co2e_row=new_row[order],
            co2e_values={c: pick_estimates(v) for c, v in self.co2e_values.items()},
            co2e_arrays={c: a.take(estimates) for c, a in self.co2e_arrays.items()},
        )

    def rows(self) -> list[dict[str, Any]]:
        """Row dicts of the fact columns (the slow form: SQLite and updates)."""
        names = list(FACT_COLUMNS)
        columns = [self.values[c] for c in names]
        return [dict(zip(names, r, strict=True)) for r in zip(*columns, strict=True)]

    def estimates(self) -> list[tuple[int, dict[str, Any]]]:
        """``(row, CO2e row)`` of every estimate."""
        names = list(CO2E_FIELDS)
        cols = [self.co2e_values[c] for c in names]
        return [
            (row, dict(zip(names, values, strict=True)))
            for row, values in zip(self.co2e_row.tolist(), zip(*cols, strict=True), strict=True)
        ]


def _span(idx: npt.NDArray[np.int64]) -> slice | None:
    """The slice these indices are, if they are contiguous and ascending."""
    if len(idx) and int(idx[-1]) - int(idx[0]) + 1 == len(idx) and _contiguous(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return None


def _picker(idx: npt.NDArray[np.int64]) -> Callable[[Sequence[Any]], list[Any]]:
    """A function that takes these elements of a list (a slice when they are contiguous)."""
    span = _span(idx)
    if span is not None:
        return lambda values: list(values[span])
    return lambda values: _pick(values, idx)


def _pick(values: Sequence[Any], idx: npt.NDArray[np.int64]) -> list[Any]:
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [values[int(idx[0])]]
    return list(itemgetter(*idx.tolist())(values))


def _contiguous(idx: npt.NDArray[np.int64]) -> bool:
    return len(idx) < 3 or bool(np.all(np.diff(idx) == 1))


@dataclass(frozen=True, slots=True)
class Built:
    """What ``build`` made of a batch: the valid facts, the refused ones
    (``(input position, job, reason)``, in input order) and how many were ignored."""

    batch: FactBatch
    rejected: list[tuple[int, str, str]]
    ignored: int


def build(facts: Sequence[JobFact], default_cluster: str | None = None) -> Built:
    """Validate ``facts`` into a ``FactBatch``. Facts of events that are not finished jobs
    (``start``) are ignored; invalid facts are refused, named as ``prepare`` names them."""
    events = [f.record.event for f in facts]
    if all(e in LANDABLE_EVENTS for e in events):
        kept, positions = list(facts), np.arange(len(facts), dtype=np.int64)
    else:
        where = [i for i, e in enumerate(events) if e in LANDABLE_EVENTS]
        kept, positions = [facts[i] for i in where], np.array(where, dtype=np.int64)
    screen = _Screen(len(kept))
    values, parts = _columns(kept, default_cluster, screen)
    arrays, co2e_arrays = _check(values, parts, screen)
    rejected = [
        (int(positions[i]), *_explain(kept[i], default_cluster, screen.why.get(i)))
        for i in np.flatnonzero(screen.bad).tolist()
    ]
    whole = _assemble(values, arrays, parts, co2e_arrays, positions)
    batch = _hashed(whole.take(np.flatnonzero(~screen.bad)))
    return Built(batch, rejected, len(facts) - len(kept))


class _Screen:
    """Rows flagged so far, with the screen's own reason for each."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.why: dict[int, str] = {}

    def mark(self, row: int, why: str) -> None:
        if not self.bad[row]:
            self.bad[row] = True
            self.why[row] = why

    def flag(self, rows: npt.NDArray[np.int64] | Sequence[int], why: Callable[[int], str]) -> None:
        """Flag ``rows`` (of the values checked); ``why(row)`` says what is wrong."""
        for i in np.asarray(rows, dtype=np.int64).tolist():
            self.mark(i, why(i))


class _OwnerScreen(_Screen):
    """Flags the fact row of each estimate checked."""

    def __init__(self, screen: _Screen, owners: npt.NDArray[np.int64]) -> None:
        self.screen, self.owners = screen, owners

    def mark(self, row: int, why: str) -> None:
        self.screen.mark(int(self.owners[row]), why)


@dataclass(slots=True)
class _Parts:
    """What ``_columns`` gathers besides the columns: the flattened CO2e estimates (fact
    row, then one list per ``CO2E_FIELDS``) and which facts have a footprint."""

    est_row: npt.NDArray[np.int64]
    est_values: dict[str, list[Any]]
    with_footprint: npt.NDArray[np.bool_]


def _get(objs: Sequence[Any], attr: str) -> list[Any]:
    return list(map(attrgetter(attr), objs))


@lru_cache(maxsize=16)
def _positions(kind: type[msgspec.Struct]) -> dict[str, int]:
    return {f.name: i for i, f in enumerate(msgspec.structs.fields(kind))}


def _fields(objs: Sequence[Any], kind: type[msgspec.Struct]) -> Callable[[str], list[Any]]:
    """The columns of these structs (of ``kind``), by field name: one C call per struct
    for all its fields, then one transposition (cheaper than a pass per attribute)."""
    if not objs:
        return lambda name: []
    columns = list(zip(*map(msgspec.structs.astuple, objs), strict=True))
    where = _positions(kind)
    return lambda name: columns[where[name]]  # type: ignore[return-value]


def _scatter(n: int, rows: npt.NDArray[np.int64], values: Sequence[Any]) -> list[Any]:
    """A column of ``n`` values: ``values`` at ``rows``, None elsewhere."""
    if len(rows) == n:
        return list(values)
    out = np.full(n, None, dtype=object)
    if len(rows):
        picked = np.empty(len(values), dtype=object)
        picked[:] = values
        out[rows] = picked
    return out.tolist()


def _columns(
    facts: Sequence[JobFact], default_cluster: str | None, screen: _Screen
) -> tuple[dict[str, list[Any]], _Parts]:
    """Every column of the batch as a list of Python values (as ``prepare`` maps them)."""
    n = len(facts)
    fact = _fields(facts, JobFact)
    rec = _fields(fact("record"), JobRecord)
    v: dict[str, list[Any]] = {c: rec(a) for c, a in _RECORD_COLUMNS.items()}
    v["energy_it_j"] = fact("energy_it_j")
    v["energy_origin"] = fact("energy_origin")
    v["shared_node"] = fact("shared_node")
    v["jobcomp_energy_status"] = list(map(str, rec("energy_status")))
    v["jobcomp_energy_source"] = list(map(str, rec("energy_source")))
    clusters = rec("cluster")
    v["cluster"] = [c or default_cluster for c in clusters]
    # Footprint columns (None without a footprint).
    footprints = fact("footprint")
    with_fp = np.array([fp is not None for fp in footprints], dtype=bool)
    fp_rows = np.flatnonzero(with_fp)
    present = [footprints[i] for i in fp_rows.tolist()] if len(fp_rows) < n else footprints
    footprint = _fields(present, Footprint)
    for column, attr in _FOOTPRINT_ATTRS.items():
        v[column] = _scatter(n, fp_rows, footprint(attr))
    # CO2e estimates, flattened, and the accounting one (first average signal) per fact.
    found = footprint("estimates")
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    est_row = np.repeat(fp_rows, counts)
    flat = list(chain.from_iterable(found))
    estimate = _fields(flat, Co2eEstimate)
    parts = _Parts(est_row, {c: estimate(c) for c in CO2E_FIELDS}, with_fp)
    owners = est_row.tolist()
    signals = parts.est_values["signal"]
    average = np.flatnonzero(np.array([s == "average" for s in signals], dtype=bool))
    acct_rows, first = np.unique(parts.est_row[average], return_index=True)
    accounting = [flat[i] for i in average[first].tolist()]
    for column, attr in _ACCOUNTING_ATTRS.items():
        v[column] = _scatter(n, acct_rows, _get(accounting, attr))
    series = list(
        zip(owners, parts.est_values["provider"], parts.est_values["zone"], signals, strict=True)
    )
    if len(set(series)) < len(series):
        seen: set[tuple[Any, ...]] = set()
        twice = []
        for s in series:
            if s in seen:
                twice.append(s[0])
            seen.add(s)
        screen.flag(twice, lambda i: f"footprint.estimates: a series appears twice in row {i}")
    # Reconciliation.
    recon = _fields(fact("reconciliation"), Reconciliation)
    for column, attr in _RECONCILE_ATTRS.items():
        v[column] = recon(attr)
    v["reconcile_differences"] = ["\n".join(d) if d else None for d in recon("differences")]
    # Dimensions.
    accounts = rec("account")
    lineages = rec("parent_accounts")
    v["user"] = [u or NONE for u in rec("user")]
    v["account"] = [a or NONE for a in accounts]
    v["account_lineage"] = lineages
    parents = {pair: _parent(*pair) for pair in set(zip(v["account"], lineages, strict=True))}
    v["account_parent"] = [parents[p] for p in zip(v["account"], lineages, strict=True)]
    v["partition"] = [p or NONE for p in rec("partition")]
    v["qos"] = [q or NONE for q in rec("qos")]
    return v, parts


def _parent(account: str, lineage: str | None) -> str | None:
    try:
        return account_parent(account, lineage)
    except (TypeError, AttributeError):  # a malformed lineage: the row's checks refuse it
        return None


def _check(
    v: dict[str, list[Any]], parts: _Parts, screen: _Screen
) -> tuple[dict[str, pa.Array], dict[str, pa.Array]]:
    """Typed arrays of the fact and estimate columns; every row a rule refuses is flagged."""
    n = len(v["job_id"])
    arrays: dict[str, pa.Array] = {}
    together = _utc_micros([x for column in TIME_COLUMNS for x in v[column]])
    for k, column in enumerate(TIME_COLUMNS):
        part = None if together is None else together.slice(k * n, n)
        arrays[column], epochs = _times(v[column], column, screen, part)
        if column in ("submit_at", "start_at", "end_at"):
            name = column.replace("_at", "_epoch")
            v[name] = epochs
    for column, (low, high) in INT_RULES.items():
        arrays[column] = _ints(v[column], column, low, high, screen)
    for column, (flow, fhigh) in REAL_RULES.items():
        arrays[column] = _reals(v[column], column, flow, fhigh, screen)
    for column in TEXT_COLUMNS:
        arrays[column] = _texts(v[column], column, screen, nul_check=False)
    for column in BOOL_COLUMNS:
        arrays[column] = _bools(v[column], column, screen)
    for column in _DIM_TEXT:
        arrays[column] = _texts(v[column], column, screen, nul_check=False)
    texts = (*TEXT_COLUMNS, *_DIM_TEXT)
    if _any_nul([arrays[c] for c in texts]):  # rare: find the rows, column by column
        for column in texts:
            _nuls(arrays[column], v[column], column, screen)
    # The key, the run window, the energy's origin.
    screen.flag([i for i, c in enumerate(v["cluster"]) if not c], lambda i: "cluster is missing")
    screen.flag(np.flatnonzero(arrays["submit_at"].is_null()), lambda i: "submit_time missing")
    start = np.asarray(v["start_epoch"], dtype=np.float64)
    end = np.asarray(v["end_epoch"], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        screen.flag(np.flatnonzero(end < start), lambda i: "end_time is before start_time")
    no_energy = np.asarray(arrays["energy_it_j"].is_null())
    origin = np.array([o != "none" for o in v["energy_origin"]], dtype=bool).reshape(n)
    screen.flag(np.flatnonzero(no_energy & origin), lambda i: "energy_origin without energy")
    # CO2e estimates: ranges and text, flagged on their fact's row.
    owners = _OwnerScreen(screen, parts.est_row)
    co2e: dict[str, pa.Array] = {}
    for column in CO2E_FIELDS:
        values, label = parts.est_values[column], f"estimate.{column}"
        if column in CO2E_RULES:
            co2e[column] = _reals(values, label, *CO2E_RULES[column], owners)
        else:
            co2e[column] = _texts(values, label, owners)
    return arrays, co2e


def _shown(value: Any) -> str:
    text = repr(value)
    return text[:77] + "..." if len(text) > 80 else text


def _slow(
    values: Sequence[Any], column: str, ok: Callable[[Any], bool], screen: _Screen, what: str
) -> list[Any]:
    """Per-value check (when the column's conversion failed): flag the rows whose value is
    not ``ok``; the column with those values replaced by None."""
    bad = [i for i, x in enumerate(values) if x is not None and not _safe(ok, x)]
    screen.flag(bad, lambda i: f"{column}={_shown(values[i])} {what}")
    if not bad:
        return list(values)
    out = list(values)
    for i in bad:
        out[i] = None
    return out


def _safe(ok: Callable[[Any], bool], x: Any) -> bool:
    try:
        return ok(x)
    except Exception:  # any malformed value is simply not ok
        return False


def _ints(values: Sequence[Any], column: str, low: int, high: int, screen: _Screen) -> pa.Array:
    kind = pa.uint64() if column in UNSIGNED else pa.int64()
    try:
        array = pa.array(values, type=kind)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):

        def fits(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool) and low <= x <= high

        clean = _slow(values, column, fits, screen, f"is out of range [{low}, {high}]")
        array = pa.array(clean, type=kind)
    if (low, high) not in ((-(2**63), 2**63 - 1), (0, UINT64_MAX)):
        ints = np.asarray(array.fill_null(low).to_numpy(zero_copy_only=False))
        out = np.flatnonzero((ints < low) | (ints > high))
        if len(out):
            screen.flag(out, lambda i: f"{column}={values[i]!r} is out of range [{low}, {high}]")
    return array


def _reals(
    values: Sequence[Any], column: str, low: float, high: float, screen: _Screen
) -> pa.Array:
    try:
        floats = np.array(values, dtype=np.float64).reshape(len(values))
        missing = np.isnan(floats)
        real_nan = int(missing.sum()) > values.count(None)
    except (TypeError, ValueError, OverflowError):
        real_nan = True
    if real_nan:  # a NaN or an unconvertible value: find them one by one
        clean = _slow(
            values, column, lambda x: low <= x <= high, screen, f"is out of range [{low}, {high}]"
        )
        floats = np.array(clean, dtype=np.float64).reshape(len(values))
        missing = np.isnan(floats)
    with np.errstate(invalid="ignore"):
        out = np.flatnonzero(~missing & ((floats < low) | (floats > high)))
    if len(out):
        screen.flag(out, lambda i: f"{column}={values[i]!r} is out of range [{low}, {high}]")
    return pa.array(floats, mask=missing, type=pa.float64())


def _texts(values: Sequence[Any], column: str, screen: _Screen, nul_check: bool = True) -> pa.Array:
    try:
        array = pa.array(values, type=pa.string())
    except (pa.ArrowException, UnicodeEncodeError, TypeError, ValueError):

        def text(x: Any) -> bool:
            return isinstance(x, str) and bool(x.encode("utf-8") or True)

        clean = _slow(values, column, text, screen, "is not valid text")
        array = pa.array(clean, type=pa.string())
    if nul_check:
        _nuls(array, values, column, screen)
    return array


def _nuls(array: pa.Array, values: Sequence[Any], column: str, screen: _Screen) -> None:
    nul = pc.match_substring(array, "\x00")
    if pc.any(nul).as_py():
        rows = np.flatnonzero(np.asarray(nul.fill_null(False)))
        screen.flag(rows, lambda i: f"{column}={_shown(values[i])} contains a NUL character")


def _any_nul(arrays: Sequence[pa.Array]) -> bool:
    """Whether any of these text columns holds a NUL (one scan over all of them)."""
    if not arrays:
        return False
    return bool(pc.any(pc.match_substring(pa.concat_arrays(arrays), "\x00")).as_py())


def _bools(values: Sequence[Any], column: str, screen: _Screen) -> pa.Array:
    try:
        return pa.array(values, type=pa.bool_())
    except (pa.ArrowException, TypeError, ValueError):
        clean = _slow(values, column, lambda x: isinstance(x, bool), screen, "is not a boolean")
        return pa.array(clean, type=pa.bool_())


def _times(
    values: Sequence[Any], column: str, screen: _Screen, micros: pa.Array | None = None
) -> tuple[pa.Array, list[int | None]]:
    """UTC microseconds as an Arrow timestamp column, and epoch seconds (``int(x.timestamp())``
    as ``prepare`` computes them; None where the value is None). ``micros``: the column
    already parsed by ``_utc_micros`` (with the batch's other time columns)."""
    if micros is None:
        micros = _utc_micros(values)
    if micros is None:  # not all aware UTC datetimes: one by one, as prepare does
        micros = _micros_one_by_one(values, column, screen)
    us = np.asarray(micros.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    seconds = np.where(us >= 0, us // 1_000_000, -(-us // 1_000_000))  # toward zero
    epochs: list[int | None] = seconds.tolist()
    if micros.null_count:
        for i in np.flatnonzero(np.asarray(micros.is_null())).tolist():
            epochs[i] = None
    return micros, epochs


_ISO: Final = msgspec.json.Encoder()
_CSV_READ: Final = pcsv.ReadOptions(column_names=["t"], use_threads=False)
_CSV_PARSE: Final = pcsv.ParseOptions(quote_char='"', newlines_in_values=False)
_CSV_CONVERT: Final = pcsv.ConvertOptions(
    column_types={"t": TIMESTAMP}, null_values=["null"], quoted_strings_can_be_null=False
)


def _utc_micros(values: Sequence[Any]) -> pa.Array | None:
    """The fast path: aware UTC datetimes (what the normalizer makes) written as ISO 8601 by
    msgspec and parsed by Arrow's CSV reader, both in C; None if any value is something else
    (a naive or non-UTC datetime, not a datetime)."""
    if not values:
        return None
    try:
        text = _ISO.encode_lines(values)
    except (TypeError, ValueError, msgspec.EncodeError):
        return None
    if text.count(b'Z"\n') + values.count(None) != len(values):
        return None
    try:
        table = pcsv.read_csv(
            io.BytesIO(text),
            read_options=_CSV_READ,
            parse_options=_CSV_PARSE,
            convert_options=_CSV_CONVERT,
        )
    except pa.ArrowException:
        return None
    column = table.column(0).combine_chunks()
    return column if len(column) == len(values) else None


def _micros_one_by_one(values: Sequence[Any], column: str, screen: _Screen) -> pa.Array:
    try:
        seconds = [None if x is None else x.timestamp() for x in values]
    except (AttributeError, TypeError, ValueError, OverflowError):
        clean = _slow(
            values, column, lambda x: bool(x.timestamp() or True), screen, "is not a time"
        )
        seconds = [None if x is None else x.timestamp() for x in clean]
    floats = np.array(seconds, dtype=np.float64).reshape(len(values))
    missing = np.isnan(floats)
    micros = np.rint(np.where(missing, 0.0, floats) * 1e6).astype(np.int64)
    return pa.array(micros, mask=missing, type=TIMESTAMP)


def _explain(fact: JobFact, default_cluster: str | None, screened: str | None) -> tuple[str, str]:
    """``(job, reason)`` for a flagged fact: ``prepare``'s error, or the screen's."""
    rec = fact.record
    try:
        epoch = None if rec.submit_time is None else int(rec.submit_time.timestamp())
    except (AttributeError, TypeError, ValueError, OverflowError):
        epoch = None
    label = key_label((rec.cluster or default_cluster, rec.job_id, epoch))
    try:
        prepare(fact, default_cluster)
    except FactError as exc:
        return label, str(exc)
    except Exception as exc:  # a malformed fact: say what broke
        return label, f"job {label}: {exc!r}"
    return label, f"job {label}: {screened or 'a field cannot be stored'}"


def _assemble(
    v: dict[str, list[Any]],
    arrays: dict[str, pa.Array],
    parts: _Parts,
    co2e_arrays: dict[str, pa.Array],
    positions: npt.NDArray[np.int64],
) -> FactBatch:
    n = len(v["job_id"])
    keys = list(zip(v["cluster"], v["job_id"], v["submit_epoch"], strict=True))
    final = np.asarray(pc.is_in(arrays["reconcile_status"], value_set=_FINAL).fill_null(False))
    update = np.array([e == "energy_update" for e in v["event"]], dtype=bool).reshape(n)
    precedence = 4 * final.astype(np.int64) + 2 * parts.with_footprint + update
    return FactBatch(
        keys=keys,
        values={c: v[c] for c in (*FACT_COLUMNS, *DIM_COLUMNS)},
        arrays=arrays,
        content_hash=[""] * n,
        precedence=precedence,
        position=positions,
        co2e_row=parts.est_row,
        co2e_values=parts.est_values,
        co2e_arrays=co2e_arrays,
    )


def _hashed(batch: FactBatch) -> FactBatch:
    """The batch with every row's content hash (``warehouse.sink.hashing``)."""
    return _replace(
        batch, content_hash=content_hashes(batch.arrays, batch.co2e_arrays, batch.co2e_row)
    )


#: Facts validated per ``build`` call inside ``build_all``: the columns of a few thousand
#: facts stay in the CPU caches between the passes over them.
BUILD_CHUNK: Final = 4096


def build_all(
    facts: Sequence[JobFact], default_cluster: str | None = None, chunk: int = BUILD_CHUNK
) -> Built:
    """``build`` over ``facts`` in chunks of ``chunk``, as one batch (positions are indices
    into ``facts``)."""
    parts: list[FactBatch] = []
    rejected: list[tuple[int, str, str]] = []
    ignored = 0
    for start in range(0, len(facts), chunk):
        built = build(facts[start : start + chunk], default_cluster)
        parts.append(_shifted(built.batch, start))
        rejected.extend((start + p, job, why) for p, job, why in built.rejected)
        ignored += built.ignored
    return Built(concat(parts), rejected, ignored)


def _shifted(batch: FactBatch, offset: int) -> FactBatch:
    if not offset:
        return batch
    return _replace(batch, position=batch.position + offset)


def _replace(batch: FactBatch, **changes: Any) -> FactBatch:
    fields = {name: getattr(batch, name) for name in FactBatch.__slots__}
    fields.update(changes)
    return FactBatch(**fields)


def empty() -> FactBatch:
    """A batch without facts."""
    return build([]).batch


def concat(batches: Sequence[FactBatch]) -> FactBatch:
    """One batch of several, in order."""
    if not batches:
        return empty()
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    offsets = np.cumsum([0, *(len(b) for b in batches[:-1])])
    return FactBatch(
        keys=_chain(b.keys for b in batches),
        values={c: _chain(b.values[c] for b in batches) for c in first.values},
        arrays={c: pa.concat_arrays([b.arrays[c] for b in batches]) for c in first.arrays},
        content_hash=_chain(b.content_hash for b in batches),
        precedence=np.concatenate([b.precedence for b in batches]),
        position=np.concatenate([b.position for b in batches]),
        co2e_row=np.concatenate(
            [b.co2e_row + off for b, off in zip(batches, offsets.tolist(), strict=True)]
        ),
        co2e_values={c: _chain(b.co2e_values[c] for b in batches) for c in first.co2e_values},
        co2e_arrays={
            c: pa.concat_arrays([b.co2e_arrays[c] for b in batches]) for c in first.co2e_arrays
        },
    )


def _chain(lists: Iterable[Sequence[Any]]) -> list[Any]:
    return list(chain.from_iterable(lists))


def latest_per_key(batch: FactBatch) -> FactBatch:
    """One fact per natural key: the highest precedence, the last among equals (a batch
    with duplicates lands like the same facts one at a time), in first-seen key order."""
    keys = batch.keys
    if len(set(keys)) == len(keys):
        return batch
    best: dict[NaturalKey, int] = {}
    precedence = batch.precedence.tolist()
    for i, key in enumerate(keys):
        seen = best.get(key)
        if seen is None or precedence[i] >= precedence[seen]:
            best[key] = i
    return batch.take(np.fromiter(best.values(), dtype=np.int64, count=len(best)))
