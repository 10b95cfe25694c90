"""``POST /v1/check`` bodies as msgspec structs: the request decoded and validated in one
pass, the response encoded with pydantic's bytes (jobcarbon.api.models stays the schema
and the OpenAPI; tests/jobcarbon/api/test_wire.py holds the two together).

``decode_check`` accepts a subset of what ``models.CheckRequest`` accepts, with the same
values: JSON integers only (no ``1.0`` or ``"1"``), the same bounds and patterns (``$`` in
pydantic's Rust regexes is ``\\Z`` in Python's). Whatever it refuses goes through the
pydantic path, which then gives its own answer and message, so clients see no difference.

``encode_check`` writes what ``models.CheckResponse.model_dump_json`` writes: same field
order, floats as shortest round-trip, UTC times with ``Z``. The one difference of msgspec's
float output, positive exponents without ``+`` (``1e16``, pydantic ``1e+16``, only for
magnitudes of 1e16 and more), is caught by a search for a digit, ``e`` and a digit; such
an answer (or one with a string that merely looks like that) is encoded by pydantic.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

from jobcarbon.api import models as m


def _python_re(pattern: str) -> str:
    """A pydantic (Rust regex) pattern anchored with ``$`` as a Python ``re`` pattern."""
    assert pattern.endswith("$") and not pattern.endswith("\\$"), pattern
    return pattern[:-1] + r"\Z"


def _bounded(bounds: tuple[int, int]) -> msgspec.Meta:
    return msgspec.Meta(ge=bounds[0], le=bounds[1])


Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=m.NAME_MAX, pattern=_python_re(m.NAME_PATTERN))
]
JobName = Annotated[
    str, msgspec.Meta(max_length=m.JOB_NAME_MAX, pattern=_python_re(m.JOB_NAME_PATTERN))
]


class CheckRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``models.CheckRequest`` (same fields, defaults and limits)."""

    user: Name
    account: Name
    partition: Name
    cluster: Name | None = None
    nodes: Annotated[int, _bounded(m.NODES)] = 1
    cpus: Annotated[int, _bounded(m.CPUS)] = 1
    gpus: Annotated[int, _bounded(m.GPUS)] = 0
    time_limit_s: Annotated[int, _bounded(m.TIME_LIMIT_S)]
    job_name: JobName = ""
    max_delay_s: Annotated[int, _bounded(m.MAX_DELAY_S)] | None = None


_decode: Final = msgspec.json.Decoder(CheckRequest).decode


def decode_check(raw: bytes) -> CheckRequest | None:
    """The request, or None when it is not plainly valid (then ask pydantic)."""
    try:
        return _decode(raw)
    except msgspec.DecodeError:  # ValidationError included
        return None


class Prediction(msgspec.Struct):
    energy_it_j: float
    energy_low_j: float
    energy_high_j: float
    runtime_s: float
    level: str
    samples: int


class Equivalent(msgspec.Struct):
    value: float
    unit: str
    label: str
    source: str


class Greener(msgspec.Struct):
    begin_at: datetime
    sbatch_begin: str | None
    co2e_g: float
    co2e_saved_g: float
    intensity_g_per_kwh: float


class CheckResponse(msgspec.Struct):
    """``models.CheckResponse``, field for field, in its order. Builders pass floats as
    floats (an int in a float field would be written ``1`` where pydantic writes ``1.0``)."""

    user: str
    account: str
    checked_at: datetime
    past_window_days: float
    past_co2e_g: float
    running_co2e_g: float
    predicted_co2e_g: float
    predicted_co2e_low_g: float
    predicted_co2e_high_g: float
    total_co2e_g: float
    average_rate_g_per_kwh: float | None
    budget_kg: float | None
    used_kg: float | None
    available_credit_kg: float | None
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float
    prediction: Prediction
    equivalents: dict[str, Equivalent]
    decision: Literal["allow", "warn", "deny"]
    message: str
    suggested_begin: str | None
    greener: Greener | None


_encode: Final = msgspec.json.Encoder().encode
_POSITIVE_EXPONENT: Final = re.compile(rb"[0-9]e[0-9]")


def encode_check(response: CheckResponse) -> bytes:
    """``response`` as ``models.CheckResponse(...).model_dump_json()`` writes it."""
    out = _encode(response)
    if _POSITIVE_EXPONENT.search(out):
        model = m.CheckResponse.model_validate(msgspec.to_builtins(response))
        return model.model_dump_json().encode()
    return out
