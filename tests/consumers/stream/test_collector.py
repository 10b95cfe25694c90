"""The worker's interpreter settings: the GC off during batches, a short GIL switch interval."""

from __future__ import annotations

import gc

from consumers.stream.collector import BetweenBatches


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_automatic_collections_are_off_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with BetweenBatches(every_s=3600) as outer:
        assert not gc.isenabled()
        with BetweenBatches(every_s=3600):  # a second loop in the same process
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer loop still runs
        outer.between_batches()  # not due: nothing happens
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_between_batches() -> None:
    with BetweenBatches(every_s=0.0) as collector:
        for _ in range(1000):
            Cycle()
        assert any(isinstance(o, Cycle) for o in gc.get_objects())
        collector.between_batches()  # due at once
        assert not any(isinstance(o, Cycle) for o in gc.get_objects())


def test_the_switch_interval_is_short_inside_and_restored_after() -> None:
    import sys

    from consumers.stream.hot_path import SWITCH_INTERVAL_S, switch_interval

    before = sys.getswitchinterval()
    with switch_interval(SWITCH_INTERVAL_S):
        assert abs(sys.getswitchinterval() - SWITCH_INTERVAL_S) < 1e-9
    assert sys.getswitchinterval() == before
