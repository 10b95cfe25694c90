"""Generation/consumption mixes and per-mode emission factors: a production-based
intensity cross-check, ``CI = sum_i P_i * EF_i / sum_i P_i`` (P in MW, EF in g/kWh).

Inputs: an Electricity Maps ``/power-breakdown`` reply, Electricity Maps' default factors
(``em_default_emission_factors.json``: ``{basis: {mode: {"value", "source"}}}``) and
CodeCarbon's ``carbon_intensity_per_source.json`` (``{mode: value, mode_source: url}``).
A mode with a null power is left out and reported; a mode without a factor is an error
(it would silently count as zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from consumers.enrich.model import SeriesError, parse_utc
from consumers.enrich.parsers.jsonload import field, load_json


class Breakdown(NamedTuple):
    """Power per mode in MW at one time (``None``: the provider had no value)."""

    zone: str
    at: datetime
    consumption_mw: dict[str, float | None]
    production_mw: dict[str, float | None]
    is_estimated: bool


class MixIntensity(NamedTuple):
    """A mix-weighted intensity and the modes left out for lack of data."""

    value_g_per_kwh: float
    missing_modes: tuple[str, ...]


def parse_power_breakdown(payload: bytes | str | dict[str, Any]) -> Breakdown:
    """An Electricity Maps ``/power-breakdown/latest`` reply."""
    body = load_json(payload, "electricitymaps")
    return Breakdown(
        zone=field(body, "zone", "reply"),
        at=parse_utc(field(body, "datetime", "reply"), "reply.datetime"),
        consumption_mw=_modes(field(body, "powerConsumptionBreakdown", "reply"), "consumption"),
        production_mw=_modes(field(body, "powerProductionBreakdown", "reply"), "production"),
        is_estimated=bool(body.get("isEstimated", False)),
    )


def parse_em_factors(payload: bytes | str | dict[str, Any], basis: str) -> dict[str, float]:
    """Electricity Maps default factors of one basis (``lifecycle`` or ``direct``)."""
    body = load_json(payload, "em-factors")
    table = field(body, basis, "factors")
    out = {}
    for mode, entry in table.items():
        value = field(entry, "value", f"{basis}.{mode}")
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise SeriesError(f"{basis}.{mode}.value: not a factor: {value!r}")
        out[mode] = float(value)
    return out


def parse_codecarbon_factors(payload: bytes | str) -> dict[str, float]:
    """CodeCarbon per-source factors (``world_average`` included); ``*_source`` and ``unit``
    keys are metadata."""
    body = load_json(payload, "codecarbon")
    if not isinstance(body, dict) or body.get("unit") != "gCO2.eq/kWh":
        raise SeriesError(f"codecarbon: unit must be gCO2.eq/kWh, got {body.get('unit')!r}")
    out = {}
    for key, value in body.items():
        if key == "unit" or key.endswith("_source"):
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise SeriesError(f"codecarbon.{key}: not a factor: {value!r}")
        out[key] = float(value)
    return out


def mix_intensity(
    power_mw: Mapping[str, float | None], factors: Mapping[str, float]
) -> MixIntensity:
    """``sum P_i EF_i / sum P_i`` over modes with a value; a mode with power but no factor
    raises SeriesError; no power at all raises too."""
    missing = tuple(sorted(m for m, p in power_mw.items() if p is None))
    total = weighted = 0.0
    for mode, power in power_mw.items():
        if power is None or power == 0:
            continue
        if mode not in factors:
            raise SeriesError(f"no emission factor for mode {mode!r} ({power} MW)")
        total += power
        weighted += power * factors[mode]
    if total <= 0:
        raise SeriesError("the mix has no positive power")
    return MixIntensity(weighted / total, missing)


def _modes(table: Any, where: str) -> dict[str, float | None]:
    if not isinstance(table, dict):
        raise SeriesError(f"{where}: expected an object of modes")
    out: dict[str, float | None] = {}
    for mode, value in table.items():
        if value is None:
            out[mode] = None
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            if value < 0:
                raise SeriesError(f"{where}.{mode}: negative power {value!r}")
            out[mode] = float(value)
        else:
            raise SeriesError(f"{where}.{mode}: not a power in MW: {value!r}")
    return out
