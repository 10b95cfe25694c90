"""Fixtures for the enrich tests: the small documented replies in tests/data/carbon."""

from __future__ import annotations

from pathlib import Path

import pytest

CARBON = Path(__file__).resolve().parents[2] / "data" / "carbon"


@pytest.fixture(scope="session")
def carbon_data() -> Path:
    """tests/data/carbon (replies written from the documented API examples)."""
    return CARBON
