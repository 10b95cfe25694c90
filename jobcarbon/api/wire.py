"""``POST /v1/check`` bodies as msgspec structs: the request decoded and validated in one
pass, the response encoded with pydantic's bytes (jobcarbon.api.models stays the schema
and the OpenAPI; tests/jobcarbon/api/test_wire.py holds the two together).

``decode_check`` accepts a subset of what ``models.CheckRequest`` accepts, with the same
values: JSON integers only (no ``1.0`` or ``"1"``), the same bounds and patterns (``$`` in
pydantic's Rust regexes is ``\\Z`` in Python's). Whatever it refuses goes through the
pydantic path, which then gives its own answer and message, so clients see no difference.

``CheckResponse`` is built from ``models.CheckResponse`` (``_mirror``), and
``encode_check`` writes what ``models.CheckResponse.model_dump_json`` writes: same field
order, floats as shortest round-trip, UTC times with ``Z``. The one difference of msgspec's
float output, positive exponents without ``+`` (``1e16``, pydantic ``1e+16``, only for
magnitudes of 1e16 and more), is caught by a search for a digit, ``e`` and a digit; such
an answer (or one with a string that merely looks like that) is encoded by pydantic.
"""

from __future__ import annotations

import functools
import re
from types import UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel

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


@functools.cache
def _mirror(model: type[BaseModel]) -> Any:
    """A msgspec struct with ``model``'s fields in its order (nested models mirrored
    too), so the response is defined once, in ``models``. Builders pass floats as floats
    (an int in a float field would be written ``1`` where pydantic writes ``1.0``)."""

    def field_type(annotation: Any) -> Any:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return _mirror(annotation)
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (Union, UnionType):
            return Union[tuple(field_type(a) for a in args)]  # noqa: UP007
        if origin is dict:
            return dict.__class_getitem__((args[0], field_type(args[1])))
        return annotation

    fields = [(name, field_type(f.annotation)) for name, f in model.model_fields.items()]
    return msgspec.defstruct(model.__name__, fields)


#: ``models.CheckResponse`` and its parts, as msgspec structs.
CheckResponse: Any = _mirror(m.CheckResponse)
Prediction: Any = CheckResponse.__annotations__["prediction"]
Equivalent: Any = get_args(CheckResponse.__annotations__["equivalents"])[1]
Greener: Any = get_args(CheckResponse.__annotations__["greener"])[0]


_encode: Final = msgspec.json.Encoder().encode
_POSITIVE_EXPONENT: Final = re.compile(rb"[0-9]e[0-9]")


def encode_check(response: Any) -> bytes:
    """``response`` as ``models.CheckResponse(...).model_dump_json()`` writes it."""
    out = _encode(response)
    if _POSITIVE_EXPONENT.search(out):
        model = m.CheckResponse.model_validate(msgspec.to_builtins(response))
        return model.model_dump_json().encode()
    return out
