"""Annual and static per-zone factors: OWID grapher CSV, Green Algorithms
``CI_aggregated.csv``, CodeCarbon ``global_energy_mix.json`` and configured static values.

They are the fallback behind time series (a zone's annual average) and a provider of their
own for sites without a time series.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from consumers.enrich.model import AnnualFactor, Rejected, SeriesError, intensity_value
from consumers.enrich.parsers.jsonload import load_json

OWID_SOURCE = "Our World in Data / Ember, carbon-intensity-electricity (CC BY 4.0)"
GA_SOURCE = "Green Algorithms CI_aggregated.csv"


def parse_owid(text: str) -> tuple[list[AnnualFactor], list[Rejected]]:
    """``Entity,Code,Year,<value>`` rows; the value column is read by position (its header
    changed over time). Zone is the ISO code, or the entity name for aggregates without one;
    ``OWID_*`` codes and empty codes are aggregates."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if (
        not header
        or len(header) < 4
        or [h.lower() for h in header[:3]]
        != [
            "entity",
            "code",
            "year",
        ]
    ):
        raise SeriesError(f"owid: header must start Entity,Code,Year,<value>: {header}")
    factors: list[AnnualFactor] = []
    rejected: list[Rejected] = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < 4:
            raise SeriesError(f"owid: line {lineno} has {len(row)} fields (truncated?)")
        entity, code, year_text, raw = row[0], row[1].strip(), row[2], row[3].strip()
        try:
            year = int(year_text)
        except ValueError:
            raise SeriesError(f"owid: line {lineno} column Year: {year_text!r}") from None
        value = intensity_value(raw or None, f"owid line {lineno} column {header[3]!r}")
        if isinstance(value, Rejected):
            rejected.append(value)
            continue
        factors.append(
            AnnualFactor(
                provider="owid",
                zone=code or entity,
                year=year,
                value_g_per_kwh=value,
                basis="lifecycle",
                source=OWID_SOURCE,
                aggregate=not code or code.startswith("OWID_"),
                name=entity,
            )
        )
    return factors, rejected


def parse_green_algorithms(text: str) -> tuple[list[AnnualFactor], list[Rejected]]:
    """``CI_aggregated.csv``: a comment header line, then the real header
    (``location,...,carbonIntensity,Type,source,...``). Undated (``year=None``)."""
    lines = text.lstrip("\ufeff").splitlines()
    if len(lines) < 2 or not lines[1].startswith("location,"):
        raise SeriesError("green-algorithms: second line must be the header 'location,...'")
    reader = csv.DictReader(io.StringIO("\n".join(lines[1:])))
    factors: list[AnnualFactor] = []
    rejected: list[Rejected] = []
    for lineno, row in enumerate(reader, start=3):
        zone = (row.get("location") or "").strip()
        if not zone:
            raise SeriesError(f"green-algorithms: line {lineno} has no location")
        value = intensity_value(
            (row.get("carbonIntensity") or "").strip() or None,
            f"green-algorithms line {lineno} column 'carbonIntensity'",
        )
        if isinstance(value, Rejected):
            rejected.append(value)
            continue
        kind = (row.get("Type") or "").strip()
        factors.append(
            AnnualFactor(
                provider="green-algorithms",
                zone=zone,
                year=None,
                value_g_per_kwh=value,
                basis=None,  # mixed sources (production-mix and lifecycle) per row
                source=f"{GA_SOURCE}: {(row.get('source') or '').strip()}",
                aggregate=kind not in ("Country", "Region"),
                name=(row.get("countryName") or "").strip() or None,
            )
        )
    return factors, rejected


def parse_codecarbon_mix(payload: bytes | str) -> tuple[list[AnnualFactor], list[Rejected]]:
    """CodeCarbon ``global_energy_mix.json``: ``{ISO3: {"carbon_intensity", "year", ...}}``."""
    body = load_json(payload, "codecarbon")
    if not isinstance(body, dict):
        raise SeriesError("codecarbon: expected an object keyed by ISO3 code")
    factors: list[AnnualFactor] = []
    rejected: list[Rejected] = []
    for zone, entry in body.items():
        if not isinstance(entry, dict):
            raise SeriesError(f"codecarbon: {zone}: expected an object")
        value = intensity_value(entry.get("carbon_intensity"), f"{zone}.carbon_intensity")
        if isinstance(value, Rejected):
            rejected.append(value)
            continue
        year = entry.get("year")
        factors.append(
            AnnualFactor(
                provider="codecarbon",
                zone=zone,
                year=year if isinstance(year, int) else None,
                value_g_per_kwh=value,
                basis="lifecycle",
                source="CodeCarbon global_energy_mix.json (OWID energy-data)",
                name=entry.get("country_name"),
            )
        )
    return factors, rejected


def static_factors(values: Mapping[str, float], source: str = "settings") -> list[AnnualFactor]:
    """Configured per-zone factors (``settings.carbon.static_factors``)."""
    out = []
    for zone, raw in values.items():
        value = intensity_value(raw, f"static_factors.{zone}")
        if isinstance(value, Rejected):
            raise SeriesError(f"{value.where}: {value.reason}")
        out.append(
            AnnualFactor(
                provider="static", zone=zone, year=None, value_g_per_kwh=value, source=source
            )
        )
    return out


def as_mapping(factors: list[AnnualFactor]) -> dict[tuple[str, int | None], AnnualFactor]:
    """``(zone, year)`` -> factor, for lookups."""
    return {(f.zone, f.year): f for f in factors}


def parse_pue_defaults(text: str) -> dict[str, tuple[float, str]]:
    """Green Algorithms ``defaults_PUE.csv`` (comment line, then ``provider,PUE,source``):
    provider -> (PUE, source)."""
    lines = text.lstrip("\ufeff").splitlines()
    if len(lines) < 2 or not lines[1].startswith("provider,PUE"):
        raise SeriesError("green-algorithms PUE: second line must be 'provider,PUE,source'")
    out = {}
    for lineno, row in enumerate(csv.reader(lines[2:]), start=3):
        if not row:
            continue
        if len(row) < 2:
            raise SeriesError(f"green-algorithms PUE: line {lineno} is truncated")
        try:
            pue = float(row[1])
        except ValueError:
            raise SeriesError(f"green-algorithms PUE: line {lineno} PUE {row[1]!r}") from None
        if not 1.0 <= pue <= 10.0:
            raise SeriesError(f"green-algorithms PUE: line {lineno} PUE {pue} out of [1, 10]")
        out[row[0]] = (pue, ",".join(row[2:]).strip())
    return out
