"""TRES strings: formatted and raw, units, sentinels, spaces, and errors that name the item."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.tres import (
    NO_VAL64,
    TresParseError,
    gpu_count,
    parse_formatted,
    parse_raw,
    raw_to_named,
    read_tres,
    read_tres_counts,
)


def test_formatted_units_mem_in_mb_energy_in_joules() -> None:
    assert parse_formatted("cpu=4,mem=1000M,energy=1260,node=1,billing=4,gres/gpu=4") == {
        "cpu": 4,
        "mem": 1000,
        "energy": 1260,
        "node": 1,
        "billing": 4,
        "gres/gpu": 4,
    }


@pytest.mark.parametrize(
    ("text", "mb"),
    [("1000M", 1000), ("4G", 4096), ("2.50G", 2560), ("1T", 1048576), ("512K", 0.5), ("7", 7)],
)
def test_formatted_mem_suffixes_are_1024_based_from_mb(text: str, mb: float) -> None:
    assert parse_formatted(f"mem={text}")["mem"] == mb


def test_formatted_counts_with_suffix_scale_by_1024() -> None:
    assert parse_formatted("fs/disk=1.5K")["fs/disk"] == 1536
    assert parse_formatted("bb/datawarp=2G")["bb/datawarp"] == 2048


def test_cscs_slide_spaces_are_tolerated() -> None:
    assert parse_formatted("cpu=4, mem=1000M, energy=1260, node=1, billing=4")["energy"] == 1260
    assert parse_raw("1=4, 2=1000, 3=1260, 4=1, 5=4") == {1: 4, 2: 1000, 3: 1260, 4: 1, 5: 4}


def test_raw_keeps_sentinels_and_naming_drops_them() -> None:
    raw = parse_raw(f"1=1,2=94946,3={NO_VAL64},4=1,5=1,1001=2")
    assert raw[3] == NO_VAL64
    named = raw_to_named(raw)
    assert "energy" not in named
    assert named == {"cpu": 1, "mem": 94946, "node": 1, "billing": 1, "tres/1001": 2}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("cpu", "'cpu'"),
        ("cpu=x", "cpu='x'"),
        ("energy=1.5K", "energy='1.5K'"),
        ("=4", "'=4'"),
        ("mem=4Q", "mem='4Q'"),
    ],
)
def test_formatted_errors_name_the_item(text: str, needle: str) -> None:
    with pytest.raises(TresParseError, match=needle.replace("(", r"\(")):
        parse_formatted(text)


@pytest.mark.parametrize(("text", "needle"), [("a=4", "'a'"), ("1=-4", "'-4'"), ("1=4.5", "'4.5'")])
def test_raw_errors_name_the_item(text: str, needle: str) -> None:
    with pytest.raises(TresParseError, match=needle):
        parse_raw(text)


def test_gpu_count_prefers_untyped_then_sums_typed() -> None:
    assert gpu_count({"gres/gpu": 4, "gres/gpu:a100": 4}) == 4
    assert gpu_count({"gres/gpu:a100": 2, "gres/gpu:v100": 1}) == 3
    assert gpu_count({"cpu": 4}) is None


def test_read_tres_energy_rules() -> None:
    # Raw leaves out only zero counts: no 3= means 0 J.
    assert read_tres("1=4,2=1000,4=1", None).raw_energy == 0
    assert read_tres(f"1=4,3={NO_VAL64}", "cpu=4").raw_energy == NO_VAL64
    reading = read_tres(f"1=4,3={NO_VAL64}", "cpu=4")
    assert "energy" not in reading.counts
    # Formatted only: energy present or not.
    assert read_tres(None, "cpu=4,energy=99").fmt_energy == 99
    assert read_tres(None, "cpu=4").fmt_energy is None
    # Bogus energies are never counts.
    assert "energy" not in read_tres("1=4,3=2000000000000000000", None).counts


def test_read_tres_returns_independent_dicts() -> None:
    first = read_tres("1=4,2=1000", "cpu=4,mem=1000M")
    first.counts["cpu"] = 99
    assert read_tres("1=4,2=1000", "cpu=4,mem=1000M").counts["cpu"] == 4


def test_read_tres_same_result_with_and_without_spaces() -> None:
    spaced = read_tres("1=4, 2=1000, 3=1260", "cpu=4, mem=1000M, energy=1260")
    plain = read_tres("1=4,2=1000,3=1260", "cpu=4,mem=1000M,energy=1260")
    assert spaced == plain


def test_read_tres_counts_is_the_readings_counts() -> None:
    cases = [
        ("1=4,2=1000,4=1", "cpu=4,mem=1000M,node=1"),
        ("1=4,3=1260", "cpu=4,energy=1260"),
        ("1=4, 2=1000", None),
        (None, "cpu=4, energy=7"),
        (None, None),
    ]
    for raw, fmt in cases:
        assert read_tres_counts(raw, fmt) == read_tres(raw, fmt).counts, (raw, fmt)
    first = read_tres_counts("1=4,2=1000", "cpu=4,mem=1000M")
    first["cpu"] = 99
    assert read_tres_counts("1=4,2=1000", "cpu=4,mem=1000M")["cpu"] == 4


_RAW_ITEMS = {1: "4", 2: "1000", 4: "1", 5: "4", 1001: "8"}
_FMT_ITEMS = {1: "cpu=4", 2: "mem=1000M", 4: "node=1", 5: "billing=4", 1001: "gres/gpu=8"}


@settings(max_examples=300, deadline=None)
@given(
    ids=st.lists(st.sampled_from(sorted(_RAW_ITEMS)), unique=True, max_size=5),
    position=st.integers(min_value=0, max_value=5),
    energy=st.sampled_from([0, 7, 1260, 10**18 - 1, 10**18, NO_VAL64]),
    with_raw=st.booleans(),
    with_fmt=st.booleans(),
)
def test_energy_cut_out_anywhere_reads_as_the_whole_string_does(
    ids: list[int], position: int, energy: int, with_raw: bool, with_fmt: bool
) -> None:
    # Slurm's form (no spaces) cuts the energy item out before the cached parse of the rest;
    # with spaces the whole string is parsed. Both readings must agree wherever the item is.
    raw_items = [f"{i}={_RAW_ITEMS[i]}" for i in ids]
    fmt_items = [_FMT_ITEMS[i] for i in ids]
    at = min(position, len(ids))
    raw_items.insert(at, f"3={energy}")
    if energy < NO_VAL64:  # the formatted form leaves NO_VAL64 out
        fmt_items.insert(at, f"energy={energy}")
    raw = ",".join(raw_items) if with_raw else None
    fmt = ",".join(fmt_items) if with_fmt else None
    spaced_raw = ", ".join(raw_items) if with_raw else None
    spaced_fmt = ", ".join(fmt_items) if with_fmt else None
    assert read_tres(raw, fmt) == read_tres(spaced_raw, spaced_fmt)
    assert read_tres_counts(raw, fmt) == read_tres(spaced_raw, spaced_fmt).counts
