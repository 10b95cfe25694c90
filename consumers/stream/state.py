"""The worker's enrichment state: a local copy of grid.intensity and facility.power."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from consumers.state import EnrichmentState, Point, PointError, merge_point, parse_point

log = logging.getLogger(__name__)


class LocalState:
    """Thread-safe holder of intensity points by zone and power points by site.

    Writers (the topic follower) replace a whole series; readers take an immutable
    ``snapshot()`` per batch, so the pure stages never see a half-applied update."""

    def __init__(self, intensity_topic: str, power_topic: str) -> None:
        self._topics = {intensity_topic: "zone", power_topic: "site"}
        self._intensity: dict[str, Sequence[Point]] = {}
        self._power: dict[str, Sequence[Point]] = {}
        self._lock = threading.Lock()
        self.applied = 0
        self.rejected = 0

    def apply(self, topic: str, value: bytes) -> None:
        """Merge one message of a state topic; a bad point is logged and counted, not fatal."""
        key_field = self._topics.get(topic)
        if key_field is None:
            return
        try:
            name, point = parse_point(value, key_field)
        except PointError as exc:
            self.rejected += 1
            log.warning("state point rejected: %s", exc, extra={"topic": topic})
            return
        series = self._intensity if key_field == "zone" else self._power
        with self._lock:
            series[name] = merge_point(series.get(name, ()), point)
            self.applied += 1

    def snapshot(self) -> EnrichmentState:
        """The state as it is now (series are replaced, never mutated, so a copy of the
        mappings is enough)."""
        with self._lock:
            return EnrichmentState(intensity=dict(self._intensity), power=dict(self._power))
