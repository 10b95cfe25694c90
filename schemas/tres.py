"""Parse Slurm TRES strings, formatted (``cpu=4,mem=1000M,energy=1260``) and raw (``1=4,2=1000``).

Units follow Slurm (``assoc_mgr_make_tres_str_from_array``):

* ``mem`` and ``bb/*`` are megabytes; the formatted form carries a 1024-based suffix
  (``1000M``, ``4G``, ``2.50G``), the raw form plain MB.
* ``energy`` is joules, a plain integer in both forms.
* everything else is a count; ``fs/*`` and ``ic/*`` may carry a 1024-based suffix.

The raw form prints NO_VAL64 (``3=18446744073709551614``) and leaves out zero counts; the
formatted form leaves out zero, NO_VAL64 and INFINITE64. Whitespace around items is tolerated
(the CSCS slide shows ``"cpu=4, mem=1000M"``).
"""

from __future__ import annotations

import re
from functools import lru_cache, partial
from typing import Final, NamedTuple

NO_VAL64: Final = 0xFFFFFFFFFFFFFFFE
INFINITE64: Final = 0xFFFFFFFFFFFFFFFF

# Static TRES ids created by slurmdbd (enum tres_types_t); ids above 1000 are site-specific.
STATIC_TRES_NAMES: Final[dict[int, str]] = {
    1: "cpu",
    2: "mem",
    3: "energy",
    4: "node",
    5: "billing",
    6: "fs/disk",
    7: "vmem",
    8: "pages",
}
TRES_ENERGY_ID: Final = 3
#: Counts at or above 2**63 are sentinels (NO_VAL64, INFINITE64) or corrupt: left out.
COUNT_LIMIT: Final = 2**63
#: Energies of 1e18 J or more are not energies (LUMI, CSCS); NO_VAL64 is ~1.8e19.
ENERGY_INVALID_AT_J: Final = 10**18

_SUFFIX_POWER: Final = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_MB_BASED: Final = ("mem", "bb/")  # formatted from MB: "1000M" is 1000 MB
_VALUE_RE: Final = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]?)$")

TresCounts = dict[str, int | float]


class TresParseError(ValueError):
    """A TRES string that cannot be read; the message names the item and its value."""


def _split_items(text: str) -> list[tuple[str, str]]:
    if " " not in text and ",," not in text and not text.endswith(","):
        # Slurm's own form: no spaces, no empty items.
        try:
            return [_pair(chunk) for chunk in text.split(",")]
        except ValueError:
            pass  # the careful path below names the bad item
    items: list[tuple[str, str]] = []
    for chunk in text.split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise TresParseError(f"TRES item {chunk!r} is not name=value")
        items.append((name.strip(), value.strip()))
    return items


def _pair(chunk: str) -> tuple[str, str]:
    name, value = chunk.split("=")
    if not name or not value:
        raise ValueError(chunk)
    return name, value


def _to_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def parse_formatted_value(name: str, value: str) -> int | float:
    """Convert one formatted TRES value to its base unit (MB for mem/bb, J for energy)."""
    if value.isdigit() and value.isascii():
        return int(value)
    match = _VALUE_RE.match(value)
    if match is None:
        raise TresParseError(
            f"TRES {name}={value!r} is not a number with an optional K/M/G/T suffix"
        )
    number, suffix = match.groups()
    if name == "energy" and (suffix or "." in number):
        raise TresParseError(f"TRES energy={value!r} must be a whole number of joules")
    power = _SUFFIX_POWER[suffix]
    if name == "mem" or name.startswith("bb/"):
        # Base unit is MB: "M" is power 0, "G" is 1024 MB, "K" is 1/1024 MB.
        power -= _SUFFIX_POWER["M"] if suffix else 0
    if "." not in number and power >= 0:
        return int(number) * (1024**power)
    return _to_number(float(number) * (1024.0**power))


def parse_formatted(text: str) -> TresCounts:
    """Parse ``name=value`` TRES (``cpu=4,mem=1000M,energy=1260,gres/gpu=4``).

    Returns counts by TRES name, mem in MB, energy in J. Raises TresParseError.
    """
    return {name: parse_formatted_value(name, value) for name, value in _split_items(text)}


def parse_raw(text: str) -> dict[int, int]:
    """Parse raw ``id=count`` TRES (``1=4,2=1000,3=1260``) into counts by TRES id.

    Sentinels (NO_VAL64, INFINITE64) are returned as they are; callers decide what they mean.
    """
    out: dict[int, int] = {}
    for key, value in _split_items(text):
        if key.isdigit() and value.isdigit() and key.isascii() and value.isascii():
            out[int(key)] = int(value)
            continue
        if not key.isdigit():
            raise TresParseError(f"raw TRES id {key!r} (in {key}={value}) is not an integer")
        if not value.isdigit():
            raise TresParseError(f"raw TRES {key}={value!r} is not a non-negative integer")
        out[int(key)] = int(value)
    return out


def raw_to_named(raw: dict[int, int], names: dict[int, str] | None = None) -> TresCounts:
    """Name raw TRES counts through a TRES table (default: Slurm's static ids).

    Unknown ids become ``"tres/<id>"``; NO_VAL64/INFINITE64 entries are left out.
    """
    table = STATIC_TRES_NAMES if names is None else names
    return {
        table.get(tres_id, f"tres/{tres_id}"): count
        for tres_id, count in raw.items()
        if count < COUNT_LIMIT
    }


def gpu_count(tres: TresCounts) -> int | None:
    """Allocated GPUs: ``gres/gpu`` if present, else the sum of typed ``gres/gpu:<type>``."""
    if "gres/gpu" in tres:
        return int(tres["gres/gpu"])
    typed = [v for k, v in tres.items() if k.startswith("gres/gpu:")]
    return int(sum(typed)) if typed else None


class TresReading(NamedTuple):
    """A job's TRES read from its raw and formatted strings together."""

    counts: dict[str, int | float]  # by name, mem in MB, energy in J (sentinels left out)
    raw_energy: int | None  # the raw "3=" count (NO_VAL64 kept); 0 if raw had none
    fmt_energy: int | None  # the formatted "energy=" count, None if absent
    has_raw: bool
    has_fmt: bool
    gpus: int | None = None  # ``gpu_count(counts)``


# TresReading from a tuple of all its fields, without the Python-level __new__ (~0.3 us).
_reading: Final = partial(tuple.__new__, TresReading)


def _joined(head: str | None, tail: str | None) -> str | None:
    # A comma list from the items before and after a cut-out one (either may be None).
    if head is None:
        return tail
    return head if tail is None else head + "," + tail


@lru_cache(maxsize=8192)
def _merged_counts(
    raw_head: str | None, raw_tail: str | None, fmt_head: str | None, fmt_tail: str | None
) -> tuple[TresCounts, int | None, int | None]:
    # The raw and formatted strings without their energy items, each given as the items
    # before and after it (joined only on a miss: the key costs no new strings).
    # Names come from the formatted string (site TRES ids are only known there); exact
    # static counts from the raw one. The cached dict is shared: callers copy it. Also the
    # GPU count and the raw string's own id-3 count (when no "3=" item was cut out of it).
    raw_text = _joined(raw_head, raw_tail) or None
    fmt_text = _joined(fmt_head, fmt_tail) or None
    merged: dict[str, int | float] = parse_formatted(fmt_text) if fmt_text else {}
    raw_energy = None
    if raw_text:
        ids = parse_raw(raw_text)
        raw_energy = ids.get(TRES_ENERGY_ID)
        for name, count in raw_to_named(ids).items():
            if name.startswith("tres/") and fmt_text is not None:
                continue
            merged[name] = count
    return merged, gpu_count(merged), raw_energy


#: ``read_tres_parts``: counts, raw energy, formatted energy, has raw, has formatted, GPUs.
TresParts = tuple[TresCounts, int | None, int | None, bool, bool, int | None]


@lru_cache(maxsize=8192)
def _read_tres_cached(raw_text: str | None, fmt_text: str | None) -> TresParts:
    return read_tres_parts(raw_text, fmt_text)


def read_tres(raw_text: str | None, fmt_text: str | None) -> TresReading:
    """Read a job's TRES from its raw (``1=4,3=1260``) and formatted (``cpu=4,energy=1260``)
    strings, either of which may be missing. Raises TresParseError naming the bad item."""
    return _reading(read_tres_parts(raw_text, fmt_text))


def read_tres_counts(raw_text: str | None, fmt_text: str | None) -> TresCounts:
    """Only the counts of ``read_tres`` (a fresh dict): what a job's request needs.

    Requests repeat across jobs and seldom hold energy: those without are cached whole."""
    if (raw_text is None or "3=" not in raw_text) and (
        fmt_text is None or "energy=" not in fmt_text
    ):
        return _read_tres_cached(raw_text, fmt_text)[0].copy()
    return read_tres_parts(raw_text, fmt_text)[0]


def _cut(text: str, prefix: str, comma_prefix: str) -> tuple[str | None, str | None, str] | None:
    # The items before and after the first item ``prefix<value>`` (None for none), and
    # its value; None when there is no such item.
    if text.startswith(prefix):
        value, _, tail = text[len(prefix) :].partition(",")
        return None, tail, value
    head, sep, tail = text.partition(comma_prefix)
    if not sep:
        return None
    value, more, rest = tail.partition(",")
    return head, rest if more else None, value


def read_tres_parts(raw_text: str | None, fmt_text: str | None) -> TresParts:
    """``read_tres`` as a plain tuple, in ``TresReading``'s field order (the hot path's form).

    Allocations differ in their energy, which is cut out before the cached parse of the
    rest. Callers get their own dict.
    """
    # The energy items ("3=<J>" raw, "energy=<J>" formatted) are cut out of strings in
    # Slurm's own form (no spaces): per allocation this is the hot path's largest cost
    # after decoding. A string goes to the cache as the items before and after its energy
    # item (head, tail); uncut, as (text, None).
    raw_energy: int | None = None
    fmt_energy: int | None = None
    raw_head, raw_tail, fmt_head, fmt_tail = raw_text, None, fmt_text, None
    raw_cut = fmt_cut = None
    if raw_text is not None and " " not in raw_text:
        raw_cut = _cut(raw_text, "3=", ",3=")
        if raw_cut is not None:
            raw_head, raw_tail, value = raw_cut
            if not (value.isdigit() and value.isascii()):
                raise TresParseError(f"raw TRES 3={value!r} is not a non-negative integer")
            raw_energy = int(value)
    if fmt_text is not None and " " not in fmt_text:
        fmt_cut = _cut(fmt_text, "energy=", ",energy=")
        if fmt_cut is not None:
            fmt_head, fmt_tail, value = fmt_cut
            fmt_energy = (
                int(value)
                if value.isdigit() and value.isascii()
                else int(parse_formatted_value("energy", value))
            )
    merged, gpus, rest_energy = _merged_counts(raw_head, raw_tail, fmt_head, fmt_tail)
    counts = merged.copy()
    if raw_text is not None and raw_cut is None:  # spaces or no "3=": read with the rest
        raw_energy = rest_energy
    if fmt_text is not None and fmt_cut is None and "energy" in counts:
        fmt_energy = int(counts["energy"])
    energy = raw_energy if raw_energy is not None else fmt_energy
    if energy is not None and energy < ENERGY_INVALID_AT_J:
        counts["energy"] = energy
    else:
        counts.pop("energy", None)
    if raw_text is not None and raw_energy is None:
        raw_energy = 0  # the raw form leaves out only zero counts
    # "energy" never counts as a GPU, so the cached count holds for the whole reading.
    return counts, raw_energy, fmt_energy, raw_text is not None, fmt_text is not None, gpus
