"""How a job's IT power is spread over its run: uniform by default, or a phase profile.

A profile gives piecewise-constant *relative* power over ``[0, duration_s)``; only the
shape matters (the energy shares), the total energy comes from Slurm.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class PowerPiece(NamedTuple):
    """Relative power ``power_w`` over ``[start_s, end_s)`` seconds from the job start."""

    start_s: float
    end_s: float
    power_w: float


class EnergyProfile(Protocol):
    """Anything that shapes a run's power."""

    def pieces(self, duration_s: float) -> list[PowerPiece]:
        """Pieces covering ``[0, duration_s)`` with non-negative power, not all zero."""
        ...


class UniformProfile:
    """Constant power over the whole run (the default: Slurm gives energy, not its shape)."""

    def pieces(self, duration_s: float) -> list[PowerPiece]:
        """One piece at unit power."""
        return [PowerPiece(0.0, duration_s, 1.0)]


class PhaseProfile(NamedTuple):
    """Startup, then work interleaved with checkpoints, each phase at its own power.

    After ``startup_s`` at ``startup_power_w``, the job works at ``work_power_w``; every
    ``checkpoint_every_s`` seconds of work it writes a checkpoint for ``checkpoint_s`` at
    ``checkpoint_power_w``. The run's end truncates whatever phase is running.
    """

    startup_s: float = 0.0
    startup_power_w: float = 0.0
    work_power_w: float = 1.0
    checkpoint_every_s: float | None = None
    checkpoint_s: float = 0.0
    checkpoint_power_w: float = 0.0

    def pieces(self, duration_s: float) -> list[PowerPiece]:
        """The phases cut at ``duration_s``."""
        if min(self.startup_power_w, self.work_power_w, self.checkpoint_power_w) < 0:
            raise ValueError(f"phase profile powers must be >= 0: {self!r}")
        if self.checkpoint_every_s is not None and self.checkpoint_every_s <= 0:
            raise ValueError(f"checkpoint_every_s must be > 0: {self.checkpoint_every_s!r}")
        out: list[PowerPiece] = []
        t = 0.0

        def add(length: float, power_w: float) -> None:
            nonlocal t
            end = min(duration_s, t + length)
            if end > t:
                out.append(PowerPiece(t, end, power_w))
            t = end

        add(self.startup_s, self.startup_power_w)
        while t < duration_s:
            if self.checkpoint_every_s is None or self.checkpoint_s <= 0:
                add(duration_s - t, self.work_power_w)
                break
            add(self.checkpoint_every_s, self.work_power_w)
            add(self.checkpoint_s, self.checkpoint_power_w)
        return out


UNIFORM = UniformProfile()
