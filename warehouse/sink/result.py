"""What the sink reports for a batch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Rejected:
    """A fact the warehouse refused: the job (``cluster:job_id:submit_epoch``) and why."""

    job: str
    reason: str


@dataclass(slots=True)
class SinkResult:
    """Counts per outcome. ``unchanged``: equal to what is stored (a replay); ``stale``:
    of lower precedence than what is stored (kept out); ``duplicates``: superseded by
    another fact for the same job in the same batch; ``ignored``: not a finished job."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def __iadd__(self, other: SinkResult) -> SinkResult:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.rejected.extend(other.rejected)
        return self

    @property
    def landed(self) -> int:
        """Facts the warehouse now holds as given (inserted, updated or already equal)."""
        return self.inserted + self.updated + self.unchanged

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"inserted {self.inserted}, updated {self.updated}, unchanged {self.unchanged}, "
            f"stale {self.stale}, duplicates {self.duplicates}, ignored {self.ignored}, "
            f"rejected {len(self.rejected)}"
        )
