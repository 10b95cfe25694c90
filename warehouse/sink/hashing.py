"""Pure: the content hash of facts (``fact_job.content_hash``), from their columns.

A fact's hash covers everything the sink stores for it: its ``FACT_COLUMNS``, its
dimension names (``Dims``) and its CO2e rows (``CO2E_FIELDS``). Each part is encoded as
PostgreSQL binary COPY rows (``pgpq``: a field count, then per field its length, or -1 for
NULL, and its bytes; integers, floats and timestamps as 8 bytes, text as UTF-8), which is
canonical for the column types; the hash is xxh3-64 of the fact's row, used as the seed of
xxh3-128 over its CO2e rows (in order), as 32 hex digits. Encoding a whole batch at once
and hashing row slices costs ~2 us a fact; the former hash (blake2b of a per-fact JSON
payload) cost ~6. Facts stored under the former hash are rewritten once by a replay
(``docs/warehouse.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pgpq import ArrowToPostgresBinaryEncoder

from warehouse.sink.prepare import (
    BOOL_COLUMNS,
    CO2E_FIELDS,
    CO2E_RULES,
    FACT_COLUMNS,
    INT_RULES,
    REAL_RULES,
    TIME_COLUMNS,
    UINT64_MAX,
    Dims,
)

TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
DIM_COLUMNS: Final = Dims.__struct_fields__
#: The fact part of the hash: the stored columns, then the dimension names (``uid`` is a
#: fact column already).
HASH_COLUMNS: Final = (*FACT_COLUMNS, *(c for c in DIM_COLUMNS if c != "uid"))
UNSIGNED: Final = frozenset(n for n, (_lo, hi) in INT_RULES.items() if hi == UINT64_MAX)


def arrow_type(column: str) -> pa.DataType:
    """The Arrow type a fact, dimension or CO2e column is held in."""
    if column in INT_RULES:
        return pa.uint64() if column in UNSIGNED else pa.int64()
    if column in REAL_RULES or column in CO2E_RULES:
        return pa.float64()
    if column in BOOL_COLUMNS:
        return pa.bool_()
    if column in TIME_COLUMNS:
        return TIMESTAMP
    return pa.string()


_HEADER: Final = 19  # signature (11 bytes), flags (4), header extension length (4)
_TRAILER: Final = b"\xff\xff"  # field count -1
_WIDTH: Final = {pa.int64(): 8, pa.float64(): 8, pa.bool_(): 1, TIMESTAMP: 8}


def _encoded_rows(arrays: Sequence[pa.Array]) -> tuple[memoryview, list[int]]:
    """The binary COPY rows of these columns (one buffer) and each row's start offset
    (and the end), computed from the columns' value lengths."""
    fixed = [a.view(pa.int64()) if a.type == pa.uint64() else a for a in arrays]
    batch = pa.RecordBatch.from_arrays(fixed, names=[f"c{i}" for i in range(len(fixed))])
    encoder = ArrowToPostgresBinaryEncoder(batch.schema)
    header = encoder.write_header()
    data = encoder.write_batch(batch) + encoder.finish()  # the encoder buffers its output
    if len(header) != _HEADER or data[-2:] != _TRAILER:
        raise AssertionError("unexpected binary COPY framing")
    data = data[:-2]
    sizes = np.full(batch.num_rows, 2 + 4 * len(fixed), dtype=np.int64)
    for a in fixed:
        if pa.types.is_string(a.type):
            sizes += np.asarray(pc.binary_length(a).fill_null(0), dtype=np.int64)
        elif a.null_count:
            sizes += _WIDTH[a.type] * np.asarray(a.is_valid(), dtype=np.int64)
        else:
            sizes += _WIDTH[a.type]
    offsets = np.zeros(batch.num_rows + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if offsets[-1] != len(data):
        raise AssertionError(f"binary COPY rows: {len(data)} bytes, lengths say {offsets[-1]}")
    return memoryview(data), offsets.tolist()


def content_hashes(
    columns: Mapping[str, pa.Array],
    co2e: Mapping[str, pa.Array],
    co2e_row: npt.NDArray[np.int64],
) -> list[str]:
    """The content hash of every fact: ``columns`` holds each of ``HASH_COLUMNS`` (one value
    per fact), ``co2e`` each of ``CO2E_FIELDS`` (one per estimate), ``co2e_row`` the fact of
    each estimate (sorted: a fact's estimates are contiguous, in their order)."""
    n = len(columns[FACT_COLUMNS[0]])
    if not n:
        return []
    facts, ends = _encoded_rows([columns[c] for c in HASH_COLUMNS])
    seeds = map(xxhash.xxh3_64_intdigest, [facts[a:b] for a, b in pairwise(ends)])
    if len(co2e_row):
        estimates, bounds = _encoded_rows([co2e[c] for c in CO2E_FIELDS])
        per_fact = np.searchsorted(co2e_row, np.arange(n + 1, dtype=np.int64))
        at = np.asarray(bounds, dtype=np.int64)[per_fact].tolist()
        rows = [estimates[a:b] for a, b in pairwise(at)]
    else:
        rows = [memoryview(b"")] * n
    return list(map(xxhash.xxh3_128_hexdigest, rows, seeds))


def content_hash_of(
    columns: Mapping[str, Any], dims: Dims, co2e: Sequence[Mapping[str, Any]]
) -> str:
    """The content hash of one fact given as ``prepare`` holds it (the same function as
    ``content_hashes``, on a batch of one)."""
    values = {**columns, **{c: getattr(dims, c) for c in DIM_COLUMNS}}
    arrays = {c: pa.array([values[c]], type=arrow_type(c)) for c in HASH_COLUMNS}
    estimates = {c: pa.array([r[c] for r in co2e], type=arrow_type(c)) for c in CO2E_FIELDS}
    [digest] = content_hashes(arrays, estimates, np.zeros(len(co2e), dtype=np.int64))
    return digest
