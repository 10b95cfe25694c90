"""The hot path's offset arithmetic (the loop itself runs in tests/consumers/stream/
test_workers.py and the fault suites, against a real broker and warehouse)."""

from __future__ import annotations

from consumers.kafka.batch import Message
from consumers.stream.hot_path import first_offsets, next_offsets, source_of


def msg(partition: int, offset: int, topic: str = "slurm.jobcomp") -> Message:
    return Message(topic, partition, offset, None, b"{}", None, 0)


def test_commit_offsets_are_one_past_the_highest_per_partition_in_any_order() -> None:
    batch = [msg(0, 7), msg(1, 3), msg(0, 9), msg(0, 8), msg(1, 2), msg(2, 0, "other")]
    assert sorted(next_offsets(batch)) == [
        ("other", 2, 1),
        ("slurm.jobcomp", 0, 10),
        ("slurm.jobcomp", 1, 4),
    ]


def test_rewind_offsets_are_the_lowest_per_partition() -> None:
    batch = [msg(0, 7), msg(1, 3), msg(0, 9), msg(1, 2)]
    assert sorted(first_offsets(batch)) == [("slurm.jobcomp", 0, 7), ("slurm.jobcomp", 1, 2)]


def test_empty_batch_commits_nothing() -> None:
    assert next_offsets([]) == []


def test_dead_letter_source_names_topic_partition_offset() -> None:
    assert source_of(msg(3, 41)) == "slurm.jobcomp/3/41"
