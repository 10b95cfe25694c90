"""Shared test configuration.

Service fixtures (real PostgreSQL, MariaDB, broker, munged, ...) live in ``tests/services/``
and are registered below. With ``JOBCARBON_REQUIRE_SERVICES=1`` (set by ``make test`` and CI)
a service that cannot start fails its tests instead of skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("JOBCARBON_SHARED", REPO.parent / "shared"))
DATA = Path(__file__).resolve().parent / "data"

pytest_plugins: list[str] = [
    "tests.services.postgres",
    "tests.services.http_script",
    "tests.services.munge",
    "tests.services.credit_api",
    "tests.services.mariadb",
    "tests.services.slurmdbd",
    "tests.services.slurm_build",
    "tests.services.broker",
    "tests.services.object_store",
    "tests.services.slurm_site",
]


def require_services() -> bool:
    """True when missing services must fail tests (CI), not skip them."""
    return os.environ.get("JOBCARBON_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI) a test whose service is unavailable."""
    if require_services():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real public fixtures); fails if it is missing."""
    path = SHARED / "data"
    if not path.is_dir():
        unavailable(f"shared data not found at {path}")
    return path
