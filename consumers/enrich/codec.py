"""The ``grid.intensity`` and ``facility.power`` message format: one JSON object per point,
keyed ``provider:zone:signal`` (intensity) or ``site`` (PUE) so one series stays on one
partition and in order."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from consumers.enrich.model import IntensityPoint, PuePoint, SeriesError

_ENCODER: Final = msgspec.json.Encoder()
_POINT: Final = msgspec.json.Decoder(IntensityPoint)
_PUE: Final = msgspec.json.Decoder(PuePoint)


def intensity_key(point: IntensityPoint) -> bytes:
    """The message key of an intensity point."""
    return f"{point.provider}:{point.zone}:{point.signal}".encode()


def encode_point(point: IntensityPoint | PuePoint) -> bytes:
    """One JSON message (timestamps RFC 3339 UTC)."""
    return _ENCODER.encode(point)


def decode_point(value: bytes) -> IntensityPoint:
    """An intensity point from a message; SeriesError names what is wrong."""
    try:
        point = _POINT.decode(value)
    except msgspec.DecodeError as exc:
        raise SeriesError(f"grid.intensity message: {exc}") from None
    _check_times(point.start_at, point.end_at)
    return point


def decode_pue(value: bytes) -> PuePoint:
    """A PUE point from a ``facility.power`` message."""
    try:
        point = _PUE.decode(value)
    except msgspec.DecodeError as exc:
        raise SeriesError(f"facility.power message: {exc}") from None
    _check_times(point.start_at, point.end_at)
    if not point.pue >= 1.0:
        raise SeriesError(f"facility.power message: pue {point.pue!r} is below 1")
    return point


def _check_times(start: object, end: object) -> None:
    if not isinstance(start, datetime) or start.tzinfo is None:
        raise SeriesError(f"start_at {start!r} has no time zone")
    if not isinstance(end, datetime) or end.tzinfo is None or end <= start:
        raise SeriesError(f"end_at {end!r} is not an aware time after start_at")
