"""The credit decision and the numbers a user sees at submission (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from jobcarbon.credit.policy import Allocation

Decision = Literal["allow", "warn", "deny"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the check decides, with the share of the budget the job would bring usage to."""

    decision: Decision
    share_after: float | None
    available_kg: float | None
    message: str


def decide(
    allocation: Allocation | None, budget_kg: float, used_kg: float, predicted_kg: float
) -> Verdict:
    """Apply an account's mode. ``used_kg`` is this period's settled CO2e plus open
    reservations; ``predicted_kg`` the new job's predicted CO2e. Without an allocation the
    job is allowed and no credit is shown."""
    if allocation is None:
        return Verdict("allow", None, None, "no credit policy applies to this account")
    available = budget_kg - used_kg
    after = used_kg + predicted_kg
    share = after / budget_kg if budget_kg > 0 else (math.inf if after > 0 else 0.0)
    pct = "over 100" if math.isinf(share) else f"{share * 100:.1f}"
    if allocation.mode == "deny" and share > allocation.deny_at:
        return Verdict(
            "deny",
            share,
            available,
            f"denied: this job would bring usage to {pct}% of the {allocation.period}ly "
            f"budget of {budget_kg:.1f} kgCO2e (limit {allocation.deny_at * 100:.0f}%)",
        )
    if allocation.mode in ("warn", "deny") and share >= allocation.warn_at:
        return Verdict(
            "warn",
            share,
            available,
            f"warning: this job would bring usage to {pct}% of the {allocation.period}ly "
            f"budget of {budget_kg:.1f} kgCO2e",
        )
    return Verdict(
        "allow",
        share,
        available,
        f"usage after this job: {pct}% of the {allocation.period}ly budget "
        f"of {budget_kg:.1f} kgCO2e",
    )
