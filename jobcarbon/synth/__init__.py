"""Deterministic synthetic Slurm workloads with known truth, rendered per Slurm version."""

from jobcarbon.synth.cluster import DEFAULT_PARTITIONS, Partition, User
from jobcarbon.synth.jobs import DEFAULT_START, SynthJob, generate_jobs
from jobcarbon.synth.render import (
    VERSIONS,
    choose_versions,
    kafka_key_and_headers,
    print_sluid,
    record_dict,
    render,
)

__all__ = [
    "DEFAULT_PARTITIONS",
    "DEFAULT_START",
    "VERSIONS",
    "Partition",
    "SynthJob",
    "User",
    "choose_versions",
    "generate_jobs",
    "kafka_key_and_headers",
    "print_sluid",
    "record_dict",
    "render",
]
