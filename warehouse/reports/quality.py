"""Data-quality findings: every sample or record that was not used as-is leaves one here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

IssueKind = Literal[
    "invalid_row",  # a meter row that cannot be used (field and value in detail)
    "duplicate",  # the same meter and instant more than once, same value: one kept
    "conflicting_duplicate",  # same meter and instant, different values: first kept
    "gap",  # no sample for longer than the allowed gap
    "counter_wrap",  # a cumulative counter passed its maximum and restarted
    "counter_reset",  # a cumulative counter went back (reboot, BMC reset)
    "timezone",  # timestamps converted to UTC (offset or assumed zone)
    "unknown_meter",  # a meter for a node/rack not in the mapping
    "unknown_job_node",  # a job ran on a node not in the mapping
    "mapping",  # a bad or conflicting mapping row
    "invalid_job",  # a job record that cannot be attributed
]

_MAX_DETAIL_CHARS = 200


def show(value: object) -> str:
    """A short, escaped rendering of a bad value (control characters visible, bounded)."""
    text = repr(value)
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[:_MAX_DETAIL_CHARS] + f"... ({len(text)} chars)"
    return text


@dataclass(frozen=True, slots=True)
class QualityIssue:
    """One finding. ``subject`` names the meter/node/job; ``count`` rows or events it covers;
    ``energy_j`` is the energy concerned where known (kept, not dropped, unless said)."""

    kind: IssueKind
    subject: str
    detail: str
    count: int = 1
    at: datetime | None = None
    until: datetime | None = None
    energy_j: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO 8601 UTC)."""
        out = asdict(self)
        for name in ("at", "until"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out


def count_by_kind(issues: Iterable[QualityIssue]) -> dict[str, int]:
    """Rows/events per kind (an issue with ``count`` 5 counts 5)."""
    counts: Counter[str] = Counter()
    for issue in issues:
        counts[issue.kind] += issue.count
    return dict(sorted(counts.items()))
