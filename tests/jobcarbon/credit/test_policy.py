"""Policy file parsing: the example file, defaults, periods, carry-over and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import jobcarbon.credit
from jobcarbon.credit.policy import (
    PolicyError,
    budget_kg,
    equivalents,
    parse_policy,
    period_bounds,
    previous_period_start,
)

EXAMPLE = Path(jobcarbon.credit.__file__).parent / "policy.example.toml"


def test_example_policy() -> None:
    policy = parse_policy(EXAMPLE.read_text())
    assert policy.past_window_days == 28
    phys = policy.allocation("phys001")
    assert phys is not None and phys.mode == "warn" and phys.allocation_kg == 2000
    assert phys.period == "quarter" and phys.carry_over  # inherited from [default]
    clim = policy.allocation("clim002")
    assert clim is not None and clim.mode == "deny" and clim.deny_at == 1.1
    user = policy.allocation("clim002", "u0007")
    assert user is not None and user.allocation_kg == 100 and user.mode == "deny"
    assert user.period == "month"  # the account's, not the default's
    other = policy.allocation("nobody")
    assert other is not None and other.allocation_kg == 500 and other.mode == "inform"
    names = {e.name for e in policy.equivalences}
    assert names == {"flight_km", "car_km", "train_km"}
    assert all(e.source.strip() and "http" in e.source for e in policy.equivalences)


def test_no_default_means_no_allocation() -> None:
    policy = parse_policy("[accounts.a]\nallocation_kg = 1\n")
    assert policy.allocation("b") is None
    assert policy.allocation("a") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[accounts.a]\nallocation_kg = 1\nmode = "block"',
            "accounts.a.mode: 'block' is not one of",
        ),
        ("[accounts.a]\nallocation_kg = -5", "accounts.a.allocation_kg: -5"),
        (
            '[accounts.a]\nallocation_kg = "lots"',
            "accounts.a.allocation_kg: 'lots' is not a number",
        ),
        ("[accounts.a]\nperiod = 'month'", "accounts.a.allocation_kg: missing"),
        ('[accounts.a]\nallocation_kg = 1\nperiod = "week"', "accounts.a.period: 'week'"),
        ('[accounts.a]\nallocation_kg = 1\ncarry_over = "yes"', "accounts.a.carry_over: 'yes'"),
        ("[accounts.a]\nallocation_kg = 1\nwarn_at = 2.0", "accounts.a.warn_at: 2.0 is above"),
        (
            '[accounts.a]\nallocation_kg = 1\ncolour = "red"',
            "accounts.a.colour: 'red' is not a known",
        ),
        ("[accounts.a]\nallocation_kg = nan", "accounts.a.allocation_kg: nan"),
        ("past_window_days = 0", "past_window_days: 0.0 must be > 0"),
        ("budget = 3", "budget: 3 is not a known key"),
        (
            "[[equivalence]]\nname='x'\nlabel='x'\nunit='km'\ng_co2e_per_unit=1",
            "equivalence[0].source",
        ),
        (
            "[[equivalence]]\nname='x'\nlabel='x'\nunit='km'\nsource='s'\ng_co2e_per_unit=0",
            "must be > 0",
        ),
        ("[accounts.a\n", "not valid TOML"),
        ("[accounts.\"'; DROP TABLE x; --\"]\nallocation_kg = 1\nmode = 'x'", "DROP TABLE"),
    ],
)
def test_errors_name_key_and_value(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert message in str(info.value)


def test_period_bounds() -> None:
    at = datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert period_bounds("month", at) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert period_bounds("quarter", at) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("year", at) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert previous_period_start("quarter", at) == datetime(2026, 7, 1, tzinfo=UTC)
    assert previous_period_start("month", datetime(2026, 1, 5, tzinfo=UTC)) == datetime(
        2025, 12, 1, tzinfo=UTC
    )


def test_carry_over_is_capped_and_never_negative() -> None:
    policy = parse_policy(
        "[accounts.a]\nallocation_kg = 100\ncarry_over = true\ncarry_over_cap = 0.25\n"
        "[accounts.b]\nallocation_kg = 100\n"
    )
    a, b = policy.allocation("a"), policy.allocation("b")
    assert a is not None and b is not None
    assert budget_kg(a, 90.0) == 110.0  # 10 unused
    assert budget_kg(a, 0.0) == 125.0  # 100 unused, capped at 25
    assert budget_kg(a, 180.0) == 100.0  # overspending carries no debt
    assert budget_kg(a, None) == 100.0  # no previous period
    assert budget_kg(b, 0.0) == 100.0  # carry-over off


def test_equivalents() -> None:
    policy = parse_policy(EXAMPLE.read_text())
    eq = equivalents(3546.0, policy.equivalences)
    assert eq["train_km"] == pytest.approx(100.0)  # 35.46 g per passenger-km (DESNZ 2024)
    assert eq["flight_km"] == pytest.approx(3546.0 / 88.0)
