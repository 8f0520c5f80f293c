"""Shared fixtures: paths to the real-audio fixtures and a fresh data folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "fixtures" / "real-audio"


@pytest.fixture
def real_audio() -> dict[str, Path]:
    """The two real mp3s in ../shared (an MTT clip and an MSD preview); skip when absent."""
    files = {
        "mtt": SHARED_AUDIO / "joram-moments_of_clarity-08-solipsism-59-88.mp3",
        "msd": SHARED_AUDIO / "TRWJAZW128F42760DD_test.mp3",
    }
    if not all(p.is_file() for p in files.values()):
        pytest.skip(f"real-audio fixtures not found in {SHARED_AUDIO}")
    return files
