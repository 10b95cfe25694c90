"""The credit policy file (TOML): allocations, periods, carry-over, modes, equivalents.

Parsing is pure (text in, ``Policy`` out) and every error names the key and the value, e.g.
``accounts.phys001.mode: 'block' is not one of inform, warn, deny``. See docs/credit.md.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

Period = Literal["month", "quarter", "year"]
Mode = Literal["inform", "warn", "deny"]
PERIODS: Final = ("month", "quarter", "year")
MODES: Final = ("inform", "warn", "deny")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the key and the value."""


@dataclass(frozen=True, slots=True)
class Equivalence:
    """``g_co2e_per_unit`` grams of CO2e per unit (e.g. per passenger-km), with its source."""

    name: str
    label: str
    unit: str
    g_co2e_per_unit: float
    source: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """A budget in kgCO2e per period for an account (or one user in an account)."""

    allocation_kg: float
    period: Period
    carry_over: bool
    #: Carry-over is capped at this share of one period's allocation (1.0 = a full period).
    carry_over_cap: float
    mode: Mode
    #: Shares of the budget (allocation + carry-over): warn from ``warn_at``, deny above
    #: ``deny_at`` (only in mode "deny").
    warn_at: float
    deny_at: float


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole policy: defaults, accounts, per-user overrides and equivalents."""

    past_window_days: float = 28.0
    max_delay_hours: float = 24.0
    default: Allocation | None = None
    accounts: Mapping[str, Allocation] = field(default_factory=dict)
    users: Mapping[tuple[str, str], Allocation] = field(default_factory=dict)
    equivalences: tuple[Equivalence, ...] = ()

    def allocation(self, account: str, user: str | None = None) -> Allocation | None:
        """The allocation that applies: the user's in the account, the account's, the default."""
        if user is not None and (account, user) in self.users:
            return self.users[(account, user)]
        return self.accounts.get(account, self.default)


def _err(key: str, value: object, why: str) -> PolicyError:
    return PolicyError(f"{key}: {value!r} {why}")


def _number(
    table: Mapping[str, Any], key: str, where: str, default: float | None, *, lo: float = 0.0
) -> float:
    value = table.get(key, default)
    name = f"{where}.{key}" if where else key
    if value is None:
        raise PolicyError(f"{name}: missing (a number is required)")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err(name, value, "is not a number")
    if not math.isfinite(value) or value < lo:
        raise _err(name, value, f"must be a finite number >= {lo:g}")
    return float(value)


def _choice(table: Mapping[str, Any], key: str, where: str, default: str, allowed: tuple) -> Any:
    value = table.get(key, default)
    if value not in allowed:
        raise _err(f"{where}.{key}", value, f"is not one of {', '.join(allowed)}")
    return value


_ALLOCATION_KEYS = frozenset(
    {"allocation_kg", "period", "carry_over", "carry_over_cap", "mode", "warn_at", "deny_at"}
)


def _allocation(table: Any, where: str, base: Allocation | None) -> Allocation:
    if not isinstance(table, Mapping):
        raise _err(where, table, "is not a table")
    unknown = sorted(set(table) - _ALLOCATION_KEYS - {"users"})
    if unknown:
        raise _err(f"{where}.{unknown[0]}", table[unknown[0]], "is not a known key")
    carry = table.get("carry_over", base.carry_over if base else False)
    if not isinstance(carry, bool):
        raise _err(f"{where}.carry_over", carry, "is not true or false")
    warn_at = _number(table, "warn_at", where, base.warn_at if base else 0.8)
    deny_at = _number(table, "deny_at", where, base.deny_at if base else 1.0)
    if warn_at > deny_at:
        raise _err(f"{where}.warn_at", warn_at, f"is above deny_at ({deny_at:g})")
    return Allocation(
        allocation_kg=_number(table, "allocation_kg", where, base.allocation_kg if base else None),
        period=_choice(table, "period", where, base.period if base else "quarter", PERIODS),
        carry_over=carry,
        carry_over_cap=_number(
            table, "carry_over_cap", where, base.carry_over_cap if base else 1.0
        ),
        mode=_choice(table, "mode", where, base.mode if base else "inform", MODES),
        warn_at=warn_at,
        deny_at=deny_at,
    )


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _err(f"{where}.{key}", value, "must be a non-empty string")
    return value


def parse_policy(text: str) -> Policy:
    """Parse a policy file's text; raises PolicyError naming the offending key and value."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file is not valid TOML: {exc}") from None
    known = {"past_window_days", "max_delay_hours", "default", "accounts", "equivalence"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _err(unknown[0], data[unknown[0]], "is not a known key")
    default = _allocation(data["default"], "default", None) if "default" in data else None
    accounts: dict[str, Allocation] = {}
    users: dict[tuple[str, str], Allocation] = {}
    raw_accounts = data.get("accounts", {})
    if not isinstance(raw_accounts, Mapping):
        raise _err("accounts", raw_accounts, "is not a table")
    for account, table in raw_accounts.items():
        where = f"accounts.{account}"
        accounts[account] = _allocation(table, where, default)
        raw_users = table.get("users", {})
        if not isinstance(raw_users, Mapping):
            raise _err(f"{where}.users", raw_users, "is not a table")
        for user, utable in raw_users.items():
            users[(account, user)] = _allocation(utable, f"{where}.users.{user}", accounts[account])
    equivalences = []
    raw_eq = data.get("equivalence", [])
    if not isinstance(raw_eq, list):
        raise _err("equivalence", raw_eq, "is not an array of tables ([[equivalence]])")
    for i, table in enumerate(raw_eq):
        where = f"equivalence[{i}]"
        if not isinstance(table, Mapping):
            raise _err(where, table, "is not a table")
        factor = _number(table, "g_co2e_per_unit", where, None)
        if factor <= 0:
            raise _err(f"{where}.g_co2e_per_unit", factor, "must be > 0")
        equivalences.append(
            Equivalence(
                name=_text(table, "name", where),
                label=_text(table, "label", where),
                unit=_text(table, "unit", where),
                g_co2e_per_unit=factor,
                source=_text(table, "source", where),
            )
        )
    past = _number(data, "past_window_days", "", 28.0)
    if past <= 0:
        raise _err("past_window_days", past, "must be > 0")
    return Policy(
        past_window_days=past,
        max_delay_hours=_number(data, "max_delay_hours", "", 24.0),
        default=default,
        accounts=accounts,
        users=users,
        equivalences=tuple(equivalences),
    )


def period_bounds(period: Period, at: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of the calendar period (UTC) containing ``at``."""
    at = at.astimezone(UTC)
    if period == "month":
        start = datetime(at.year, at.month, 1, tzinfo=UTC)
        months = 1
    elif period == "quarter":
        start = datetime(at.year, 3 * ((at.month - 1) // 3) + 1, 1, tzinfo=UTC)
        months = 3
    else:
        start = datetime(at.year, 1, 1, tzinfo=UTC)
        months = 12
    index = start.year * 12 + start.month - 1 + months
    return start, datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def previous_period_start(period: Period, at: datetime) -> datetime:
    """Start of the period before the one containing ``at``."""
    start, _ = period_bounds(period, at)
    return period_bounds(period, start - timedelta(microseconds=1))[0]


def budget_kg(allocation: Allocation, previous_used_kg: float | None) -> float:
    """This period's budget: the allocation plus carry-over of last period's unused part
    (capped at ``carry_over_cap`` x allocation). Overspending never carries a debt over."""
    if not allocation.carry_over or previous_used_kg is None:
        return allocation.allocation_kg
    unused = max(0.0, allocation.allocation_kg - previous_used_kg)
    return allocation.allocation_kg + min(
        unused, allocation.carry_over_cap * allocation.allocation_kg
    )


def equivalents(co2e_g: float, factors: tuple[Equivalence, ...]) -> dict[str, float]:
    """``co2e_g`` expressed in each equivalence's unit (e.g. km by train)."""
    return {e.name: co2e_g / e.g_co2e_per_unit for e in factors}
