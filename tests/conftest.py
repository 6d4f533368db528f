"""Shared fixtures: where the real data lives (../shared/data, or $POSETRACK_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The real-data folder: ``$POSETRACK_DATA`` if set, else ``../shared/data`` beside the project."""
    env = os.environ.get("POSETRACK_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data() -> Path:
    """Path of the real-data folder; tests using it skip only when the folder is absent."""
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"real data folder {d} is absent (set POSETRACK_DATA)")
    return d


@pytest.fixture(scope="session")
def flies(data: Path) -> Path:
    return data / "sleap-flies"


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """``screenshots/`` at the repository root (git-ignored): widget pictures for reviewers and docs."""
    out = ROOT / "screenshots"
    out.mkdir(exist_ok=True)
    return out
