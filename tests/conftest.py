"""Shared pytest fixtures: paths of the small datasets under tests/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fsdd_dir() -> Path:
    """100 FSDD clips (6 speakers, 10 per digit), `labels.csv` with file,label,speaker."""
    return FIXTURES / "fsdd"


@pytest.fixture
def office_dir() -> Path:
    """22 DCASE 2016 office events (2 per class) at 16 kHz, `labels.csv` with file,label."""
    return FIXTURES / "office"


@pytest.fixture
def bad_dir() -> Path:
    """Two good FSDD clips plus empty, non-audio, header-only and missing files."""
    return FIXTURES / "bad"
