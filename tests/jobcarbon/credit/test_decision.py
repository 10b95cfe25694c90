"""Credit decisions per mode, hand-computed."""

from __future__ import annotations

import math

from jobcarbon.credit.decision import decide
from jobcarbon.credit.policy import Allocation


def alloc(mode: str, warn_at: float = 0.8, deny_at: float = 1.0) -> Allocation:
    return Allocation(100.0, "month", False, 1.0, mode, warn_at, deny_at)  # type: ignore[arg-type]


def test_inform_never_blocks() -> None:
    v = decide(alloc("inform"), 100.0, 95.0, 50.0)
    assert v.decision == "allow"
    assert v.share_after == 1.45 and v.available_kg == 5.0


def test_warn_from_the_threshold() -> None:
    assert decide(alloc("warn"), 100.0, 70.0, 9.0).decision == "allow"
    assert decide(alloc("warn"), 100.0, 70.0, 10.0).decision == "warn"
    assert decide(alloc("warn"), 100.0, 70.0, 1000.0).decision == "warn"


def test_deny_above_the_limit_only() -> None:
    a = alloc("deny", 0.8, 1.1)
    assert decide(a, 100.0, 100.0, 10.0).decision == "warn"  # exactly 110 %
    v = decide(a, 100.0, 100.0, 10.5)
    assert v.decision == "deny" and "110.5%" in v.message
    assert decide(a, 100.0, 10.0, 10.0).decision == "allow"


def test_zero_budget() -> None:
    v = decide(alloc("deny"), 0.0, 0.0, 0.1)
    assert v.decision == "deny" and math.isinf(v.share_after or 0)
    assert decide(alloc("deny"), 0.0, 0.0, 0.0).decision == "allow"


def test_no_policy() -> None:
    v = decide(None, 0.0, 5.0, 5.0)
    assert v.decision == "allow" and v.available_kg is None
