"""slurm_patch/check.sh: the series applies to Debian trixie's slurm-wlm 24.11.5 and the
jobcomp/kafka plugin compiles without warnings (check.sh fails on any ``warning:``)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO
from tests.services.slurm_build import SlurmBuild

pytestmark = pytest.mark.slurmbuild

PATCH_DIR = REPO / "slurm_patch"


def test_series_applies_and_plugin_builds(slurm_plugin_build: SlurmBuild) -> None:
    build = slurm_plugin_build
    assert build.plugin.is_file()
    applied = (build.tree / "applied" / "series").read_text()
    assert applied == (PATCH_DIR / "series").read_text()
    print(f"check.sh took {build.seconds:.1f} s")


def test_plugin_links_librdkafka_and_carries_the_patch(slurm_plugin_build: SlurmBuild) -> None:
    so = slurm_plugin_build.plugin
    needed = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
    assert "librdkafka" in needed
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True, check=True
    ).stdout
    # Key and header: the patch's librdkafka calls.
    assert "rd_kafka_header_add" in undefined
    assert "rd_kafka_headers_new" in undefined
    strings = so.read_bytes()
    for text in (b"jobcarbon-schema", b"energy_complete", b"job_db_inx", b"submit_epoch"):
        assert text in strings, text


def test_patched_sources_compile_without_warnings(slurm_plugin_build: SlurmBuild) -> None:
    log = (slurm_plugin_build.tree / "plugin-build.log").read_text()
    assert "jobcomp_kafka_message.c" in log  # the patched files were compiled, from clean
    assert "-Wall" in log
    assert "warning:" not in log


def test_backport_raw_tres_hunk_matches_upstream_24_11(slurm_plugin_build: SlurmBuild) -> None:
    """The 23.x backport's raw TRES lines are exactly what upstream 23.11.1+ has: its
    jobcomp_common.c hunk reverse-applies to 24.11.5 (job_mgr.c was renamed since)."""
    patch = PATCH_DIR / "backport-23.x" / "0001-jobcomp-energy-before-write-and-raw-tres.patch"
    text = patch.read_text()
    common_hunk = text[
        text.index("--- a/src/plugins/jobcomp/common/") : text.index(
            "--- a/src/slurmctld/job_mgr.c"
        )
    ]
    proc = subprocess.run(
        ["patch", "-R", "--dry-run", "-p1", "-d", str(slurm_plugin_build.tree / "src")],
        input=common_hunk, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
