"""TRES strings: formatted and raw, units, sentinels, spaces, and errors that name the item."""

import pytest

from schemas.tres import (
    NO_VAL64,
    TresParseError,
    gpu_count,
    parse_formatted,
    parse_raw,
    raw_to_named,
    read_tres,
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
